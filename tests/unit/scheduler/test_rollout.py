"""The process driver's rollout step: a few at a time, ready before drain, idle first."""

from __future__ import annotations

import pytest

from spool_common.backoff import BackoffPolicy
from spool_scheduler.driver import ReplicaStatus
from spool_scheduler.rollout import (
    STABLE_AFTER,
    CrashState,
    Running,
    Step,
    Target,
    after_exit,
    max_surge,
    step,
)

READY = ReplicaStatus.READY
STARTING = ReplicaStatus.STARTING
DRAINING = ReplicaStatus.DRAINING


def r(
    replica_id: str,
    revision: int = 1,
    status: ReplicaStatus = READY,
    started_at: float = 0.0,
    running: int | None = 0,
) -> Running:
    return Running(replica_id, revision, status, started_at, running)


@pytest.mark.parametrize(
    ("replicas", "surge"), [(0, 1), (1, 1), (2, 1), (4, 1), (5, 2), (8, 2), (9, 3), (100, 25)]
)
def test_max_surge_is_a_quarter_and_at_least_one(replicas: int, surge: int) -> None:
    assert max_surge(replicas) == surge


STEPS: list[tuple[str, Target | None, list[Running], bool, Step]] = [
    ("fresh-service-starts-all", Target(1, 3), [], True, Step(start=3)),
    ("backing-off-starts-nothing", Target(1, 3), [], False, Step()),
    ("steady-state-does-nothing", Target(1, 2), [r("a"), r("b")], True, Step()),
    ("scale-up-starts-the-difference", Target(1, 4), [r("a")], True, Step(start=3)),
    (
        "new-revision-surges-one-first",
        Target(2, 2),
        [r("a"), r("b")],
        True,
        Step(start=1),
    ),
    (
        "old-drains-only-once-a-new-one-is-ready",
        Target(2, 2),
        [r("a"), r("b"), r("n1", 2, STARTING)],
        True,
        Step(),
    ),
    (
        "a-ready-new-one-lets-the-idle-old-one-drain",
        Target(2, 2),
        [r("a", running=3), r("b", running=0), r("n1", 2)],
        True,
        Step(drain=["b"]),
    ),
    (
        "after-a-drain-the-next-new-one-starts",
        Target(2, 2),
        [r("a", running=3), r("b", status=DRAINING), r("n1", 2)],
        True,
        Step(start=1),
    ),
    (
        "last-old-drains-when-all-new-are-ready",
        Target(2, 2),
        [r("a", running=3), r("n1", 2), r("n2", 2)],
        True,
        Step(drain=["a"]),
    ),
    (
        "old-replicas-that-are-not-ready-go-at-once",
        Target(2, 1),
        [r("a", status=STARTING)],
        True,
        Step(start=1, drain=["a"]),
    ),
    (
        "a-new-revision-that-never-gets-ready-keeps-the-old-serving",
        Target(2, 1),
        [r("a"), r("n1", 2, STARTING)],
        True,
        Step(),
    ),
    (
        "scale-in-drains-idle-replicas-first",
        Target(1, 1),
        [r("a", running=2, started_at=1), r("b", running=0, started_at=2), r("c", running=1)],
        True,
        Step(drain=["b", "c"]),
    ),
    (
        "scale-in-prefers-not-ready-then-newest",
        Target(1, 1),
        [r("a", started_at=1), r("b", started_at=2), r("c", status=STARTING, started_at=0)],
        True,
        Step(drain=["c", "b"]),
    ),
    (
        "unknown-load-goes-after-known-idle",
        Target(1, 1),
        [r("a", running=None), r("b", running=0)],
        True,
        Step(drain=["b"]),
    ),
    (
        "draining-replicas-are-not-counted",
        Target(1, 1),
        [r("a", status=DRAINING), r("b")],
        True,
        Step(),
    ),
    (
        "removed-service-drains-everything-live",
        None,
        [r("a"), r("b", status=DRAINING), r("c", status=STARTING)],
        True,
        Step(drain=["a", "c"]),
    ),
    (
        "force-kills-old-and-starts-all-new-at-once",
        Target(2, 2, force=True),
        [r("a", running=3), r("b")],
        True,
        Step(start=2, kill=["a", "b"]),
    ),
    (
        "force-scale-in-kills-the-surplus",
        Target(1, 1, force=True),
        [r("a", running=3, started_at=1), r("b", running=0, started_at=2)],
        True,
        Step(kill=["b"]),
    ),
    ("scale-to-zero-drains-all", Target(1, 0), [r("a"), r("b")], True, Step(drain=["a", "b"])),
]


@pytest.mark.parametrize(
    ("target", "replicas", "may_start", "expected"),
    [pytest.param(t, rs, m, e, id=name) for name, t, rs, m, e in STEPS],
)
def test_step(
    target: Target | None, replicas: list[Running], may_start: bool, expected: Step
) -> None:
    assert step(target, replicas, may_start=may_start) == expected


def test_a_whole_rollout_never_has_fewer_ready_replicas_than_wanted() -> None:
    """Play a rollout of 5 replicas to completion: new ones become ready the step after they
    start, drained ones leave the step after; ready count never drops below 5."""
    replicas = {f"o{i}": r(f"o{i}", 1, READY, float(i)) for i in range(5)}
    target, made, clock = Target(2, 5), 0, 10.0
    for _ in range(30):
        ready = sum(1 for x in replicas.values() if x.status is READY)
        assert ready >= 5
        plan = step(target, list(replicas.values()), may_start=True)
        assert not plan.kill
        for replica_id, x in list(replicas.items()):  # last step's starts are ready now
            if x.status is STARTING:
                replicas[replica_id] = r(replica_id, x.revision, READY, x.started_at)
            elif x.status is DRAINING:
                del replicas[replica_id]
        for replica_id in plan.drain:
            replicas[replica_id] = r(replica_id, 1, DRAINING)
        for _ in range(plan.start):
            made += 1
            clock += 1
            replicas[f"n{made}"] = r(f"n{made}", 2, STARTING, clock)
        live = [x for x in replicas.values() if x.status is not DRAINING]
        assert len(live) <= 5 + max_surge(5)
    assert sorted(replicas) == [f"n{i}" for i in range(1, 6)]
    assert made == 5  # none started twice


POLICY = BackoffPolicy(initial=2.0, factor=2.0, maximum=60.0, jitter=0.0)


@pytest.mark.parametrize(
    ("state", "started_at", "exited_at", "clean", "expected"),
    [
        pytest.param(CrashState(), 0.0, 1.0, False, CrashState(1, 3.0), id="first-crash"),
        pytest.param(CrashState(1, 3.0), 5.0, 6.0, False, CrashState(2, 10.0), id="second"),
        pytest.param(CrashState(3, 9.0), 0.0, 1.0, True, CrashState(), id="clean-exit-resets"),
        pytest.param(
            CrashState(3, 9.0), 0.0, STABLE_AFTER, False, CrashState(), id="long-life-resets"
        ),
        pytest.param(CrashState(9, 0.0), 0.0, 1.0, False, CrashState(10, 61.0), id="capped"),
    ],
)
def test_after_exit(
    state: CrashState, started_at: float, exited_at: float, clean: bool, expected: CrashState
) -> None:
    result = after_exit(
        state, started_at=started_at, exited_at=exited_at, clean=clean, policy=POLICY, rand=0.5
    )
    assert result == expected
