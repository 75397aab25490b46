"""What the agent reports when an attempt ends: a result, a termination, or an interruption."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from spool_agent.outcomes import (
    KILLED_MESSAGE,
    Attempt,
    Stop,
    finished,
    stopped,
    terminated_before_start,
)
from spool_common.messages import AttemptInterrupted, ExecutionFinished, InterruptReason
from spool_common.models import ExecutionStatus

AT = datetime(2026, 1, 1, tzinfo=UTC)
ATTEMPT = Attempt("e-1", 2, "r-1", AT)


@pytest.mark.parametrize(
    ("ok", "output", "error", "status"),
    [
        (True, {"a": 1}, None, ExecutionStatus.SUCCESS),
        (
            False,
            None,
            {"type": "KeyError", "message": "'x'", "traceback": "tb"},
            ExecutionStatus.FAILED,
        ),
        (
            False,
            None,
            {
                "type": "Terminated",
                "message": "Execution received termination signal",
                "traceback": "",
            },
            ExecutionStatus.TERMINATED,
        ),
        (
            False,
            None,
            {"type": "CallTerminated", "message": "never started", "traceback": ""},
            ExecutionStatus.TERMINATED,
        ),
        (
            False,
            None,
            {"type": "OutputTooLarge", "message": "too big", "traceback": ""},
            ExecutionStatus.FAILED,
        ),
    ],
    ids=["success", "exception", "terminated-thread", "terminated-queued", "output-too-large"],
)
def test_a_returned_call_is_reported_by_its_result(
    ok: bool, output: object, error: dict[str, Any] | None, status: ExecutionStatus
) -> None:
    report = finished(ATTEMPT, ok, output, error, AT)
    assert report.status is status
    assert (report.execution_id, report.attempt, report.replica_id) == ("e-1", 2, "r-1")
    assert report.output == (output if ok else None)
    assert report.message == (error["message"] if error else None)


@pytest.mark.parametrize(
    ("why", "reason"),
    [
        (Stop.TIMEOUT, InterruptReason.TIMEOUT),
        (Stop.DRAIN, InterruptReason.DRAIN),
        (Stop.RESET, InterruptReason.RESET),
        (None, InterruptReason.RESET),
    ],
    ids=["timeout", "drain", "reset", "unexpected-death"],
)
def test_a_call_stopped_under_the_code_is_an_interruption(
    why: Stop | None, reason: InterruptReason
) -> None:
    report = stopped(ATTEMPT, why, AT)
    assert isinstance(report, AttemptInterrupted)
    assert report.reason is reason
    assert report.attempt == 2


def test_a_terminated_call_whose_runner_was_killed_ends_terminated_killed() -> None:
    report = stopped(ATTEMPT, Stop.TERMINATE, AT)
    assert isinstance(report, ExecutionFinished)
    assert report.status is ExecutionStatus.TERMINATED
    assert report.message == KILLED_MESSAGE
    assert "killed" in KILLED_MESSAGE


@pytest.mark.parametrize(
    ("as_process", "words"), [(True, "was killed"), (False, "received termination signal")]
)
def test_a_call_terminated_before_it_started_ends_as_the_runner_would_say(
    as_process: bool, words: str
) -> None:
    report = terminated_before_start(ATTEMPT, as_process, AT)
    assert report.status is ExecutionStatus.TERMINATED
    assert report.attempt == 2
    assert report.message is not None
    assert words in report.message
    assert report.error is not None
    assert report.error.type == "Terminated"
