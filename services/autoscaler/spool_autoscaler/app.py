"""Composition root of the autoscaler.

Today it keeps its own index of services and their autoscaler settings from service events;
the scaling rules and decisions are not built yet (see README, "What works today")."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from spool_autoscaler.settings import AutoscalerSettings
from spool_common.bus.amqp import settle_after
from spool_common.bus.dispositions import Outcome
from spool_common.logging import get_logger
from spool_common.messages import AnyMessage, ServiceChange, ServiceChanged
from spool_common.resources import service_resources
from spool_common.store.pg import TRANSIENT_ERRORS

log = get_logger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


class ServiceIndex:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def handle(self, message: AnyMessage | None) -> Outcome:
        if not isinstance(message, ServiceChanged):
            return Outcome.UNDECODABLE if message is None else Outcome.HANDLED
        scaler = message.service.runtime.autoscaler
        await self.pool.execute(
            "INSERT INTO scaled_services (service_id, revision, autoscaler, deleted) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (service_id) DO UPDATE SET "
            "revision = excluded.revision, autoscaler = excluded.autoscaler, "
            "deleted = excluded.deleted, updated_at = now() "
            "WHERE scaled_services.revision < excluded.revision",
            message.service.id,
            message.revision,
            scaler.to_wire() if scaler else None,
            message.change is ServiceChange.DELETED,
        )
        return Outcome.HANDLED


async def main(stop: asyncio.Event, settings: AutoscalerSettings) -> None:
    async with service_resources(
        settings, name="autoscaler", schema=settings.db_schema, migrations=MIGRATIONS
    ) as res:
        index = ServiceIndex(res.pool)
        await res.bus.consume(
            res.bus.topology.autoscaler_inbox.name,
            lambda d: settle_after(d, index.handle, TRANSIENT_ERRORS),
            prefetch=50,
        )
        res.ready.set()
        log.info("autoscaler_started")
        await stop.wait()
    log.info("autoscaler_stopped")
