"""PostgreSQL plumbing shared by the services' stores: pools, JSON codecs, plain SQL migrations.

Each service owns one schema and reaches its tables through `search_path`, so the same SQL
runs against `gateway` in production and `gateway_t1a2b3` in a test.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson

from spool_common.logging import get_logger

log = get_logger(__name__)

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class StoreUnavailable(Exception):
    """PostgreSQL cannot be reached or failed for now (transient)."""


def check_identifier(name: str) -> str:
    if not _IDENT.fullmatch(name):
        raise ValueError(f"not a safe PostgreSQL identifier: {name!r}")
    return name


async def _init_connection(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(
            kind,
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


class PooledConnection(asyncpg.Connection):  # type: ignore[misc]
    """A pool connection released without asyncpg's reset query (`pg_advisory_unlock_all();
    CLOSE ALL; UNLISTEN *; RESET ALL`), a round trip on every release that cost the gateway a
    quarter of its CPU under load. The stores keep no session state on pooled connections: no
    LISTEN, no advisory locks, no cursors or SET outside a transaction (migrations, which take
    an advisory lock, use a connection of their own). An open transaction is still rolled
    back on release by asyncpg itself."""

    def get_reset_query(self) -> str:
        return ""


async def create_pool(
    dsn: str, schema: str, *, name: str, min_size: int = 1, max_size: int = 10
) -> asyncpg.Pool:
    """A pool whose connections see `schema` first, with JSON columns as Python values."""
    check_identifier(schema)
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            connection_class=PooledConnection,
            server_settings={"search_path": schema, "application_name": f"spool-{name}"},
        )
    except (OSError, asyncpg.PostgresError) as e:
        raise StoreUnavailable(f"cannot connect to PostgreSQL: {e}") from e
    assert pool is not None
    return pool


def _admin_dsn(dsn: str) -> tuple[str, str]:
    parts = urlsplit(dsn)
    database = parts.path.lstrip("/") or "postgres"
    return urlunsplit(parts._replace(path="/postgres")), database


async def ensure_database(dsn: str, *, attempts: int = 30, interval: float = 1.0) -> None:
    """Create the database named in `dsn` if missing; wait for the server to accept."""
    admin, database = _admin_dsn(dsn)
    for attempt in range(1, attempts + 1):
        try:
            conn = await asyncpg.connect(admin)
            break
        except (OSError, asyncpg.PostgresError) as e:
            if attempt == attempts:
                raise StoreUnavailable(f"cannot connect to PostgreSQL at {admin}: {e}") from e
            await asyncio.sleep(interval)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            # Another service may create it at the same moment: PostgreSQL then answers
            # either "already exists" or, mid-race, a unique violation on pg_database.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                await conn.execute(f'CREATE DATABASE "{check_identifier(database)}"')
    finally:
        await conn.close()


def migration_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.sql") if re.match(r"^\d{3}_", p.name))


async def migrate(dsn: str, schema: str, directory: Path) -> list[str]:
    """Apply the not-yet-applied `NNN_name.sql` files of `directory` to `schema`, in order,
    each in its own transaction, under an advisory lock so concurrent starts are safe."""
    check_identifier(schema)
    await ensure_database(dsn)
    conn = await asyncpg.connect(dsn)
    applied: list[str] = []
    lock_key = int.from_bytes(hashlib.sha256(schema.encode()).digest()[:8], "big", signed=True)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", lock_key)
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(f"SET search_path TO {schema}")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        for path in migration_files(directory):
            if path.name in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", path.name)
            applied.append(path.name)
            log.info("migration_applied", schema=schema, migration=path.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", lock_key)
        await conn.close()
    return applied


async def drop_schema(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {check_identifier(schema)} CASCADE")
    finally:
        await conn.close()


def record(row: asyncpg.Record | None) -> dict[str, Any] | None:
    return dict(row) if row is not None else None


# What a handler may treat as "PostgreSQL is unavailable for now": retry, do not dead-letter.
# A server shutting down (pg_ctl stop -m fast|immediate) or a backend terminated by an operator
# (pg_terminate_backend) fails the statement in flight with AdminShutdownError, a crashed
# sibling backend with CrashShutdownError: the next connection will work.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    # A pooled connection whose backend was terminated while idle holds the FATAL message
    # until its socket closes; a statement sent in between fails with "cannot switch to
    # state ..; another operation (2) is in progress" (MagicStack/asyncpg#1069), and the pool
    # replaces the closed connection on the next acquire.
    asyncpg.InternalClientError,
)
