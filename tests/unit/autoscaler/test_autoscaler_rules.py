"""The autoscaler's rules, table by table: queue, RPS, latency, bounds, cooldown, missing data."""

from __future__ import annotations

import math
from collections.abc import Iterable

import pytest

from spool_autoscaler.rules import (
    Decision,
    LatencyPolicy,
    Observation,
    ScalerState,
    decide,
    p75,
)
from spool_common.models import RabbitmqAutoscaler, RpsAutoscaler

Scaler = RabbitmqAutoscaler | RpsAutoscaler
NO_LATENCY = LatencyPolicy(high=math.inf)
Latencies = tuple[float, ...]


def queue(**kw: int) -> RabbitmqAutoscaler:
    fields = {"min_replicas": 0, "max_replicas": 10, "queue_length": 5, "cooldown_period": 300}
    return RabbitmqAutoscaler(**(fields | {"polling_interval": 10} | kw))


def rps(**kw: int) -> RpsAutoscaler:
    fields = {"min_replicas": 0, "max_replicas": 10, "threshold": 10, "rate_seconds": 30}
    return RpsAutoscaler(**(fields | {"cooldown_period": 300, "polling_interval": 10} | kw))


def obs(now: float, queued: int = 0, running: int = 0, latencies: Latencies = ()) -> Observation:
    return Observation(now, queued, running, latencies=latencies)


def feed(
    scaler: Scaler,
    observations: Iterable[Observation | tuple[float, None]],
    *,
    current: int = 0,
    latency: LatencyPolicy = NO_LATENCY,
    paused: bool = False,
) -> list[Decision]:
    """Decide on each observation in turn, applying every decision before the next one."""
    state, decisions = ScalerState(), []
    for o in observations:
        seen, now = (o, o.now) if isinstance(o, Observation) else (None, o[0])
        state, decision = decide(
            state, scaler, current=current, paused=paused, obs=seen, now=now, latency=latency
        )
        decisions.append(decision)
        current = decision.replicas
    return decisions


def once(
    scaler: Scaler,
    o: Observation,
    current: int = 0,
    *,
    latency: LatencyPolicy = NO_LATENCY,
    paused: bool = False,
) -> Decision:
    return feed(scaler, [o], current=current, latency=latency, paused=paused)[-1]


# --- queue rule ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scaler", "queued", "running", "current", "replicas", "rule", "reason"),
    [
        (queue(), 12, 0, 0, 3, "queue", "12 executions waiting or running, queueLength 5: 3"),
        (queue(), 3, 4, 1, 2, "queue", "7 executions waiting or running"),
        (queue(), 0, 0, 0, 0, "queue", "no executions waiting or running"),
        (queue(), 1, 0, 0, 1, "queue", "1 execution waiting or running, queueLength 5: 1"),
        (queue(), 0, 1, 0, 1, "queue", "1 execution waiting"),
        (queue(queue_length=1000), 1, 0, 0, 1, "queue", "queueLength 1000: 1 replica"),
        (queue(), 5, 0, 0, 1, "queue", ": 1 replica"),
        (queue(), 6, 0, 0, 2, "queue", ": 2 replicas"),
        (queue(max_replicas=4), 50, 0, 1, 4, "bounds", "10 replicas; capped at maxReplicas 4"),
        (queue(min_replicas=2), 0, 0, 0, 2, "bounds", "0 replicas; kept at minReplicas 2"),
        (queue(max_replicas=0), 9, 0, 0, 0, "bounds", "capped at maxReplicas 0"),
    ],
)
def test_queue_rule_wants_ceil_of_demand_over_queue_length_within_bounds(
    scaler: RabbitmqAutoscaler,
    queued: int,
    running: int,
    current: int,
    replicas: int,
    rule: str,
    reason: str,
) -> None:
    decision = once(scaler, obs(0, queued, running), current)
    assert (decision.replicas, decision.rule) == (replicas, rule)
    assert reason in decision.reason
    assert decision.changed is (replicas != current)
    assert decision.inputs["demand"] == queued + running


def test_scale_up_is_immediate_whatever_the_cooldown() -> None:
    decisions = feed(queue(), [obs(0, 2), obs(10, 30), obs(20, 80)])
    assert [d.replicas for d in decisions] == [1, 6, 10]
    assert all(d.changed for d in decisions)


