"""Composition root of the trigger engine.

Today it keeps its index of services from service events and receives entity events; trigger
matching, Once/Always and cron are not built yet (see README, "What works today")."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from spool_common.bus.amqp import settle_after
from spool_common.bus.dispositions import Outcome
from spool_common.logging import get_logger
from spool_common.messages import AnyMessage, EntityEvent, ServiceChange, ServiceChanged
from spool_common.resources import service_resources
from spool_common.store.pg import TRANSIENT_ERRORS
from spool_trigger_engine.settings import TriggerEngineSettings

log = get_logger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


class Inbox:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def handle(self, message: AnyMessage | None) -> Outcome:
        if isinstance(message, ServiceChanged):
            await self.pool.execute(
                "INSERT INTO known_services (service_id, revision, project_id, deleted) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (service_id) DO UPDATE SET "
                "revision = excluded.revision, deleted = excluded.deleted, updated_at = now() "
                "WHERE known_services.revision < excluded.revision",
                message.service.id,
                message.revision,
                message.service.project_id,
                message.change is ServiceChange.DELETED,
            )
            return Outcome.HANDLED
        if isinstance(message, EntityEvent):
            log.info(
                "entity_event_received",
                resource=message.resource,
                action=message.action,
                entity_id=message.entity_id,
            )
            return Outcome.HANDLED
        return Outcome.UNDECODABLE if message is None else Outcome.HANDLED


async def main(stop: asyncio.Event, settings: TriggerEngineSettings) -> None:
    async with service_resources(
        settings, name="trigger-engine", schema=settings.db_schema, migrations=MIGRATIONS
    ) as res:
        inbox = Inbox(res.pool)
        await res.bus.consume(
            res.bus.topology.trigger_engine_inbox.name,
            lambda d: settle_after(d, inbox.handle, TRANSIENT_ERRORS),
            prefetch=50,
        )
        res.ready.set()
        log.info("trigger_engine_started")
        await stop.wait()
    log.info("trigger_engine_stopped")
