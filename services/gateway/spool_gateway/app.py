"""Composition root of the gateway: migrate, connect, consume, serve HTTP, relay, reap."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from spool_common.bus.amqp import Bus, BusError
from spool_common.logging import get_logger
from spool_common.resources import service_resources
from spool_common.store.pg import TRANSIENT_ERRORS
from spool_gateway.api import create_app
from spool_gateway.catalog import Catalog
from spool_gateway.core import Gateway, hash_token
from spool_gateway.deployments_store import ServiceStore
from spool_gateway.handlers import Handlers
from spool_gateway.lease_watch import LeaseWatch, broker_quiet
from spool_gateway.ledger import Ledger
from spool_gateway.limits import H11_HEAD_BYTES
from spool_gateway.load_sampler import LoadSampler
from spool_gateway.outbox import OutboxRelay
from spool_gateway.settings import GatewaySettings
from spool_gateway.waiters import Waiters

log = get_logger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the entry point owns SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _reaper(gateway: Gateway, stop: asyncio.Event) -> None:
    """Settle attempts whose lease expired, but only lease time during which renewals could
    be recorded (lease_watch.py): each round first probes that RabbitMQ passes publishes on
    (its timeout keeps a silence seen within it plus one interval, before a lease renewed
    just before the silence runs out)."""
    loop = asyncio.get_running_loop()
    watch = LeaseWatch()
    probe_timeout = gateway.settings.lease_seconds / 3
    quiet = broker_quiet(gateway.bus.heartbeat, gateway.settings.lease_seconds)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), gateway.settings.reaper_interval)
        now = loop.time()
        try:
            await gateway.bus.probe(probe_timeout)
            await _reap_round(gateway, *watch.plan(now))
            watch = watch.succeeded(now)
        except BusError as e:
            watch = watch.failed(now, quiet)
            log.warning("reaper_paused", error=str(e))
        except Exception as e:  # the loop must outlive a failed round; the next one retries
            if isinstance(e, TRANSIENT_ERRORS):
                watch = watch.failed(now)
            log.warning("reaper_failed", error=str(e))


async def _reap_round(gateway: Gateway, extend: bool, reap: bool) -> None:
    if extend and (extended := await gateway.extend_leases()):
        log.info("leases_extended", executions=extended)
    if reap and (reaped := await gateway.reap()):
        log.info("leases_expired", executions=reaped)


async def consume(bus: Bus, handlers: Handlers, settings: GatewaySettings) -> None:
    """Every queue the gateway consumes, each through `handlers.settling`."""
    topology = bus.topology
    for queue, work, prefetch in (
        (topology.gateway_claims, handlers.claim, settings.claim_prefetch),
        (topology.gateway_reports, handlers.report, settings.report_prefetch),
        (topology.gateway_credentials, handlers.credential, 10),
        (topology.gateway_dead, handlers.dead, 10),
        (topology.gateway_replicas, handlers.replica, 50),
        (topology.gateway_notifications, handlers.notification, 10),
        (topology.gateway_fired, handlers.fired, 20),
        (topology.gateway_scaling, handlers.scaling, 20),
    ):
        await bus.consume(queue, handlers.settling(work), prefetch=prefetch)


async def _serve(gateway: Gateway, stop: asyncio.Event) -> None:
    """HTTP, the outbox relay, the reaper and the load sampler, until `stop` (or until
    uvicorn gives up)."""
    settings = gateway.settings
    config = uvicorn.Config(
        create_app(gateway),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="off",
        # Longer than clients keep idle connections (httpx: 5 s), so a client never reuses a
        # connection the server is closing at that moment (uvicorn's default is 5 s too).
        timeout_keep_alive=75,
        # A request head past this is refused by h11 itself (400); below it, limits.py
        # answers 431 for headers over `max_header_bytes`.
        h11_max_incomplete_event_size=max(H11_HEAD_BYTES, 2 * settings.max_header_bytes),
    )
    server = _Server(config)
    serving = asyncio.create_task(server.serve())
    tasks = [
        asyncio.create_task(gateway.relay.run(stop)),
        asyncio.create_task(_reaper(gateway, stop)),
        asyncio.create_task(LoadSampler(gateway).run(stop)),
    ]
    log.info("gateway_started", url=f"http://{settings.host}:{settings.port}")
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if serving.done() and not stop.is_set():  # uvicorn gave up, e.g. the port is taken
        log.error("http_server_exited", port=settings.port)
        stop.set()
    server.should_exit = True
    await asyncio.gather(serving, *tasks, return_exceptions=True)


async def main(stop: asyncio.Event, settings: GatewaySettings) -> None:
    async with service_resources(
        settings,
        name="gateway",
        schema=settings.db_schema,
        migrations=MIGRATIONS,
        pool_size=20,
        ops=False,  # served on the API port (api.py)
    ) as res:
        catalog = Catalog(res.pool)
        if settings.admin_token:
            await catalog.ensure_token(hash_token(settings.admin_token), "admin", "admin")
        relay = OutboxRelay(res.pool, res.bus, sweep_interval=settings.outbox_sweep_interval)
        gateway = Gateway(
            settings, res.bus, catalog, ServiceStore(res.pool), Ledger(res.pool), relay, Waiters()
        )
        await consume(res.bus, Handlers(gateway), settings)
        await _serve(gateway, stop)
    log.info("gateway_stopped")