def test_from_zero_on_the_first_queued_execution_even_with_min_replicas_zero() -> None:
    decisions = feed(queue(min_replicas=0), [obs(0), obs(10), obs(20, queued=1)])
    assert [d.replicas for d in decisions] == [0, 0, 1]
    assert decisions[-1].changed


# --- cooldown -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "replicas", "reason"),
    [
        (300, 10, "keeping 10 until the need has stayed lower for cooldownPeriod 300 s"),
        (309, 10, "keeping 10 until"),
        (310, 2, "(no more needed for cooldownPeriod 300 s)"),
    ],
)
def test_scale_down_waits_until_the_lower_need_held_for_the_whole_cooldown(
    at: float, replicas: int, reason: str
) -> None:
    decisions = feed(queue(), [obs(0, 50), obs(10, 10), obs(at, 10)])
    assert decisions[0].replicas == 10
    assert decisions[-1].replicas == replicas
    assert decisions[-1].rule == "queue"
    assert reason in decisions[-1].reason


def test_scale_down_goes_to_the_highest_need_seen_during_the_cooldown() -> None:
    events = [obs(0, 50), obs(100, 30), obs(200, 10), obs(399, 10), obs(400, 10), obs(500, 10)]
    decisions = feed(queue(), events)
    assert [d.replicas for d in decisions] == [10, 10, 10, 10, 6, 2]
    assert "down to 6, the most needed in the last 300 s" in decisions[4].reason


def test_cooldown_zero_follows_the_demand_down_at_once() -> None:
    decisions = feed(queue(cooldown_period=0), [obs(0, 50), obs(10, 10), obs(20, 0)])
    assert [d.replicas for d in decisions] == [10, 2, 0]


def test_to_zero_only_after_nothing_waited_or_ran_for_the_whole_cooldown() -> None:
    events = [obs(0, 3), obs(10), obs(200, 0, 1), obs(210), obs(509), obs(510)]
    assert [d.replicas for d in feed(queue(), events)] == [1, 1, 1, 1, 1, 0]


def test_work_in_flight_alone_keeps_a_replica_however_long() -> None:
    events = [obs(t, queued=0, running=1) for t in range(0, 2000, 10)]
    assert {d.replicas for d in feed(queue(), events, current=1)} == {1}


def test_a_fresh_state_does_not_scale_down_before_a_whole_cooldown_of_data() -> None:
    decisions = feed(queue(), [obs(0), obs(299), obs(300)], current=4)
    assert [d.replicas for d in decisions] == [4, 4, 0]


def test_lowered_max_replicas_applies_at_once() -> None:
    decisions = feed(queue(max_replicas=3), [obs(0, 50)], current=8)
    assert (decisions[0].replicas, decisions[0].rule) == (3, "bounds")
    assert "down to maxReplicas 3 at once" in decisions[0].reason


def test_raised_min_replicas_applies_at_once() -> None:
    decision = once(queue(min_replicas=3), obs(0), current=1)
    assert (decision.replicas, decision.rule, decision.changed) == (3, "bounds", True)


# --- paused and missing data --------------------------------------------------------------


@pytest.mark.parametrize("current", [0, 3])
def test_a_paused_service_is_never_scaled(current: int) -> None:
    decision = once(queue(), obs(0, 500), current, paused=True)
    assert (decision.replicas, decision.rule, decision.changed) == (current, "paused", False)
    assert decision.reason == f"the service is paused: keeping {current} replica" + (
        "" if current == 1 else "s"
    )


@pytest.mark.parametrize(
    ("sampled_at", "replicas", "rule"),
    [(70.0, 0, "queue"), (69.0, 3, "hold"), (None, 0, "queue")],
)
def test_metrics_older_than_three_polling_intervals_hold_the_replicas(
    sampled_at: float | None, replicas: int, rule: str
) -> None:
    state = ScalerState(desires=((-1000.0, 0),))
    o = Observation(100, 0, 0, sampled_at=sampled_at)
    _, decision = decide(
        state, queue(), current=3, paused=False, obs=o, now=100, latency=NO_LATENCY
    )
    assert (decision.replicas, decision.rule) == (replicas, rule)
    if rule == "hold":
        assert decision.reason == "metrics last reported 31 s ago (limit 30 s): keeping 3 replicas"
        assert decision.inputs["metrics_age"] == 31


