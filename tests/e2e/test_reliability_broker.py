"""Broker faults (reference/reliability.md §7 A: T07, T08, T10) against the whole platform on a
RabbitMQ node of this module's own (support/rabbit_node.py), reached through a TCP proxy
(support/tcp_proxy.py) that forwards faithfully except while T07b silences it.

T07 freezes the broker (SIGSTOP) or silences the network toward every client for SILENCE
seconds, past the point where every client's heartbeat check gives up; T08 kills the broker
(SIGKILL) or stops its application under a backlog and starts it again; T10 raises a memory
alarm that blocks every publisher. Executions are created throughout. Each test checks that
every create was answered in time (201: recorded with its outbox row, or 503), that every
accepted execution ran once and succeeded (the ledger invariants I1-I6, support/ledger.py),
that no platform process exited, that every one noticed the fault and reconnected (T07, T08)
or kept its connection (T10), and ends with the reliability report line (support/faults.py).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from support.faults import record, scale, tally
from support.ledger import (
    SUCCESS,
    Interval,
    execution_problems,
    intervals,
    live_agents,
)
from support.ledger import read_events as read_ledger
from support.load import Answer, Load, loading
from support.platform import LocalPlatform, running_platform
from support.rabbit_node import RabbitNode, rabbit_node
from support.runs import (
    await_no_ready_messages,
    await_replicas,
    await_terminal,
    deployed,
    first_start_after,
    ready_messages,
)
from support.tcp_proxy import TcpProxy, tcp_proxy

pytestmark = [pytest.mark.e2e, pytest.mark.reliability, pytest.mark.asyncio(loop_scope="module")]

Execution = dict[str, Any]
HEARTBEAT = 3  # seconds: aiormq gives up on a silent broker after (3 + 1) x 3 = 12 s
SILENCE = 15.0  # seconds of a silent broker: every client notices, then reconnects into it
PUBLISH_TIMEOUT = 5.0  # SPOOL_PUBLISH_TIMEOUT of the platform's services
ANSWER_BOUND = PUBLISH_TIMEOUT + 5.0  # a create's answer, with slack for a loaded 2-core box
RECOVERY_BOUND = 90.0  # seconds for work to resume once a fault is over
UNAVAILABLE = 503
SPEC = {"onReset": "rerun", "maxAttempts": 3, "drainTime": 5}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def node() -> AsyncIterator[RabbitNode]:
    async with rabbit_node() as n:
        yield n


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def proxy(node: RabbitNode) -> AsyncIterator[TcpProxy]:
    async with tcp_proxy(node.port) as p:
        yield p


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(
    tmp_path_factory: pytest.TempPathFactory, servers: None, proxy: TcpProxy
) -> AsyncIterator[LocalPlatform]:
    """Every process of the platform, agents included, talks to the broker through the proxy."""
    url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/?heartbeat={HEARTBEAT}"
    env = {"SPOOL_PUBLISH_TIMEOUT": str(PUBLISH_TIMEOUT)}
    root = tmp_path_factory.mktemp("platform")
    async with running_platform(root, extra_env=env, amqp_url=url) as p:
        yield p


async def _backlog(load: Load, platform: LocalPlatform, count: int) -> None:
    """`count` executions created at once, and most of them waiting in the service queue."""
    for i in range(count):
        await load.create(f"backlog-{i:04d}", round(load.rng.uniform(0.2, 0.5), 3))
    deadline = time.monotonic() + RECOVERY_BOUND
    while await ready_messages(platform, load.service_id) < count // 2:
        assert time.monotonic() < deadline, "the backlog never reached the service queue"
        await asyncio.sleep(0.1)


# --- faults ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """When a fault began and when the action ending it returned (time.time(), comparable
    with the ledger's)."""

    started: float
    ended: float


async def _fault(begin: Awaitable[None], hold: float, end: Callable[[], Awaitable[None]]) -> Window:
    """`begin`, `hold` seconds, then `end` (whatever happened meanwhile)."""
    started = time.time()
    await begin
    try:
        await asyncio.sleep(hold)  # the fault itself; nothing is asserted on time
    finally:
        await end()
    return Window(started, time.time())


async def _now(act: Callable[[], None]) -> None:
    act()


def frozen(node: RabbitNode) -> Awaitable[Window]:
    return _fault(_now(node.pause), SILENCE, lambda: _now(node.resume))


def silenced(proxy: TcpProxy) -> Awaitable[Window]:
    return _fault(_now(proxy.drop_server_bytes), SILENCE, lambda: _now(proxy.forward))


def killed(node: RabbitNode, down: float) -> Awaitable[Window]:
    return _fault(node.kill(), down, node.restart)


def app_stopped(node: RabbitNode, down: float) -> Awaitable[Window]:
    return _fault(node.stop_app(), down, node.start_app)


def alarmed(node: RabbitNode, hold: float) -> Awaitable[Window]:
    return _fault(node.set_memory_watermark(0), hold, lambda: node.set_memory_watermark(0.4))


# --- one fault run ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str  # the service's, unique in the module
    title: str  # the fault line's
    replicas: int
    concurrency: int
    every: float  # seconds between creates
    reconnect: bool  # every process must reconnect after the fault (True), or none may
    backlog: int = 0  # executions created at once just before the fault


async def _run(
    platform: LocalPlatform,
    client: httpx.AsyncClient,
    ledger: Path,
    scenario: Scenario,
    fault: Callable[[], Awaitable[Window]],
) -> None:
    """Deploy, create executions throughout `fault`, wait for every accepted one to end, and
    check the whole run (see the module's docstring)."""
    runtime = {"numReplicas": scenario.replicas, "concurrency": scenario.concurrency}
    async with deployed(platform, client, scenario.name, **SPEC, runtime=runtime) as service:
        agents = await await_replicas(platform, scenario.name, scenario.replicas)
        load = Load(client, service["id"], ledger, random.Random(scenario.name))
        async with loading(load, scenario.every):
            await load.submitted(scale(10, 100))
            await _backlog(load, platform, scenario.backlog)
            window = await fault()
            resumed = await first_start_after(ledger, window.ended, RECOVERY_BOUND)
            await load.submitted(scale(10, 100))
        await platform.wait_healthy()  # every service reconnected, none exited
        done = await await_terminal(client, service["id"], set(load.accepted.values()), 300)
        runs = intervals(read_ledger(ledger))
        run = record(tally(scenario.title, done.values(), runs, recovery=resumed - window.ended))
        problems = _run_problems(done, runs, load.answers)
        problems += _platform_problems(platform, scenario.name, agents)
        problems += _reconnect_problems(platform, agents, window.started, scenario.reconnect)
        assert not problems, f"{run.line()}\n" + "\n".join(problems[:30])
        assert run.clean, run.line()
        await await_no_ready_messages(platform, service["id"])


def _platform_problems(platform: LocalPlatform, name: str, agents: dict[str, int]) -> list[str]:
    """No platform process exited, and the service's agents are the ones it started with."""
    problems = [f"{n} exited" for n, p in platform.processes.items() if p.returncode is not None]
    now = live_agents(platform.state_dir, name)
    if now != agents:
        problems.append(f"agents changed: {agents} -> {now}")
    return problems


def _reconnect_problems(
    platform: LocalPlatform, agents: Mapping[str, int], since: float, expected: bool
) -> list[str]:
    """T07, T08: every platform process and agent noticed the fault and reconnected (the
    gateway, scheduler and agents once RabbitMQ cleaned up their old connection's exclusive
    queues); T10: no agent had to, every one kept consuming on its connection. (A blocked
    publisher of the control plane may have its connection dropped and open a new one: seen
    once for the gateway under a 20 s alarm, with nothing lost; docs/reliability.md.)"""
    logs = {
        replica: (platform.state_dir / "replicas" / replica / "agent.log").read_text()
        for replica in agents
    }
    if expected:
        logs |= {name: platform.log(name) for name in platform.processes}
    reconnected = {name for name, text in logs.items() if _reconnected_after(text, since)}
    if expected:
        return [f"{name} did not reconnect" for name in sorted(set(logs) - reconnected)]
    return [f"{name} reconnected" for name in sorted(reconnected)]


def _reconnected_after(log: str, since: float) -> bool:
    """A `bus_reconnected` line in the log later than `since` (time.time())."""
    for line in log.splitlines():
        if '"bus_reconnected"' in line and line.startswith("{"):
            at = datetime.fromisoformat(json.loads(line)["timestamp"]).timestamp()
            if at > since:
                return True
    return False


def _run_problems(
    done: Mapping[str, Execution], runs: Mapping[str, list[Interval]], answers: list[Answer]
) -> list[str]:
    """I1-I5, every accepted execution a success that ran once, and every create answered
    201 or 503 within ANSWER_BOUND."""
    problems = []
    for e in done.values():
        mine = runs.get(e["input"]["exec_key"], [])
        problems += execution_problems(e, mine, {})
        if e["latestStatus"]["status"] != SUCCESS or len(mine) != 1:
            problems.append(f"{e['id']}: {e['latestStatus']['status']} after {len(mine)} runs")
            problems.append(f"  its status log: {_status_log(e)}")
    problems += [
        f"a create answered {a.status} after {a.seconds:.1f} s: {a.body[:200]}"
        for a in answers
        if a.status not in (201, UNAVAILABLE) or a.seconds > ANSWER_BOUND
    ]
    return problems


def _status_log(e: Execution) -> str:
    """The execution's status log on one line: each status with its attempt, replica and
    message (what a failed run's report needs to be read without the platform's logs)."""
    steps = []
    for entry in e["statusLog"]:
        where = ", ".join(
            f"{key} {entry[key]}" for key in ("attempt", "replicaId") if entry.get(key) is not None
        )
        text = entry.get("message") or (entry.get("error") or {}).get("message")
        steps.append(
            entry["status"] + (f" ({where})" if where else "") + (f": {text}" if text else "")
        )
    return " -> ".join(steps)


# --- the tests -------------------------------------------------------------------------------


@pytest.mark.timeout(600)
async def test_t07a_a_frozen_broker_blocks_no_call_and_loses_nothing(
    platform: LocalPlatform, client: httpx.AsyncClient, ledgers: Path, node: RabbitNode
) -> None:
    """SIGSTOP of the broker for SILENCE seconds while executions run and creates come in."""
    scenario = Scenario("t07a", "T07 broker frozen (SIGSTOP)", 2, 3, 0.2, reconnect=True)
    await _run(platform, client, ledgers / "t07a.jsonl", scenario, lambda: frozen(node))


@pytest.mark.timeout(600)
async def test_t07b_a_silent_network_blocks_no_call_and_loses_nothing(
    platform: LocalPlatform, client: httpx.AsyncClient, ledgers: Path, proxy: TcpProxy
) -> None:
    """Every byte from the broker to any client dropped for SILENCE seconds (half-open TCP)."""
    title = "T07 half-open network (server bytes dropped)"
    scenario = Scenario("t07b", title, 2, 3, 0.2, reconnect=True)
    await _run(platform, client, ledgers / "t07b.jsonl", scenario, lambda: silenced(proxy))


@pytest.mark.timeout(600)
async def test_t08_a_killed_broker_restarts_with_its_backlog(
    platform: LocalPlatform, client: httpx.AsyncClient, ledgers: Path, node: RabbitNode
) -> None:
    """SIGKILL of the broker under a backlog, then a restart on the same data."""
    backlog = scale(40, 200)
    scenario = Scenario("t08k", "T08 broker killed (-9) and restarted", 1, 2, 0.5, True, backlog)
    await _run(platform, client, ledgers / "t08k.jsonl", scenario, lambda: killed(node, 3.0))


@pytest.mark.timeout(600)
async def test_t08_a_stopped_broker_app_starts_with_its_backlog(
    platform: LocalPlatform, client: httpx.AsyncClient, ledgers: Path, node: RabbitNode
) -> None:
    """`rabbitmqctl stop_app` under a backlog, then `start_app`."""
    backlog = scale(40, 200)
    scenario = Scenario("t08s", "T08 broker app stopped and started", 1, 2, 0.5, True, backlog)
    await _run(platform, client, ledgers / "t08s.jsonl", scenario, lambda: app_stopped(node, 5.0))


@pytest.mark.timeout(600)
async def test_t10_a_memory_alarm_blocks_no_call_and_loses_nothing(
    platform: LocalPlatform, client: httpx.AsyncClient, ledgers: Path, node: RabbitNode
) -> None:
    """The memory alarm raised (watermark 0) under load, cleared (0.4) after a while."""
    hold = scale(10, 20)
    scenario = Scenario("t10", "T10 memory alarm (publishers blocked)", 2, 3, 0.2, reconnect=False)
    await _run(platform, client, ledgers / "t10.jsonl", scenario, lambda: alarmed(node, hold))
