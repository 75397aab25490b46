"""Composition root of the scheduler: desired state in, replicas out through a driver."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from spool_common.bus.amqp import settle_after
from spool_common.logging import get_logger
from spool_common.resources import service_resources
from spool_common.store.pg import TRANSIENT_ERRORS
from spool_scheduler.handlers import Inbox
from spool_scheduler.process_driver import ProcessDriver, reap_orphans
from spool_scheduler.reconciler import Reconciler
from spool_scheduler.settings import SchedulerSettings
from spool_scheduler.store import DesiredStore

log = get_logger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


async def main(stop: asyncio.Event, settings: SchedulerSettings) -> None:
    if settings.driver != "process":
        raise SystemExit(f"unknown driver {settings.driver!r}; only 'process' is available")
    state_dir = settings.state_dir.resolve()
    if reaped := reap_orphans(state_dir):
        log.warning("orphan_replicas_stopped", pids=reaped)
    driver = ProcessDriver(command=[sys.executable, "-m", "spool_agent"], state_dir=state_dir)
    async with service_resources(
        settings, name="scheduler", schema=settings.db_schema, migrations=MIGRATIONS
    ) as res:
        reconciler = Reconciler(driver, res.bus, settings)
        store = DesiredStore(res.pool)
        for service, revision, deleted in await store.all():
            reconciler.set_service(service, revision, deleted)
        inbox = Inbox(store, reconciler)
        await res.bus.consume(
            res.bus.topology.scheduler_inbox.name,
            lambda d: settle_after(d, inbox.handle, TRANSIENT_ERRORS),
            prefetch=50,
        )
        loop = asyncio.create_task(reconciler.run(stop))
        log.info("scheduler_started", driver=settings.driver, services=len(reconciler.desired))
        await stop.wait()
        await loop
        await driver.close(grace=True)
    log.info("scheduler_stopped")