def test_no_observation_holds_and_never_scales_to_zero() -> None:
    decisions = feed(queue(), [(t, None) for t in range(0, 1000, 10)], current=2)
    assert {(d.replicas, d.rule, d.changed) for d in decisions} == {(2, "hold", False)}
    assert decisions[0].reason == "no metrics this round: keeping 2 replicas"


def test_time_without_metrics_does_not_count_towards_the_cooldown() -> None:
    events: list[Observation | tuple[float, None]] = [obs(0, 50), obs(10), (200, None)]
    events += [obs(210), obs(509), obs(510)]
    assert [d.replicas for d in feed(queue(), events)] == [10, 10, 10, 10, 10, 0]


# --- RPS rule -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "replicas", "total"),
    [
        ([(0, 25)], 3, 25),
        ([(0, 25), (10, 5), (20, 5)], 4, 35),
        ([(0, 25), (10, 5), (20, 5), (30, 0)], 1, 10),  # the count at 0 left the 30 s window
        ([(0, 0)], 0, 0),
        ([(0, 1)], 1, 1),
        ([(0, 500)], 10, 500),
    ],
)
def test_rps_rule_counts_requests_in_the_rate_window_against_the_threshold(
    counts: list[tuple[float, int]], replicas: int, total: int
) -> None:
    events = [Observation(t, requests=n) for t, n in counts]
    decision = feed(rps(cooldown_period=0), events)[-1]
    assert decision.replicas == replicas
    assert decision.inputs["requests"] == total
    assert decision.rule == ("bounds" if total > 100 else "rps")
    assert f"in the last 30 s, threshold 10: {math.ceil(total / 10)} replica" in decision.reason


def test_rps_rule_scales_down_after_the_cooldown() -> None:
    events = [Observation(t, requests=40 if t == 0 else 0) for t in range(0, 340, 10)]
    decisions = feed(rps(), events)
    assert [d.replicas for d in decisions[:3]] == [4, 4, 4]
    assert decisions[3].inputs["desired"] == 0  # the 40 requests left the window at 30 s
    assert [d.replicas for d in decisions[-2:]] == [4, 0]  # 30 s + cooldownPeriod 300 s


# --- latency rule -------------------------------------------------------------------------

SLOW = (3.2, 3.2, 3.2, 3.2)
FAST = (0.3, 0.3, 0.3, 0.3)
LATENCY = LatencyPolicy()


def test_slow_p75_adds_one_replica_over_the_current() -> None:
    decision = once(queue(), obs(0, 3, latencies=SLOW), current=3, latency=LATENCY)
    assert (decision.replicas, decision.rule) == (4, "latency")
    assert decision.reason == (
        "p75 latency 3.2 s (max 3.2 s) over 60 s above 2.0 s: one more replica (4), "
        "next raise not before 60 s"
    )
    assert decision.inputs["p75"] == 3.2


@pytest.mark.parametrize(
    ("samples", "raised"),
    [
        ((0.1, 0.1, 0.1, 10.0), False),  # one slow call does not move the p75
        ((0.1, 3.0, 3.0, 3.0), True),
        ((2.0,), False),  # at the threshold is not above it
        ((2.01,), True),
    ],
)
def test_the_latency_rule_looks_at_the_p75(samples: tuple[float, ...], raised: bool) -> None:
    decision = once(queue(), obs(0, 1, latencies=samples), current=1, latency=LATENCY)
    assert decision.replicas == (2 if raised else 1)
    assert decision.inputs["max_latency"] == max(samples)


def test_latency_raises_at_most_once_per_guard_period() -> None:
    events = [obs(t, 3, latencies=SLOW) for t in (0, 30, 59, 60, 90, 120)]
    decisions = feed(queue(), events, current=3, latency=LATENCY)
    assert [d.replicas for d in decisions] == [4, 4, 4, 5, 5, 6]
    assert decisions[1].reason.endswith("keeping 4, next raise in 30 s")


def test_latency_never_raises_above_max_replicas() -> None:
    events = [obs(t, 3, latencies=SLOW) for t in range(0, 600, 60)]
    decisions = feed(queue(max_replicas=5), events, current=3, latency=LATENCY)
    assert [d.replicas for d in decisions][:4] == [4, 5, 5, 5]
    assert decisions[-1].reason.endswith("but already at maxReplicas 5")


