"""Pure: what the agent reports when an attempt ends, from how it ended."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from spool_agent.protocol import ErrorType
from spool_agent.runner_process import KILLED_MESSAGE as PROCESS_KILLED_MESSAGE
from spool_agent.runner_state import TERMINATION_MESSAGE
from spool_common.messages import AttemptInterrupted, ExecutionFinished, InterruptReason
from spool_common.models import ExecutionError, ExecutionStatus


class Stop(StrEnum):
    """Why the agent itself stopped a running call (absent: the call ended on its own)."""

    TIMEOUT = "timeout"
    TERMINATE = "terminate"
    RESET = "reset"
    DRAIN = "drain"


# The runner's error types for a call that was stopped on purpose.
TERMINATED_TYPES = frozenset({ErrorType.TERMINATED.value, ErrorType.CALL_TERMINATED.value})
KILLED_MESSAGE = "Execution terminated: its process was killed"


@dataclass(frozen=True)
class Attempt:
    execution_id: str
    attempt: int
    replica_id: str
    started_at: datetime


def finished(
    attempt: Attempt, ok: bool, output: object, error: Mapping[str, Any] | None, now: datetime
) -> ExecutionFinished:
    """A call that returned: success, terminated (the user's stop reached the code), or failed."""
    failure = ExecutionError.model_validate(error) if error else None
    if ok:
        status = ExecutionStatus.SUCCESS
    elif failure is not None and failure.type in TERMINATED_TYPES:
        status = ExecutionStatus.TERMINATED
    else:
        status = ExecutionStatus.FAILED
    return ExecutionFinished(
        execution_id=attempt.execution_id,
        attempt=attempt.attempt,
        replica_id=attempt.replica_id,
        status=status,
        output=output if ok else None,
        error=failure,
        message=failure.message if failure else None,
        started_at=attempt.started_at,
        finished_at=now,
    )


def terminated_before_start(attempt: Attempt, as_process: bool, now: datetime) -> ExecutionFinished:
    """A call the user terminated between its claim and its start: it never runs, and ends
    with the words the runner would have used had it started (process or thread mode)."""
    message = PROCESS_KILLED_MESSAGE if as_process else TERMINATION_MESSAGE
    return ExecutionFinished(
        execution_id=attempt.execution_id,
        attempt=attempt.attempt,
        replica_id=attempt.replica_id,
        status=ExecutionStatus.TERMINATED,
        error=ExecutionError(type="Terminated", message=message),
        message=message,
        started_at=attempt.started_at,
        finished_at=now,
    )


def stopped(
    attempt: Attempt, why: Stop | None, now: datetime
) -> ExecutionFinished | AttemptInterrupted:
    """A call whose runner died under it: terminated if the user asked for it, otherwise an
    interruption whose fate the service's onReset decides (an unexpected death is a reset)."""
    if why is Stop.TERMINATE:
        error = ExecutionError(type="Terminated", message=KILLED_MESSAGE)
        return ExecutionFinished(
            execution_id=attempt.execution_id,
            attempt=attempt.attempt,
            replica_id=attempt.replica_id,
            status=ExecutionStatus.TERMINATED,
            error=error,
            message=KILLED_MESSAGE,
            started_at=attempt.started_at,
            finished_at=now,
        )
    reason = {
        Stop.TIMEOUT: InterruptReason.TIMEOUT,
        Stop.DRAIN: InterruptReason.DRAIN,
    }.get(why or Stop.RESET, InterruptReason.RESET)
    return AttemptInterrupted(
        execution_id=attempt.execution_id,
        attempt=attempt.attempt,
        replica_id=attempt.replica_id,
        reason=reason,
        at=now,
    )
