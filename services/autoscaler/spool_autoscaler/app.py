"""Composition root of the autoscaler: service changes and load samples in, decisions out."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from spool_autoscaler.scaler import Autoscaler
from spool_autoscaler.settings import AutoscalerSettings
from spool_common.bus.amqp import settle_after
from spool_common.bus.dispositions import Outcome
from spool_common.logging import get_logger
from spool_common.messages import AnyMessage, LoadSampled, ServiceChange, ServiceChanged
from spool_common.models import Service
from spool_common.resources import service_resources
from spool_common.store.pg import TRANSIENT_ERRORS

log = get_logger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


class Inbox:
    def __init__(self, pool: asyncpg.Pool, scaler: Autoscaler) -> None:
        self.pool = pool
        self.scaler = scaler

    async def handle(self, message: AnyMessage | None) -> Outcome:
        if isinstance(message, ServiceChanged):
            recorded = await self.pool.execute(
                "INSERT INTO scaled_services (service_id, revision, autoscaler, deleted, service) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (service_id) DO UPDATE SET "
                "revision = excluded.revision, autoscaler = excluded.autoscaler, "
                "deleted = excluded.deleted, service = excluded.service, updated_at = now() "
                "WHERE scaled_services.revision < excluded.revision",
                message.service.id,
                message.revision,
                scaler.to_wire() if (scaler := message.service.runtime.autoscaler) else None,
                message.change is ServiceChange.DELETED,
                message.service.to_wire(),
            )
            if recorded.endswith(" 1"):
                self.scaler.on_service(message)
            return Outcome.HANDLED
        if isinstance(message, LoadSampled):
            await self.scaler.on_load(message)
            return Outcome.HANDLED
        return Outcome.UNDECODABLE if message is None else Outcome.HANDLED

    async def load(self) -> None:
        rows = await self.pool.fetch(
            "SELECT service, revision FROM scaled_services "
            "WHERE NOT deleted AND autoscaler IS NOT NULL AND service IS NOT NULL"
        )
        for row in rows:
            service = Service.model_validate(row["service"])
            change = ServiceChanged(
                change=ServiceChange.UPDATED, service=service, revision=row["revision"]
            )
            self.scaler.on_service(change)


async def main(stop: asyncio.Event, settings: AutoscalerSettings) -> None:
    async with service_resources(
        settings, name="autoscaler", schema=settings.db_schema, migrations=MIGRATIONS
    ) as res:
        scaler = Autoscaler(res.bus, latency=settings.latency_policy())
        inbox = Inbox(res.pool, scaler)
        await inbox.load()
        await res.bus.consume(
            res.bus.topology.autoscaler_inbox,
            lambda d: settle_after(d, inbox.handle, TRANSIENT_ERRORS),
            prefetch=1,  # samples in order
        )
        loop = asyncio.create_task(scaler.run(stop))
        res.ready.set()
        log.info("autoscaler_started", services=len(scaler.scaled))
        await stop.wait()
        await loop
    log.info("autoscaler_stopped")