def test_latency_rule_wants_nothing_without_samples_in_the_window() -> None:
    events = [obs(0, 3, latencies=SLOW), obs(30, 3), obs(61, 3)]
    decisions = feed(queue(cooldown_period=0), events, current=3, latency=LATENCY)
    assert [d.replicas for d in decisions] == [4, 4, 1]
    assert [d.rule for d in decisions] == ["latency", "latency", "queue"]
    assert "p75" not in decisions[-1].inputs


def test_latency_lowers_a_step_after_each_healthy_period_but_not_below_the_others() -> None:
    events = [obs(0, 3, latencies=SLOW)] + [obs(t, 3, latencies=FAST) for t in range(10, 400, 10)]
    decisions = feed(queue(cooldown_period=0), events, current=3, latency=LATENCY)
    by_time = {round(o.now): d for o, d in zip(events, decisions, strict=True)}
    # until 20 s the slow samples of 0 s are still the p75 of the 60 s window; healthy from 30 s
    assert [by_time[t].replicas for t in (0, 140, 150, 260, 270, 380, 390)] == [
        4, 4, 3, 3, 2, 2, 1
    ]  # fmt: skip
    assert by_time[140].reason == (
        "p75 latency 0.3 s (max 0.3 s) over 60 s below 1.0 s for 110 s, "
        "a step down after 120 s: keeping 4 replicas"
    )
    assert by_time[150].reason == (
        "p75 latency 0.3 s (max 0.3 s) over 60 s below 1.0 s for 120 s: 1 replica fewer (3)"
    )
    assert by_time[390].rule == "queue"  # the queue rule's 1 replica is all that is left


def test_latency_between_the_thresholds_keeps_the_raised_replicas() -> None:
    mid = (1.5, 1.5, 1.5, 1.5)
    events = [obs(0, 3, latencies=SLOW)] + [obs(t, 3, latencies=mid) for t in range(10, 600, 10)]
    decisions = feed(queue(cooldown_period=0), events, current=3, latency=LATENCY)
    assert {d.replicas for d in decisions} == {4}
    assert decisions[-1].reason.endswith("keeping the latency rule's 4 replicas")


def test_slow_latency_at_max_replicas_or_at_zero_adds_nothing() -> None:
    events = [obs(0, 50)] + [obs(t, 0, latencies=SLOW) for t in range(10, 400, 10)]
    decisions = feed(queue(max_replicas=10), events, latency=LATENCY)
    assert [d.replicas for d in decisions[29:]] == [10, 10, 0] + [0] * 8  # 290 s, 300 s, ...
    assert {d.rule for d in decisions} == {"queue"}


@pytest.mark.parametrize(
    ("queued", "samples", "replicas", "rule"),
    [
        (30, SLOW, 6, "queue"),  # queue wants 6 > latency's 3 + 1
        (5, SLOW, 4, "latency"),  # latency's 4 > queue's 1
        (20, SLOW, 4, "queue"),  # a tie goes to the queue rule
        (5, FAST, 3, "queue"),  # healthy: the queue's 1, held by the cooldown
    ],
)
def test_the_largest_wish_wins(
    queued: int, samples: tuple[float, ...], replicas: int, rule: str
) -> None:
    decision = once(queue(), obs(0, queued, latencies=samples), current=3, latency=LATENCY)
    assert (decision.replicas, decision.rule) == (replicas, rule)


def test_latency_raises_an_rps_service_too() -> None:
    decision = once(rps(), Observation(0, requests=5, latencies=SLOW), current=1, latency=LATENCY)
    assert (decision.replicas, decision.rule) == (2, "latency")


def test_latency_samples_kept_are_bounded() -> None:
    policy = LatencyPolicy(max_samples=100)
    state = ScalerState()
    for t in range(0, 50):
        o = obs(t, 1, latencies=(0.5,) * 10)
        state, _ = decide(state, queue(), current=1, paused=False, obs=o, now=t, latency=policy)
    assert len(state.latencies) == 100
    assert len(state.desires) <= 2


@pytest.mark.parametrize(
    "kwargs",
    [{"low": 3.0, "high": 2.0}, {"low": 0.0}, {"window": 0.0}, {"step": 0}, {"guard": -1.0}],
)
def test_latency_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="latency"):
        LatencyPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("values", "expected"),
    [([1.0], 1.0), ([4.0, 1.0, 3.0, 2.0], 3.0), ([float(i) for i in range(1, 101)], 75.0)],
)
def test_p75_is_the_nearest_rank(values: list[float], expected: float) -> None:
    assert p75(values) == expected
