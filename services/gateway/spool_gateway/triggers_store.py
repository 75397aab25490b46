"""Store adapter for triggers. Every change commits with its `trigger.<change>` event in the
outbox, carrying the trigger's revision (1 when created, one more with every change)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum

import asyncpg

from spool_common.messages import TriggerChanged, encode
from spool_common.models import Trigger
from spool_gateway.outbox import OutboxRow, insert_outbox


class TriggerChange(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"


# Builds the outbox row announcing a change: (trigger, its new revision, the change).
Announce = Callable[[Trigger, int, TriggerChange], OutboxRow]


def changed_row(exchange: str, trigger: Trigger, revision: int, change: TriggerChange) -> OutboxRow:
    """The outbox row of a `trigger.<change>` event on the events exchange."""
    message = TriggerChanged(
        trigger=trigger, deleted=change is TriggerChange.DELETED, revision=revision
    )
    return OutboxRow(exchange, f"trigger.{change}", encode(message))


class NameTaken(Exception):
    """Another trigger of the project has this name."""


class TriggerStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def get(self, trigger_id: str) -> tuple[Trigger, int] | None:
        row = await self.pool.fetchrow(
            "SELECT body, revision FROM triggers WHERE id = $1", trigger_id
        )
        return (Trigger.model_validate(row["body"]), row["revision"]) if row else None

    async def find(self, projects: Sequence[str] | None, service_id: str | None) -> list[Trigger]:
        """The triggers of `projects` (None: every project), of one service if given."""
        rows = await self.pool.fetch(
            "SELECT body FROM triggers WHERE ($1::text[] IS NULL OR project_id = ANY($1)) "
            "AND ($2::text IS NULL OR service_id = $2) ORDER BY created_at, id",
            projects,
            service_id,
        )
        return [Trigger.model_validate(r["body"]) for r in rows]

    async def create(
        self, trigger: Trigger, announce: Announce
    ) -> tuple[list[OutboxRow], list[int]]:
        """Insert a new trigger (revision 1); its announcement and outbox id. NameTaken if the
        project has a trigger of that name."""
        row = announce(trigger, 1, TriggerChange.CREATED)
        async with self.pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                "INSERT INTO triggers (id, project_id, service_id, name, body, created_at, "
                "updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) "
                "ON CONFLICT (project_id, name) DO NOTHING RETURNING id",
                trigger.id,
                trigger.project_id,
                trigger.spec.operation.service_id,
                trigger.name,
                trigger.to_wire(),
                trigger.created_at,
            )
            if inserted is None:
                raise NameTaken(trigger.name)
            return [row], await insert_outbox(conn, [row])

    async def update(
        self, trigger: Trigger, expected_revision: int, announce: Announce
    ) -> tuple[list[OutboxRow], list[int]] | None:
        """Store the next revision unless the trigger changed or went since
        `expected_revision` (then None); NameTaken if the new name is another trigger's."""
        row = announce(trigger, expected_revision + 1, TriggerChange.UPDATED)
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                status = await conn.execute(
                    "UPDATE triggers SET name = $3, service_id = $4, body = $5, updated_at = $6, "
                    "revision = revision + 1 WHERE id = $1 AND revision = $2",
                    trigger.id,
                    expected_revision,
                    trigger.name,
                    trigger.spec.operation.service_id,
                    trigger.to_wire(),
                    trigger.updated_at,
                )
                if status.endswith(" 0"):
                    return None
                return [row], await insert_outbox(conn, [row])
        except asyncpg.UniqueViolationError as e:
            raise NameTaken(trigger.name) from e

    async def delete(
        self, trigger_id: str, announce: Announce
    ) -> tuple[list[OutboxRow], list[int]]:
        """Delete the trigger; its `trigger.deleted` row and the outbox ids (empty if none)."""
        async with self.pool.acquire() as conn, conn.transaction():
            return await delete_triggers(conn, "id = $1", trigger_id, announce)

    async def upsert(self, trigger: Trigger, announce: Announce) -> tuple[Trigger, OutboxRow, int]:
        """Create the trigger, or replace the project's trigger of the same name (keeping its
        id, creator and creation time); with its announcement, in one transaction."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "INSERT INTO triggers (id, project_id, service_id, name, body, created_at, "
                "updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) "
                "ON CONFLICT (project_id, name) DO UPDATE SET service_id = excluded.service_id, "
                "body = excluded.body || jsonb_build_object('id', triggers.id, "
                "'creator', triggers.body->'creator', 'createdAt', triggers.body->'createdAt'), "
                "updated_at = excluded.updated_at, revision = triggers.revision + 1 "
                "RETURNING body, revision",
                trigger.id,
                trigger.project_id,
                trigger.spec.operation.service_id,
                trigger.name,
                trigger.to_wire(),
                trigger.updated_at,
            )
            stored = Trigger.model_validate(row["body"])
            revision = row["revision"]
            change = TriggerChange.CREATED if revision == 1 else TriggerChange.UPDATED
            event = announce(stored, revision, change)
            (row_id,) = await insert_outbox(conn, [event])
            return stored, event, row_id


async def delete_triggers(
    conn: asyncpg.Connection, where: str, value: str, announce: Announce
) -> tuple[list[OutboxRow], list[int]]:
    """Inside the caller's transaction: delete the triggers `where` matches (`id = $1`,
    `service_id = $1`) and write each one's `trigger.deleted` row to the outbox."""
    rows = await conn.fetch(
        f"DELETE FROM triggers WHERE {where} RETURNING body, revision",  # noqa: S608 - our own constant
        value,
    )
    events = [
        announce(Trigger.model_validate(r["body"]), r["revision"] + 1, TriggerChange.DELETED)
        for r in rows
    ]
    return events, await insert_outbox(conn, events)
