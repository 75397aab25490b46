"""Store adapter for execution logs: appended in batches, read in pages by a checkpoint (the
last row id seen), so a follower never misses or repeats a line."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from spool_common.messages import ExecutionLogs

MAX_LINE = 16 * 1024  # longer lines are cut; a log is for reading


_MATCHING = (
    "SELECT id, execution_id, replica_id, stream, line, at FROM execution_logs "
    "WHERE id > $1 AND ($2::text IS NULL OR service_id = $2) "
    "AND ($3::text[] IS NULL OR execution_id = ANY($3)) "
    "AND ($4::timestamptz IS NULL OR at >= $4) "
    "AND ($5::text IS NULL OR strpos(line, $5) > 0) "
)
_OLDEST = _MATCHING + "ORDER BY id LIMIT $6"
_NEWEST = _MATCHING + "ORDER BY id DESC LIMIT $6"


@dataclass(frozen=True)
class LogRow:
    id: int
    execution_id: str
    replica_id: str
    stream: str
    line: str
    at: datetime


class LogStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def append(self, batch: ExecutionLogs) -> None:
        await self.append_many([batch])

    async def append_many(self, batches: list[ExecutionLogs]) -> None:
        """The lines of several reports, in order, in one statement."""
        lines = [(b, line) for b in batches for line in b.lines]
        await self.pool.execute(
            "INSERT INTO execution_logs (execution_id, service_id, replica_id, attempt, stream, "
            "line, at) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], "
            "$5::text[], $6::text[], $7::timestamptz[])",
            [b.execution_id for b, _ in lines],
            [b.service_id for b, _ in lines],
            [b.replica_id for b, _ in lines],
            [b.attempt for b, _ in lines],
            [line.stream for _, line in lines],
            [line.line[:MAX_LINE] for _, line in lines],
            [line.at for _, line in lines],
        )

    async def page(
        self,
        *,
        service_id: str | None,
        execution_ids: list[str] | None,
        after: int,
        start: datetime | None,
        text: str | None,
        limit: int,
        newest: bool = False,
    ) -> list[LogRow]:
        """The first `limit` lines after the checkpoint `after` that match, in order; with
        `newest`, the last `limit` of them (still in order)."""
        rows = await self.pool.fetch(
            _NEWEST if newest else _OLDEST,
            after,
            service_id,
            execution_ids,
            start,
            text,
            limit,
        )
        found = [LogRow(**dict(r)) for r in rows]
        return found[::-1] if newest else found
