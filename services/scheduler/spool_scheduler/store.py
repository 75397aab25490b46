"""Store adapter for the scheduler's desired state."""

from __future__ import annotations

import asyncpg

from spool_common.models import Service


class DesiredStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def upsert(self, service: Service, revision: int, deleted: bool) -> bool:
        """Record a service's desired state unless a newer revision is already known."""
        status = await self.pool.execute(
            "INSERT INTO desired_services (service_id, revision, service, deleted) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (service_id) DO UPDATE SET "
            "revision = excluded.revision, service = excluded.service, "
            "deleted = excluded.deleted, updated_at = now() "
            "WHERE desired_services.revision < excluded.revision",
            service.id,
            revision,
            service.to_wire(),
            deleted,
        )
        return bool(status.endswith(" 1"))

    async def all(self) -> list[tuple[Service, int, bool]]:
        rows = await self.pool.fetch("SELECT service, revision, deleted FROM desired_services")
        return [(Service.model_validate(r["service"]), r["revision"], r["deleted"]) for r in rows]
