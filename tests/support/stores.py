"""Fixtures' helpers: a migrated schema of this test's own."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import asyncpg

from spool_common.models import OnResetAction, Package, Project, Service
from spool_common.store.pg import create_pool, drop_schema, migrate
from spool_gateway.catalog import Catalog
from spool_gateway.deployments_store import ServiceStore
from spool_gateway.outbox import OutboxRow


async def migrated_pool(dsn: str, schema: str, migrations: Path) -> asyncpg.Pool:
    await migrate(dsn, schema, migrations)
    return await create_pool(dsn, schema, name="test")


async def drop(dsn: str, pool: asyncpg.Pool, schema: str) -> None:
    await pool.close()
    await drop_schema(dsn, schema)


async def seed_service(
    pool: asyncpg.Pool, on_reset: OnResetAction, max_attempts: int, at: datetime
) -> Service:
    """Project p1, package k1 and service s1 in a gateway schema, for ledger tests."""
    catalog = Catalog(pool)
    await catalog.create_project(Project(id="p1", name="p", created_at=at))
    package = Package(id="k1", name="pkg", project_id="p1", created_at=at)
    await catalog.create_package(package, "sha", b"zip")
    service = Service(
        id="s1",
        name="svc",
        project_id="p1",
        package_id="k1",
        package_revision="1.0.0",
        on_reset=on_reset,
        max_attempts=max_attempts,
        created_at=at,
    )
    await ServiceStore(pool).create(service, OutboxRow("x", "service.created", b"{}"))
    return service
