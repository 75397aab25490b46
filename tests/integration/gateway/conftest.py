"""A migrated gateway schema of the test's own, dropped afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from support.stores import drop, migrated_pool

import spool_gateway

MIGRATIONS = Path(spool_gateway.__file__).parent / "migrations"


@pytest.fixture
async def pool(database_url: str, namespace: str) -> AsyncIterator[asyncpg.Pool]:
    schema = f"gateway_{namespace}"
    pool = await migrated_pool(database_url, schema, MIGRATIONS)
    yield pool
    await drop(database_url, pool, schema)
