"""Autoscaling end to end on the process driver and real RabbitMQ: a backlog raises replicas
within a polling interval and they return to the minimum after the cooldown without killing
running work (T24); a service scaled to zero wakes on its first execution; a function that
slows down gets more replicas through the latency rule with no backlog. Every decision is
readable at GET /services/{id}/scaling."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from support import broker
from support.faults import record, scale, tally
from support.ledger import SUCCESS, intervals, live_agents, read_events
from support.platform import LocalPlatform, running_platform
from support.runs import await_terminal, deployed, eventually, submit
from support.servers import AMQP_URL

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

POLL = 2  # pollingInterval of the services here
COOLDOWN = 6


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(
    tmp_path_factory: pytest.TempPathFactory, servers: None
) -> AsyncIterator[LocalPlatform]:
    """Load sampled every 0.5 s; the latency rule reacts to p75 above 0.6 s within 10 s."""
    env = {
        "SPOOL_LOAD_SAMPLE_INTERVAL": "0.5",
        "SPOOL_LATENCY_WINDOW": "10",
        "SPOOL_LATENCY_HIGH": "0.6",
        "SPOOL_LATENCY_LOW": "0.1",
        "SPOOL_LATENCY_GUARD": "5",
        "SPOOL_LATENCY_HEALTHY_FOR": "60",
    }
    async with running_platform(tmp_path_factory.mktemp("platform"), env) as p:
        yield p


def scaler(**extra: Any) -> dict[str, Any]:
    return {
        "type": "rabbitmq",
        "queueLength": 2,
        "cooldownPeriod": COOLDOWN,
        "pollingInterval": POLL,
        **extra,
    }


async def consumers(queue: str) -> int:
    return await broker.consumers(AMQP_URL, queue)


async def await_consumers(queue: str, count: int, timeout: float = 60) -> float:
    """Seconds until the queue has `count` consumers."""
    return await broker.await_consumers(AMQP_URL, queue, count, timeout)


async def decisions(client: httpx.AsyncClient, service_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/services/{service_id}/scaling")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


@pytest.mark.reliability
async def test_a_backlog_scales_up_at_once_and_back_down_after_the_cooldown(
    platform: LocalPlatform, client: httpx.AsyncClient, ledgers: Path
) -> None:
    ledger = ledgers / "backlog.jsonl"
    async with deployed(
        platform,
        client,
        "backlog",
        runtime={
            "numReplicas": 1,
            "concurrency": 1,
            "autoscaler": scaler(minReplicas=1, maxReplicas=3),
        },
        drainTime=60,
        onReset="failed",
        maxAttempts=1,
    ) as service:
        queue = f"{platform.namespace}.service.{service['id']}"
        await await_consumers(queue, 1)
        count = scale(12, 60)
        ids = {await submit(client, service["id"], ledger, f"b{n}", 1.5) for n in range(count)}
        reaction = await await_consumers(queue, 2)  # backlog appears -> a new replica consumes
        await await_consumers(queue, 3)
        status = (await client.get(f"/services/{service['id']}/status")).json()
        assert status["desiredReplicas"] == 3, status  # the autoscaler's, not numReplicas
        done = await await_terminal(client, service["id"], ids, timeout=180)
        runs = intervals(read_events(ledger))
        fault = "T24 autoscaler scales up and back down under in-flight work"
        run = record(tally(fault, done.values(), runs, recovery=reaction))
        assert run.clean, run.line()
        assert all(e["latestStatus"]["status"] == SUCCESS for e in done.values())
        assert all(e["attempts"] == 1 for e in done.values())  # nothing killed (T24)
        await eventually(
            "back to the minimum",
            lambda: len(live_agents(platform.state_dir, "backlog")) == 1,
            COOLDOWN + 4 * POLL + 30,
        )
        made = await decisions(client, service["id"])
        ups = [d for d in made if d["to"] > (d["from"] or 0)]
        downs = [d for d in made if d["from"] is not None and d["to"] < d["from"]]
        assert ups, made
        assert downs, made
        # The oldest scale-up came from the queue rule (capped at maxReplicas: "bounds").
        assert ups[-1]["rule"] in ("queue", "bounds"), ups[-1]
        assert ups[-1]["inputs"]["queued"] + ups[-1]["inputs"]["running"] >= 2, ups[-1]
        figures = {"reactionSeconds": round(reaction, 2), "decisions": len(made)}
        print("AUTOSCALE", json.dumps(figures))
        (platform.root / "autoscale.json").write_text(json.dumps(figures))


async def test_a_service_at_zero_wakes_on_its_first_execution(
    platform: LocalPlatform, client: httpx.AsyncClient, ledgers: Path
) -> None:
    ledger = ledgers / "zero.jsonl"
    async with deployed(
        platform,
        client,
        "sleepy",
        runtime={
            "numReplicas": 1,
            "concurrency": 2,
            "autoscaler": scaler(minReplicas=0, maxReplicas=2),
        },
    ) as service:
        queue = f"{platform.namespace}.service.{service['id']}"
        await eventually(
            "scaled to zero",
            lambda: not live_agents(platform.state_dir, "sleepy"),
            COOLDOWN + 4 * POLL + 30,
        )
        assert await consumers(queue) == 0
        started = time.monotonic()
        execution = await submit(client, service["id"], ledger, "wake", 0.1)
        done = await await_terminal(client, service["id"], {execution}, timeout=60)
        assert done[execution]["latestStatus"]["status"] == SUCCESS
        assert time.monotonic() - started < 30
        made = await decisions(client, service["id"])
        assert made[0]["to"] >= 1, made  # the newest decision woke it


async def test_a_slow_function_gets_more_replicas_through_the_latency_rule(
    platform: LocalPlatform, client: httpx.AsyncClient, ledgers: Path
) -> None:
    ledger = ledgers / "slow.jsonl"
    async with deployed(
        platform,
        client,
        "slow",
        runtime={
            "numReplicas": 1,
            "concurrency": 1,
            "autoscaler": scaler(minReplicas=1, maxReplicas=3, queueLength=100),
        },
    ) as service:
        queue = f"{platform.namespace}.service.{service['id']}"
        await await_consumers(queue, 1)
        # One at a time: never a backlog, but each takes 0.8 s (above the 0.6 s threshold).
        for n in range(8):
            execution = await submit(client, service["id"], ledger, f"s{n}", 0.8)
            await await_terminal(client, service["id"], {execution}, timeout=30)
            made = await decisions(client, service["id"])
            if any(d["rule"] == "latency" for d in made):
                break
        made = await decisions(client, service["id"])
        raised = [d for d in made if d["rule"] == "latency"]
        assert raised, made
        assert raised[-1]["to"] == 2
        assert not [d for d in made if d["rule"] == "queue" and d["to"] > (d["from"] or 0)]
        await await_consumers(queue, 2)
