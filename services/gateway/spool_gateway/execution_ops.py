"""Use cases that control executions: interrupted attempts (timeout, reset, drain),
terminate, rerun (one or by query), and synchronous invocation."""

from __future__ import annotations

from typing import Any

from spool_common.bus.amqp import BusError
from spool_common.errors import FieldError
from spool_common.logging import get_logger
from spool_common.messages import AgentCommand, AgentControl, AttemptInterrupted
from spool_common.models import Execution, ExecutionStatus, Service, StatusEntry
from spool_gateway.control_store import ControlStore
from spool_gateway.core import Gateway
from spool_gateway.http_errors import ApiError
from spool_gateway.lifecycle import TERMINATED_MESSAGE

log = get_logger(__name__)

MAX_BATCH = 1000


async def interrupted(gw: Gateway, report: AttemptInterrupted) -> bool:
    """An agent stopped an attempt: the service's onReset decides (rerun or fail)."""
    settled = await gw.ledger.interrupt(
        report.execution_id,
        report.attempt,
        lambda lost: gw.decide_interrupted(lost, report.reason),
        gw.requeue_row,
    )
    if settled is None:
        return False
    rows, ids = settled
    gw.relay.hand_over(rows, ids)
    gw.waiters.wake(report.execution_id)
    return True


async def terminate(gw: Gateway, store: ControlStore, execution: Execution) -> None:
    """A queued execution never starts; a running one is stopped by its agent."""
    now = gw.clock()
    if execution.latest_status.status.is_terminal:
        raise ApiError(
            409,
            "conflict",
            f"execution already ended ({execution.latest_status.status})",
            (FieldError("executionId", "already ended"),),
        )
    entry = StatusEntry(
        status=ExecutionStatus.TERMINATED, timestamp=now, message=TERMINATED_MESSAGE
    )
    if await store.terminate_queued(execution.id, entry):
        gw.waiters.wake(execution.id)
        return
    running = await store.mark_running_for_termination(execution.id)
    if running is None or running.replica_id is None:
        return  # it ended meanwhile
    command = AgentControl(
        command=AgentCommand.TERMINATE_EXECUTION,
        execution_id=execution.id,
        reason="terminated by a user",
    )
    try:
        await gw.bus.publish(gw.bus.topology.control, running.replica_id, command, persistent=False)
    except BusError as e:
        # The replica is gone: its lease expires and the reaper ends it `terminated`.
        log.warning("terminate_not_delivered", execution_id=execution.id, error=str(e))


async def rerun(gw: Gateway, store: ControlStore, execution: Execution, service: Service) -> bool:
    """Queue a finished execution again under the same id, on the service's current revision,
    with a fresh budget of maxAttempts attempts."""
    entry = StatusEntry(
        status=ExecutionStatus.RERUN,
        timestamp=gw.clock(),
        attempt=execution.attempts,
        message="Execution rerun by a user",
    )
    row = gw.request_row_for(execution, await gw.control.event_of(execution.id))
    ids = await store.rerun(execution.id, entry, service.max_attempts, row)
    if ids is None:
        return False
    gw.relay.hand_over([row], ids)
    return True


async def rerun_many(gw: Gateway, store: ControlStore, query: dict[str, Any]) -> list[str]:
    """Rerun every finished execution the query matches (serviceId, status, functionName,
    errorType), at most MAX_BATCH: how dead letters and failures are re-driven."""
    ids = await store.finished_ids(query, MAX_BATCH)
    done = []
    for execution_id in ids:
        execution = await gw.ledger.get(execution_id)
        found = await gw.services.get(execution.service_id) if execution else None
        if execution and found and await rerun(gw, store, execution, found[0]):
            done.append(execution_id)
    return done
