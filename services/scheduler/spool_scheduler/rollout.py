"""Pure: one step of a service's deployment on the process driver, the way a Kubernetes
Deployment rolls: new replicas start (a few at a time) and become ready before old ones are
told to drain, so the queue always has consumers; scale-in drains idle replicas first.

Time is passed in (monotonic seconds, the driver's clock); randomness for jitter too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from spool_common.backoff import BackoffPolicy
from spool_scheduler.driver import ReplicaStatus

# A replica that exits within this many seconds of its start counts as a crash for backoff.
STABLE_AFTER = 30.0
SURGE_FRACTION = 0.25  # Kubernetes' default maxSurge; maxUnavailable is 0


@dataclass(frozen=True)
class Target:
    """What a service should run; `replicas` 0 and `force` as the spec says."""

    revision: int
    replicas: int
    force: bool = False


@dataclass(frozen=True)
class Running:
    """A live (not yet exited) replica as the planner sees it."""

    replica_id: str
    revision: int
    status: ReplicaStatus
    started_at: float
    running: int | None = None  # executions it holds, when known


@dataclass(frozen=True)
class Step:
    start: int = 0  # new replicas of the target revision to start now
    drain: list[str] = field(default_factory=list)  # stop consuming, finish, exit
    kill: list[str] = field(default_factory=list)  # stop at once (force)


def max_surge(replicas: int) -> int:
    return max(1, math.ceil(replicas * SURGE_FRACTION))


def _idle_first(replicas: Iterable[Running]) -> list[Running]:
    """Who to let go first: replicas not ready, then those running the least work (unknown
    counts last), then the newest."""

    def key(r: Running) -> tuple[int, float, float]:
        not_ready = 0 if r.status is not ReplicaStatus.READY else 1
        load = math.inf if r.running is None else float(r.running)
        return not_ready, load, -r.started_at

    return sorted(replicas, key=key)


def step(target: Target | None, replicas: Sequence[Running], *, may_start: bool) -> Step:
    """One step for one service. `target` None means the service is removed or paused;
    `may_start` is false while the service is backing off after crashes."""
    live = [r for r in replicas if r.status is not ReplicaStatus.DRAINING]
    if target is None:
        return Step(drain=[r.replica_id for r in live])
    new = [r for r in live if r.revision == target.revision]
    old = [r for r in live if r.revision != target.revision]
    missing = max(0, target.replicas - len(new))
    if target.force:  # replace at once: old and surplus replicas are killed, not drained
        surplus = _idle_first(new)[: max(0, len(new) - target.replicas)]
        return Step(
            start=missing if may_start else 0,
            kill=[r.replica_id for r in [*old, *surplus]],
        )
    old_ready = [r for r in old if r.status is ReplicaStatus.READY]
    # Old replicas that serve nothing (still starting, crash-looping) hold no one up.
    drain = [r.replica_id for r in old if r.status is not ReplicaStatus.READY]
    new_ready = sum(1 for r in new if r.status is ReplicaStatus.READY)
    room = target.replicas + max_surge(target.replicas) - len(new) - len(old_ready)
    start = min(missing, max(0, room)) if may_start else 0
    # maxUnavailable 0: an old replica drains only once enough others are ready.
    spare = new_ready + len(old_ready) - target.replicas
    if spare > 0:
        drain += [r.replica_id for r in _idle_first(old_ready)[:spare]]
    extra = len(new) - target.replicas
    if extra > 0:
        drain += [r.replica_id for r in _idle_first(new)[:extra]]
    return Step(start=start, drain=drain)


@dataclass(frozen=True)
class CrashState:
    failures: int = 0
    not_before: float = 0.0  # no new replica for this service before this time


def after_exit(
    state: CrashState,
    *,
    started_at: float,
    exited_at: float,
    clean: bool,
    policy: BackoffPolicy,
    rand: float,
) -> CrashState:
    """A replica of the service exited: a crash soon after its start backs the service's
    restarts off exponentially (CrashLoopBackOff); a clean exit or a long life resets it."""
    if clean or exited_at - started_at >= STABLE_AFTER:
        return CrashState()
    failures = state.failures + 1
    return CrashState(failures, exited_at + policy.delay(failures, rand))
