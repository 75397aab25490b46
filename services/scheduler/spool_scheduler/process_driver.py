"""The process driver: services run as local agent processes, rolled like Kubernetes
Deployments. It is the local stand-in for a Deployment controller plus a kubelet: its own loop
starts replicas (with their credentials, environment and rlimits), probes their readiness
endpoint, rolls new revisions a few at a time (`rollout.step`), drains or kills old replicas,
and backs restarts off after crashes. The scheduler's reconcile loop sees only `RuntimeDriver`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson

from spool_common.backoff import BackoffPolicy
from spool_common.instances import instance
from spool_common.logging import get_logger
from spool_common.models import Service
from spool_scheduler.driver import (
    Credentials,
    DeploymentSpec,
    Observation,
    ReplicaExit,
    ReplicaPhase,
    ReplicaSpec,
    ReplicaStartError,
    ReplicaStatus,
    ReplicaView,
    ResourceLimits,
)
from spool_scheduler.rollout import CrashState, Running, Target, after_exit, step
from spool_scheduler.supervisor import ProcessSupervisor

log = get_logger(__name__)

RESTART_POLICY = BackoffPolicy(initial=1.0, factor=2.0, maximum=60.0, jitter=0.1)
LOG_TAIL_LINES = 20
_KEEP_AFTER_EXIT = ("agent.log", "runner.log")  # what stays of an exited replica's directory

# (service, revision, replica id, token) -> the agent's environment
AgentEnv = Callable[[Service, int, str, str], Mapping[str, str]]


@dataclass(frozen=True)
class ProcessLimits:
    """Per-replica rlimits besides memory (which comes from the service's resources)."""

    open_files: int | None = 4096
    processes: int | None = None  # RLIMIT_NPROC counts every process of the user


@dataclass
class _Replica:
    service_id: str
    revision: int
    started_at: float
    status: ReplicaStatus = ReplicaStatus.STARTING
    since: float = 0.0
    running: int | None = None
    stopping: bool = False  # we asked it to stop: its exit is expected
    port: int | None = None
    probed_at: float = 0.0
    was_ready: bool = False


@dataclass
class _Service:
    spec: DeploymentSpec | None
    crash: CrashState = field(default_factory=CrashState)
    force_remove: bool = False


def replica_limits(service: Service, extra: ProcessLimits) -> ResourceLimits:
    """Memory from explicit limits, else from the pod type; the rest from the driver."""
    resources = service.runtime.resources
    memory = resources.limits.memory_bytes() if resources is not None else None
    if memory is None:
        memory = instance(service.runtime.pod_type, field="runtime.podType").memory_bytes
    return ResourceLimits(
        memory_bytes=memory, open_files=extra.open_files, processes=extra.processes
    )


class ProcessDriver:
    def __init__(
        self,
        supervisor: ProcessSupervisor,
        *,
        state_dir: Path,
        credentials: Credentials,
        agent_env: AgentEnv,
        limits: ProcessLimits | None = None,
        interval: float = 0.2,
        probe_every: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.supervisor = supervisor
        self.state_dir = state_dir
        self.credentials = credentials
        self.agent_env = agent_env
        self.limits = limits or ProcessLimits()
        self.interval = interval
        self.probe_every = probe_every
        self.clock = clock
        self.rand = rand
        self._services: dict[str, _Service] = {}
        self._replicas: dict[str, _Replica] = {}
        self._exits: deque[ReplicaExit] = deque(maxlen=10_000)
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None

    # RuntimeDriver ------------------------------------------------------------------------
    async def apply(self, spec: DeploymentSpec) -> None:
        current = self._services.get(spec.service_id)
        if current is None:
            self._services[spec.service_id] = _Service(spec)
        else:
            current.spec, current.force_remove = spec, False
        self._kick()

    async def remove(self, service_id: str, *, force: bool = False) -> None:
        current = self._services.get(service_id)
        if current is not None:
            current.spec, current.force_remove = None, force
        elif any(r.service_id == service_id for r in self._replicas.values()):
            self._services[service_id] = _Service(None, force_remove=force)
        self._kick()

    async def stop_replica(self, replica_id: str, reason: str) -> None:
        replica = self._replicas.get(replica_id)
        if replica is None:
            return
        log.warning("replica_stopped_by_scheduler", replica_id=replica_id, reason=reason)
        replica.stopping = True
        await self.supervisor.stop(replica_id, force=True)

    async def restart_replica(self, replica_id: str) -> bool:
        replica = self._replicas.get(replica_id)
        if replica is None or replica.stopping:
            return False
        log.info("replica_restart", replica_id=replica_id, service_id=replica.service_id)
        # Draining, it no longer counts toward the service's replicas (rollout.step): the next
        # step starts its replacement.
        await self._stop(replica_id, force=False)
        self._kick()
        return True

    async def observe(self) -> Observation:
        views = [
            ReplicaView(
                replica_id=replica_id,
                service_id=r.service_id,
                revision=r.revision,
                status=r.status,
                started_at=r.started_at,
                since=r.since,
                running=r.running,
            )
            for replica_id, r in self._replicas.items()
        ]
        exits = list(self._exits)
        self._exits.clear()
        return Observation(views, exits)

    async def close(self, *, grace: bool = True) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        await self.supervisor.close(grace=grace)
        if self._http is not None:
            await self._http.close()

    # the controller loop -----------------------------------------------------------------
    def _kick(self) -> None:
        self._wake.set()
        if self._loop is None or self._loop.done():
            self._loop = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.reconcile()
            except Exception:  # one failed step must not stop the controller
                log.exception("process_driver_step_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)

    async def reconcile(self) -> None:
        """One step: collect exits, probe, then roll each service one step forward."""
        self._collect_exits()
        await self._probe_all()
        now = self.clock()
        for service_id, svc in list(self._services.items()):
            if not await self._step_service(service_id, svc, now):
                del self._services[service_id]

    async def _step_service(self, service_id: str, svc: _Service, now: float) -> bool:
        """Roll one service a step; False once it is removed and has no replica left."""
        if svc.spec is None and not self._mine(service_id):
            return False
        target = None
        if svc.spec is not None:
            target = Target(svc.spec.revision, svc.spec.replicas, svc.spec.force)
        may_start = now >= svc.crash.not_before
        plan = step(target, self._mine(service_id), may_start=may_start)
        if any(self._is_ready(r) for r in plan.drain):
            # Choosing whom to let go: ask the ready ones how busy they are right now.
            ready = [(r, self._replicas[r]) for r in self._ids(service_id) if self._is_ready(r)]
            await asyncio.gather(*(self._probe(rid, replica) for rid, replica in ready))
            plan = step(target, self._mine(service_id), may_start=may_start)
        kill = plan.kill + (plan.drain if svc.force_remove else [])
        drain = [] if svc.force_remove else plan.drain
        for replica_id in kill:
            await self._stop(replica_id, force=True)
        for replica_id in drain:
            await self._stop(replica_id, force=False)
        for _ in range(plan.start):
            if svc.spec is not None and not await self._start(svc.spec):
                break
        return True

    def _ids(self, service_id: str) -> list[str]:
        return [rid for rid, r in self._replicas.items() if r.service_id == service_id]

    def _mine(self, service_id: str) -> list[Running]:
        return [
            Running(rid, r.revision, r.status, r.started_at, r.running)
            for rid, r in self._replicas.items()
            if r.service_id == service_id
        ]

    def _is_ready(self, replica_id: str) -> bool:
        replica = self._replicas.get(replica_id)
        return replica is not None and replica.status is ReplicaStatus.READY

    def _collect_exits(self) -> None:
        for seen in self.supervisor.observe():
            if seen.phase is not ReplicaPhase.EXITED:
                continue
            replica = self._replicas.pop(seen.replica_id, None)
            self.supervisor.forget(seen.replica_id)
            if replica is None:
                continue
            at = seen.exited_at or self.clock()
            clean = replica.stopping or seen.exit_code == 0
            svc = self._services.get(replica.service_id)
            if svc is not None:
                svc.crash = after_exit(
                    svc.crash,
                    started_at=replica.started_at,
                    exited_at=at,
                    clean=clean,
                    policy=RESTART_POLICY,
                    rand=self.rand(),
                )
            workdir = self.supervisor.workdir(seen.replica_id)
            self._exits.append(
                ReplicaExit(
                    replica_id=seen.replica_id,
                    service_id=replica.service_id,
                    revision=replica.revision,
                    exit_code=seen.exit_code,
                    started_at=replica.started_at,
                    at=at,
                    expected=replica.stopping,
                    log_tail=tuple(_tail(workdir / "agent.log", LOG_TAIL_LINES)),
                    was_ready=replica.was_ready,
                )
            )
            _prune(workdir)

    async def _start(self, spec: DeploymentSpec) -> bool:
        service = spec.service
        replica_id = f"{service.name[:40]}-{uuid.uuid4().hex[:8]}"
        try:
            token = await self.credentials(service.id, replica_id)
            replica_spec = ReplicaSpec(
                replica_id=replica_id,
                service_id=service.id,
                revision=spec.revision,
                env=self.agent_env(service, spec.revision, replica_id, token),
                drain_time=spec.drain_time,
                limits=replica_limits(service, self.limits),
            )
            await self.supervisor.start(replica_spec)
        except (ReplicaStartError, ValueError, LookupError) as e:
            log.warning("replica_not_started", service_id=service.id, error=str(e))
            return False
        now = self.clock()
        self._replicas[replica_id] = _Replica(service.id, spec.revision, now, since=now)
        return True

    async def _stop(self, replica_id: str, *, force: bool) -> None:
        replica = self._replicas.get(replica_id)
        if replica is None:
            return
        replica.stopping = True
        if replica.status is not ReplicaStatus.DRAINING:
            replica.status, replica.since = ReplicaStatus.DRAINING, self.clock()
        with contextlib.suppress(KeyError):
            await self.supervisor.stop(replica_id, force=force)

    # readiness probes ----------------------------------------------------------------------
    async def _probe_all(self) -> None:
        now = self.clock()
        due = [
            (rid, r)
            for rid, r in self._replicas.items()
            if r.status is ReplicaStatus.STARTING
            or (r.status is ReplicaStatus.READY and now - r.probed_at >= self.probe_every)
        ]
        if due:
            await asyncio.gather(*(self._probe(rid, r) for rid, r in due))

    async def _probe(self, replica_id: str, replica: _Replica) -> None:
        """GET the agent's /readyz, as a kubelet would. A starting replica becomes READY on
        the first 200; a ready one that answers 503 is draining (it said so itself)."""
        replica.probed_at = self.clock()
        if replica.port is None:
            replica.port = _read_port(self.supervisor.workdir(replica_id) / "ops.port")
            if replica.port is None:
                return
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0))
        try:
            async with self._http.get(f"http://127.0.0.1:{replica.port}/readyz") as response:
                body = orjson.loads(await response.read() or b"{}")
                ready = response.status == 200
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
            return
        if replica.status is ReplicaStatus.DRAINING:
            return
        running = body.get("running") if isinstance(body, dict) else None
        replica.running = running if isinstance(running, int) else None
        if ready and replica.status is ReplicaStatus.STARTING:
            replica.status, replica.since = ReplicaStatus.READY, self.clock()
            replica.was_ready = True
        elif not ready and replica.status is ReplicaStatus.READY:
            replica.status, replica.since = ReplicaStatus.DRAINING, self.clock()


def _read_port(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _tail(path: Path, lines: int) -> list[str]:
    """The last `lines` lines of a log file (reads at most its last 64 KiB)."""
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 65536))
            data = f.read()
    except OSError:
        return []
    return [line.decode(errors="replace") for line in data.splitlines()[-lines:]]


def _prune(workdir: Path) -> None:
    """Drop an exited replica's codebase and dependencies; keep its logs."""
    with contextlib.suppress(OSError):
        for entry in workdir.iterdir():
            if entry.name in _KEEP_AFTER_EXIT:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
