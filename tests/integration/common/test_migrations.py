"""Plain SQL migrations into a schema of one's own: applied once, in order, safely in parallel."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from spool_common.store.pg import drop_schema, ensure_database, migrate

pytestmark = pytest.mark.integration


async def test_migrations_apply_once_in_order_even_when_started_together(
    database_url: str, namespace: str, tmp_path: Path
) -> None:
    (tmp_path / "001_first.sql").write_text("CREATE TABLE a (id int);")
    (tmp_path / "002_second.sql").write_text("ALTER TABLE a ADD COLUMN name text;")
    (tmp_path / "notes.sql").write_text("this is not a migration;")  # no NNN_ prefix: ignored
    schema = f"mig_{namespace}"
    try:
        results = await asyncio.gather(*(migrate(database_url, schema, tmp_path) for _ in range(4)))
        assert sorted(map(tuple, results)) == [(), (), (), ("001_first.sql", "002_second.sql")]
        (tmp_path / "003_third.sql").write_text("ALTER TABLE a ADD COLUMN extra int;")
        assert await migrate(database_url, schema, tmp_path) == ["003_third.sql"]
        conn = await asyncpg.connect(database_url)
        try:
            columns = await conn.fetch(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = $1 AND table_name = 'a' ORDER BY ordinal_position",
                schema,
            )
        finally:
            await conn.close()
        assert [c["column_name"] for c in columns] == ["id", "name", "extra"]
    finally:
        await drop_schema(database_url, schema)


async def test_a_failing_migration_leaves_nothing_half_applied(
    database_url: str, namespace: str, tmp_path: Path
) -> None:
    (tmp_path / "001_ok.sql").write_text("CREATE TABLE b (id int);")
    (tmp_path / "002_bad.sql").write_text("CREATE TABLE c (id int); SELECT no_such_column FROM b;")
    schema = f"mig_{namespace}"
    try:
        with pytest.raises(asyncpg.UndefinedColumnError):
            await migrate(database_url, schema, tmp_path)
        conn = await asyncpg.connect(database_url)
        try:
            tables = await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
            )
            # The schema name is this test's own, not input.
            applied = await conn.fetch(f"SELECT name FROM {schema}.schema_migrations")  # noqa: S608
        finally:
            await conn.close()
        assert sorted(t["table_name"] for t in tables) == ["b", "schema_migrations"]
        assert [a["name"] for a in applied] == ["001_ok.sql"]
    finally:
        await drop_schema(database_url, schema)


async def test_services_starting_together_create_a_missing_database_once(
    database_url: str, namespace: str
) -> None:
    """Four services starting on a fresh server race to create the database; PostgreSQL answers
    the losers with "already exists" or a unique violation on pg_database. None may fail."""
    name = f"spool_race_{namespace}"
    dsn = database_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        for _ in range(3):
            await asyncio.gather(*(ensure_database(dsn) for _ in range(8)))
            conn = await asyncpg.connect(dsn)
            await conn.close()
            await _drop_database(database_url, name)
    finally:
        await _drop_database(database_url, name)


async def _drop_database(database_url: str, name: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
