"""When the reaper may take an expired lease for a dead agent: the rounds after a start, a
failed store round and a broker that passed no publish (lease_watch.py)."""

from __future__ import annotations

import pytest

from spool_gateway.lease_watch import LeaseWatch, broker_quiet

QUIET = broker_quiet(heartbeat=3, lease=3)  # 12 s


def _replay(events: list[tuple[float, str]]) -> list[tuple[float, bool, bool]]:
    """(now, extend, reap) of every successful round, replaying rounds that succeed ("ok"),
    fail on the store ("store") or find the broker passing nothing ("broker")."""
    watch, rounds = LeaseWatch(), []
    for now, outcome in events:
        if outcome == "ok":
            rounds.append((now, *watch.plan(now)))
            watch = watch.succeeded(now)
        else:
            watch = watch.failed(now, QUIET if outcome == "broker" else 0.0)
    return rounds


@pytest.mark.parametrize(
    ("events", "rounds"),
    [
        pytest.param(
            [(0, "ok"), (1, "ok")],
            [(0, True, True), (1, False, True)],
            id="start-extends-once-then-reaps",
        ),
        pytest.param(
            [(0, "ok"), (1, "store"), (2, "ok"), (3, "ok")],
            [(0, True, True), (2, True, True), (3, False, True)],
            id="store-failure-extends-once",
        ),
        pytest.param(
            [(0, "ok"), (1, "broker"), (2, "broker"), (3, "ok"), (14, "ok"), (15, "ok")],
            [(0, True, True), (3, True, False), (14, True, True), (15, False, True)],
            id="broker-silence-only-extends-until-quiet-after-the-last-failure",
        ),
        pytest.param(
            [(0, "broker"), (5, "store"), (6, "ok"), (12, "ok")],
            [(6, True, False), (12, True, True)],
            id="a-store-failure-keeps-the-broker-quiet",
        ),
    ],
)
def test_rounds_extend_and_reap(
    events: list[tuple[float, str]], rounds: list[tuple[float, bool, bool]]
) -> None:
    assert _replay(events) == rounds


def test_the_quiet_time_is_three_heartbeats_and_a_lease() -> None:
    assert broker_quiet(heartbeat=15, lease=30) == 75
