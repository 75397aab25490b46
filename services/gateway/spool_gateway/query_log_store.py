"""Store adapter for the query log: a service's executions created in a time range, oldest
first. A range scan of `executions_service_created (service_id, created_at DESC)`, read
backwards; the `id` tie-break is an incremental sort within equal times."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from spool_gateway.query_log import QueryLogRow


class QueryLogStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def rows(
        self,
        service_id: str,
        start: datetime,
        end: datetime,
        function_name: str | None,
        limit: int,
    ) -> list[QueryLogRow]:
        """Executions created in [start, end), oldest first, at most `limit`. An execution's
        end is its `finished_at`, or when its terminal status was written if it has none (a
        canceled one)."""
        rows = await self.pool.fetch(
            "SELECT id AS execution_id, function_name, kind, created_at, status, "
            "coalesce(finished_at, ended_at) AS finished_at FROM executions "
            "WHERE service_id = $1 AND created_at >= $2 AND created_at < $3 "
            "AND ($4::text IS NULL OR function_name = $4) "
            "ORDER BY created_at, id LIMIT $5",
            service_id,
            start,
            end,
            function_name,
            limit,
        )
        return [QueryLogRow(**dict(r)) for r in rows]
