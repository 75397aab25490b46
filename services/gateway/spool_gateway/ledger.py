"""Store adapter for executions: every state change is a compare-and-set fenced by
(execution id, attempt), so an old or repeated report never moves an execution backwards."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

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
    projects: Sequence[str] | None = None  # None: every project
    status: str | None = None
    resource_id: str | None = None
    error_type: str | None = None
    trigger_id: str | None = None
    function_name: str | None = None
    created_from: datetime | None = None  # createdAt in [created_from, created_to)
    created_to: datetime | None = None


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


@dataclass(frozen=True)
class Finished:
    """An execution a final report was applied to."""

    id: str
    service_id: str
    created_at: datetime


@dataclass(frozen=True)
class NewExecution:
    """An execution ready to be recorded, with its meta and the request it publishes."""

    execution: Execution
    meta: dict[str, Any]
    publish: OutboxRow
    kind: ExecutionKind = ExecutionKind.EXECUTION


_INSERT = (
    "INSERT INTO executions (id, project_id, service_id, function_name, input, "
    "status, status_log, attempts, max_attempts, trigger_id, resources, meta, "
    "creator, created_at, updated_at, dedup_key, origin, event, kind) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9, $10, $11, $12, $13, $13, "
    "$14, $15, $16, $17)"
)


def _insert_args(new: NewExecution, cause: Cause | None) -> tuple[Any, ...]:
    execution = new.execution
    return (
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
        new.meta,
        execution.creator,
        execution.created_at,
        cause.key if cause else None,
        cause.origin if cause else [],
        cause.event if cause else None,
        new.kind.value,
    )


class Ledger:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create_many(self, news: list[NewExecution]) -> list[int]:
        """Record executions and their outbox rows in one transaction (one statement each
        for the executions and the rows); returns the outbox row ids, in order."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.executemany(_INSERT, [_insert_args(new, None) for new in news])
            return await insert_outbox(conn, [new.publish for new in news])

    async def create(self, new: NewExecution, cause: Cause) -> int | None:
        """Record a trigger's execution and its outbox row in one transaction, unless an
        execution already has the cause's key: then nothing, None. Returns the row id."""
        async with self.pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                _INSERT + " ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL "
                "DO NOTHING RETURNING id",
                *_insert_args(new, cause),
            )
            if inserted is None:
                return None
            (row_id,) = await insert_outbox(conn, [new.publish])
            return row_id

    async def count_waiting(self, service_id: str, limit: int) -> int:
        """Executions of the service created or rerun and not yet claimed, counted up to
        `limit` (through the partial index on open executions)."""
        count: int = await self.pool.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM executions WHERE service_id = $1 "
            "AND status = ANY($2::text[]) LIMIT $3) w",
            service_id,
            _CLAIMABLE,
            limit,
        )
        return count

    async def get(self, execution_id: str) -> Execution | None:
        row = await self.pool.fetchrow("SELECT * FROM executions WHERE id = $1", execution_id)
        return to_execution(row) if row else None

    async def find(self, query: ExecutionQuery, limit: int) -> list[Execution]:
        """Newest first. `resourceId` uses the GIN index on resources; `errorType` is the
        latest status's error (e.g. DeadLettered, AttemptsExhausted, Timeout)."""
        rows = await self.pool.fetch(
            "SELECT * FROM executions WHERE ($1::text IS NULL OR service_id = $1) "
            "AND ($2::text[] IS NULL OR project_id = ANY($2)) "
            "AND ($3::text IS NULL OR status = $3) "
            "AND ($4::text IS NULL OR "
            "resources @> jsonb_build_array(jsonb_build_object('id', $4::text))) "
            "AND ($5::text IS NULL OR status_log->-1->'error'->>'type' = $5) "
            "AND ($6::text IS NULL OR trigger_id = $6) "
            "AND ($7::text IS NULL OR function_name = $7) "
            "AND ($8::timestamptz IS NULL OR created_at >= $8) "
            "AND ($9::timestamptz IS NULL OR created_at < $9) "
            "ORDER BY created_at DESC LIMIT $10",
            query.service_id,
            query.projects,
            query.status,
            query.resource_id,
            query.error_type,
            query.trigger_id,
            query.function_name,
            query.created_from,
            query.created_to,
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
        claim_id: str | None = None,
    ) -> int | ClaimState:
        """`claim_many` of one execution."""
        (result,) = await self.claim_many(
            [execution_id], service_id, replica_id, lease, now, init_seconds, revision, [claim_id]
        )
        return result

    async def claim_many(
        self,
        execution_ids: list[str],
        service_id: str,
        replica_id: str,
        lease: float,
        now: datetime,
        init_seconds: float | None = None,
        revision: int | None = None,
        claim_ids: Sequence[str | None] | None = None,
    ) -> list[int | ClaimState]:
        """Start the next attempt of each execution that is queued, for one replica, in one
        statement; per execution, the attempt number, or what the row looked like when it
        could not be claimed. `revision` is the service revision the replica runs (None if
        it did not say). An id given twice is claimed once (its second claim is refused).
        `claim_ids` name the deliveries claimed (one per id, None for none): a claim asked
        again under the claim id that was granted is granted again (`_grant_again`)."""
        claims: list[str | None] = [None] * len(execution_ids)
        if claim_ids is not None:
            claims = list(claim_ids)
        granted = await self._grant(
            execution_ids, claims, service_id, replica_id, lease, now, init_seconds, revision
        )
        attempts: dict[str, int] = {r["id"]: r["attempts"] for r in granted}
        refused = [(i, c) for i, c in zip(execution_ids, claims, strict=True) if i not in attempts]
        again = await self._grant_again(refused, service_id, replica_id, lease)
        judged = [i for i, c in refused if (i, c) not in again]
        states = await self._claim_states(judged, service_id) if judged else {}
        results: list[int | ClaimState] = []
        for execution_id, claim in zip(execution_ids, claims, strict=True):
            attempt = attempts.pop(execution_id, None)
            if attempt is None:
                attempt = again.get((execution_id, claim))
            if attempt is not None:
                results.append(attempt)
            elif execution_id in states:
                results.append(states[execution_id])
            else:  # the same id again: this batch just claimed it
                results.append(ClaimState(True, ExecutionStatus.IN_PROGRESS))
        return results

    async def _grant(
        self,
        execution_ids: list[str],
        claim_ids: list[str | None],
        service_id: str,
        replica_id: str,
        lease: float,
        now: datetime,
        init_seconds: float | None,
        revision: int | None,
    ) -> list[asyncpg.Record]:
        """The claimable executions among these, claimed; each under the claim id it was
        first asked with."""
        entry: dict[str, Any] = {
            "status": "in-progress",
            "timestamp": now.isoformat(),
            "replicaId": replica_id,
        }
        if revision is not None:
            entry["serviceRevision"] = revision
        rows: list[asyncpg.Record] = await self.pool.fetch(
            "UPDATE executions e SET status = 'in-progress', attempts = e.attempts + 1, "
            "replica_id = $3, lease_until = now() + make_interval(secs => $4), "
            "started_at = $5, finished_at = NULL, updated_at = $5, replica_init_seconds = $8, "
            "service_revision = $9, claim_id = u.claim, "
            "status_log = e.status_log || jsonb_build_array($6::jsonb || "
            "jsonb_build_object('attempt', e.attempts + 1)) "
            "FROM (SELECT DISTINCT ON (id) id, claim "
            "FROM unnest($1::text[], $10::text[]) WITH ORDINALITY AS u(id, claim, n) "
            "ORDER BY id, n) u "
            "WHERE e.id = u.id AND e.service_id = $2 AND e.status = ANY($7::text[]) "
            "AND e.attempts < e.max_attempts AND NOT e.to_terminate "
            "AND NOT EXISTS (SELECT 1 FROM services s WHERE s.id = $2 "
            "AND (s.body->>'active')::boolean IS FALSE) RETURNING e.id, e.attempts",
            execution_ids,
            service_id,
            replica_id,
            lease,
            now,
            entry,
            _CLAIMABLE,
            init_seconds,
            revision,
            claim_ids,
        )
        return rows

    async def _grant_again(
        self, claims: list[tuple[str, str | None]], service_id: str, replica_id: str, lease: float
    ) -> dict[tuple[str, str | None], int]:
        """(execution id, claim id) -> attempt, for the claims already granted under that
        claim id and still running: the gateway died between the grant and its reply, or the
        reply came after the agent gave up and asked again. Their lease starts again, as the
        agent starts renewing it only once it hears the answer."""
        named = [(i, c) for i, c in claims if c is not None]
        if not named:
            return {}
        rows = await self.pool.fetch(
            "UPDATE executions e SET lease_until = now() + make_interval(secs => $5) "
            "FROM unnest($1::text[], $2::text[]) AS u(id, claim) "
            "WHERE e.id = u.id AND e.claim_id = u.claim AND e.service_id = $3 "
            "AND e.replica_id = $4 AND e.status = 'in-progress' "
            "RETURNING e.id, e.claim_id, e.attempts",
            [i for i, _ in named],
            [c for _, c in named],
            service_id,
            replica_id,
            lease,
        )
        return {(r["id"], r["claim_id"]): r["attempts"] for r in rows}

    async def _claim_states(
        self, execution_ids: list[str], service_id: str
    ) -> dict[str, ClaimState]:
        rows = await self.pool.fetch(
            "SELECT e.id, e.status, e.attempts, e.max_attempts, e.to_terminate, "
            "COALESCE((s.body->>'active')::boolean, true) AS active "
            "FROM executions e LEFT JOIN services s ON s.id = e.service_id "
            "WHERE e.id = ANY($1::text[]) AND e.service_id = $2",
            execution_ids,
            service_id,
        )
        states = {
            row["id"]: ClaimState(
                True,
                ExecutionStatus(row["status"]),
                row["attempts"],
                row["max_attempts"],
                row["to_terminate"],
                paused=not row["active"],
            )
            for row in rows
        }
        for execution_id in execution_ids:
            states.setdefault(execution_id, ClaimState(exists=False))
        return states

    async def finish(self, report: ExecutionFinished) -> Finished | None:
        """Apply a final report if it belongs to the running attempt; None if stale."""
        applied = await self.finish_many([report])
        return applied[0] if applied else None

    async def finish_many(self, reports: list[ExecutionFinished]) -> list[Finished]:
        """Apply final reports (at most one per execution) in one statement, each only if it
        belongs to the running attempt. Returns the executions it applied to (only what the
        caller needs: the rows are not read back)."""
        entries = [
            StatusEntry(
                status=r.status,
                timestamp=r.finished_at,
                message=r.message,
                replica_id=r.replica_id,
                attempt=r.attempt,
                error=r.error,
                percent_complete=100 if r.status is ExecutionStatus.SUCCESS else None,
            )
            for r in reports
        ]
        rows = await self.pool.fetch(
            "UPDATE executions e SET status = u.status, output = u.output::jsonb, "
            "finished_at = u.finished_at, updated_at = u.finished_at, lease_until = NULL, "
            "status_log = e.status_log || u.entry::jsonb "
            "FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], "
            "$5::timestamptz[], $6::text[]) AS u(id, attempt, status, output, finished_at, "
            "entry) WHERE e.id = u.id AND e.attempts = u.attempt "
            "AND e.status = 'in-progress' RETURNING e.*",
            [r.execution_id for r in reports],
            [r.attempt for r in reports],
            [r.status.value for r in reports],
            [None if r.output is None else orjson.dumps(r.output).decode() for r in reports],
            [r.finished_at for r in reports],
            [orjson.dumps([entry_json(e)]).decode() for e in entries],
        )
        return [Finished(r["id"], r["service_id"], r["created_at"]) for r in rows]

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

    async def extend_leases(self, lease: float) -> int:
        """Give every running attempt at least `lease` seconds from now: after a time when
        no renewal could be recorded, so a live agent is not taken for dead (see `_reaper`)."""
        status = await self.pool.execute(
            "UPDATE executions SET lease_until = now() + make_interval(secs => $1) "
            "WHERE status = 'in-progress' AND lease_until < now() + make_interval(secs => $1)",
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
