"""Store adapter for the scheduler's desired state."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from spool_common.models import Service
from spool_scheduler.plan import template_hash


@dataclass(frozen=True)
class Desired:
    service: Service
    revision: int
    deleted: bool
    template_revision: int  # the revision at which what replicas run last changed


class DesiredStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def upsert(self, service: Service, revision: int, deleted: bool) -> Desired | None:
        """Record a service's desired state unless a newer revision is already known; None
        when it was not newer. The template revision moves only when the template changed."""
        template_revision = await self.pool.fetchval(
            "INSERT INTO desired_services "
            "(service_id, revision, service, deleted, template_hash, template_revision) "
            "VALUES ($1, $2, $3, $4, $5, $2) ON CONFLICT (service_id) DO UPDATE SET "
            "revision = excluded.revision, service = excluded.service, "
            "deleted = excluded.deleted, updated_at = now(), "
            "template_revision = CASE "
            "WHEN desired_services.template_hash = excluded.template_hash "
            "THEN desired_services.template_revision ELSE excluded.revision END, "
            "template_hash = excluded.template_hash "
            "WHERE desired_services.revision < excluded.revision "
            "RETURNING template_revision",
            service.id,
            revision,
            service.to_wire(),
            deleted,
            template_hash(service),
        )
        if template_revision is None:
            return None
        return Desired(service, revision, deleted, int(template_revision))

    async def all(self) -> list[Desired]:
        rows = await self.pool.fetch(
            "SELECT service, revision, deleted, template_revision FROM desired_services"
        )
        return [
            Desired(
                Service.model_validate(r["service"]),
                r["revision"],
                r["deleted"],
                r["template_revision"],
            )
            for r in rows
        ]
