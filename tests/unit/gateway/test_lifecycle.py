"""Execution lifecycle rules: why a claim was refused, and what becomes of a lost attempt."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from spool_common.messages import ClaimVerdict
from spool_common.models import (
    TERMINAL_STATUSES,
    ExecutionError,
    ExecutionStatus,
    OnResetAction,
    StatusEntry,
)
from spool_gateway.lifecycle import (
    REPLICA_LOST_MESSAGE,
    ClaimState,
    dead_letter_entry,
    entry_json,
    exhausted_entry,
    plan_lost_attempt,
    refused_claim,
)

NOW = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
S = ExecutionStatus


@pytest.mark.parametrize(
    ("state", "verdict"),
    [
        pytest.param(ClaimState(exists=False), ClaimVerdict.GONE, id="no-such-execution"),
        pytest.param(ClaimState(exists=True, status=None), ClaimVerdict.GONE, id="no-status"),
        pytest.param(ClaimState(True, S.CREATED, 3, 3), ClaimVerdict.EXHAUSTED, id="created-used"),
        pytest.param(ClaimState(True, S.RERUN, 3, 3), ClaimVerdict.EXHAUSTED, id="rerun-used"),
        pytest.param(ClaimState(True, S.RERUN, 5, 3), ClaimVerdict.EXHAUSTED, id="rerun-over"),
        pytest.param(ClaimState(True, S.CREATED, 0, 3), ClaimVerdict.DUPLICATE, id="lost-race"),
        pytest.param(
            ClaimState(True, S.CREATED, 0, 3, to_terminate=True),
            ClaimVerdict.DUPLICATE,
            id="to-terminate",
        ),
        pytest.param(
            ClaimState(True, S.IN_PROGRESS, 1, 3), ClaimVerdict.DUPLICATE, id="running-elsewhere"
        ),
        pytest.param(
            ClaimState(True, S.IN_PROGRESS, 3, 3),
            ClaimVerdict.DUPLICATE,
            id="last-attempt-running-is-not-failed",
        ),
        pytest.param(
            ClaimState(True, S.CREATED, 0, 3, paused=True), ClaimVerdict.PAUSED, id="paused"
        ),
        pytest.param(
            ClaimState(True, S.RERUN, 1, 3, paused=True), ClaimVerdict.PAUSED, id="paused-rerun"
        ),
        pytest.param(
            ClaimState(True, S.IN_PROGRESS, 1, 3, paused=True),
            ClaimVerdict.DUPLICATE,
            id="paused-but-running-elsewhere",
        ),
        pytest.param(
            ClaimState(True, S.CREATED, 3, 3, paused=True),
            ClaimVerdict.EXHAUSTED,
            id="paused-and-exhausted",
        ),
    ],
)
def test_refused_claim(state: ClaimState, verdict: ClaimVerdict) -> None:
    assert refused_claim(state) is verdict


@pytest.mark.parametrize("status", sorted(TERMINAL_STATUSES))
def test_a_finished_execution_is_a_duplicate_even_with_attempts_used(
    status: ExecutionStatus,
) -> None:
    # EXHAUSTED makes the gateway fail the execution: that must never touch a finished one.
    assert refused_claim(ClaimState(True, status, 3, 3)) is ClaimVerdict.DUPLICATE


def lost_failed(attempts: int) -> StatusEntry:
    return StatusEntry(
        status=S.FAILED,
        timestamp=NOW,
        attempt=attempts,
        message=REPLICA_LOST_MESSAGE,
        error=ExecutionError(type="ReplicaLost", message=REPLICA_LOST_MESSAGE),
    )


def lost_rerun(attempts: int, max_attempts: int) -> StatusEntry:
    return StatusEntry(
        status=S.RERUN,
        timestamp=NOW,
        attempt=attempts,
        message=f"{REPLICA_LOST_MESSAGE}; rerun (attempt {attempts} of {max_attempts})",
    )


RERUN = OnResetAction.RERUN
FAILED = OnResetAction.FAILED


@pytest.mark.parametrize(
    ("on_reset", "attempts", "max_attempts", "requeue", "entry"),
    [
        pytest.param(RERUN, 1, 3, True, lost_rerun(1, 3), id="rerun-first-of-three"),
        pytest.param(RERUN, 2, 3, True, lost_rerun(2, 3), id="rerun-second-of-three"),
        pytest.param(RERUN, 3, 3, False, lost_failed(3), id="rerun-last-attempt-fails"),
        pytest.param(RERUN, 1, 1, False, lost_failed(1), id="rerun-single-attempt-fails"),
        pytest.param(RERUN, 4, 3, False, lost_failed(4), id="rerun-over-limit-fails"),
        pytest.param(FAILED, 1, 3, False, lost_failed(1), id="failed-with-attempts-left"),
        pytest.param(FAILED, 3, 3, False, lost_failed(3), id="failed-last-attempt"),
    ],
)
def test_plan_lost_attempt(
    on_reset: OnResetAction, attempts: int, max_attempts: int, requeue: bool, entry: StatusEntry
) -> None:
    lost = plan_lost_attempt(
        on_reset=on_reset, attempts=attempts, max_attempts=max_attempts, now=NOW
    )
    assert lost.requeue is requeue
    assert lost.entry == entry
    assert lost.entry.status.is_terminal is not requeue


@pytest.mark.parametrize("max_attempts", [1, 3, 100])
def test_exhausted_entry(max_attempts: int) -> None:
    message = f"Execution failed: all {max_attempts} attempts were used"
    assert exhausted_entry(max_attempts, NOW) == StatusEntry(
        status=S.FAILED,
        timestamp=NOW,
        attempt=max_attempts,
        message=message,
        error=ExecutionError(type="AttemptsExhausted", message=message),
    )


@pytest.mark.parametrize("reason", ["delivery-limit", "rejected", "expired"])
def test_dead_letter_entry_names_the_brokers_reason(reason: str) -> None:
    entry = dead_letter_entry(reason, NOW)
    assert entry.status is S.FAILED
    assert entry.timestamp == NOW
    assert entry.attempt is None
    assert entry.message is not None
    assert f"({reason})" in entry.message
    assert entry.error == ExecutionError(type="DeadLettered", message=entry.message)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        pytest.param(
            StatusEntry(status=S.CREATED, timestamp=NOW),
            {"status": "created", "timestamp": "2024-05-06T07:08:09.123000Z"},
            id="nulls-dropped",
        ),
        pytest.param(
            StatusEntry(
                status=S.IN_PROGRESS,
                timestamp=NOW,
                replica_id="r-1",
                attempt=2,
                percent_complete=40,
            ),
            {
                "status": "in-progress",
                "timestamp": "2024-05-06T07:08:09.123000Z",
                "replicaId": "r-1",
                "attempt": 2,
                "percentComplete": 40,
            },
            id="camel-case",
        ),
        pytest.param(
            lost_failed(3),
            {
                "status": "failed",
                "timestamp": "2024-05-06T07:08:09.123000Z",
                "attempt": 3,
                "message": REPLICA_LOST_MESSAGE,
                "error": {"type": "ReplicaLost", "message": REPLICA_LOST_MESSAGE},
            },
            id="nested-error-without-traceback",
        ),
        pytest.param(
            StatusEntry(status=S.SUCCESS, timestamp=NOW, attempt=0, percent_complete=0),
            {
                "status": "success",
                "timestamp": "2024-05-06T07:08:09.123000Z",
                "attempt": 0,
                "percentComplete": 0,
            },
            id="zero-is-kept",
        ),
    ],
)
def test_entry_json(entry: StatusEntry, expected: dict[str, object]) -> None:
    assert entry_json(entry) == expected
