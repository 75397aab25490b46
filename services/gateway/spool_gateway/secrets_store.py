"""Store adapter for project secrets. Only ciphertext goes in or out: sealing and opening are
the caller's (secrets_crypto)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from spool_common.models_base import WireModel

_META = ("project_id", "name", "key_id", "creator", "updated_by", "created_at", "updated_at")


class SecretRecord(WireModel):
    """A secret's metadata: what the API shows. Never the value."""

    project_id: str
    name: str
    key_id: str
    creator: str | None
    updated_by: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Sealed:
    key_id: str
    ciphertext: bytes


def _record(row: asyncpg.Record) -> SecretRecord:
    return SecretRecord(**{k: row[k] for k in _META})


class SecretStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create(
        self, project_id: str, name: str, sealed: Sealed, who: str, now: datetime
    ) -> SecretRecord | None:
        """None: the project already has a secret of that name (nothing is written)."""
        row = await self.pool.fetchrow(
            "INSERT INTO project_secrets (project_id, name, ciphertext, key_id, creator, "
            "updated_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5, $6, $6) "
            "ON CONFLICT DO NOTHING "
            "RETURNING project_id, name, key_id, creator, updated_by, created_at, updated_at",
            project_id,
            name,
            sealed.ciphertext,
            sealed.key_id,
            who,
            now,
        )
        return _record(row) if row else None

    async def replace(
        self, project_id: str, name: str, sealed: Sealed, who: str, now: datetime
    ) -> SecretRecord | None:
        """None: no such secret."""
        row = await self.pool.fetchrow(
            "UPDATE project_secrets SET ciphertext = $3, key_id = $4, updated_by = $5, "
            "updated_at = $6 WHERE project_id = $1 AND name = $2 "
            "RETURNING project_id, name, key_id, creator, updated_by, created_at, updated_at",
            project_id,
            name,
            sealed.ciphertext,
            sealed.key_id,
            who,
            now,
        )
        return _record(row) if row else None

    async def get(self, project_id: str, name: str) -> SecretRecord | None:
        row = await self.pool.fetchrow(
            "SELECT project_id, name, key_id, creator, updated_by, created_at, updated_at "
            "FROM project_secrets WHERE project_id = $1 AND name = $2",
            project_id,
            name,
        )
        return _record(row) if row else None

    async def in_project(self, project_id: str) -> list[SecretRecord]:
        rows = await self.pool.fetch(
            "SELECT project_id, name, key_id, creator, updated_by, created_at, updated_at "
            "FROM project_secrets WHERE project_id = $1 ORDER BY name",
            project_id,
        )
        return [_record(r) for r in rows]

    async def names(self, project_id: str) -> set[str]:
        rows = await self.pool.fetch(
            "SELECT name FROM project_secrets WHERE project_id = $1", project_id
        )
        return {r["name"] for r in rows}

    async def sealed(self, project_id: str, names: Sequence[str]) -> dict[str, Sealed]:
        """The ciphertexts of those of `names` the project has."""
        rows = await self.pool.fetch(
            "SELECT name, key_id, ciphertext FROM project_secrets "
            "WHERE project_id = $1 AND name = ANY($2::text[])",
            project_id,
            list(names),
        )
        return {r["name"]: Sealed(r["key_id"], r["ciphertext"]) for r in rows}

    async def delete(self, project_id: str, name: str) -> tuple[bool, list[str]]:
        """(deleted, names of the live services still using it). A secret in use is not
        deleted; the check and the delete are one statement."""
        row = await self.pool.fetchrow(
            "WITH users AS (SELECT name FROM services WHERE project_id = $1 "
            "AND deleted_at IS NULL AND body -> 'secrets' ? $2), "
            "gone AS (DELETE FROM project_secrets WHERE project_id = $1 AND name = $2 "
            "AND NOT EXISTS (SELECT 1 FROM users) RETURNING 1) "
            "SELECT (SELECT array_agg(name ORDER BY name) FROM users) AS users, "
            "(SELECT count(*) FROM gone) AS deleted",
            project_id,
            name,
        )
        assert row is not None
        return bool(row["deleted"]), list(row["users"] or [])
