"""Store adapter for executions: every state change is a compare-and-set fenced by
(execution id, attempt), so an old or repeated report never moves an execution backwards."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from spool_common.messages import ExecutionFinished, ExecutionProgress
from spool_common.models import Execution, ExecutionStatus, OnResetAction, StatusEntry
from spool_gateway.lifecycle import CLAIMABLE, ClaimState, ExecutionKind, entry_json
from spool_gateway.outbox import OutboxRow, insert_outbox

_CLAIMABLE = [s.value for s in CLAIMABLE]


def to_execution(row: asyncpg.Record) -> Execution:
    log = row["status_log"]
    meta = row["meta"]
    duration = None
    if row["finished_at"] is not None and row["started_at"] is not None:
        duration = round((row["finished_at"] - row["started_at"]).total_seconds(), 6)
    return Execution.model_validate(
        {
            **meta,
            "id": row["id"],
            "projectId": row["project_id"],
            "serviceId": row["service_id"],
            "functionName": row["function_name"],
            "input": row["input"],
            "output": row["output"],
            "statusLog": log,
            "latestStatus": log[-1],
            "attempts": row["attempts"],
            "maxAttempts": row["max_attempts"],
            # Served once Execution has the field (ignored until then, as extra keys are).
            "serviceRevision": row["service_revision"],
            "duration": duration,
            "toTerminate": row["to_terminate"],
            "triggerId": row["trigger_id"],
            "resources": row["resources"],
            "creator": row["creator"],
            "phases": {
                "queuedAt": row["created_at"],
                "startedAt": row["started_at"],
                "finishedAt": row["finished_at"],
                "replicaInitSeconds": row["replica_init_seconds"],
            },
            "createdAt": row["created_at"],
            "updatedAt": row["updated_at"],
        }
    )


@dataclass(frozen=True)
class ExecutionQuery:
    service_id: str | None = None
    project_id: str | None = None
    status: str | None = None
    resource_id: str | None = None
    error_type: str | None = None
    trigger_id: str | None = None


@dataclass(frozen=True)
class Cause:
    """Why a trigger's execution exists: the fire's key (at most one execution per key), the
    event's origin chain, and the event itself (None for a cron fire)."""

    key: str
    origin: list[dict[str, Any]]
    event: dict[str, Any] | None


@dataclass(frozen=True)
class Lost:
    id: str
    service_id: str
    attempts: int
    max_attempts: int
    on_reset: OnResetAction
    function_name: str
    project_id: str
    input: dict[str, Any]
    trigger_id: str | None
    created_at: datetime
    to_terminate: bool = False
    event: dict[str, Any] | None = None


