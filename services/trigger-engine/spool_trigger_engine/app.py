"""Composition root of the trigger engine: entity events and cron ticks in, orders out.

The durable inbox (`entity.#`, `service.*`, `trigger.*`) is shared by every engine process;
each process also has an exclusive queue with every trigger change, so all of them match with
a current index. Cron runs in every process; the fire keys make each tick one execution."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg

from spool_common.bus.amqp import settle_after
from spool_common.bus.dispositions import Outcome
from spool_common.logging import get_logger
from spool_common.messages import AnyMessage, ServiceChange, ServiceChanged
from spool_common.resources import service_resources
from spool_common.store.pg import TRANSIENT_ERRORS
from spool_trigger_engine.engine import Engine
from spool_trigger_engine.settings import TriggerEngineSettings
from spool_trigger_engine.store import TriggerStore

log = get_logger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


class Inbox:
    """The shared inbox: services are indexed here, everything else goes to the engine."""

    def __init__(self, pool: asyncpg.Pool, engine: Engine) -> None:
        self.pool = pool
        self.engine = engine

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
        return await self.engine.handle(message)


async def main(stop: asyncio.Event, settings: TriggerEngineSettings) -> None:
    async with service_resources(
        settings, name="trigger-engine", schema=settings.db_schema, migrations=MIGRATIONS
    ) as res:
        engine = Engine(
            res.bus,
            TriggerStore(res.pool),
            max_loop_depth=settings.max_loop_depth,
            cron_grace=settings.cron_grace,
        )
        topology = res.bus.topology
        # This process's copy of every change first, then the stored triggers: no gap.
        updates = topology.trigger_updates(uuid.uuid4().hex[:12])
        await res.bus.consume(
            updates, lambda d: settle_after(d, engine.on_update, TRANSIENT_ERRORS), prefetch=50
        )
        await engine.load()
        inbox = Inbox(res.pool, engine)
        await res.bus.consume(
            topology.trigger_engine_inbox,
            lambda d: settle_after(d, inbox.handle, TRANSIENT_ERRORS),
            prefetch=settings.inbox_prefetch,
        )
        cron = asyncio.create_task(engine.run_cron(stop))
        res.ready.set()
        log.info("trigger_engine_started")
        await stop.wait()
        await cron
    log.info("trigger_engine_stopped")
