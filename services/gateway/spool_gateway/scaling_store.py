"""Store adapter for the autoscaler's scale decisions: each recorded once (keyed by service, time
and replicas), the newest `keep` kept per service, listed newest first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg

from spool_common.messages import ScaleDecided


class Recorded(StrEnum):
    RECORDED = "recorded"
    DUPLICATE = "duplicate"  # recorded before: a redelivery
    UNKNOWN_SERVICE = "unknown-service"  # no such live service: nothing was written


@dataclass(frozen=True)
class ScalingRecord:
    at: datetime
    previous: int | None
    replicas: int
    rule: str
    reason: str
    inputs: dict[str, float]


_INSERT = (
    "WITH known AS (SELECT EXISTS (SELECT 1 FROM services WHERE id = $1 "
    "AND deleted_at IS NULL) AS known), "
    "inserted AS (INSERT INTO scaling_decisions "
    "(service_id, at, replicas, previous, rule, reason, inputs) "
    "SELECT $1, $2, $3, $4, $5, $6, $7 FROM known WHERE known "
    "ON CONFLICT (service_id, at, replicas) DO NOTHING RETURNING 1) "
    "SELECT known, EXISTS (SELECT 1 FROM inserted) AS inserted FROM known"
)

# Everything older than the service's `keep`-th newest decision (a walk of at most `keep`
# entries of the primary key, only after an insert).
_PRUNE = (
    "DELETE FROM scaling_decisions WHERE service_id = $1 AND (at, replicas) < ("
    "SELECT at, replicas FROM scaling_decisions WHERE service_id = $1 "
    "ORDER BY at DESC, replicas DESC OFFSET $2 - 1 LIMIT 1)"
)


class ScalingStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def record(self, decision: ScaleDecided, keep: int) -> Recorded:
        """Record the decision unless it was recorded before, and drop the service's decisions
        beyond the newest `keep`, in one transaction."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                _INSERT,
                decision.service_id,
                decision.at,
                decision.replicas,
                decision.previous,
                decision.rule,
                decision.reason,
                decision.inputs,
            )
            if not row["known"]:
                return Recorded.UNKNOWN_SERVICE
            if not row["inserted"]:
                return Recorded.DUPLICATE
            await conn.execute(_PRUNE, decision.service_id, keep)
            return Recorded.RECORDED

    async def latest_replicas(self, service_ids: Sequence[str]) -> dict[str, int]:
        """The replica count of each service's newest decision (services without one are
        left out)."""
        rows = await self.pool.fetch(
            "SELECT DISTINCT ON (service_id) service_id, replicas FROM scaling_decisions "
            "WHERE service_id = ANY($1) ORDER BY service_id, at DESC, replicas DESC",
            list(service_ids),
        )
        return {r["service_id"]: r["replicas"] for r in rows}

    async def find(
        self, service_id: str, since: datetime | None, limit: int
    ) -> list[ScalingRecord]:
        """Newest first; with `since`, only decisions taken at or after it."""
        rows = await self.pool.fetch(
            "SELECT at, previous, replicas, rule, reason, inputs FROM scaling_decisions "
            "WHERE service_id = $1 AND ($2::timestamptz IS NULL OR at >= $2) "
            "ORDER BY at DESC, replicas DESC LIMIT $3",
            service_id,
            since,
            limit,
        )
        return [ScalingRecord(**dict(r)) for r in rows]
