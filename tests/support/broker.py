"""Test-side broker housekeeping (tests may use aio_pika directly; production code may not)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time

import aio_pika
import aiormq

from spool_common.bus.topology import Topology


async def consumers(amqp_url: str, queue: str) -> int:
    """How many consumers the queue has now (a passive declare)."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.consumer_count or 0
    finally:
        await connection.close()


async def await_consumers(amqp_url: str, queue: str, count: int, timeout: float = 60) -> float:
    """Seconds until the queue has at least `count` consumers (AssertionError past timeout)."""
    started = time.monotonic()
    while await consumers(amqp_url, queue) < count:
        assert time.monotonic() - started < timeout, f"{queue} never had {count} consumers"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def queues_with_prefix(prefix: str) -> list[str]:
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "name", "--no-table-headers"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [line.strip() for line in out.splitlines() if line.strip().startswith(prefix)]


async def delete_namespace(amqp_url: str, namespace: str, queues: list[str]) -> None:
    topology = Topology(namespace)
    await delete_queues(amqp_url, sorted({q.name for q in topology.static_queues()} | set(queues)))
    connection = await aio_pika.connect(amqp_url)
    try:
        for exchange in topology.exchanges():
            channel = await connection.channel()
            with contextlib.suppress(aiormq.exceptions.AMQPError):
                await channel.exchange_delete(exchange.name)
    finally:
        await connection.close()


async def delete_queues(amqp_url: str, names: list[str]) -> None:
    """Delete these queues (those already gone are no error)."""
    if not names:
        return
    connection = await aio_pika.connect(amqp_url)
    try:
        for name in names:
            channel = await connection.channel()
            with contextlib.suppress(aiormq.exceptions.AMQPError):
                await channel.queue_delete(name)
    finally:
        await connection.close()


async def queue_counts(amqp_url: str, name: str) -> tuple[int, int]:
    """(ready messages, consumers), by a passive declare."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        result = queue.declaration_result
        return int(result.message_count or 0), int(result.consumer_count or 0)
    finally:
        await connection.close()
