"""The rule for attempts that did not finish by themselves (timeout, reset, drain, lost)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from spool_common.messages import InterruptReason
from spool_common.models import ExecutionStatus, OnResetAction
from spool_gateway.lifecycle import plan_interrupted

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("reason", "on_reset", "attempts", "max_attempts", "terminate", "status", "requeue", "words"),
    [
        (
            InterruptReason.TIMEOUT,
            OnResetAction.FAILED,
            1,
            3,
            False,
            "failed",
            False,
            "Execution stopped due to runner timeout",
        ),
        (
            InterruptReason.TIMEOUT,
            OnResetAction.RERUN,
            1,
            3,
            False,
            "rerun",
            True,
            "runner timeout; rerun (attempt 1 of 3)",
        ),
        (
            InterruptReason.TIMEOUT,
            OnResetAction.RERUN,
            3,
            3,
            False,
            "failed",
            False,
            "runner timeout",
        ),
        (InterruptReason.RESET, OnResetAction.RERUN, 1, 2, False, "rerun", True, "restarted"),
        (InterruptReason.DRAIN, OnResetAction.FAILED, 1, 3, False, "failed", False, "drainTime"),
        (
            InterruptReason.LOST,
            OnResetAction.FAILED,
            2,
            3,
            False,
            "failed",
            False,
            "stopped reporting",
        ),
        (
            InterruptReason.TIMEOUT,
            OnResetAction.RERUN,
            1,
            3,
            True,
            "terminated",
            False,
            "termination signal",
        ),
        (
            InterruptReason.LOST,
            OnResetAction.RERUN,
            1,
            3,
            True,
            "terminated",
            False,
            "termination signal",
        ),
    ],
    ids=[
        "timeout-fails",
        "timeout-reruns",
        "timeout-out-of-attempts",
        "reset-reruns",
        "drain-fails",
        "lost-fails",
        "terminated-wins-over-rerun",
        "terminated-lost",
    ],
)
def test_an_interrupted_attempt_follows_on_reset_unless_terminated(
    reason: InterruptReason,
    on_reset: OnResetAction,
    attempts: int,
    max_attempts: int,
    terminate: bool,
    status: str,
    requeue: bool,
    words: str,
) -> None:
    plan = plan_interrupted(
        reason=reason,
        on_reset=on_reset,
        attempts=attempts,
        max_attempts=max_attempts,
        to_terminate=terminate,
        now=NOW,
    )
    assert plan.entry.status == ExecutionStatus(status)
    assert plan.requeue is requeue
    assert words in (plan.entry.message or "")
    assert plan.entry.attempt == attempts
    if status == "failed":
        assert plan.entry.error is not None
        assert plan.entry.error.message == plan.entry.message
