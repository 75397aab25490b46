"""Pure autoscaling rules: how many replicas a service should run, and why.

`decide` takes a service's autoscaler settings, the latest observation of its load and the time,
and returns the service's next `ScalerState` and a `Decision` whose reason a user can read.
No clock, no I/O: the autoscaler loop (and the simulator) read the time and pass it in.
See docs/autoscaling.md for the rules in prose and a simulated run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum

from spool_common.models import (
    DEFAULT_COOLDOWN_PERIOD,
    DEFAULT_POLLING_INTERVAL,
    RabbitmqAutoscaler,
    RpsAutoscaler,
)

STALE_AFTER_POLLS = 3  # metrics older than this many polling intervals are missing data


class Rule(StrEnum):
    QUEUE = "queue"
    RPS = "rps"
    LATENCY = "latency"
    BOUNDS = "bounds"
    HOLD = "hold"
    PAUSED = "paused"


@dataclass(frozen=True)
class LatencyPolicy:
    """The latency rule, built in for every scaled service (`high=math.inf` turns it off).

    p75 of execution latency over `window` seconds above `high` adds `step` replicas over the
    current count (never above maxReplicas), at most once per `guard` seconds; p75 below `low`
    for `healthy_for` seconds takes `step` away again. At most `max_samples` recent samples are
    kept per service."""

    window: float = 60.0
    high: float = 2.0
    low: float = 1.0
    guard: float = 60.0
    healthy_for: float = 120.0
    step: int = 1
    max_samples: int = 1000

    def __post_init__(self) -> None:
        if not 0 < self.low <= self.high:
            raise ValueError(
                f"latency thresholds need 0 < low <= high, got {self.low}, {self.high}"
            )
        if self.window <= 0 or self.guard < 0 or self.healthy_for < 0:
            raise ValueError("latency window must be > 0 s, guard and healthy_for >= 0 s")
        if self.step < 1 or self.max_samples < 1:
            raise ValueError("latency step and max_samples must be >= 1")


DEFAULT_LATENCY = LatencyPolicy()


@dataclass(frozen=True)
class Observation:
    """One reading of a service's load. `requests` and `latencies` cover the time since the
    previous observation; `sampled_at` is when the metrics source produced them (None: at
    `now`)."""

    now: float
    queued: int = 0
    running: int = 0
    requests: int = 0
    latencies: tuple[float, ...] = ()
    sampled_at: float | None = None


@dataclass(frozen=True)
class ScalerState:
    """What one service's rules remember between decisions, bounded in size.

    `desires`: (time last in force, replicas wanted) within the last cooldownPeriod, strictly
    decreasing, so the first is the highest (a sliding-window maximum). `requests`: (time,
    count) within rateSeconds. `latencies`: (time, seconds) within the latency window. `floor`:
    replicas the latency rule wants (0: none)."""

    desires: tuple[tuple[float, int], ...] = ()
    requests: tuple[tuple[float, int], ...] = ()
    latencies: tuple[tuple[float, float], ...] = ()
    floor: int = 0
    last_raise: float | None = None
    healthy_since: float | None = None


@dataclass(frozen=True)
class Decision:
    replicas: int
    rule: str
    reason: str
    inputs: dict[str, float]
    changed: bool


@dataclass(frozen=True)
class _Want:
    replicas: int
    rule: Rule
    reason: str


Scaler = RabbitmqAutoscaler | RpsAutoscaler


def decide(
    state: ScalerState,
    scaler: Scaler,
    *,
    current: int,
    paused: bool,
    obs: Observation | None,
    now: float,
    latency: LatencyPolicy = DEFAULT_LATENCY,
) -> tuple[ScalerState, Decision]:
    """The replicas the service should run now; the largest wish of the rules wins, bounded by
    min/maxReplicas, and scaling down waits for the cooldown."""
    if paused:
        return _keep(state, scaler, now, current, Rule.PAUSED, "the service is paused")
    limit = STALE_AFTER_POLLS * polling_interval(scaler)
    if obs is None:
        return _keep(state, scaler, now, current, Rule.HOLD, "no metrics this round")
    age = now - (obs.now if obs.sampled_at is None else obs.sampled_at)
    if age > limit:
        why = f"metrics last reported {age:.0f} s ago (limit {limit:.0f} s)"
        return _keep(state, scaler, now, current, Rule.HOLD, why, {"metrics_age": age})
    state, load, inputs = _load(state, scaler, obs)
    state, slow, more = _latency(state, obs, current, load.replicas, scaler.max_replicas, latency)
    best = load if slow is None or slow.replicas <= load.replicas else slow
    target = _bounded(best, scaler)
    seed = state.desires or ((now, current),)
    desires = _push_max(seed, now, target.replicas, cooldown_period(scaler))
    replicas, rule, reason = _cool(target, current, desires[0][1], scaler)
    inputs |= more | {"current": current, "desired": target.replicas, "replicas": replicas}
    decision = Decision(replicas, rule, reason, inputs, replicas != current)
    return replace(state, desires=desires), decision


def cooldown_period(scaler: Scaler) -> float:
    return float(
        DEFAULT_COOLDOWN_PERIOD if scaler.cooldown_period is None else scaler.cooldown_period
    )


def polling_interval(scaler: Scaler) -> float:
    return float(scaler.polling_interval or DEFAULT_POLLING_INTERVAL)


def p75(values: tuple[float, ...] | list[float]) -> float:
    """The 75th percentile by nearest rank: the smallest value at least 75 % of them reach."""
    ordered = sorted(values)
    return ordered[math.ceil(0.75 * len(ordered)) - 1]


def _keep(
    state: ScalerState,
    scaler: Scaler,
    now: float,
    current: int,
    rule: Rule,
    why: str,
    inputs: dict[str, float] | None = None,
) -> tuple[ScalerState, Decision]:
    """Leave the replicas alone. The unknown time counts as needing them, so a later scale-down
    still waits a whole cooldown of real data."""
    desires = _push_max(state.desires, now, current, cooldown_period(scaler))
    reason = f"{why}: keeping {_n(current, 'replica')}"
    facts: dict[str, float] = {"current": current, **(inputs or {})}
    return replace(state, desires=desires), Decision(current, rule, reason, facts, False)


def _load(
    state: ScalerState, scaler: Scaler, obs: Observation
) -> tuple[ScalerState, _Want, dict[str, float]]:
    if isinstance(scaler, RpsAutoscaler):
        return _rps(state, scaler, obs)
    demand, size = obs.queued + obs.running, scaler.queue_length
    want = math.ceil(demand / size)
    what = _n(demand, "execution") if demand else "no executions"
    reason = f"{what} waiting or running, queueLength {size}: {_n(want, 'replica')}"
    inputs: dict[str, float] = {"queued": obs.queued, "running": obs.running, "demand": demand}
    return state, _Want(want, Rule.QUEUE, reason), inputs | {"queue_length": size}


def _rps(
    state: ScalerState, scaler: RpsAutoscaler, obs: Observation
) -> tuple[ScalerState, _Want, dict[str, float]]:
    rate, threshold = scaler.rate_seconds, scaler.threshold
    kept = tuple((t, n) for t, n in state.requests if t > obs.now - rate)
    requests = (*kept, (obs.now, obs.requests))
    total = sum(n for _, n in requests)
    want = math.ceil(total / threshold)
    reason = f"{_n(total, 'request')} in the last {rate} s, threshold {threshold}: "
    inputs: dict[str, float] = {"requests": total, "threshold": threshold, "rate_seconds": rate}
    want_ = _Want(want, Rule.RPS, reason + _n(want, "replica"))
    return replace(state, requests=requests), want_, inputs


def _latency(
    state: ScalerState, obs: Observation, current: int, others: int, cap: int, pol: LatencyPolicy
) -> tuple[ScalerState, _Want | None, dict[str, float]]:
    fresh = tuple((obs.now, s) for s in obs.latencies)
    samples = tuple((t, s) for t, s in state.latencies + fresh if t > obs.now - pol.window)
    samples = samples[-pol.max_samples :]
    if not samples:
        return replace(state, latencies=(), floor=0, healthy_since=None), None, {}
    values = [s for _, s in samples]
    tail, worst = p75(values), max(values)
    head = f"p75 latency {tail:.1f} s (max {worst:.1f} s) over {pol.window:.0f} s"
    state = replace(state, latencies=samples)
    if tail > pol.high:
        state, reason = _raise(state, obs.now, min(current, cap), cap, pol, head)
    elif tail < pol.low:
        state, reason = _lower(state, obs.now, others, pol, head)
    else:
        state = replace(state, healthy_since=None)
        reason = f"{head}: keeping the latency rule's {_n(state.floor, 'replica')}"
    inputs: dict[str, float] = {"p75": tail, "max_latency": worst, "latency_samples": len(values)}
    inputs["latency_floor"] = state.floor
    return state, (_Want(state.floor, Rule.LATENCY, reason) if state.floor else None), inputs


def _raise(
    state: ScalerState, now: float, current: int, cap: int, pol: LatencyPolicy, head: str
) -> tuple[ScalerState, str]:
    head = f"{head} above {pol.high:.1f} s"
    state = replace(state, healthy_since=None)
    if current == 0 or current >= cap:  # the queue wakes a service; latency only adds
        why = "no replica runs" if current == 0 else f"already at maxReplicas {cap}"
        return state, f"{head}, but {why}"
    if state.last_raise is not None and now - state.last_raise < pol.guard:
        wait = pol.guard - (now - state.last_raise)
        return state, f"{head}: keeping {state.floor}, next raise in {wait:.0f} s"
    floor = max(state.floor, min(current + pol.step, cap))
    more = "one more replica" if floor == current + 1 else f"{floor - current} more replicas"
    reason = f"{head}: {more} ({floor}), next raise not before {pol.guard:.0f} s"
    return replace(state, floor=floor, last_raise=now), reason


def _lower(
    state: ScalerState, now: float, others: int, pol: LatencyPolicy, head: str
) -> tuple[ScalerState, str]:
    since = now if state.healthy_since is None else state.healthy_since
    state = replace(state, healthy_since=since)
    head = f"{head} below {pol.low:.1f} s"
    if now - since < pol.healthy_for:
        wait = f"{now - since:.0f} s, a step down after {pol.healthy_for:.0f} s"
        return state, f"{head} for {wait}: keeping {_n(state.floor, 'replica')}"
    floor = state.floor - pol.step
    if floor <= others:
        return replace(state, floor=0, healthy_since=now), f"{head}: latency rule lets go"
    reason = f"{head} for {pol.healthy_for:.0f} s: {_n(pol.step, 'replica')} fewer ({floor})"
    return replace(state, floor=floor, healthy_since=now), reason


def _bounded(want: _Want, scaler: Scaler) -> _Want:
    low, high = scaler.min_replicas, scaler.max_replicas
    if want.replicas > high:
        return _Want(high, Rule.BOUNDS, f"{want.reason}; capped at maxReplicas {high}")
    if want.replicas < low:
        return _Want(low, Rule.BOUNDS, f"{want.reason}; kept at minReplicas {low}")
    return want


def _cool(target: _Want, current: int, highest: int, scaler: Scaler) -> tuple[int, Rule, str]:
    """Scale up at once; scale down only to the highest wish of the last cooldownPeriod."""
    if target.replicas >= current:
        return target.replicas, target.rule, target.reason
    cooldown, cap = cooldown_period(scaler), scaler.max_replicas
    replicas = min(current, highest)
    if replicas > cap:
        return cap, Rule.BOUNDS, f"{target.reason}; down to maxReplicas {cap} at once"
    if replicas == current:
        why = f"; keeping {current} until the need has stayed lower for cooldownPeriod"
        why += f" {cooldown:.0f} s"
    elif replicas > target.replicas:
        why = f"; down to {replicas}, the most needed in the last {cooldown:.0f} s"
    else:
        why = f" (no more needed for cooldownPeriod {cooldown:.0f} s)" if cooldown else ""
    return replicas, target.rule, target.reason + why


def _push_max(
    window: tuple[tuple[float, int], ...], now: float, value: int, span: float
) -> tuple[tuple[float, int], ...]:
    """Sliding-window maximum of (time last in force, need), strictly decreasing. The newest need
    counts as in force until now; what fell out of (now - span, now] or is not above `value`
    goes, then `value` is appended."""
    if window and window[-1][1] > value:
        window = (*window[:-1], (now, window[-1][1]))
    return (*((t, v) for t, v in window if t > now - span and v > value), (now, value))


def _n(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"
