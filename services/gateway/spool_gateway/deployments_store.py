"""Store adapter for services, their revisions, and the replicas the gateway has heard of.
Every change to a service commits with its outbox event (deleting one also deletes its
triggers, each with its own event)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from spool_common.messages import ReplicaChanged
from spool_common.models import Service
from spool_gateway.outbox import OutboxRow, insert_outbox
from spool_gateway.triggers_store import Announce, delete_triggers

REPLICAS_KEPT = 200  # the newest replicas per service that a status reads


@dataclass(frozen=True)
class ServiceRevision:
    revision: int
    service: Service
    creator: str | None
    created_at: datetime


@dataclass(frozen=True)
class ReplicaRecord:
    replica_id: str
    state: str
    reason: str | None
    updated_at: datetime
    revision: int | None = None


class ServiceStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create(self, service: Service, announce: OutboxRow) -> list[int]:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO services (id, project_id, package_id, name, body, created_at, "
                "updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
                service.id,
                service.project_id,
                service.package_id,
                service.name,
                service.to_wire(),
                service.created_at,
            )
            await _store_revision(conn, service, 1)
            return await insert_outbox(conn, [announce])

    async def update(
        self, service: Service, expected_revision: int, announce: OutboxRow
    ) -> list[int] | None:
        """Store the next revision unless the service changed since `expected_revision`."""
        async with self.pool.acquire() as conn, conn.transaction():
            return await update_service(conn, service, expected_revision, announce)

    async def get(self, service_id: str) -> tuple[Service, int] | None:
        row = await self.pool.fetchrow(
            "SELECT body, revision FROM services WHERE id = $1 AND deleted_at IS NULL",
            service_id,
        )
        return (Service.model_validate(row["body"]), row["revision"]) if row else None

    async def find_revisions(
        self, projects: Sequence[str] | None, name: str | None = None
    ) -> list[tuple[Service, int]]:
        """Live services of `projects` (None: every project), of one name if given, oldest
        first, each with its revision."""
        rows = await self.pool.fetch(
            "SELECT body, revision FROM services WHERE deleted_at IS NULL "
            "AND ($1::text[] IS NULL OR project_id = ANY($1)) AND ($2::text IS NULL OR name = $2) "
            "ORDER BY created_at",
            projects,
            name,
        )
        return [(Service.model_validate(r["body"]), r["revision"]) for r in rows]

    async def find(self, projects: Sequence[str] | None, name: str | None) -> list[Service]:
        """`find_revisions` without the revisions."""
        return [service for service, _ in await self.find_revisions(projects, name)]

    async def revisions(self, service_id: str) -> list[ServiceRevision]:
        rows = await self.pool.fetch(
            "SELECT revision, body, creator, created_at FROM service_revisions "
            "WHERE service_id = $1 ORDER BY revision",
            service_id,
        )
        return [
            ServiceRevision(
                r["revision"], Service.model_validate(r["body"]), r["creator"], r["created_at"]
            )
            for r in rows
        ]

    async def delete(
        self,
        service_id: str,
        announce: OutboxRow,
        cancel_entry: dict[str, Any],
        announce_trigger: Announce,
    ) -> tuple[list[OutboxRow], list[int]] | None:
        """Mark the service deleted, cancel its unfinished executions and delete its triggers,
        in one transaction with the service's and each trigger's event; None if it is gone."""
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                "UPDATE services SET deleted_at = now(), revision = revision + 1 "
                "WHERE id = $1 AND deleted_at IS NULL",
                service_id,
            )
            if status.endswith(" 0"):
                return None
            await conn.execute(
                "UPDATE executions SET status = 'canceled', lease_until = NULL, "
                "updated_at = now(), status_log = status_log || $2::jsonb "
                "WHERE service_id = $1 AND status IN ('created', 'rerun', 'in-progress')",
                service_id,
                [cancel_entry],
            )
            ids = await insert_outbox(conn, [announce])
            triggers, trigger_ids = await delete_triggers(
                conn, "service_id = $1", service_id, announce_trigger
            )
            return [announce, *triggers], [*ids, *trigger_ids]

    # replicas ------------------------------------------------------------------------
    async def record_replica(self, event: ReplicaChanged) -> None:
        """Keep the latest state per replica; an older event never overwrites a newer one."""
        await self.pool.execute(
            "INSERT INTO replicas (replica_id, service_id, state, reason, updated_at, revision) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (replica_id) DO UPDATE SET "
            "state = excluded.state, reason = excluded.reason, updated_at = excluded.updated_at, "
            "revision = coalesce(excluded.revision, replicas.revision) "
            "WHERE replicas.updated_at <= excluded.updated_at",
            event.replica_id,
            event.service_id,
            event.state.value,
            event.reason,
            event.at,
            event.revision,
        )

    async def replicas(self, service_id: str) -> list[ReplicaRecord]:
        return (await self.replicas_of([service_id])).get(service_id, [])

    async def replicas_of(self, service_ids: Sequence[str]) -> dict[str, list[ReplicaRecord]]:
        """The replicas heard of, newest first, at most REPLICAS_KEPT per service."""
        rows = await self.pool.fetch(
            "SELECT service_id, replica_id, state, reason, updated_at, revision FROM ("
            "  SELECT *, row_number() OVER (PARTITION BY service_id ORDER BY updated_at DESC) n"
            "  FROM replicas WHERE service_id = ANY($1)"
            ") newest WHERE n <= $2 ORDER BY service_id, updated_at DESC",
            list(service_ids),
            REPLICAS_KEPT,
        )
        found: dict[str, list[ReplicaRecord]] = {}
        for r in rows:
            record = ReplicaRecord(**{k: v for k, v in r.items() if k != "service_id"})
            found.setdefault(r["service_id"], []).append(record)
        return found


async def update_service(
    conn: asyncpg.Connection, service: Service, expected_revision: int, announce: OutboxRow
) -> list[int] | None:
    """Inside the caller's transaction: store the next revision and its outbox row unless the
    service changed since `expected_revision` (then None, and nothing is written)."""
    revision = await conn.fetchval(
        "UPDATE services SET body = $3, package_id = $4, revision = revision + 1, "
        "updated_at = $5 WHERE id = $1 AND revision = $2 AND deleted_at IS NULL "
        "RETURNING revision",
        service.id,
        expected_revision,
        service.to_wire(),
        service.package_id,
        service.updated_at,
    )
    if revision is None:
        return None
    await _store_revision(conn, service, revision)
    return await insert_outbox(conn, [announce])


async def _store_revision(conn: asyncpg.Connection, service: Service, revision: int) -> None:
    await conn.execute(
        "INSERT INTO service_revisions (service_id, revision, body, creator, created_at) "
        "VALUES ($1, $2, $3, $4, $5)",
        service.id,
        revision,
        service.to_wire(),
        service.updated_by or service.creator,
        service.updated_at or service.created_at,
    )
