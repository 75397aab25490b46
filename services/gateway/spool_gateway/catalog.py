"""Store adapter for what users manage: tokens, projects, codebases, packages and their
revisions. Services live in `deployments_store`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from spool_common.models import Package, Project
from spool_gateway.identity import Role


@dataclass(frozen=True)
class Principal:
    kind: str  # admin | user | agent
    subject: str
    service_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"


# Package revisions never change once written: the hot path (every execution created) reads
# them from memory. Bounded; the oldest entry goes first.
REVISION_CACHE = 512


class Catalog:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._revisions: dict[tuple[str, str], Package] = {}

    # tokens --------------------------------------------------------------------------
    async def ensure_token(
        self,
        token_hash: bytes,
        kind: str,
        subject: str,
        service_id: str | None = None,
        ttl: float | None = None,
    ) -> None:
        """Store a token's hash (never the token); `ttl` seconds from now, or no expiry."""
        await self.pool.execute(
            "INSERT INTO tokens (token_hash, kind, subject, service_id, expires_at) "
            "VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5)) "
            "ON CONFLICT (token_hash) DO NOTHING",
            token_hash,
            kind,
            subject,
            service_id,
            ttl,
        )

    async def principal(self, token_hash: bytes) -> Principal | None:
        row = await self.pool.fetchrow(
            "SELECT kind, subject, service_id FROM tokens WHERE token_hash = $1 "
            "AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())",
            token_hash,
        )
        return Principal(row["kind"], row["subject"], row["service_id"]) if row else None

    # projects ------------------------------------------------------------------------
    async def create_project(self, project: Project, owner: str | None = None) -> bool:
        """Insert the project and, in the same transaction, make the user `owner` its Owner;
        False when its creator has a project of that name."""
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                "INSERT INTO projects (id, name, creator, created_at) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (creator, name) DO NOTHING",
                project.id,
                project.name,
                project.creator,
                project.created_at,
            )
            if status.endswith(" 0"):
                return False
            if owner is not None:
                await conn.execute(
                    "INSERT INTO project_members (project_id, member_id, member_kind, role, "
                    "added_by) VALUES ($1, $2, 'user', $3, $2)",
                    project.id,
                    owner,
                    Role.OWNER.value,
                )
        return True

    async def project(self, project_id: str) -> Project | None:
        row = await self.pool.fetchrow("SELECT * FROM projects WHERE id = $1", project_id)
        return Project.model_validate(dict(row)) if row else None

    async def projects(self, name: str | None = None) -> list[Project]:
        rows = await self.pool.fetch(
            "SELECT * FROM projects WHERE $1::text IS NULL OR name = $1 ORDER BY created_at",
            name,
        )
        return [Project.model_validate(dict(r)) for r in rows]

    # codebases and packages ------------------------------------------------------------
    async def create_package(self, package: Package, codebase_id: str, data: bytes) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await _store_codebase(conn, codebase_id, data)
            await conn.execute(
                "INSERT INTO packages (id, project_id, name, version, body, codebase_id, "
                "created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                package.id,
                package.project_id,
                package.name,
                package.version,
                package.to_wire(),
                codebase_id,
                package.created_at,
            )
            await _store_revision(conn, package, codebase_id)

    async def update_package(
        self, package: Package, previous_version: str, codebase_id: str, data: bytes
    ) -> bool:
        """Store a new revision if nobody else updated the package since `previous_version`."""
        async with self.pool.acquire() as conn, conn.transaction():
            await _store_codebase(conn, codebase_id, data)
            status = await conn.execute(
                "UPDATE packages SET version = $3, body = $4, codebase_id = $5, updated_at = $6 "
                "WHERE id = $1 AND version = $2",
                package.id,
                previous_version,
                package.version,
                package.to_wire(),
                codebase_id,
                package.updated_at,
            )
            if status.endswith(" 0"):
                return False
            await _store_revision(conn, package, codebase_id)
            return True

    async def package(self, package_id: str, version: str | None = None) -> Package | None:
        """The package as it is now, or at `version`."""
        if version is None:
            body = await self.pool.fetchval("SELECT body FROM packages WHERE id = $1", package_id)
        else:
            body = await self.pool.fetchval(
                "SELECT body FROM package_revisions WHERE package_id = $1 AND version = $2",
                package_id,
                version,
            )
        return Package.model_validate(body) if body else None

    async def package_revision(self, package_id: str, version: str) -> Package | None:
        """`package(package_id, version)`, cached (a revision is immutable)."""
        key = (package_id, version)
        found = self._revisions.get(key)
        if found is None:
            found = await self.package(package_id, version)
            if found is not None:
                if len(self._revisions) >= REVISION_CACHE:
                    del self._revisions[next(iter(self._revisions))]
                self._revisions[key] = found
        return found

    async def package_revisions(self, package_id: str) -> list[Package]:
        rows = await self.pool.fetch(
            "SELECT body FROM package_revisions WHERE package_id = $1 ORDER BY created_at",
            package_id,
        )
        return [Package.model_validate(r["body"]) for r in rows]

    async def packages(self, projects: Sequence[str] | None, name: str | None) -> list[Package]:
        """The packages of `projects` (None: every project), of one name if given."""
        rows = await self.pool.fetch(
            "SELECT body FROM packages WHERE ($1::text[] IS NULL OR project_id = ANY($1)) "
            "AND ($2::text IS NULL OR name = $2) ORDER BY created_at",
            projects,
            name,
        )
        return [Package.model_validate(r["body"]) for r in rows]

    async def codebase(self, package_id: str, version: str) -> bytes | None:
        data: bytes | None = await self.pool.fetchval(
            "SELECT c.data FROM package_revisions r JOIN codebases c ON c.id = r.codebase_id "
            "WHERE r.package_id = $1 AND r.version = $2",
            package_id,
            version,
        )
        return data


async def _store_codebase(conn: asyncpg.Connection, codebase_id: str, data: bytes) -> None:
    """Codebases are content-addressed: an identical archive is stored once."""
    await conn.execute(
        "INSERT INTO codebases (id, size, data) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
        codebase_id,
        len(data),
        data,
    )


async def _store_revision(conn: asyncpg.Connection, package: Package, codebase_id: str) -> None:
    await conn.execute(
        "INSERT INTO package_revisions (package_id, version, body, codebase_id, created_at) "
        "VALUES ($1, $2, $3, $4, $5)",
        package.id,
        package.version,
        package.to_wire(),
        codebase_id,
        package.updated_at or package.created_at,
    )
