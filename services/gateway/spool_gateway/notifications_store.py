"""Store adapter for service notifications. A notification is recorded once (its id is the
message's), together with the deactivation it causes, in one transaction."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from spool_common.models import Service
from spool_gateway.deployments_store import update_service
from spool_gateway.notification_rules import NotificationRecord
from spool_gateway.outbox import OutboxRow


class ServiceChangedMeanwhile(Exception):
    """The service moved past the revision the change was built on; nothing was written."""


@dataclass(frozen=True)
class ServiceUpdate:
    """The next revision of a service, built on `expected_revision`, and its event."""

    service: Service
    expected_revision: int
    announce: OutboxRow


@dataclass(frozen=True)
class NotificationQuery:
    project_id: str | None = None
    service_id: str | None = None
    type: str | None = None


class NotificationStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def record(
        self, notification: NotificationRecord, change: ServiceUpdate | None
    ) -> list[int] | None:
        """Record the notification and apply `change` in the same transaction; returns the
        outbox ids, or None if the notification was recorded before (nothing is written).
        Raises ServiceChangedMeanwhile if the service is no longer at the expected revision."""
        async with self.pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                "INSERT INTO notifications (id, project_id, service_id, type, title, message, "
                "replica_id, log_tail, deactivated, created_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
                "ON CONFLICT (id) DO NOTHING RETURNING id",
                notification.id,
                notification.project_id,
                notification.service_id,
                notification.type,
                notification.title,
                notification.message,
                notification.replica_id,
                list(notification.log_tail),
                notification.deactivated,
                notification.created_at,
            )
            if inserted is None:
                return None
            if change is None:
                return []
            ids = await update_service(
                conn, change.service, change.expected_revision, change.announce
            )
            if ids is None:
                raise ServiceChangedMeanwhile(change.service.id)
            return ids

    async def find(
        self, query: NotificationQuery, limit: int, offset: int
    ) -> list[NotificationRecord]:
        """Newest first."""
        rows = await self.pool.fetch(
            "SELECT * FROM notifications WHERE ($1::text IS NULL OR project_id = $1) "
            "AND ($2::text IS NULL OR service_id = $2) AND ($3::text IS NULL OR type = $3) "
            "ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5",
            query.project_id,
            query.service_id,
            query.type,
            limit,
            offset,
        )
        return [NotificationRecord(**{**dict(r), "log_tail": tuple(r["log_tail"])}) for r in rows]
