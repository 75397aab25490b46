"""Composition root of the scheduler: desired state in, replicas out through a driver."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from spool_common.bus.amqp import Bus, settle_after
from spool_common.logging import get_logger
from spool_common.resources import service_resources
from spool_common.store.pg import TRANSIENT_ERRORS
from spool_scheduler.agents import AgentSetup
from spool_scheduler.driver import RuntimeDriver
from spool_scheduler.handlers import Inbox
from spool_scheduler.process_driver import ProcessDriver, ProcessLimits
from spool_scheduler.reconciler import Reconciler
from spool_scheduler.settings import SchedulerSettings
from spool_scheduler.store import DesiredStore
from spool_scheduler.supervisor import ProcessSupervisor, reap_orphans

log = get_logger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


def process_driver(settings: SchedulerSettings, agents: AgentSetup) -> ProcessDriver:
    state_dir = settings.state_dir.resolve()
    if reaped := reap_orphans(state_dir):
        log.warning("orphan_replicas_stopped", pids=reaped)
    supervisor = ProcessSupervisor(
        command=[sys.executable, "-m", "spool_agent"], state_dir=state_dir
    )
    return ProcessDriver(
        supervisor,
        state_dir=state_dir,
        credentials=agents.credential,
        agent_env=agents.agent_env,
        limits=ProcessLimits(settings.replica_open_files, settings.replica_processes),
    )


@asynccontextmanager
async def runtime_driver(settings: SchedulerSettings, bus: Bus) -> AsyncIterator[RuntimeDriver]:
    if settings.driver == "kubernetes":
        from spool_scheduler.k8s_driver import KubernetesDriver, settings_from

        k8s = await KubernetesDriver.in_cluster(settings_from(settings))
        try:
            yield k8s
        finally:
            await k8s.close()
        return
    local = process_driver(settings, AgentSetup(bus, settings))
    try:
        yield local
    finally:
        await local.close(grace=True)


async def main(stop: asyncio.Event, settings: SchedulerSettings) -> None:
    async with (
        service_resources(
            settings, name="scheduler", schema=settings.db_schema, migrations=MIGRATIONS
        ) as res,
        runtime_driver(settings, res.bus) as driver,
    ):
        reconciler = Reconciler(driver, res.bus, settings)
        store = DesiredStore(res.pool)
        for desired in await store.all():
            reconciler.set_service(desired)
        inbox = Inbox(store, reconciler)
        await res.bus.consume(
            res.bus.topology.scheduler_inbox,
            lambda d: settle_after(d, inbox.handle, TRANSIENT_ERRORS),
            prefetch=50,
        )
        loop = asyncio.create_task(reconciler.run(stop))
        res.ready.set()
        log.info("scheduler_started", driver=settings.driver, services=len(reconciler.desired))
        await stop.wait()
        await loop
    log.info("scheduler_stopped")
