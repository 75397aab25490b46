"""The scheduler's reconcile planner: desired state and observed replicas in, actions out."""

from __future__ import annotations

from typing import Any

import pytest

from spool_common.backoff import BackoffPolicy
from spool_common.models import Service
from spool_scheduler.driver import ReplicaObservation, ReplicaPhase
from spool_scheduler.plan import (
    STABLE_AFTER,
    CrashState,
    Desired,
    Forget,
    Start,
    Stop,
    after_exits,
    desired_for,
    plan,
)

RUNNING = ReplicaPhase.RUNNING
STOPPING = ReplicaPhase.STOPPING
EXITED = ReplicaPhase.EXITED

# No jitter, so delays are exact: 2 s after the first crash, then 4, 8, 16 ...
POLICY = BackoffPolicy(initial=2.0, factor=2.0, maximum=60.0, jitter=0.0)


def service(*, active: bool = True, drain_time: int = 600, **runtime: Any) -> Service:
    return Service.model_validate(
        {
            "id": "svc",
            "name": "svc",
            "projectId": "p",
            "packageId": "pkg",
            "packageRevision": "1",
            "active": active,
            "drainTime": drain_time,
            "runtime": runtime,
        }
    )


def obs(
    replica_id: str,
    *,
    service_id: str = "svc",
    revision: int = 1,
    phase: ReplicaPhase = RUNNING,
    started_at: float = 0.0,
    exit_code: int | None = None,
    exited_at: float | None = None,
) -> ReplicaObservation:
    return ReplicaObservation(
        replica_id, service_id, revision, phase, 1000, started_at, exit_code, exited_at
    )


def exited(
    replica_id: str, *, code: int, started_at: float, exited_at: float, service_id: str = "svc"
) -> ReplicaObservation:
    return obs(
        replica_id,
        service_id=service_id,
        phase=EXITED,
        started_at=started_at,
        exit_code=code,
        exited_at=exited_at,
    )


# --- desired_for ---------------------------------------------------------------------------

SCALER = {"type": "rabbitmq", "minReplicas": 2, "maxReplicas": 5}


@pytest.mark.parametrize(
    ("svc", "deleted", "replicas"),
    [
        pytest.param(service(), True, None, id="deleted"),
        pytest.param(service(active=False), False, None, id="paused"),
        pytest.param(service(active=False, numReplicas=3), True, None, id="paused-and-deleted"),
        pytest.param(service(), False, 1, id="default-one-replica"),
        pytest.param(service(numReplicas=3), False, 3, id="num-replicas"),
        pytest.param(service(numReplicas=0), False, 0, id="zero-replicas"),
        pytest.param(service(numReplicas=1, autoscaler=SCALER), False, 2, id="raised-to-min"),
        pytest.param(service(numReplicas=3, autoscaler=SCALER), False, 3, id="within-bounds"),
        pytest.param(service(numReplicas=8, autoscaler=SCALER), False, 5, id="lowered-to-max"),
        pytest.param(
            service(numReplicas=0, autoscaler={"type": "rps", "minReplicas": 0}),
            False,
            0,
            id="scale-to-zero-allowed",
        ),
    ],
)
def test_desired_replicas(svc: Service, deleted: bool, replicas: int | None) -> None:
    want = desired_for(svc, revision=4, deleted=deleted)
    if replicas is None:
        assert want is None
    else:
        assert want == Desired("svc", 4, replicas, float(svc.drain_time))


def test_desired_carries_revision_and_drain_time() -> None:
    assert desired_for(service(drain_time=45), revision=7, deleted=False) == Desired(
        "svc", 7, 1, 45.0
    )


# --- after_exits ---------------------------------------------------------------------------

