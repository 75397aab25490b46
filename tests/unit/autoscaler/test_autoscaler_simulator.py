"""The rules in a simulated service: bursts, drains, flapping, zero and back, a slowdown."""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import pairwise

import pytest

from spool_autoscaler.rules import LatencyPolicy
from spool_autoscaler.simulate import Phase, Step, phase_at, simulate
from spool_common.models import RabbitmqAutoscaler

NO_LATENCY = LatencyPolicy(high=math.inf)


def scaler(**kw: int) -> RabbitmqAutoscaler:
    fields = {"min_replicas": 0, "max_replicas": 10, "queue_length": 20, "cooldown_period": 60}
    return RabbitmqAutoscaler(**(fields | {"polling_interval": 10} | kw))


def changes(steps: list[Step]) -> list[Step]:
    return [s for s in steps if s.reason is not None]


def first(steps: list[Step], after: float, test: Callable[[Step], bool]) -> Step:
    return next(s for s in steps if s.t >= after and test(s))


def test_a_burst_raises_replicas_within_one_polling_interval_and_drains() -> None:
    trace = [Phase("idle", 35, 0), Phase("burst", 20, 50), Phase("idle", 300, 0)]
    steps = simulate(trace, scaler(), per_replica_rate=10, concurrency=10, latency=NO_LATENCY)
    up = first(steps, 35, lambda s: s.desired > 0)
    assert up.t - 35 <= 10
    assert (up.desired, up.rule) == (10, "bounds")  # 250 waiting want 13, capped at 10
    assert max(s.desired for s in steps) == 10  # 1000 executions / queueLength 20, capped
    drained = first(steps, 35, lambda s: s.queued == 0 and s.in_flight == 0)
    assert drained.t < 55 + 1000 / (10 * 10) + 20  # at 10 replicas' 100/s, after starting up
    assert steps[-1].desired == 0


def test_a_slow_drain_steps_down_only_after_each_need_fell_for_the_cooldown() -> None:
    trace = [Phase("burst", 10, 60), Phase("drain", 290, 0)]
    queue = scaler(max_replicas=5)
    steps = simulate(trace, queue, per_replica_rate=1, concurrency=1, latency=NO_LATENCY)
    polls = [s for s in steps if s.t % 10 == 0]
    needs = {s.t: math.ceil((s.queued + s.in_flight) / 20) for s in polls}
    downs = [(b.t, b.desired) for a, b in pairwise(steps) if b.desired < a.desired]
    assert len({r for _, r in downs}) >= 3  # down in steps, not at once
    for t, replicas in downs:
        assert all(need <= replicas for p, need in needs.items() if t - 60 <= p <= t)
    assert all(s.ready >= 1 for s in steps if s.queued and s.t > 20)  # never idle with work
    assert (steps[-1].queued, steps[-1].in_flight, steps[-1].desired) == (0, 0, 0)


@pytest.mark.parametrize(("cooldown", "flaps"), [(0, True), (60, False)])
def test_a_load_hovering_at_a_threshold_does_not_flap(cooldown: int, flaps: bool) -> None:
    # 8 and 12 executions a second by turns, 1 s each: 8 or 12 in flight, queueLength 10
    hover = [Phase(f"hover{i}", 10, 12 if i % 2 else 8) for i in range(60)]
    trace = [*hover, Phase("idle", 120, 0)]
    queue = scaler(min_replicas=1, queue_length=10, cooldown_period=cooldown)
    steps = simulate(
        trace, queue, per_replica_rate=10, concurrency=10, latency=NO_LATENCY, start_replicas=2
    )
    flips = changes(steps)
    if flaps:  # without a cooldown the replicas follow every wobble
        assert len(flips) > 20
        return
    assert all(s.desired == 2 for s in steps if s.t < 600)
    assert [(s.t, s.desired) for s in flips] == [(660, 1)]  # idle seen at 600 s, + cooldown


def test_to_zero_after_the_cooldown_and_back_within_one_polling_interval() -> None:
    trace = [Phase("busy", 30, 5), Phase("idle", 207, 0), Phase("again", 60, 5)]
    steps = simulate(trace, scaler(), per_replica_rate=10, concurrency=10, latency=NO_LATENCY)
    last_work = max(s.t for s in steps if s.t < 237 and s.queued + s.in_flight)
    zero = first(steps, last_work, lambda s: s.desired == 0)
    assert 60 <= zero.t - last_work <= 60 + 2 * 10
    assert "no more needed for cooldownPeriod 60 s" in (zero.reason or "")
    woken = first(steps, 237, lambda s: s.desired >= 1)
    assert woken.t - 237 <= 10
    assert (woken.reason or "").endswith("waiting or running, queueLength 20: 1 replica")
    with_work = [s for s in steps if s.queued + s.in_flight and not 237 <= s.t < woken.t]
    assert all(s.desired >= 1 for s in with_work)


@pytest.mark.parametrize(("policy", "raised"), [(LatencyPolicy(), True), (NO_LATENCY, False)])
def test_a_slowdown_raises_replicas_through_the_latency_rule_alone(
    policy: LatencyPolicy, raised: bool
) -> None:
    trace = [Phase("normal", 120, 2), Phase("slow", 240, 2, slowdown=4)]
    steps = simulate(
        trace,
        scaler(min_replicas=1, max_replicas=4),
        per_replica_rate=12.5,  # concurrency 10 / 0.8 s: in flight 1.6, slowed 6.4, no queue
        concurrency=10,
        latency=policy,
        start_replicas=1,
    )
    assert max(s.queued for s in steps) == 0
    assert max(s.desired for s in steps) == (4 if raised else 1)
    if raised:
        up = first(steps, 120, lambda s: s.desired > 1)
        assert up.rule == "latency"
        assert up.t - 120 <= 30  # p75 of the 60 s window passes 2 s after ~15 s of slow calls
        assert "p75 latency 3.2 s" in (up.reason or "")
        assert "already at maxReplicas 4" not in (up.reason or "")


def test_replicas_become_ready_after_the_startup_delay() -> None:
    trace = [Phase("busy", 60, 5)]
    steps = simulate(trace, scaler(), per_replica_rate=10, startup_delay=25, latency=NO_LATENCY)
    asked = first(steps, 0, lambda s: s.desired == 1)
    assert first(steps, 0, lambda s: s.ready == 1).t - asked.t == 25
    assert steps[int(asked.t) + 24].queued > 0


def test_phase_at_walks_the_trace_and_keeps_the_last_phase() -> None:
    trace = [Phase("a", 10, 1), Phase("b", 5, 2)]
    assert [phase_at(trace, t).name for t in (0, 9.9, 10, 14.9, 15, 99)] == list("aabbbb")


def test_simulate_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="per_replica_rate"):
        simulate([Phase("a", 10, 1)], scaler(), per_replica_rate=0)
