"""Pure: from the desired state of each service and what the driver observes, decide which
replicas to start, stop and forget, and when a crashed service may be restarted.

Time is passed in (monotonic seconds, the driver's clock); randomness for jitter too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from spool_common.backoff import BackoffPolicy
from spool_common.messages import ReplicaState
from spool_common.models import Service
from spool_scheduler.driver import ReplicaObservation, ReplicaPhase

# A replica that exits within this many seconds of its start counts as a crash for backoff.
STABLE_AFTER = 30.0


@dataclass(frozen=True)
class Desired:
    service_id: str
    revision: int
    replicas: int
    drain_time: float


def desired_for(service: Service, revision: int, deleted: bool) -> Desired | None:
    """A deleted or paused service wants no replicas; otherwise runtime.numReplicas, kept
    within the autoscaler's bounds when one is set."""
    if deleted or not service.active:
        return None
    replicas = service.runtime.num_replicas
    scaler = service.runtime.autoscaler
    if scaler is not None:
        replicas = min(max(replicas, scaler.min_replicas), scaler.max_replicas)
    return Desired(service.id, revision, replicas, float(service.drain_time))


@dataclass(frozen=True)
class CrashState:
    failures: int = 0
    not_before: float = 0.0  # no new replica for this service before this time


@dataclass(frozen=True)
class Start:
    service_id: str
    revision: int
    drain_time: float


@dataclass(frozen=True)
class Stop:
    replica_id: str
    reason: str


@dataclass(frozen=True)
class Forget:
    replica_id: str
    service_id: str
    exit_code: int | None


@dataclass(frozen=True)
class Plan:
    starts: list[Start] = field(default_factory=list)
    stops: list[Stop] = field(default_factory=list)
    forgets: list[Forget] = field(default_factory=list)
    crashes: dict[str, CrashState] = field(default_factory=dict)


def after_exits(
    crashes: Mapping[str, CrashState],
    exited: Iterable[ReplicaObservation],
    policy: BackoffPolicy,
    rand: float,
) -> dict[str, CrashState]:
    """Update per-service crash state with replicas that have exited since the last round."""
    state = dict(crashes)
    for obs in exited:
        current = state.get(obs.service_id, CrashState())
        lived = (obs.exited_at or obs.started_at) - obs.started_at
        if obs.exit_code == 0 or lived >= STABLE_AFTER:
            state[obs.service_id] = CrashState()
            continue
        failures = current.failures + 1
        at = obs.exited_at or obs.started_at
        state[obs.service_id] = CrashState(failures, at + policy.delay(failures, rand))
    return state


def _for_service(
    want: Desired | None, mine: list[ReplicaObservation], crash: CrashState, now: float
) -> tuple[list[Start], list[Stop]]:
    running = [o for o in mine if o.phase is ReplicaPhase.RUNNING]
    if want is None:
        return [], [Stop(o.replica_id, "service removed or paused") for o in running]
    stops = [
        Stop(o.replica_id, "outdated revision") for o in running if o.revision != want.revision
    ]
    current = sorted(
        (o for o in running if o.revision == want.revision), key=lambda o: o.started_at
    )
    extra = current[want.replicas :]
    stops += [Stop(o.replica_id, "scale down") for o in reversed(extra)]
    missing = want.replicas - len(current)
    starts: list[Start] = []
    if missing > 0 and now >= crash.not_before:
        starts = [Start(want.service_id, want.revision, want.drain_time)] * missing
    return starts, stops


def plan(
    desired: Mapping[str, Desired],
    observed: list[ReplicaObservation],
    crashes: Mapping[str, CrashState],
    *,
    now: float,
    policy: BackoffPolicy,
    rand: float,
) -> Plan:
    """One reconcile round. Services with replicas but no desired entry are stopped."""
    exited = [o for o in observed if o.phase is ReplicaPhase.EXITED]
    state = after_exits(crashes, exited, policy, rand)
    result = Plan(
        forgets=[Forget(o.replica_id, o.service_id, o.exit_code) for o in exited], crashes=state
    )
    live = [o for o in observed if o.phase is not ReplicaPhase.EXITED]
    for service_id in set(desired) | {o.service_id for o in live}:
        mine = [o for o in live if o.service_id == service_id]
        want = desired.get(service_id)
        starts, stops = _for_service(want, mine, state.get(service_id, CrashState()), now)
        result.starts.extend(starts)
        result.stops.extend(stops)
    return result


# Exit codes the agent uses (spool_agent.app); anything else is a crash.
_AGENT_EXITS = {
    0: "stopped",
    3: "init failed: the service's class could not be created (see the replica's log)",
    4: "requirements could not be installed (see pip's output in the replica's log)",
    5: "the runner process running user code died",
}


def exit_state(exit_code: int | None) -> tuple[ReplicaState, str]:
    """What an exited replica means for the service: stopped cleanly, or failed and why."""
    if exit_code == 0:
        return ReplicaState.STOPPED, _AGENT_EXITS[0]
    if exit_code is not None and exit_code < 0:
        return ReplicaState.FAILED, f"killed by signal {-exit_code}"
    if exit_code is None:
        return ReplicaState.FAILED, "exited; its exit code is unknown"
    return ReplicaState.FAILED, _AGENT_EXITS.get(exit_code, f"exited with code {exit_code}")