AFTER_EXITS: list[tuple[str, dict[str, CrashState], list[ReplicaObservation], dict[str, Any]]] = [
    (
        "clean-exit-resets",
        {"svc": CrashState(3, 500.0)},
        [exited("r1", code=0, started_at=100.0, exited_at=101.0)],
        {"svc": CrashState()},
    ),
    (
        "first-quick-crash",
        {},
        [exited("r1", code=1, started_at=100.0, exited_at=105.0)],
        {"svc": CrashState(1, 105.0 + 2.0)},
    ),
    (
        "killed-by-signal-is-a-crash",
        {},
        [exited("r1", code=-9, started_at=100.0, exited_at=101.0)],
        {"svc": CrashState(1, 101.0 + 2.0)},
    ),
    (
        "third-crash-in-a-row",
        {"svc": CrashState(2, 90.0)},
        [exited("r1", code=1, started_at=100.0, exited_at=110.0)],
        {"svc": CrashState(3, 110.0 + 8.0)},
    ),
    (
        "crash-just-before-stable",
        {"svc": CrashState(1, 0.0)},
        [exited("r1", code=1, started_at=100.0, exited_at=100.0 + STABLE_AFTER - 0.5)],
        {"svc": CrashState(2, 100.0 + STABLE_AFTER - 0.5 + 4.0)},
    ),
    (
        "crash-at-stable-resets",
        {"svc": CrashState(4, 0.0)},
        [exited("r1", code=1, started_at=100.0, exited_at=100.0 + STABLE_AFTER)],
        {"svc": CrashState()},
    ),
    (
        "crash-after-long-life-resets",
        {"svc": CrashState(4, 0.0)},
        [exited("r1", code=1, started_at=100.0, exited_at=5000.0)],
        {"svc": CrashState()},
    ),
    (
        "two-crashes-in-one-round",
        {},
        [
            exited("r1", code=1, started_at=100.0, exited_at=101.0),
            exited("r2", code=1, started_at=100.0, exited_at=102.0),
        ],
        {"svc": CrashState(2, 102.0 + 4.0)},
    ),
    (
        "other-services-untouched",
        {"other": CrashState(2, 300.0)},
        [exited("r1", code=1, started_at=100.0, exited_at=101.0)],
        {"other": CrashState(2, 300.0), "svc": CrashState(1, 103.0)},
    ),
    ("nothing-exited", {"svc": CrashState(1, 9.0)}, [], {"svc": CrashState(1, 9.0)}),
]


@pytest.mark.parametrize(
    ("crashes", "exits", "expected"), [pytest.param(*c[1:], id=c[0]) for c in AFTER_EXITS]
)
def test_after_exits(
    crashes: dict[str, CrashState], exits: list[ReplicaObservation], expected: dict[str, Any]
) -> None:
    before = dict(crashes)
    assert after_exits(crashes, exits, POLICY, rand=0.5) == expected
    assert crashes == before  # the caller's state is not mutated


def test_crash_delay_uses_the_injected_jitter() -> None:
    policy = BackoffPolicy(initial=2.0, factor=2.0, maximum=60.0, jitter=0.5)
    crash = [exited("r1", code=1, started_at=0.0, exited_at=10.0)]
    assert after_exits({}, crash, policy, rand=0.0)["svc"].not_before == pytest.approx(11.0)
    assert after_exits({}, crash, policy, rand=0.5)["svc"].not_before == pytest.approx(12.0)


# --- plan ----------------------------------------------------------------------------------


def want(replicas: int, revision: int = 1, service_id: str = "svc") -> Desired:
    return Desired(service_id, revision, replicas, 30.0)


def start(revision: int = 1, service_id: str = "svc") -> Start:
    return Start(service_id, revision, 30.0)


