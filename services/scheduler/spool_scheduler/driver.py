"""The runtime-driver port: how the reconcile loop runs services, whatever runs them.

`RuntimeDriver` is service-level, the shape of a Kubernetes Deployment: the reconcile loop
says what each service should run (`apply`, `remove`), reads what runs (`observe`) and acts on
health (`stop_replica`). The **kubernetes** driver hands this to Deployments; the **process**
driver is the local equivalent of a Deployment controller plus kubelet, built from a pure
rollout planner (`rollout.py`) and a replica supervisor (`ReplicaSupervisor`, below).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from spool_common.models import Service


class ReplicaStartError(Exception):
    """A replica could not be started at all (bad command, limit rejected, spawn failed)."""


@dataclass(frozen=True)
class ResourceLimits:
    """Per-replica limits; `None` leaves a limit as the scheduler has it."""

    memory_bytes: int | None = None
    open_files: int | None = None
    processes: int | None = None

    def __post_init__(self) -> None:
        for name in ("memory_bytes", "open_files", "processes"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"resource limit {name} must be > 0, got {value}")


@dataclass(frozen=True)
class ReplicaSpec:
    """Everything a driver needs to run one agent replica."""

    replica_id: str
    service_id: str
    revision: int
    env: Mapping[str, str]  # the agent's full environment; the caller builds it
    drain_time: float  # seconds the agent may drain after SIGTERM before it is killed
    limits: ResourceLimits | None = None

    def __post_init__(self) -> None:
        if not self.replica_id:
            raise ValueError("replica_id must not be empty")
        if self.drain_time < 0:
            raise ValueError(f"drain_time must be >= 0 seconds, got {self.drain_time}")


class ReplicaPhase(StrEnum):
    RUNNING = "running"
    STOPPING = "stopping"
    EXITED = "exited"


@dataclass(frozen=True)
class ReplicaObservation:
    """A snapshot of one replica. Times are `time.monotonic()` seconds.

    `exit_code` follows asyncio: >= 0 is the exit status, negative is the killing signal
    (-9 for SIGKILL).
    """

    replica_id: str
    service_id: str
    revision: int
    phase: ReplicaPhase
    pid: int | None
    started_at: float
    exit_code: int | None
    exited_at: float | None


class ReplicaSupervisor(Protocol):
    """Replica-level: start, stop and watch single agent processes; no decisions."""

    async def start(self, spec: ReplicaSpec) -> None:
        """Start a replica; raises ReplicaStartError if it cannot be started."""
        ...

    async def stop(self, replica_id: str, *, force: bool = False) -> None:
        """Ask a replica to stop and return at once; progress shows in `observe()`.

        Graceful: SIGTERM, then SIGKILL once `drain_time` (plus a small margin) has passed.
        `force`: SIGKILL now (also escalates a graceful stop already under way).
        Stopping an EXITED replica does nothing; an unknown id raises KeyError.
        """
        ...

    def observe(self) -> list[ReplicaObservation]:
        """The current view of every replica not yet forgotten; no I/O."""
        ...

    def forget(self, replica_id: str) -> None:
        """Drop an EXITED replica from the view (unknown ids are ignored)."""
        ...

    async def close(self, *, grace: bool = True) -> None:
        """Stop every replica (gracefully or by force) and wait until all have exited."""
        ...


# --- service level ---------------------------------------------------------------------------

# Mints a credential for one replica of a service: (service_id, replica_id) -> token.
Credentials = Callable[[str, str], Awaitable[str]]


@dataclass(frozen=True)
class DeploymentSpec:
    """What one service should run: `replicas` agents of `service` at `revision`, the service
    revision at which what a replica runs last changed (a scaling-only change keeps it, so it
    scales rather than rolls: the pod template of a Deployment).

    `force` replaces old replicas at once (killed, not drained), as `?force=true` asks.
    """

    service: Service
    revision: int
    replicas: int
    force: bool = False

    def __post_init__(self) -> None:
        if self.replicas < 0:
            raise ValueError(f"replicas must be >= 0, got {self.replicas}")

    @property
    def service_id(self) -> str:
        return self.service.id

    @property
    def drain_time(self) -> float:
        return float(self.service.drain_time)


class ReplicaStatus(StrEnum):
    PENDING = "pending"  # not scheduled / image not pulled yet (Kubernetes)
    STARTING = "starting"  # running, not ready yet (installing requirements, __init__)
    READY = "ready"  # ready: init done, consuming
    DRAINING = "draining"  # told to stop: finishes its work, then exits


@dataclass(frozen=True)
class ReplicaView:
    """One live replica. `since` is when it entered `status` (monotonic seconds, the driver's
    clock); `running` is how many executions it holds, when the driver knows; `waiting` is the
    runtime's reason for a PENDING replica (e.g. "ImagePullBackOff", "Unschedulable")."""

    replica_id: str
    service_id: str
    revision: int
    status: ReplicaStatus
    started_at: float
    since: float
    running: int | None = None
    waiting: str | None = None


@dataclass(frozen=True)
class ReplicaExit:
    """A replica that ended since the previous `observe()`. `exit_code` >= 0 is the exit
    status, negative the killing signal; `reason` is the runtime's word for it when it has
    one (Kubernetes: "OOMKilled", "Error"); `log_tail` holds the replica's last log lines;
    `expected` is true when the driver stopped it (drain, scale-in, removal); `was_ready`
    when it had been ready (serving) before it ended."""

    replica_id: str
    service_id: str
    revision: int
    exit_code: int | None
    started_at: float
    at: float
    expected: bool
    reason: str | None = None
    log_tail: tuple[str, ...] = ()
    was_ready: bool = False  # it had been serving (ready) before it ended


@dataclass(frozen=True)
class Observation:
    replicas: list[ReplicaView]
    exits: list[ReplicaExit]


class RuntimeDriver(Protocol):
    async def apply(self, spec: DeploymentSpec) -> None:
        """Create or update a service's deployment; idempotent. A new revision rolls out a few
        replicas at a time (new ones ready before old ones drain) unless `spec.force`."""
        ...

    async def remove(self, service_id: str, *, force: bool = False) -> None:
        """Stop every replica of a service (drained, or killed with `force`)."""
        ...

    async def stop_replica(self, replica_id: str, reason: str) -> None:
        """Stop one replica at once (a stuck replica); the deployment replaces it."""
        ...

    async def restart_replica(self, replica_id: str) -> bool:
        """Drain one replica (its executions finish within drainTime) while the deployment
        starts another in its place. False when there is no such live replica or it is
        already stopping."""
        ...

    async def observe(self) -> Observation:
        """Every live replica, and the replicas that exited since the previous call."""
        ...

    async def close(self, *, grace: bool = True) -> None:
        """Stop acting. The process driver stops its replicas (drained when `grace`); the
        kubernetes driver leaves Deployments to the cluster."""
        ...
