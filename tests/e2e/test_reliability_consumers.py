"""T09 (reference/reliability.md §7): the broker cancels the agents' consumers.

Deleting a service queue makes RabbitMQ send basic.cancel to every consumer of it, which
aio-pika ignores (aio-pika#334): without spool_common/bus/consumers.py the agents would stay
up, connected and idle for ever. Here the queue is deleted under running work; both agents
notice, declare it again and consume it under the same tag within a few seconds, the work
they held ends once, and work submitted afterwards runs. (Work submitted in the second
before the agents restore their consumers makes the gateway declare the queue first; on
RabbitMQ 3.10 that race sometimes leaves the agents without a basic.cancel and with a
consumer the new queue never feeds: docs/reliability.md, "Known limits".)
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aio_pika
import httpx
import pytest
from support.broker import consumers
from support.faults import record, scale, tally
from support.ledger import SUCCESS, execution_problems, intervals, read_events
from support.platform import LocalPlatform
from support.runs import (
    await_no_ready_messages,
    await_terminal,
    deployed,
    eventually,
    first_start_after,
    submit,
)

pytestmark = [pytest.mark.e2e, pytest.mark.reliability, pytest.mark.asyncio(loop_scope="module")]


async def _delete_queue(amqp_url: str, name: str) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(name)


async def _await_consumers(amqp_url: str, queue: str, count: int, timeout: float) -> float:
    """Seconds until the queue exists again with `count` consumers."""
    started = time.monotonic()
    while True:
        try:
            if await consumers(amqp_url, queue) == count:
                return time.monotonic() - started
        except aio_pika.exceptions.ChannelNotFoundEntity:
            pass  # not declared again yet
        assert time.monotonic() - started < timeout, f"{queue} never had {count} consumers again"
        await asyncio.sleep(0.1)


async def _await_restored(platform: LocalPlatform, count: int, timeout: float) -> None:
    """Until the agents have logged `count` restored consumers in all."""

    def restored() -> bool:
        return platform.agent_logs().count("consumer_restored") >= count

    await eventually(f"{count} consumers restored", restored, timeout)


async def _await_running(ledger: Path, count: int) -> None:
    def running() -> bool:
        return sum(1 for e in read_events(ledger) if e.event == "start") >= count

    await eventually(f"{count} runs started", running, 30)


@pytest.mark.timeout(180)
async def test_t09_agents_consume_again_after_the_broker_cancels_their_consumers(
    platform: LocalPlatform, client: httpx.AsyncClient, ledgers: Path
) -> None:
    ledger = ledgers / "t09.jsonl"
    spec = {"onReset": "rerun", "maxAttempts": 3, "drainTime": 10}
    runtime = {"numReplicas": 2, "concurrency": 2}
    rounds = scale(1, 3)
    async with deployed(platform, client, "t09", **spec, runtime=runtime) as service:
        queue = f"{platform.namespace}.service.{service['id']}"
        amqp_url = platform.env["SPOOL_AMQP_URL"]
        await _await_consumers(amqp_url, queue, 2, timeout=60)
        ids: dict[str, str] = {}
        longest = 0.0
        for r in range(rounds):
            held = {f"r{r}-held-{i}": 2.0 for i in range(4)}  # running when the queue goes
            for key, seconds in held.items():
                ids[key] = await submit(client, service["id"], ledger, key, seconds)
            await _await_running(ledger, len(ids))
            deleted = time.time()
            await _delete_queue(amqp_url, queue)
            await _await_restored(platform, 2 * (r + 1), timeout=10)  # both agents, each round
            await _await_consumers(amqp_url, queue, 2, timeout=10)
            later = {f"r{r}-later-{i}": 0.2 for i in range(scale(8, 20))}
            for key, seconds in later.items():
                ids[key] = await submit(client, service["id"], ledger, key, seconds)
            resumed = await first_start_after(ledger, deleted, 30, keys=set(later))
            longest = max(longest, resumed - deleted)
        done = await await_terminal(client, service["id"], set(ids.values()), timeout=90)
        runs = intervals(read_events(ledger))
        run = record(
            tally("T09 consumers cancelled by the broker", done.values(), runs, recovery=longest)
        )
        problems = [
            p
            for e in done.values()
            for p in execution_problems(e, runs.get(e["input"]["exec_key"], []), {})
        ]
        assert not problems, "\n".join(problems[:20])
        assert run.clean, run.line()
        assert {e["latestStatus"]["status"] for e in done.values()} == {SUCCESS}, run.line()
        assert "consumer_cancelled_by_broker" in platform.agent_logs()
        await await_no_ready_messages(platform, service["id"])
