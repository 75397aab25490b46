"""The outbox relay on the real servers: rows are published and deleted only after a confirm;
rows a crashed gateway left behind are swept; a vanished service queue is declared again."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from support.broker import queue_counts

from spool_common.bus.amqp import Bus
from spool_gateway.outbox import OutboxRelay, OutboxRow, insert_outbox

pytestmark = pytest.mark.integration


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
