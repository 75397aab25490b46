"""Composition root of an agent (one per replica): fetch the code, install its requirements,
start the runner child, consume the service's queue and its own control queue, renew
leases, drain on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from spool_agent.environment import runner_environment
from spool_agent.gateway_client import Bootstrap, fetch_bootstrap
from spool_agent.handlers import Worker
from spool_agent.reporting import Reporter
from spool_agent.requirements import RequirementsError, install
from spool_agent.runner_client import Runner, RunnerInitError
from spool_agent.settings import AgentSettings
from spool_common.archive import ArchiveLimits, extract_archive
from spool_common.bus.amqp import Bus, Subscription
from spool_common.bus.topology import Topology
from spool_common.logging import get_logger
from spool_common.messages import ReplicaChanged, ReplicaState

log = get_logger(__name__)

EXIT_INIT_FAILED = 3
EXIT_REQUIREMENTS_FAILED = 4
EXIT_RUNNER_CRASHED = 5
RUNNER_LOG = "runner.log"  # user code's output outside calls; forwarded to the service's logs


async def _prepare(boot: Bootstrap) -> Callable[[Reporter], Awaitable[Runner]]:
    """Extract the code and install its requirements once; return how to start a runner."""
    codebase = Path.cwd() / "codebase"
    shutil.rmtree(codebase, ignore_errors=True)
    extract_archive(boot.codebase, codebase, ArchiveLimits())
    module = boot.package.module(boot.service.module_name)
    if module is None:
        raise RunnerInitError(
            {
                "type": "ModuleNotFound",
                "traceback": "",
                "message": f"no module '{boot.service.module_name}'",
            }
        )
    env = runner_environment(os.environ, boot.service.runtime.env)
    if boot.package.requirements:
        deps = Path.cwd() / "deps"
        await install(boot.package.requirements, deps)
        env["PYTHONPATH"] = str(deps)

    async def start(reporter: Reporter) -> Runner:
        return await Runner.start(
            codebase=codebase,
            entry_point=module.entry_point,
            class_name=module.class_name,
            init_params=boot.service.init_params,
            concurrency=boot.service.runtime.concurrency,
            env=env,
            on_progress=reporter.on_progress,
            on_log=reporter.on_log,
            run_execution_as_process=boot.service.run_execution_as_process,
            log_file=Path.cwd() / RUNNER_LOG,
        )

    return start


async def _announce(bus: Bus, worker: Worker, state: ReplicaState, reason: str | None) -> None:
    event = ReplicaChanged(
        replica_id=worker.replica_id,
        service_id=worker.service.id,
        state=state,
        reason=reason,
        at=datetime.now(UTC),
    )
    with contextlib.suppress(Exception):
        await bus.publish(bus.topology.events, f"replica.{state}", event)


async def _consume(bus: Bus, worker: Worker, replica_id: str) -> list[Subscription]:
    topology = bus.topology
    queue = topology.service_queue(worker.service.id)
    await bus.declare_queue(queue)
    control = topology.control_queue(replica_id)
    return [
        await bus.consume(control, worker.on_control, prefetch=10),
        await bus.consume(
            queue.name, worker.on_delivery, prefetch=worker.service.runtime.concurrency
        ),
    ]


async def main(stop: asyncio.Event, settings: AgentSettings) -> int:
    boot = await fetch_bootstrap(settings.gateway_url, settings.agent_token)
    bus = Bus(
        settings.amqp_url,
        Topology(settings.bus_namespace),
        name=f"agent-{settings.replica_id}",
        publish_timeout=settings.publish_timeout,
    )
    try:
        start_runner = await _prepare(boot)
    except RequirementsError as e:
        log.error("requirements_failed", error=str(e))
        return EXIT_REQUIREMENTS_FAILED
    except RunnerInitError as e:
        log.error("init_failed", **e.error)
        return EXIT_INIT_FAILED
    await bus.connect()
    reporter = Reporter(bus, boot.service.id, settings.replica_id)
    worker = Worker(
        bus,
        reporter,
        boot.service,
        boot.package,
        settings.replica_id,
        lambda: start_runner(reporter),
    )
    worker.claim_timeout = settings.claim_timeout
    try:
        await worker.start()
    except RunnerInitError as e:
        log.error("init_failed", **e.error)
        await bus.close()
        return EXIT_INIT_FAILED
    return await _serve(bus, worker, reporter, settings, boot, stop)


async def _serve(
    bus: Bus,
    worker: Worker,
    reporter: Reporter,
    settings: AgentSettings,
    boot: Bootstrap,
    stop: asyncio.Event,
) -> int:
    subscriptions = await _consume(bus, worker, settings.replica_id)
    drained = asyncio.Event()  # leases are renewed until running work is over, not until SIGTERM
    tail = asyncio.create_task(reporter.tail_replica_log(Path.cwd() / RUNNER_LOG, drained))
    renewals = asyncio.create_task(
        reporter.renew_leases(
            lambda: list(worker.running.items()), settings.lease_renew_interval, drained
        )
    )
    await _announce(bus, worker, ReplicaState.READY, None)
    log.info(
        "agent_ready",
        service_id=boot.service.id,
        revision=boot.revision,
        init_seconds=worker.init_seconds,
    )
    failed = asyncio.create_task(worker.failed.wait())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({failed, stopped}, return_when=asyncio.FIRST_COMPLETED)
    failed.cancel()
    stopped.cancel()
    for subscription in subscriptions:
        await subscription.cancel()
    await _announce(bus, worker, ReplicaState.DRAINING, None)
    drain_time = settings.drain_time if settings.drain_time is not None else boot.service.drain_time
    await worker.drain(drain_time)
    drained.set()
    await renewals
    await tail
    await reporter.flush()
    code = EXIT_RUNNER_CRASHED if worker.failed.is_set() else 0
    await _announce(bus, worker, ReplicaState.STOPPED if code == 0 else ReplicaState.FAILED, None)
    await bus.close()
    return code
