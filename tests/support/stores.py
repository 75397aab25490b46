"""Fixtures' helpers: a migrated schema of this test's own."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from spool_common.store.pg import create_pool, drop_schema, migrate


async def migrated_pool(dsn: str, schema: str, migrations: Path) -> asyncpg.Pool:
    await migrate(dsn, schema, migrations)
    return await create_pool(dsn, schema, name="test")


async def drop(dsn: str, pool: asyncpg.Pool, schema: str) -> None:
    await pool.close()
    await drop_schema(dsn, schema)
