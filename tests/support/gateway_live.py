"""A whole gateway in process on the real servers: its consumers (app.py's own wiring), its
outbox relay and its HTTP API (through httpx's ASGI transport, without uvicorn).

    async with live_gateway(pool, bus) as live:
        project_id, package_id = await live.package()
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from spool_common.bus.amqp import Bus, Delivery
from spool_common.bus.dispositions import Disposition
from spool_common.messages import ServiceChanged
from spool_common.models import Package, PackageModule, Project
from spool_gateway.api import API_PREFIX, create_app
from spool_gateway.app import consume
from spool_gateway.catalog import Catalog
from spool_gateway.core import Gateway, hash_token, new_id
from spool_gateway.deployments_store import ServiceStore
from spool_gateway.handlers import Handlers
from spool_gateway.ledger import Ledger
from spool_gateway.outbox import OutboxRelay
from spool_gateway.settings import GatewaySettings
from spool_gateway.waiters import Waiters

TOKEN = "spu_gateway_live_test"


@dataclass
class Live:
    gw: Gateway
    api: httpx.AsyncClient
    changes: list[ServiceChanged] = field(default_factory=list)  # off the scheduler inbox
    queues: list[str] = field(default_factory=list)  # service queues to delete afterwards

    async def package(self, modules: list[PackageModule] | None = None) -> tuple[str, str]:
        """A new project, and a package in it with `modules` (default: `default_module` with
        its `run`, which takes no input)."""
        project_id, package_id = new_id(), new_id()
        now = datetime.now(UTC)
        catalog = self.gw.catalog
        await catalog.create_project(Project(id=project_id, name=project_id, created_at=now))
        package = Package(
            id=package_id,
            name="pkg",
            project_id=project_id,
            modules=modules or [PackageModule()],
            created_at=now,
        )
        await catalog.create_package(package, f"sha-{package_id}", b"zip")
        return project_id, package_id

    async def deploy(self, project_id: str, package_id: str, name: str = "svc") -> str:
        body = {"name": name, "projectId": project_id, "packageId": package_id}
        response = await self.api.post("/services", json=body)
        assert response.status_code == 201, response.text
        service_id = str(response.json()["id"])
        self.queues.append(self.gw.bus.topology.service_queue(service_id).name)
        return service_id

    async def service(self, service_id: str) -> dict[str, Any]:
        response = await self.api.get(f"/services/{service_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def changes_of(self, service_id: str, count: int) -> list[ServiceChanged]:
        """The service's service.* events, once there are at least `count`."""

        def mine() -> list[ServiceChanged]:
            return [c for c in self.changes if c.service.id == service_id]

        async def enough() -> bool:
            return len(mine()) >= count

        await until(enough)
        return mine()


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll `check` every 50 ms until it holds; fail after `timeout` seconds."""
    for _ in range(int(timeout / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"{check.__qualname__} did not hold within {timeout} s")


@contextlib.asynccontextmanager
async def live_gateway(
    pool: asyncpg.Pool, bus: Bus, settings: GatewaySettings | None = None
) -> AsyncIterator[Live]:
    """The gateway, consuming its queues; service.* events are collected off the scheduler's
    inbox into `Live.changes`. Service queues it declared are listed in `Live.queues`.
    `settings` default to GatewaySettings()."""
    settings = settings or GatewaySettings()
    relay = OutboxRelay(pool, bus, sweep_interval=0.5)
    gw = Gateway(settings, bus, Catalog(pool), ServiceStore(pool), Ledger(pool), relay, Waiters())
    await gw.catalog.ensure_token(hash_token(TOKEN), "admin", "admin")
    api = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(gw)),
        base_url=f"http://gateway{API_PREFIX}",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    harness = Live(gw, api)

    async def collect(delivery: Delivery) -> None:
        if isinstance(delivery.message, ServiceChanged):
            harness.changes.append(delivery.message)
        await delivery.settle(Disposition.ACK)

    stop = asyncio.Event()
    relaying = asyncio.create_task(relay.run(stop))
    await consume(bus, Handlers(gw), settings)  # the gateway's own wiring, app.py
    await bus.consume(bus.topology.scheduler_inbox.name, collect, prefetch=50)
    try:
        yield harness
    finally:
        stop.set()
        await relaying
        await api.aclose()
