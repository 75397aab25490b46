"""Store adapter of the trigger engine: its copy of the triggers and the cron fire times."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from spool_common.models import Trigger


class TriggerStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def upsert(self, trigger: Trigger, revision: int, deleted: bool) -> bool:
        """Record a trigger unless a newer revision of it is known; True when recorded."""
        status = await self.pool.execute(
            "INSERT INTO triggers (id, project_id, revision, body, deleted) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET "
            "revision = excluded.revision, body = excluded.body, deleted = excluded.deleted, "
            "project_id = excluded.project_id, updated_at = now() "
            "WHERE triggers.revision < excluded.revision",
            trigger.id,
            trigger.project_id,
            revision,
            trigger.to_wire(),
            deleted,
        )
        return bool(status.endswith(" 1"))

    async def live(self) -> list[Trigger]:
        rows = await self.pool.fetch("SELECT body FROM triggers WHERE NOT deleted")
        return [Trigger.model_validate(r["body"]) for r in rows]

    async def last_ticks(self) -> dict[str, datetime]:
        rows = await self.pool.fetch("SELECT trigger_id, last_tick FROM cron_fired")
        return {r["trigger_id"]: r["last_tick"] for r in rows}

    async def fired(self, trigger_id: str, tick: datetime) -> None:
        await self.pool.execute(
            "INSERT INTO cron_fired (trigger_id, last_tick) VALUES ($1, $2) "
            "ON CONFLICT (trigger_id) DO UPDATE SET last_tick = excluded.last_tick "
            "WHERE cron_fired.last_tick < excluded.last_tick",
            trigger_id,
            tick,
        )