PlanCase = tuple[
    str,
    dict[str, Desired],
    list[ReplicaObservation],
    dict[str, CrashState],
    float,
    list[Start],
    list[Stop],
]
PLANS: list[PlanCase] = [
    ("starts-missing", {"svc": want(2)}, [], {}, 100.0, [start(), start()], []),
    ("tops-up", {"svc": want(3)}, [obs("r1")], {}, 100.0, [start(), start()], []),
    ("steady", {"svc": want(2)}, [obs("r1"), obs("r2")], {}, 100.0, [], []),
    ("zero-wanted-zero-running", {"svc": want(0)}, [], {}, 100.0, [], []),
    ("backoff-holds", {"svc": want(1)}, [], {"svc": CrashState(2, 150.0)}, 149.9, [], []),
    ("backoff-over", {"svc": want(1)}, [], {"svc": CrashState(2, 150.0)}, 150.0, [start()], []),
    (
        "backoff-does-not-stop-running",
        {"svc": want(2)},
        [obs("r1")],
        {"svc": CrashState(2, 150.0)},
        100.0,
        [],
        [],
    ),
    (
        "outdated-revision",
        {"svc": want(1, revision=2)},
        [obs("old", revision=1)],
        {},
        100.0,
        [start(revision=2)],
        [Stop("old", "outdated revision")],
    ),
    (
        "scale-to-zero",
        {"svc": want(0)},
        [obs("r1", started_at=1.0), obs("r2", started_at=2.0)],
        {},
        100.0,
        [],
        [Stop("r2", "scale down"), Stop("r1", "scale down")],
    ),
    (
        "no-desired-state",
        {},
        [obs("r1", service_id="gone"), obs("r2", service_id="gone")],
        {},
        100.0,
        [],
        [Stop("r1", "service removed or paused"), Stop("r2", "service removed or paused")],
    ),
    (
        "stopping-is-not-stopped-again-or-counted",
        {"svc": want(1)},
        [obs("r1", phase=STOPPING)],
        {},
        100.0,
        [start()],
        [],
    ),
    (
        "stopping-without-desired-state",
        {},
        [obs("r1", service_id="gone", phase=STOPPING)],
        {},
        100.0,
        [],
        [],
    ),
    (
        "stopping-old-revision-during-update",
        {"svc": want(1, revision=2)},
        [obs("old", revision=1, phase=STOPPING), obs("new", revision=2)],
        {},
        100.0,
        [],
        [],
    ),
    (
        "clean-exit-is-replaced",
        {"svc": want(1)},
        [exited("r1", code=0, started_at=10.0, exited_at=99.0)],
        {},
        100.0,
        [start()],
        [],
    ),
    (
        "quick-crash-is-not-replaced-this-round",
        {"svc": want(1)},
        [exited("r1", code=1, started_at=98.0, exited_at=99.0)],
        {},
        100.0,
        [],
        [],
    ),
    (
        "long-lived-crash-is-replaced-at-once",
        {"svc": want(1)},
        [exited("r1", code=1, started_at=10.0, exited_at=99.0)],
        {"svc": CrashState(3, 0.0)},
        100.0,
        [start()],
        [],
    ),
    (
        "services-are-independent",
        {"a": want(1, service_id="a"), "b": want(0, service_id="b")},
        [obs("b1", service_id="b")],
        {},
        100.0,
        [start(service_id="a")],
        [Stop("b1", "scale down")],
    ),
]


@pytest.mark.parametrize(
    ("desired", "observed", "crashes", "now", "starts", "stops"),
    [pytest.param(*c[1:], id=c[0]) for c in PLANS],
)
def test_plan(
    desired: dict[str, Desired],
    observed: list[ReplicaObservation],
    crashes: dict[str, CrashState],
    now: float,
    starts: list[Start],
    stops: list[Stop],
) -> None:
    result = plan(desired, observed, crashes, now=now, policy=POLICY, rand=0.5)
    assert sorted(result.starts, key=repr) == sorted(starts, key=repr)
    assert sorted(result.stops, key=repr) == sorted(stops, key=repr)


def test_scale_down_keeps_the_oldest_and_stops_the_newest_first() -> None:
    observed = [obs("mid", started_at=20.0), obs("newest", started_at=30.0), obs("oldest")]
    result = plan({"svc": want(1)}, observed, {}, now=100.0, policy=POLICY, rand=0.5)
    assert result.stops == [Stop("newest", "scale down"), Stop("mid", "scale down")]
    assert result.starts == []


def test_exited_replicas_are_forgotten_with_their_exit_code() -> None:
    observed = [
        exited("ok", code=0, started_at=0.0, exited_at=50.0),
        exited("crashed", code=-9, started_at=0.0, exited_at=1.0, service_id="gone"),
        obs("live"),
    ]
    result = plan({"svc": want(2)}, observed, {}, now=100.0, policy=POLICY, rand=0.5)
    assert sorted(result.forgets, key=repr) == [
        Forget("crashed", "gone", -9),
        Forget("ok", "svc", 0),
    ]
    # The exited replica is not counted as running: one more is started next to `live`.
    assert result.starts == [start()]
    # An exited replica of a service without desired state is not stopped again.
    assert result.stops == []


def test_plan_returns_the_crash_state_for_the_next_round() -> None:
    observed = [exited("r1", code=1, started_at=98.0, exited_at=99.0)]
    first = plan({"svc": want(1)}, observed, {}, now=100.0, policy=POLICY, rand=0.5)
    assert first.crashes == {"svc": CrashState(1, 101.0)}
    held = plan({"svc": want(1)}, [], first.crashes, now=100.5, policy=POLICY, rand=0.5)
    assert held.starts == []
    released = plan({"svc": want(1)}, [], first.crashes, now=101.0, policy=POLICY, rand=0.5)
    assert released.starts == [start()]
