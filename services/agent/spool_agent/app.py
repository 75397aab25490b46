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
from spool_agent.gateway_client import Bootstrap, BootstrapRefused, fetch_bootstrap
from spool_agent.handlers import Worker
from spool_agent.protocol import InitStage
from spool_agent.reporting import Reporter
from spool_agent.requirements import RequirementsError, install
from spool_agent.runner_client import Runner, RunnerInitError
from spool_agent.runner_spawn import host, make_undumpable
from spool_agent.sandbox import RunnerSandbox, plan_for
from spool_agent.settings import AgentSettings
from spool_common.archive import ArchiveLimits, extract_archive
from spool_common.bus.amqp import Bus, BusError
from spool_common.bus.consumers import Subscription
from spool_common.bus.topology import Topology
from spool_common.exit_codes import AgentExit
from spool_common.logging import get_logger, redact
from spool_common.messages import (
    CredentialReply,
    CredentialRequest,
    ReplicaChanged,
    ReplicaState,
)
from spool_common.ops import ops_from_settings

log = get_logger(__name__)

RUNNER_LOG = "runner.log"  # user code's output outside calls; forwarded to the service's logs


async def _prepare(
    boot: Bootstrap, settings: AgentSettings
) -> Callable[[Reporter], Awaitable[Runner]]:
    """Extract the code and install its requirements once; return how to start a runner."""
    # User code's errors are logged here too: never a secret, nor the bot's token.
    redact([*boot.secrets.values(), *([boot.bot_token] if boot.bot_token else [])])
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
            },
            InitStage.CODEBASE,
        )
    # Secrets after the service's env (a secret wins); the agent's SPOOL_* never reach user
    # code, which gets the API's address and its bot's token (the SDK reads both).
    env = runner_environment(os.environ, {**boot.service.runtime.env, **boot.secrets})
    if boot.bot_token is not None:
        env.update(SPOOL_URL=settings.gateway_url, SPOOL_TOKEN=boot.bot_token)
    if boot.package.requirements:
        deps = Path.cwd() / "deps"
        await install(boot.package.requirements, deps)
        env["PYTHONPATH"] = str(deps)

    reads = (str(Path.cwd() / "deps"),) if boot.package.requirements else ()
    plan = plan_for(boot.service, settings.replica_id, settings.sandbox(), host())
    sandbox = RunnerSandbox(plan, str(codebase), reads)

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
            sandbox=sandbox,
        )

    return start


async def _announce(bus: Bus, worker: Worker, state: ReplicaState, reason: str | None) -> None:
    event = ReplicaChanged(
        replica_id=worker.replica_id,
        service_id=worker.service.id,
        state=state,
        reason=reason,
        at=datetime.now(UTC),
        revision=worker.revision,
    )
    with contextlib.suppress(Exception):
        await bus.publish(bus.topology.events, f"replica.{state}", event)


async def _consume(bus: Bus, worker: Worker, replica_id: str) -> list[Subscription]:
    topology = bus.topology
    queue = topology.service_queue(worker.service.id)
    control = topology.control_queue(replica_id)
    return [
        await bus.consume(control, worker.on_control, prefetch=10),
        await bus.consume(queue, worker.on_delivery, prefetch=worker.service.runtime.concurrency),
    ]


class Readiness:
    """What /readyz answers: ready once init is done and the consumers are attached, until
    the drain begins; with how many executions the replica holds (idle-first scale-in)."""

    def __init__(self) -> None:
        self.worker: Worker | None = None
        self.serving = False

    def __call__(self) -> tuple[bool, dict[str, object]]:
        worker = self.worker
        running = len(worker.running) if worker is not None else 0
        ready = self.serving and worker is not None and not worker.draining
        return ready, {"running": running}

    def live(self) -> bool:
        """Failing once a consumer is lost for good (bus/consumers.py restores the rest)."""
        return self.worker is None or self.worker.bus.consuming


async def main(stop: asyncio.Event, settings: AgentSettings) -> int:
    make_undumpable()  # user code must not read our environment or ptrace us (T26)
    readiness = Readiness()
    async with ops_from_settings(settings, ready=readiness, live=readiness.live):
        return await _run(stop, settings, readiness)


def _init_exit(e: RunnerInitError) -> int:
    log.error("init_failed", stage=e.stage, **e.error)
    return AgentExit.CODEBASE_ERROR if e.stage is InitStage.CODEBASE else AgentExit.INIT_FAILED


async def _credential(bus: Bus, settings: AgentSettings) -> str:
    """The token to fetch the service with: given by the scheduler (process driver), or asked
    for over the bus (Kubernetes, where no credential is written into the Deployment)."""
    if settings.agent_token:
        return settings.agent_token
    request = CredentialRequest(service_id=settings.service_id, replica_id=settings.replica_id)
    reply = await bus.request(bus.topology.agent, "credential", request, timeout=10.0)
    if not isinstance(reply, CredentialReply) or reply.token is None:
        raise BootstrapRefused(f"no credential: {getattr(reply, 'error', None)}")
    return reply.token


async def _run(stop: asyncio.Event, settings: AgentSettings, readiness: Readiness) -> int:
    bus = Bus(
        settings.amqp_url,
        Topology(settings.bus_namespace),
        name=f"agent-{settings.replica_id}",
        publish_timeout=settings.publish_timeout,
    )
    await bus.connect()
    try:
        boot = await fetch_bootstrap(settings.gateway_url, await _credential(bus, settings))
        start_runner = await _prepare(boot, settings)
    except BootstrapRefused as e:
        log.error("unauthorized", error=str(e))
        await bus.close()
        return AgentExit.UNAUTHORIZED
    except RequirementsError as e:
        log.error("requirements_failed", error=str(e))
        await bus.close()
        return AgentExit.REQUIREMENTS_FAILED
    except RunnerInitError as e:
        await bus.close()
        return _init_exit(e)
    except BusError:
        await bus.close()
        raise
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
    worker.revision = boot.revision
    readiness.worker = worker
    try:
        await worker.start()
    except RunnerInitError as e:
        await bus.close()
        return _init_exit(e)
    return await _serve(bus, worker, reporter, settings, boot, stop, readiness)


async def _serve(
    bus: Bus,
    worker: Worker,
    reporter: Reporter,
    settings: AgentSettings,
    boot: Bootstrap,
    stop: asyncio.Event,
    readiness: Readiness,
) -> int:
    subscriptions = await _consume(bus, worker, settings.replica_id)
    readiness.serving = True

    async def paused() -> None:
        readiness.serving = False
        with contextlib.suppress(Exception):
            await subscriptions[1].cancel()  # the service queue; control stays

    worker.on_paused = paused
    drained = asyncio.Event()  # leases are renewed until running work is over, not until SIGTERM
    tail = asyncio.create_task(reporter.tail_replica_log(Path.cwd() / RUNNER_LOG, drained))
    renewals = asyncio.create_task(
        reporter.renew_leases(worker.held, settings.lease_renew_interval, drained)
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
    code = AgentExit.RUNNER_CRASHED if worker.failed.is_set() else AgentExit.STOPPED
    await _announce(bus, worker, ReplicaState.STOPPED if code == 0 else ReplicaState.FAILED, None)
    await bus.close()
    return code
