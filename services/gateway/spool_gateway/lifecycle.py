"""Pure rules of the execution lifecycle: who may claim, what a lost attempt becomes.

The store applies these with compare-and-set SQL fenced by (execution id, attempt); this module
only decides. Nothing here reads a clock or does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from spool_common.messages import ClaimVerdict, InterruptReason
from spool_common.models import ExecutionError, ExecutionStatus, OnResetAction, StatusEntry


class ExecutionKind(StrEnum):
    """How an execution was asked for (the query log's `kind`)."""

    EXECUTION = "execution"  # POST /executions/{serviceId}, and executions triggers fire
    INVOKE = "invoke"  # POST /executions/{serviceId}/invoke: the caller waits for the answer


# Statuses from which an execution may be claimed by an agent.
CLAIMABLE = frozenset({ExecutionStatus.CREATED, ExecutionStatus.RERUN})

REPLICA_LOST_MESSAGE = "Execution stopped: the replica running it stopped reporting"
TIMEOUT_MESSAGE = "Execution stopped due to runner timeout"  # dtlpy's wording
RESET_MESSAGE = "Execution stopped: the replica's runner was restarted"
DRAIN_MESSAGE = "Execution stopped: its replica stopped before it finished (drainTime)"
TERMINATED_MESSAGE = "Execution terminated: it received a termination signal"
ATTEMPTS_EXHAUSTED_MESSAGE = "Execution failed: all {max_attempts} attempts were used"


@dataclass(frozen=True)
class ClaimState:
    """What the store saw when a conditional claim matched no row."""

    exists: bool
    status: ExecutionStatus | None = None
    attempts: int = 0
    max_attempts: int = 0
    to_terminate: bool = False
    paused: bool = False  # the service is paused (inactive)


def refused_claim(state: ClaimState) -> ClaimVerdict:
    """Why a claim did not match: gone, the service paused, a duplicate delivery, or
    attempts used up."""
    if not state.exists or state.status is None:
        return ClaimVerdict.GONE
    claimable = state.status in CLAIMABLE and state.attempts < state.max_attempts
    if state.paused and claimable and not state.to_terminate:
        return ClaimVerdict.PAUSED
    if state.status in CLAIMABLE and state.attempts >= state.max_attempts:
        return ClaimVerdict.EXHAUSTED
    return ClaimVerdict.DUPLICATE


@dataclass(frozen=True)
class LostAttemptPlan:
    """What to do with an in-progress attempt whose lease expired."""

    entry: StatusEntry
    requeue: bool


INTERRUPTED = {
    InterruptReason.TIMEOUT: ("Timeout", TIMEOUT_MESSAGE),
    InterruptReason.RESET: ("ReplicaReset", RESET_MESSAGE),
    InterruptReason.DRAIN: ("Drained", DRAIN_MESSAGE),
    InterruptReason.LOST: ("ReplicaLost", REPLICA_LOST_MESSAGE),
}


def plan_interrupted(
    *,
    reason: InterruptReason,
    on_reset: OnResetAction,
    attempts: int,
    max_attempts: int,
    to_terminate: bool = False,
    now: datetime,
) -> LostAttemptPlan:
    """An attempt that did not finish by itself: terminated if a user asked for it; else
    onReset=rerun requeues it while attempts remain; otherwise it fails with the reason."""
    error_type, message = INTERRUPTED[reason]
    if to_terminate:
        entry = StatusEntry(
            status=ExecutionStatus.TERMINATED,
            timestamp=now,
            attempt=attempts,
            message=TERMINATED_MESSAGE,
        )
        return LostAttemptPlan(entry, requeue=False)
    if on_reset is OnResetAction.RERUN and attempts < max_attempts:
        entry = StatusEntry(
            status=ExecutionStatus.RERUN,
            timestamp=now,
            attempt=attempts,
            message=f"{message}; rerun (attempt {attempts} of {max_attempts})",
        )
        return LostAttemptPlan(entry, requeue=True)
    entry = StatusEntry(
        status=ExecutionStatus.FAILED,
        timestamp=now,
        attempt=attempts,
        message=message,
        error=ExecutionError(type=error_type, message=message),
    )
    return LostAttemptPlan(entry, requeue=False)


def plan_lost_attempt(
    *, on_reset: OnResetAction, attempts: int, max_attempts: int, now: datetime
) -> LostAttemptPlan:
    """A replica that stopped reporting: `plan_interrupted` with reason `lost`."""
    return plan_interrupted(
        reason=InterruptReason.LOST,
        on_reset=on_reset,
        attempts=attempts,
        max_attempts=max_attempts,
        now=now,
    )


def exhausted_entry(max_attempts: int, now: datetime) -> StatusEntry:
    message = ATTEMPTS_EXHAUSTED_MESSAGE.format(max_attempts=max_attempts)
    return StatusEntry(
        status=ExecutionStatus.FAILED,
        timestamp=now,
        attempt=max_attempts,
        message=message,
        error=ExecutionError(type="AttemptsExhausted", message=message),
    )


def dead_letter_entry(reason: str, now: datetime) -> StatusEntry:
    message = f"Execution failed: its message was dead-lettered by the broker ({reason})"
    return StatusEntry(
        status=ExecutionStatus.FAILED,
        timestamp=now,
        message=message,
        error=ExecutionError(type="DeadLettered", message=message),
    )


def entry_json(entry: StatusEntry) -> dict[str, Any]:
    """A status entry as stored in the status log (camelCase, no nulls)."""
    return entry.model_dump(mode="json", by_alias=True, exclude_none=True)
