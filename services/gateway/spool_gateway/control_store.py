"""Store adapter for controlling executions: terminate, rerun, and the lookups they need,
including what fired an execution and its origin chain (for the events it causes). Every
change is a compare-and-set on the execution's status, so it never races a claim or a report
into an inconsistent row."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from spool_common.models import StatusEntry
from spool_gateway.lifecycle import CLAIMABLE, entry_json
from spool_gateway.outbox import OutboxRow, insert_outbox

_QUEUED = [s.value for s in CLAIMABLE]
_TERMINAL = ["success", "failed", "terminated", "aborted", "canceled", "system-failure", "timeout"]


@dataclass(frozen=True)
class Running:
    """An execution a terminate request found running: where to send the command."""

    replica_id: str | None
    attempt: int


@dataclass(frozen=True)
class Origin:
    """What POST /events needs of the execution that caused an event."""

    project_id: str
    trigger_id: str | None
    origin: list[dict[str, Any]]
    entity_id: str | None


class ControlStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def origin_of(self, execution_id: str) -> Origin | None:
        """The trigger, origin chain and entity of the event that fired an execution."""
        row = await self.pool.fetchrow(
            "SELECT project_id, trigger_id, origin, event->>'entityId' AS entity_id "
            "FROM executions WHERE id = $1",
            execution_id,
        )
        if row is None:
            return None
        return Origin(row["project_id"], row["trigger_id"], row["origin"], row["entity_id"])

    async def event_of(self, execution_id: str) -> dict[str, Any] | None:
        """The event that fired an execution (None: not fired by an event)."""
        event: dict[str, Any] | None = await self.pool.fetchval(
            "SELECT event FROM executions WHERE id = $1", execution_id
        )
        return event

    async def terminate_queued(self, execution_id: str, entry: StatusEntry) -> bool:
        """A queued execution ends `terminated` at once and will never be claimed."""
        status = await self.pool.execute(
            "UPDATE executions SET status = 'terminated', to_terminate = true, "
            "finished_at = now(), updated_at = now(), status_log = status_log || $2::jsonb "
            "WHERE id = $1 AND status = ANY($3::text[])",
            execution_id,
            [entry_json(entry)],
            _QUEUED,
        )
        return bool(status.endswith(" 1"))

    async def mark_running_for_termination(self, execution_id: str) -> Running | None:
        """Flag a running execution; its agent is then asked to stop it."""
        row = await self.pool.fetchrow(
            "UPDATE executions SET to_terminate = true, updated_at = now() "
            "WHERE id = $1 AND status = 'in-progress' RETURNING replica_id, attempts",
            execution_id,
        )
        return Running(row["replica_id"], row["attempts"]) if row else None

    async def rerun(
        self, execution_id: str, entry: StatusEntry, extra_attempts: int, publish: OutboxRow
    ) -> list[int] | None:
        """Queue a finished execution again (same id): a `rerun` entry, a fresh budget of
        attempts, and its publish in the same transaction; the outbox ids, or None."""
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                "UPDATE executions SET status = 'rerun', to_terminate = false, output = NULL, "
                "finished_at = NULL, lease_until = NULL, updated_at = now(), "
                "max_attempts = attempts + $3, status_log = status_log || $2::jsonb "
                "WHERE id = $1 AND status = ANY($4::text[])",
                execution_id,
                [entry_json(entry)],
                extra_attempts,
                _TERMINAL,
            )
            if status.endswith(" 0"):
                return None
            return await insert_outbox(conn, [publish])

    async def finished_ids(self, query: dict[str, Any], limit: int) -> list[str]:
        """Ids of finished executions matching a simple query (for batch rerun)."""
        rows = await self.pool.fetch(
            "SELECT id FROM executions WHERE status = ANY($1::text[]) "
            "AND ($2::text IS NULL OR service_id = $2) AND ($3::text IS NULL OR status = $3) "
            "AND ($4::text IS NULL OR function_name = $4) "
            "AND ($5::text IS NULL OR status_log->-1->'error'->>'type' = $5) "
            "ORDER BY created_at LIMIT $6",
            _TERMINAL,
            query.get("serviceId"),
            query.get("status"),
            query.get("functionName"),
            query.get("errorType"),
            limit,
        )
        return [r["id"] for r in rows]
