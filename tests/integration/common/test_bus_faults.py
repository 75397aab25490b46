"""The bus adapter against a broker that goes silent or blocks publishers, on a throw-away node
(support/rabbit_node.py): a publish ends in a BusError however its connection dies, never in
an exception that ends the caller's loop, and `probe` tells whether publishes get through."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from support.rabbit_node import RabbitNode, rabbit_node

from spool_common.bus.amqp import Bus, BusError
from spool_common.bus.topology import Topology
from spool_common.messages import ExecutionRequested

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

HEARTBEAT = 1  # aiormq finds a silent connection stuck after (1 + 1) x 3 = 6 s
STUCK = (HEARTBEAT + 1) * 3


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def node() -> AsyncIterator[RabbitNode]:
    async with rabbit_node() as n:
        yield n


@pytest_asyncio.fixture(loop_scope="module")
async def bus(node: RabbitNode, namespace: str) -> AsyncIterator[Bus]:
    b = Bus(node.url(HEARTBEAT), Topology(namespace), name=f"test-{namespace}", publish_timeout=2)
    await b.connect()
    await b.declare_queue(b.topology.service_queue("s1"))
    yield b
    await b.close()


def _request() -> ExecutionRequested:
    return ExecutionRequested(
        execution_id="e1",
        service_id="s1",
        project_id="p",
        function_name="run",
        created_at=datetime.now(UTC),
    )


async def _publish_until(bus: Bus, stop: asyncio.Event, seen: Counter[str]) -> None:
    """Publish in a loop, as the outbox relay does, counting what each publish ended in."""
    while not stop.is_set():
        try:
            await bus.publish(bus.topology.executions, "s1", _request())
            seen["confirmed"] += 1
        except BusError:
            seen["bus error"] += 1
        await asyncio.sleep(0.05)


@pytest.mark.timeout(90)
async def test_publishers_outlive_a_connection_found_stuck(bus: Bus, node: RabbitNode) -> None:
    """Publishes pending when aiormq gives up on a frozen broker fail as BusErrors; every
    publishing loop is still running afterwards, and publishes are confirmed again once the
    broker thaws and the bus has reconnected."""
    seen: Counter[str] = Counter()
    stop = asyncio.Event()
    loops = [asyncio.create_task(_publish_until(bus, stop, seen)) for _ in range(5)]
    node.pause()
    try:
        await asyncio.sleep(STUCK + 2)
    finally:
        node.resume()
    assert not [t for t in loops if t.done()], [t.exception() for t in loops if t.done()]
    confirmed = seen["confirmed"]
    for _ in range(300):
        if seen["confirmed"] > confirmed:
            break
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.gather(*loops)
    assert seen["bus error"] > 0
    assert seen["confirmed"] > confirmed, seen


@pytest.mark.timeout(60)
async def test_the_probe_fails_while_the_broker_blocks_publishers(
    bus: Bus, node: RabbitNode
) -> None:
    """RabbitMQ lets a connection's first publish under the alarm through, then reads from
    it no more: from the second probe on, every probe fails until the alarm clears."""
    await bus.probe(timeout=5)
    await node.set_memory_watermark(0)
    try:
        with contextlib.suppress(BusError):
            await bus.probe(timeout=1)
        with pytest.raises(BusError):
            await bus.probe(timeout=1)
    finally:
        await node.set_memory_watermark(0.4)
    for _ in range(50):  # the publish blocked above is confirmed first
        with contextlib.suppress(BusError):
            await bus.probe(timeout=1)
            return
    raise AssertionError("the probe never passed again after the alarm cleared")
