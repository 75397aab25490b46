"""Users, bots, project members and the tokens that name them (the gateway's tables)."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from spool_common.models_base import WireModel
from spool_gateway.identity import Role, leaves_no_owner


class LastOwner(Exception):
    """The change would leave `project_id` without an owner."""

    def __init__(self, project_id: str) -> None:
        super().__init__(project_id)
        self.project_id = project_id


class User(WireModel):
    id: str
    name: str
    created_at: datetime


class Bot(WireModel):
    id: str
    project_id: str
    name: str
    created_by: str | None
    created_at: datetime


class Member(WireModel):
    project_id: str
    member_id: str
    member_kind: str  # user | bot
    role: Role
    added_at: datetime


class TokenInfo(WireModel):
    """A token as its owner may see it: never the token itself, nor its hash."""

    id: str
    name: str | None
    kind: str
    subject: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class IdentityStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # users ---------------------------------------------------------------------------
    async def create_user(self, user_id: str, name: str, created_by: str) -> User | None:
        """None when the name is taken."""
        row = await self.pool.fetchrow(
            "INSERT INTO users (id, name, created_by) VALUES ($1, $2, $3) "
            "ON CONFLICT (name) DO NOTHING RETURNING id, name, created_at",
            user_id,
            name,
            created_by,
        )
        return User(**dict(row)) if row else None

    async def user(self, user_id: str) -> User | None:
        row = await self.pool.fetchrow(
            "SELECT id, name, created_at FROM users WHERE id = $1", user_id
        )
        return User(**dict(row)) if row else None

    async def users(self) -> list[User]:
        rows = await self.pool.fetch("SELECT id, name, created_at FROM users ORDER BY created_at")
        return [User(**dict(r)) for r in rows]

    # tokens --------------------------------------------------------------------------
    async def add_token(
        self,
        token_id: str,
        token_hash: bytes,
        kind: str,
        subject: str,
        name: str | None,
        ttl: float | None,
    ) -> TokenInfo:
        row = await self.pool.fetchrow(
            "INSERT INTO tokens (id, token_hash, kind, subject, name, expires_at) "
            "VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6)) "
            "RETURNING id, name, kind, subject, created_at, expires_at, revoked_at",
            token_id,
            token_hash,
            kind,
            subject,
            name,
            ttl,
        )
        assert row is not None
        return TokenInfo(**dict(row))

    async def drop_expired(self, subject: str, name: str) -> None:
        """Forget `subject`'s expired tokens named `name` (replicas' tokens pile up otherwise)."""
        await self.pool.execute(
            "DELETE FROM tokens WHERE subject = $1 AND name = $2 AND expires_at < now()",
            subject,
            name,
        )

    async def tokens(self, subject: str) -> list[TokenInfo]:
        """A user's or bot's tokens, newest first; never the token or its hash."""
        rows = await self.pool.fetch(
            "SELECT id, name, kind, subject, created_at, expires_at, revoked_at FROM tokens "
            "WHERE subject = $1 AND id IS NOT NULL "
            "ORDER BY created_at DESC",
            subject,
        )
        return [TokenInfo(**dict(r)) for r in rows]

    async def revoke_token(self, subject: str, token_id: str) -> bytes | None:
        """Revoke one of `subject`'s tokens; its hash (to forget cached look-ups), or None
        if it has no such token."""
        row = await self.pool.fetchrow(
            "UPDATE tokens SET revoked_at = coalesce(revoked_at, now()) "
            "WHERE subject = $1 AND id = $2 RETURNING token_hash",
            subject,
            token_id,
        )
        return bytes(row["token_hash"]) if row else None

    async def revoke_all(self, conn: asyncpg.Connection, subject: str) -> list[bytes]:
        rows = await conn.fetch(
            "UPDATE tokens SET revoked_at = now() WHERE subject = $1 AND revoked_at IS NULL "
            "RETURNING token_hash",
            subject,
        )
        return [bytes(r["token_hash"]) for r in rows]

    # members -------------------------------------------------------------------------
    async def role(self, project_id: str, member_id: str) -> Role | None:
        value = await self.pool.fetchval(
            "SELECT role FROM project_members WHERE project_id = $1 AND member_id = $2",
            project_id,
            member_id,
        )
        return Role(value) if value else None

    async def member_kind(self, member_id: str) -> str | None:
        """'user' or 'bot' for an existing user or bot, else None."""
        value = await self.pool.fetchval(
            "SELECT 'user' FROM users WHERE id = $1 UNION ALL SELECT 'bot' FROM bots WHERE id = $1",
            member_id,
        )
        return str(value) if value else None

    async def roles_of(self, member_id: str) -> dict[str, Role]:
        """The member's role in each project it belongs to."""
        rows = await self.pool.fetch(
            "SELECT project_id, role FROM project_members WHERE member_id = $1", member_id
        )
        return {r["project_id"]: Role(r["role"]) for r in rows}

    async def projects_of(self, member_id: str) -> set[str]:
        rows = await self.pool.fetch(
            "SELECT project_id FROM project_members WHERE member_id = $1", member_id
        )
        return {r["project_id"] for r in rows}

    async def set_member(
        self, project_id: str, member_id: str, kind: str, role: Role, added_by: str
    ) -> Member:
        row = await self.pool.fetchrow(
            "INSERT INTO project_members (project_id, member_id, member_kind, role, added_by) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (project_id, member_id) "
            "DO UPDATE SET role = EXCLUDED.role "
            "RETURNING project_id, member_id, member_kind, role, added_at",
            project_id,
            member_id,
            kind,
            role.value,
            added_by,
        )
        assert row is not None
        return _member(row)

    async def members(self, project_id: str) -> list[Member]:
        rows = await self.pool.fetch(
            "SELECT project_id, member_id, member_kind, role, added_at FROM project_members "
            "WHERE project_id = $1 "
            "ORDER BY added_at",
            project_id,
        )
        return [_member(r) for r in rows]

    async def owners(self, project_id: str) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT member_id FROM project_members WHERE project_id = $1 AND role = 'owner'",
            project_id,
        )
        return [r["member_id"] for r in rows]

    async def remove_member(self, project_id: str, member_id: str) -> bool | None:
        """True when removed, False when not a member, None when it is the last owner (the
        owners are locked while deciding, so two removals cannot both pass)."""
        async with self.pool.acquire() as conn, conn.transaction():
            owners = await conn.fetch(
                "SELECT member_id FROM project_members WHERE project_id = $1 AND role = 'owner' "
                "FOR UPDATE",
                project_id,
            )
            if leaves_no_owner([r["member_id"] for r in owners], member_id, None):
                return None
            status = await conn.execute(
                "DELETE FROM project_members WHERE project_id = $1 AND member_id = $2",
                project_id,
                member_id,
            )
        return bool(status.endswith(" 1"))

    # bots ----------------------------------------------------------------------------
    async def create_bot(self, bot: Bot, role: Role) -> bool:
        """Store the bot and make it a member of its project; False when the name is taken."""
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                "INSERT INTO bots (id, project_id, name, created_by, created_at) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (project_id, name) DO NOTHING",
                bot.id,
                bot.project_id,
                bot.name,
                bot.created_by,
                bot.created_at,
            )
            if status.endswith(" 0"):
                return False
            await conn.execute(
                "INSERT INTO project_members (project_id, member_id, member_kind, role, "
                "added_by) VALUES ($1, $2, 'bot', $3, $4)",
                bot.project_id,
                bot.id,
                role.value,
                bot.created_by,
            )
        return True

    async def bot(self, bot_id: str) -> Bot | None:
        row = await self.pool.fetchrow(
            "SELECT id, project_id, name, created_by, created_at FROM bots WHERE id = $1", bot_id
        )
        return Bot(**dict(row)) if row else None

    async def bots(self, project_id: str) -> list[Bot]:
        rows = await self.pool.fetch(
            "SELECT id, project_id, name, created_by, created_at FROM bots "
            "WHERE project_id = $1 ORDER BY created_at",
            project_id,
        )
        return [Bot(**dict(r)) for r in rows]

    async def delete_bot(self, bot_id: str) -> list[bytes]:
        """Remove the bot, its memberships everywhere and its tokens; the revoked tokens'
        hashes (to forget cached look-ups). LastOwner if that would leave a project it owns
        without an owner (the owners are locked while deciding)."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT project_id, member_id FROM project_members "
                "WHERE role = 'owner' AND project_id IN (SELECT project_id FROM project_members "
                "WHERE member_id = $1 AND role = 'owner') FOR UPDATE",
                bot_id,
            )
            owners: dict[str, list[str]] = {}
            for row in rows:
                owners.setdefault(row["project_id"], []).append(row["member_id"])
            for project_id, members in owners.items():
                if leaves_no_owner(members, bot_id, None):
                    raise LastOwner(project_id)
            await conn.execute("DELETE FROM project_members WHERE member_id = $1", bot_id)
            await conn.execute("DELETE FROM bots WHERE id = $1", bot_id)
            return await self.revoke_all(conn, bot_id)


def _member(row: asyncpg.Record) -> Member:
    values = dict(row)
    values["role"] = Role(values["role"])
    return Member(**values)
