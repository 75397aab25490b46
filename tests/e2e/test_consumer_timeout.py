"""T12 (reference/reliability.md §7): a long execution against RabbitMQ's `consumer_timeout`.

On a throw-away node with `consumer_timeout = 60000` (the smallest the documentation supports;
checked on each channel's tick, once a minute, so it fires 60-120 s after a delivery), two
experiments run side by side:

- the control, a plain aio-pika consumer that acks late (prefetch 1, holds its one delivery for
  150 s): the broker closes its channel with PRECONDITION_FAILED and the robust channel gets the
  same message again while the first copy is still held. A late-ack agent would run it twice;
- Spool, whose agents ack right after the gateway recorded the claim: a 150 s execution, with a
  second agent idle, runs once (one start and one end in the ledger), ends `success` with
  `attempts == 1` and the status log created -> in-progress -> success, no agent is handed a
  second copy, and the only ack timeout in the node's log is the control's.

This is the 30-minute default against 3600 s executions at 1/24 scale, under `make
reliability` (~3 minutes). In CI (smoke) the same experiment runs ten times faster: the node's
channels tick every second (`channel_tick_interval`, set before anyone connects), the timeout
is 5 s and the execution 12.5 s; RabbitMQ applies timeouts under a minute as set.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aio_pika
import aiormq
import httpx
import pytest
import pytest_asyncio
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from support.faults import record, scale, tally
from support.ledger import (
    IN_PROGRESS,
    LEDGER_PACKAGE,
    SUCCESS,
    TERMINAL,
    Event,
    execution_problems,
    intervals,
    ledger_directory,
    ledger_input,
    live_agents,
    read_events,
    statuses,
)
from support.platform import LocalPlatform, deploy, wait
from support.rabbit_node import RabbitNode, rabbit_node

pytestmark = [pytest.mark.e2e]

CONSUMER_TIMEOUT_MS = scale(5_000, 60_000)
CONSUMER_TIMEOUT = CONSUMER_TIMEOUT_MS / 1000
TICK_MS = scale(1_000, 60_000)  # how often each channel checks its consumers' timeouts
TICK = TICK_MS / 1000
HOLD = CONSUMER_TIMEOUT * 2.5  # the execution's length, and how long the control holds it
EXECUTION_TIMEOUT = 400  # Spool's own timeout stays out of the way
ACK_TIMED_OUT = "delivery acknowledgement on channel"  # the broker's close reason
SERVICE = "long"
KEY = "long-1"

Execution = dict[str, Any]


@pytest_asyncio.fixture
async def node() -> AsyncIterator[RabbitNode]:
    async with rabbit_node(consumer_timeout_ms=CONSUMER_TIMEOUT_MS) as n:
        # Channels read the tick when they open: set before any client connects.
        await n.ctl("eval", f"application:set_env(rabbit, channel_tick_interval, {TICK_MS}).")
        yield n


# --- the control: a consumer that acks late ---------------------------------------------------


@dataclass(frozen=True)
class Delivered:
    at: float  # monotonic
    body: bytes
    redelivered: bool
    delivery_count: object  # the quorum queue's x-delivery-count header, absent at first


@dataclass
class Control:
    deliveries: list[Delivered] = field(default_factory=list)
    closes: list[tuple[float, BaseException | None]] = field(default_factory=list)


async def _late_ack_consumer(amqp_url: str) -> Control:
    """Consume one message with prefetch 1 and hold its first copy unacked for HOLD seconds
    (the redelivery is acked at once, so the control times out exactly once)."""
    seen = Control()
    first = asyncio.Event()

    async def on_message(message: AbstractIncomingMessage) -> None:
        count = (message.headers or {}).get("x-delivery-count")
        held = Delivered(time.monotonic(), message.body, bool(message.redelivered), count)
        seen.deliveries.append(held)
        first.set()
        if len(seen.deliveries) > 1:  # the first copy is held; the point is made once
            await message.ack()

    def on_close(_: AbstractChannel | None, exc: BaseException | None) -> None:
        seen.closes.append((time.monotonic(), exc))

    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        channel = await connection.channel()
        channel.close_callbacks.add(on_close)
        await channel.set_qos(prefetch_count=1)
        queue = await channel.declare_queue(
            f"control-{uuid.uuid4().hex[:8]}", durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.consume(on_message)
        await channel.default_exchange.publish(aio_pika.Message(b"run me"), queue.name)
        await asyncio.wait_for(first.wait(), 10)
        await asyncio.sleep(HOLD - (time.monotonic() - seen.deliveries[0].at))
    return seen


def _control_problems(seen: Control) -> list[str]:
    """The second delivery is the same message, redelivered while the first was held, after
    the broker closed the channel for the missing ack."""
    if len(seen.deliveries) < 2:
        return [f"no redelivery within {HOLD:.0f} s: {seen}"]
    first, second = seen.deliveries[:2]
    problems = []
    if first.body != second.body or first.redelivered or not second.redelivered:
        problems.append(f"not one plain delivery then one redelivery: {seen.deliveries}")
    if second.delivery_count != 1:  # the quorum queue counts the return
        problems.append(f"x-delivery-count {second.delivery_count!r}, expected 1")
    if not CONSUMER_TIMEOUT <= second.at - first.at <= CONSUMER_TIMEOUT + TICK + 10:
        problems.append(f"redelivered after {second.at - first.at:.1f} s")
    closed = [
        e for _, e in seen.closes if isinstance(e, aiormq.exceptions.ChannelPreconditionFailed)
    ]
    if not any(ACK_TIMED_OUT in str(e) for e in closed):
        problems.append(f"the channel was not closed for the ack timeout: {seen.closes}")
    return problems


# --- Spool: one long execution ----------------------------------------------------------------


@dataclass(frozen=True)
class SpoolRun:
    execution: Execution
    ledger: list[Event]
    agent_logs: str


async def _spool_long_execution(amqp_url: str, database_url: str, root: Path) -> SpoolRun:
    platform = LocalPlatform(root / "platform", f"c{uuid.uuid4().hex[:10]}", amqp_url, database_url)
    with ledger_directory() as ledgers:
        return await _run_long_execution(platform, ledgers / "ledger.jsonl")


async def _run_long_execution(platform: LocalPlatform, ledger: Path) -> SpoolRun:
    try:
        await platform.start()
        async with platform.client() as client:
            service = await deploy(
                client,
                LEDGER_PACKAGE,
                SERVICE,
                executionTimeout=EXECUTION_TIMEOUT,
                maxAttempts=3,  # room for a second run, so a duplicate would show
                onReset="rerun",
                runtime={"numReplicas": 2, "concurrency": 1},  # one runs it, one is idle
            )
            await _await_ready_agents(platform, 2)
            body = {"functionName": "run", "input": ledger_input(ledger, KEY, HOLD)}
            created = await client.post(f"/executions/{service['id']}", json=body)
            assert created.status_code == 201, created.text
            execution = await _await_end(client, created.json()["id"], HOLD + 60)
    finally:
        await platform.stop()
    return SpoolRun(execution, read_events(ledger), platform.agent_logs())


async def _await_ready_agents(platform: LocalPlatform, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        agents = live_agents(platform.state_dir, SERVICE)
        logs = [platform.state_dir / "replicas" / r / "agent.log" for r in agents]
        if len(agents) == count and all(
            p.exists() and "agent_ready" in p.read_text(errors="replace") for p in logs
        ):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(
        f"{count} agents not ready in {timeout} s:\n{platform.agent_logs()[-3000:]}"
    )


async def _await_end(client: httpx.AsyncClient, execution_id: str, timeout: float) -> Execution:
    deadline = time.monotonic() + timeout
    while True:
        execution = await wait(client, execution_id, timeout=30)
        if execution["latestStatus"]["status"] in TERMINAL or time.monotonic() > deadline:
            return execution


def _at(entry: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(entry["timestamp"]).replace("Z", "+00:00")).timestamp()


# --- the test ---------------------------------------------------------------------------------


@pytest.mark.reliability
@pytest.mark.timeout(480)
async def test_a_long_execution_runs_once_where_a_late_ack_consumer_gets_it_twice(
    node: RabbitNode, database_url: str, tmp_path: Path
) -> None:
    setting = await node.ctl("eval", "application:get_env(rabbit, consumer_timeout).")
    assert setting == f"{{ok,{CONSUMER_TIMEOUT_MS}}}"

    control, spool = await asyncio.gather(
        _late_ack_consumer(node.amqp_url),
        _spool_long_execution(node.amqp_url, database_url, tmp_path),
    )

    assert _control_problems(control) == []
    execution, runs = spool.execution, intervals(spool.ledger).get(KEY, [])
    fault = "T12 an execution longer than consumer_timeout"
    run = record(tally(fault, [execution], {KEY: runs}, key=lambda _: KEY))
    assert run.clean, run.line()
    assert execution["latestStatus"]["status"] == SUCCESS, execution
    assert execution["attempts"] == 1
    assert statuses(execution) == ["created", IN_PROGRESS, SUCCESS]
    assert execution_problems(execution, runs, {}) == []
    assert [e.event for e in spool.ledger] == ["start", "end"], spool.ledger  # it ran once
    assert len({e.pid for e in spool.ledger}) == 1, spool.ledger
    assert runs[0].end is not None
    assert runs[0].end - runs[0].start >= HOLD
    assert "claim_refused" not in spool.agent_logs  # no agent was handed a second copy
    assert "stale_delivery_not_settled" not in spool.agent_logs
    assert node.log().count(ACK_TIMED_OUT) == 1, node.log()[-3000:]  # the control's only

    redelivered_after = control.deliveries[1].at - control.deliveries[0].at
    log = execution["statusLog"]
    print(  # the figures of this run, for the slow-tier report
        f"\ncontrol: redelivered {redelivered_after:.1f} s after the first delivery; "
        f"spool: ran {runs[0].end - runs[0].start:.1f} s, "
        f"in-progress -> success {_at(log[2]) - _at(log[1]):.1f} s"
    )
