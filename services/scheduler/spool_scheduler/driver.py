"""The runtime-driver port: how the reconcile loop starts, stops and observes agent replicas.

A driver only acts and reports; it never decides (when to restart, how long to back off, how
many replicas). Those decisions belong to the scheduler's pure planner, which reads
`observe()` and calls `start` / `stop` / `forget`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


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


class RuntimeDriver(Protocol):
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
