"""`python -m spool_<service> migrate`, as the Kubernetes migration Job runs it: applies the
service's migrations to its schema and exits 0, again with nothing to do, and exits 1 with a
logged reason when it cannot."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from spool_common.store.pg import drop_schema, migration_files

pytestmark = pytest.mark.integration

MODULES = ["spool_gateway", "spool_scheduler", "spool_autoscaler", "spool_trigger_engine"]


def _migrate(module: str, database_url: str, schema: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SPOOL_DATABASE_URL": database_url,
        "SPOOL_DB_SCHEMA": schema,
        "SPOOL_LOG_FORMAT": "json",
        "SPOOL_LOG_LEVEL": "info",
    }
    command = [sys.executable, "-m", module, "migrate"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def _events(stderr: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


async def _applied(database_url: str, schema: str) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        # The schema name is this test's own, not input.
        rows = await conn.fetch(f"SELECT name FROM {schema}.schema_migrations ORDER BY name")  # noqa: S608
    finally:
        await conn.close()
    return [row["name"] for row in rows]


@pytest.mark.parametrize("module", MODULES)
async def test_migrate_applies_the_services_migrations_to_its_schema_and_exits_0(
    module: str, database_url: str, namespace: str
) -> None:
    directory: Path = importlib.import_module(f"{module}.app").MIGRATIONS
    expected = [path.name for path in migration_files(directory)]
    assert expected  # every service has at least its initial migration
    schema = f"mig_{namespace}"
    try:
        first = await asyncio.to_thread(_migrate, module, database_url, schema)
        assert first.returncode == 0, first.stderr
        assert await _applied(database_url, schema) == expected
        (done,) = [e for e in _events(first.stderr) if e["event"] == "migrations_done"]
        assert done["schema"] == schema
        assert done["applied"] == expected

        again = await asyncio.to_thread(_migrate, module, database_url, schema)
        assert again.returncode == 0, again.stderr
        (done,) = [e for e in _events(again.stderr) if e["event"] == "migrations_done"]
        assert done["applied"] == []  # a rerun of the Job changes nothing
    finally:
        await drop_schema(database_url, schema)


async def test_migrate_exits_1_and_says_why_when_it_cannot_migrate(database_url: str) -> None:
    # A schema name that is no identifier: refused before anything is written. (An unreachable
    # server ends the same way, after the 30 s ensure_database waits for it to come up.)
    done = await asyncio.to_thread(_migrate, "spool_gateway", database_url, "no such; schema")
    assert done.returncode == 1
    (failed,) = [e for e in _events(done.stderr) if e["event"] == "migrations_failed"]
    assert failed["schema"] == "no such; schema"
    assert "no such; schema" in str(failed["exception"])
    # Logged as a JSON line like every other event, not a bare traceback on stderr.
    assert all(line.startswith("{") for line in done.stderr.splitlines() if line)