class Ledger:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create(
        self,
        execution: Execution,
        meta: dict[str, Any],
        publish: OutboxRow,
        cause: Cause | None = None,
        kind: ExecutionKind = ExecutionKind.EXECUTION,
    ) -> int | None:
        """Record the execution and its outbox row in one transaction; returns the row id.
        With a `cause` whose key an execution already has, records nothing: None."""
        async with self.pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                "INSERT INTO executions (id, project_id, service_id, function_name, input, "
                "status, status_log, attempts, max_attempts, trigger_id, resources, meta, "
                "creator, created_at, updated_at, dedup_key, origin, event, kind) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9, $10, $11, $12, $13, $13, "
                "$14, $15, $16, $17) "
                "ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING RETURNING id",
                execution.id,
                execution.project_id,
                execution.service_id,
                execution.function_name,
                execution.input,
                execution.latest_status.status.value,
                [entry_json(e) for e in execution.status_log],
                execution.max_attempts,
                execution.trigger_id,
                [r.to_wire() for r in execution.resources],
                meta,
                execution.creator,
                execution.created_at,
                cause.key if cause else None,
                cause.origin if cause else [],
                cause.event if cause else None,
                kind.value,
            )
            if inserted is None:
                return None
            (row_id,) = await insert_outbox(conn, [publish])
            return row_id

    async def get(self, execution_id: str) -> Execution | None:
        row = await self.pool.fetchrow("SELECT * FROM executions WHERE id = $1", execution_id)
        return to_execution(row) if row else None

    async def find(self, query: ExecutionQuery, limit: int) -> list[Execution]:
        """Newest first. `resourceId` uses the GIN index on resources; `errorType` is the
        latest status's error (e.g. DeadLettered, AttemptsExhausted, Timeout)."""
        rows = await self.pool.fetch(
            "SELECT * FROM executions WHERE ($1::text IS NULL OR service_id = $1) "
            "AND ($2::text IS NULL OR project_id = $2) AND ($3::text IS NULL OR status = $3) "
            "AND ($4::text IS NULL OR "
            "resources @> jsonb_build_array(jsonb_build_object('id', $4::text))) "
            "AND ($5::text IS NULL OR status_log->-1->'error'->>'type' = $5) "
            "AND ($6::text IS NULL OR trigger_id = $6) "
            "ORDER BY created_at DESC LIMIT $7",
            query.service_id,
            query.project_id,
            query.status,
            query.resource_id,
            query.error_type,
            query.trigger_id,
            limit,
        )
        return [to_execution(r) for r in rows]

    async def claim(
        self,
        execution_id: str,
        service_id: str,
        replica_id: str,
        lease: float,
        now: datetime,
        init_seconds: float | None = None,
        revision: int | None = None,
    ) -> int | ClaimState:
        """Start the next attempt if the execution is queued; returns the attempt number,
        or what the row looked like when it could not be claimed. `revision` is the service
        revision the claiming replica runs (None if it did not say)."""
        entry: dict[str, Any] = {
            "status": "in-progress",
            "timestamp": now.isoformat(),
            "replicaId": replica_id,
        }
        if revision is not None:
            entry["serviceRevision"] = revision
        attempt = await self.pool.fetchval(
            "UPDATE executions SET status = 'in-progress', attempts = attempts + 1, "
            "replica_id = $3, lease_until = now() + make_interval(secs => $4), "
            "started_at = $5, finished_at = NULL, updated_at = $5, replica_init_seconds = $8, "
            "service_revision = $9, "
            "status_log = status_log || jsonb_build_array($6::jsonb || "
            "jsonb_build_object('attempt', attempts + 1)) "
            "WHERE id = $1 AND service_id = $2 AND status = ANY($7::text[]) "
            "AND attempts < max_attempts AND NOT to_terminate "
            "AND NOT EXISTS (SELECT 1 FROM services s WHERE s.id = $2 "
            "AND (s.body->>'active')::boolean IS FALSE) RETURNING attempts",
            execution_id,
            service_id,
            replica_id,
            lease,
            now,
            entry,
            _CLAIMABLE,
            init_seconds,
            revision,
        )
        if attempt is not None:
            return int(attempt)
        row = await self.pool.fetchrow(
            "SELECT e.status, e.attempts, e.max_attempts, e.to_terminate, "
            "COALESCE((s.body->>'active')::boolean, true) AS active "
            "FROM executions e LEFT JOIN services s ON s.id = e.service_id "
            "WHERE e.id = $1 AND e.service_id = $2",
            execution_id,
            service_id,
        )
        if row is None:
            return ClaimState(exists=False)
        return ClaimState(
            True,
            ExecutionStatus(row["status"]),
            row["attempts"],
            row["max_attempts"],
            row["to_terminate"],
            paused=not row["active"],
        )

    async def finish(
        self, report: ExecutionFinished, announce: Callable[[Execution], OutboxRow]
    ) -> tuple[Execution, list[int], OutboxRow] | None:
        """Apply a final report if it belongs to the running attempt; None if stale."""
        entry = StatusEntry(
            status=report.status,
            timestamp=report.finished_at,
            message=report.message,
            replica_id=report.replica_id,
            attempt=report.attempt,
            error=report.error,
            percent_complete=100 if report.status is ExecutionStatus.SUCCESS else None,
        )
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE executions SET status = $3, output = $4, finished_at = $5, "
                "updated_at = $5, lease_until = NULL, status_log = status_log || $6::jsonb "
                "WHERE id = $1 AND attempts = $2 AND status = 'in-progress' RETURNING *",
                report.execution_id,
                report.attempt,
                report.status.value,
                report.output,
                report.finished_at,
                [entry_json(entry)],
            )
            if row is None:
                return None
            execution = to_execution(row)
            event = announce(execution)
            ids = await insert_outbox(conn, [event])
            return execution, ids, event

    async def progress(self, report: ExecutionProgress) -> bool:
        entry = {
            "status": "in-progress",
            "timestamp": report.at.isoformat(),
            "percentComplete": report.percent_complete,
            "replicaId": report.replica_id,
            "attempt": report.attempt,
        }
        if report.message:
            entry["message"] = report.message
        status = await self.pool.execute(
            "UPDATE executions SET updated_at = $3, status_log = status_log || $4::jsonb "
            "WHERE id = $1 AND attempts = $2 AND status = 'in-progress'",
            report.execution_id,
            report.attempt,
            report.at,
            [entry],
        )
        return bool(status.endswith(" 1"))

    async def renew(self, attempts: list[tuple[str, int]], lease: float) -> int:
        status = await self.pool.execute(
            "UPDATE executions e SET lease_until = now() + make_interval(secs => $3) "
            "FROM unnest($1::text[], $2::int[]) AS u(id, attempt) "
            "WHERE e.id = u.id AND e.attempts = u.attempt AND e.status = 'in-progress'",
            [a[0] for a in attempts],
            [a[1] for a in attempts],
            lease,
        )
        return int(status.split()[-1])

    async def fail_queued(self, execution_id: str, entry: StatusEntry) -> bool:
        """Fail an execution that is still queued (attempts exhausted, dead-lettered)."""
        status = await self.pool.execute(
            "UPDATE executions SET status = $2, updated_at = now(), lease_until = NULL, "
            "finished_at = now(), status_log = status_log || $3::jsonb "
            "WHERE id = $1 AND status = ANY($4::text[])",
            execution_id,
            entry.status.value,
            [entry_json(entry)],
            _CLAIMABLE,
        )
        return bool(status.endswith(" 1"))

    async def reap(
        self,
        decide: Callable[[Lost], tuple[StatusEntry, bool]],
        requeue: Callable[[Lost], OutboxRow],
        limit: int = 100,
    ) -> tuple[int, list[OutboxRow], list[int]]:
        """Settle in-progress attempts whose lease expired: requeue or end each, as `decide`
        says, in one transaction with the outbox rows of the requeued ones."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                _LOST_ROWS + "WHERE e.status = 'in-progress' AND e.lease_until < now() "
                "ORDER BY e.lease_until LIMIT $1 FOR UPDATE OF e SKIP LOCKED",
                limit,
            )
            outbox, ids = await _settle(conn, rows, decide, requeue)
            return len(rows), outbox, ids

    async def interrupt(
        self,
        execution_id: str,
        attempt: int,
        decide: Callable[[Lost], tuple[StatusEntry, bool]],
        requeue: Callable[[Lost], OutboxRow],
    ) -> tuple[list[OutboxRow], list[int]] | None:
        """Settle one running attempt that an agent stopped; None if it is not running."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                _LOST_ROWS + "WHERE e.id = $1 AND e.attempts = $2 AND e.status = 'in-progress' "
                "FOR UPDATE OF e",
                execution_id,
                attempt,
            )
            if not rows:
                return None
            return await _settle(conn, rows, decide, requeue)


