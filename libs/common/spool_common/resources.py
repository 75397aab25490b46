"""What every service opens at start: its migrated schema's pool and a connected bus."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from spool_common.bus.amqp import Bus
from spool_common.bus.topology import Topology
from spool_common.settings import CommonSettings
from spool_common.store.pg import create_pool, migrate


@dataclass(frozen=True)
class Resources:
    pool: asyncpg.Pool
    bus: Bus


@asynccontextmanager
async def service_resources(
    settings: CommonSettings, *, name: str, schema: str, migrations: Path, pool_size: int = 10
) -> AsyncIterator[Resources]:
    """Migrate the service's schema, open its pool and its bus; close both on the way out."""
    await migrate(settings.database_url, schema, migrations)
    pool = await create_pool(settings.database_url, schema, name=name, max_size=pool_size)
    bus = Bus(
        settings.amqp_url,
        Topology(settings.bus_namespace),
        name=name,
        publish_timeout=settings.publish_timeout,
    )
    try:
        await bus.connect()
        yield Resources(pool, bus)
    finally:
        await bus.close()
        await pool.close()
