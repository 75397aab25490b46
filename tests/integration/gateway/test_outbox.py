"""The outbox relay on the real servers: rows are published and deleted only after a confirm;
rows a crashed gateway left behind are swept; a vanished service queue is declared again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
from support.broker import queue_counts
from support.pg_cluster import pg_cluster
from support.stores import migrated_pool

import spool_gateway
from spool_common.bus.amqp import Bus
from spool_common.store.pg import TRANSIENT_ERRORS
from spool_gateway.outbox import OutboxRelay, OutboxRow, insert_outbox

pytestmark = pytest.mark.integration

MIGRATIONS = Path(spool_gateway.__file__).parent / "migrations"


async def _commit(pool: asyncpg.Pool, rows: list[OutboxRow]) -> list[int]:
    async with pool.acquire() as conn, conn.transaction():
        return await insert_outbox(conn, rows)


async def test_rows_left_by_a_crash_are_swept_and_deleted_after_the_confirm(
    pool: asyncpg.Pool, bus: Bus, amqp_url: str
) -> None:
    queue = bus.topology.service_queue("svc")
    await bus.declare_queue(queue)
    # Committed, never handed to a relay: the gateway died between commit and publish.
    await _commit(pool, [OutboxRow(bus.topology.executions, "svc", b"m%d" % i) for i in range(5)])
    relay = OutboxRelay(pool, bus, sweep_age=0.0)
    assert await relay.sweep() == 5
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0
    assert (await queue_counts(amqp_url, queue.name))[0] == 5
    assert await relay.sweep() == 0  # nothing is published twice by the sweep


async def test_a_failed_publish_keeps_the_row_for_the_next_sweep(
    pool: asyncpg.Pool, bus: Bus
) -> None:
    # No queue is bound to this routing key on the events exchange: the publish is unroutable.
    await _commit(pool, [OutboxRow(bus.topology.events, "nobody.listens", b"x")])
    relay = OutboxRelay(pool, bus, sweep_age=0.0)
    assert await relay.sweep() == 0
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 1


async def test_the_fast_path_publishes_and_redeclares_a_vanished_service_queue(
    pool: asyncpg.Pool, bus: Bus, amqp_url: str
) -> None:
    rows = [OutboxRow(bus.topology.executions, "svc", b"fast")]
    ids = await _commit(pool, rows)
    relay = OutboxRelay(pool, bus, sweep_interval=60)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    relay.hand_over(rows, ids)  # the service queue does not exist yet
    for _ in range(100):
        if await pool.fetchval("SELECT count(*) FROM outbox") == 0:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await task
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0
    assert (await queue_counts(amqp_url, bus.topology.service_queue("svc").name))[0] == 1


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 20) -> None:
    for _ in range(int(timeout / 0.1)):
        with contextlib.suppress(*TRANSIENT_ERRORS):
            if await check():
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


@pytest.mark.timeout(90)
async def test_the_relay_outlives_postgresql_going_away_after_a_publish(
    bus: Bus, amqp_url: str
) -> None:
    """T17/T18 found it: the delete after a confirm failed while PostgreSQL was down and the
    error ended the relay for good (nothing was published again). Now the row stays, and
    the sweep publishes it once the database is back; the relay keeps going."""
    queue = bus.topology.service_queue("svc")
    await bus.declare_queue(queue)
    async with pg_cluster() as cluster:
        pool = await migrated_pool(cluster.url, "gateway_outbox", MIGRATIONS)
        try:
            rows = [OutboxRow(bus.topology.executions, "svc", b"while-down")]
            ids = await _commit(pool, rows)
            relay = OutboxRelay(pool, bus, sweep_interval=0.2, sweep_age=0.0)
            stop = asyncio.Event()
            task = asyncio.create_task(relay.run(stop))
            await cluster.stop("immediate")
            relay.hand_over(rows, ids)  # published and confirmed; the delete cannot reach PG

            async def published(count: int) -> bool:
                return (await queue_counts(amqp_url, queue.name))[0] >= count

            await _until(lambda: published(1), "the fast path to publish")
            await asyncio.sleep(0.5)
            assert not task.done(), task
            await cluster.start()
            await _until(lambda: published(2), "the sweep to publish the row again")

            async def emptied() -> bool:
                return bool(await pool.fetchval("SELECT count(*) FROM outbox") == 0)

            await _until(emptied, "the row to be deleted")
            stop.set()
            await task
        finally:
            await pool.close()