_LOST_ROWS = (
    "SELECT e.id, e.service_id, e.attempts, e.max_attempts, e.function_name, "
    "e.project_id, e.input, e.trigger_id, e.created_at, e.to_terminate, e.event, "
    "coalesce(s.body->>'onReset', 'failed') AS on_reset "
    "FROM executions e JOIN services s ON s.id = e.service_id "
)


async def _settle(
    conn: asyncpg.Connection,
    rows: list[asyncpg.Record],
    decide: Callable[[Lost], tuple[StatusEntry, bool]],
    requeue: Callable[[Lost], OutboxRow],
) -> tuple[list[OutboxRow], list[int]]:
    outbox: list[OutboxRow] = []
    for row in rows:
        lost = Lost(**{**dict(row), "on_reset": OnResetAction(row["on_reset"])})
        entry, requeued = decide(lost)
        await conn.execute(
            "UPDATE executions SET status = $3, lease_until = NULL, updated_at = now(), "
            "finished_at = CASE WHEN $4 THEN NULL ELSE now() END, "
            "status_log = status_log || $5::jsonb WHERE id = $1 AND attempts = $2",
            lost.id,
            lost.attempts,
            entry.status.value,
            requeued,
            [entry_json(entry)],
        )
        if requeued:
            outbox.append(requeue(lost))
    return outbox, await insert_outbox(conn, outbox)
