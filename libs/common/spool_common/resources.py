"""What every service opens at start: its migrated schema's pool, a connected bus and its
ops endpoints (/livez, /readyz, /metrics)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from spool_common.bus.amqp import Bus
from spool_common.bus.topology import Topology
from spool_common.ops import ops_from_settings
from spool_common.settings import CommonSettings
from spool_common.store.pg import create_pool, migrate


@dataclass(frozen=True)
class Resources:
    pool: asyncpg.Pool
    bus: Bus
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # set once serving

    def is_ready(self) -> bool:
        return self.ready.is_set() and self.bus.is_connected


@asynccontextmanager
async def service_resources(
    settings: CommonSettings,
    *,
    name: str,
    schema: str,
    migrations: Path,
    pool_size: int = 10,
    ops: bool = True,
) -> AsyncIterator[Resources]:
    """Migrate the service's schema, open its pool and its bus; close both on the way out.
    With `ops`, serve /livez and /readyz (ready once the service sets `ready` and while its
    bus is connected) and /metrics; port 0 writes the port to `<state_dir>/<name>.ops.port`."""
    await migrate(settings.database_url, schema, migrations)
    pool = await create_pool(settings.database_url, schema, name=name, max_size=pool_size)
    bus = Bus(
        settings.amqp_url,
        Topology(settings.bus_namespace),
        name=name,
        publish_timeout=settings.publish_timeout,
    )
    resources = Resources(pool, bus)
    try:
        async with AsyncExitStack() as stack:
            if ops:
                port_file = settings.state_dir / f"{name}.ops.port"
                port_file.parent.mkdir(parents=True, exist_ok=True)
                await stack.enter_async_context(
                    ops_from_settings(
                        settings,
                        ready=resources.is_ready,
                        live=lambda: bus.consuming,
                        port_file=port_file,
                    )
                )
            await bus.connect()
            yield resources
    finally:
        await bus.close()
        await pool.close()
