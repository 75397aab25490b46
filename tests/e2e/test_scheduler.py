"""The scheduler on the process driver, end to end: rolling updates under load (T05 of
reference/reliability.md), scale-in with running work, crash loops deactivating a service,
and `force=true`. Ground truth comes from the ledger the user function writes itself.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
import pytest_asyncio
from support.broker import await_consumers
from support.faults import record, scale, tally
from support.ledger import SUCCESS, intervals, live_agents, read_events, statuses
from support.platform import LocalPlatform, deploy, running_platform
from support.runs import await_terminal, deployed, eventually, submit
from support.servers import AMQP_URL

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

Execution = dict[str, Any]
CRASH_LOOP_RESTARTS = 3


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(
    tmp_path_factory: pytest.TempPathFactory, servers: None
) -> AsyncIterator[LocalPlatform]:
    """This module's own platform: crash loops are declared after 3 failures."""
    async with running_platform(
        tmp_path_factory.mktemp("platform"), {"SPOOL_CRASH_LOOP_RESTARTS": str(CRASH_LOOP_RESTARTS)}
    ) as p:
        yield p


class ConsumerWatch:
    """Polls the service queue's consumer count (passive declare) and keeps the longest
    stretch with none, from the first time it saw a consumer."""

    def __init__(self, queue: str, every: float = 0.05) -> None:
        self.queue = queue
        self.every = every
        self.longest_gap = 0.0
        self.samples = 0
        self.min_consumers: int | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ConsumerWatch:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        connection = await aio_pika.connect(AMQP_URL)
        try:
            channel = await connection.channel()
            empty_since: float | None = None
            seen = False
            while True:
                queue = await channel.declare_queue(self.queue, passive=True)
                consumers = queue.declaration_result.consumer_count or 0
                now = time.monotonic()
                self.samples += 1
                if consumers > 0:
                    seen = True
                    empty_since = None
                elif seen:
                    empty_since = now if empty_since is None else empty_since
                    self.longest_gap = max(self.longest_gap, now - empty_since)
                if seen:
                    low = self.min_consumers
                    self.min_consumers = consumers if low is None else min(low, consumers)
                await asyncio.sleep(self.every)
        finally:
            await connection.close()


def _revisions(execution: Execution) -> list[int | None]:
    return [
        e.get("serviceRevision") for e in execution["statusLog"] if e["status"] == "in-progress"
    ]


async def _patch(client: httpx.AsyncClient, service_id: str, body: dict[str, Any], **q: str) -> Any:
    response = await client.patch(f"/services/{service_id}", json=body, params=q)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.reliability
@pytest.mark.timeout(300)
async def test_t05_rolling_updates_under_load_lose_nothing_and_run_nothing_twice(
    platform: LocalPlatform, client: httpx.AsyncClient, ledgers: Path
) -> None:
    ledger = ledgers / "t05.jsonl"
    rng = random.Random(5)
    async with deployed(
        platform,
        client,
        "t05",
        runtime={"numReplicas": 2, "concurrency": 3},
        drainTime=60,
        onReset="failed",
        maxAttempts=1,
    ) as service:
        queue = f"{platform.namespace}.service.{service['id']}"
        await eventually_consumers(queue, 2)
        ids: dict[str, str] = {}
        async with ConsumerWatch(queue) as watch:

            async def load() -> None:
                for n in range(scale(240, 900)):  # ~20 per second for 12 s (45 s at full)
                    key = f"k{n}"
                    ids[key] = await submit(
                        client, service["id"], ledger, key, rng.uniform(0.05, 0.6)
                    )
                    await asyncio.sleep(0.05)

            async def updates() -> list[int]:
                revisions = []
                # Each change is a new revision: the replicas roll (every 3 s).
                for timeout in range(3000, 3000 - scale(2, 8) * 100, -100):
                    await asyncio.sleep(3.0)
                    await _patch(client, service["id"], {"executionTimeout": timeout})
                    status = await client.get(f"/services/{service['id']}/status")
                    revisions.append(int(status.json()["revision"]))
                return revisions

            _, revisions = await asyncio.gather(load(), updates())
            done = await await_terminal(client, service["id"], set(ids.values()), timeout=180)
        runs = intervals(read_events(ledger))
        gap = watch.longest_gap
        run = record(tally("T05 rolling updates under load", done.values(), runs, recovery=gap))
        by_id = {v: k for k, v in ids.items()}
        lost = [i for i, e in done.items() if e["latestStatus"]["status"] != SUCCESS]
        twice = [i for i, e in done.items() if len(runs.get(by_id[i], [])) != 1]
        over = [i for i, e in done.items() if e["attempts"] != 1]
        ran_on = Counter(r for e in done.values() for r in _revisions(e))
        figures = {
            "submitted": len(ids),
            "lost": len(lost),
            "duplicated": len(twice),
            "longestConsumerGapSeconds": round(watch.longest_gap, 3),
            "minConsumers": watch.min_consumers,
            "samples": watch.samples,
            "ranOnRevision": dict(sorted(ran_on.items(), key=lambda kv: kv[0] or 0)),
            "updatesTo": revisions,
        }
        print("T05", json.dumps(figures))
        (platform.root / "t05.json").write_text(json.dumps(figures))
        assert run.clean, run.line()
        assert not lost, [done[i]["statusLog"] for i in lost[:3]]
        assert not twice, twice[:3]
        assert not over, over[:3]
        assert all(statuses(e) == ["created", "in-progress", SUCCESS] for e in done.values())
        assert watch.longest_gap <= 2.0, figures
        assert None not in ran_on, "every run records the service revision that ran it"
        assert revisions[-1] in ran_on, figures  # the last revision took over the work


async def eventually_consumers(queue: str, count: int, timeout: float = 60) -> None:
    await await_consumers(AMQP_URL, queue, count, timeout)


async def test_scale_in_drains_idle_replicas_first_and_never_kills_running_work(
    platform: LocalPlatform, client: httpx.AsyncClient, ledgers: Path
) -> None:
    ledger = ledgers / "scale-in.jsonl"
    async with deployed(
        platform,
        client,
        "scalein",
        runtime={"numReplicas": 3, "concurrency": 1},
        drainTime=60,
        onReset="failed",
        maxAttempts=1,
    ) as service:
        queue = f"{platform.namespace}.service.{service['id']}"
        await eventually_consumers(queue, 3)
        first = live_agents(platform.state_dir, "scalein")
        assert len(first) == 3
        long_ones = [await submit(client, service["id"], ledger, f"long{n}", 4.0) for n in (0, 1)]
        await eventually(
            "both long executions running",
            lambda: len({e.key for e in read_events(ledger) if e.event == "start"}) == 2,
            20,
        )
        await _patch(client, service["id"], {"runtime": {"numReplicas": 1, "concurrency": 1}})
        done = await await_terminal(client, service["id"], set(long_ones), timeout=60)
        assert all(e["latestStatus"]["status"] == SUCCESS for e in done.values()), done
        assert all(e["attempts"] == 1 for e in done.values())
        busy = {e["statusLog"][1]["replicaId"] for e in done.values()}
        idle = set(first) - busy
        assert len(idle) == 1
        # The idle replica went first, at once; the busy ones drained after their work ended.
        await eventually(
            "one replica left", lambda: len(live_agents(platform.state_dir, "scalein")) == 1, 30
        )
        assert set(live_agents(platform.state_dir, "scalein")) <= busy


CRASHING = {
    "main.py": b"class ServiceRunner:\n"
    b"    def __init__(self):\n"
    b"        raise RuntimeError('the model file is missing')\n\n"
    b"    def run(self):\n"
    b"        return 1\n",
}


async def test_a_crash_looping_service_is_deactivated_with_its_reason(
    client: httpx.AsyncClient,
) -> None:
    service = await deploy(client, CRASHING, "crashy")
    project = service["projectId"]

    async def notifications() -> list[dict[str, Any]]:
        response = await client.get("/notifications", params={"projectId": project})
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()
        return found

    deadline = time.monotonic() + 60
    while True:
        current = (await client.get(f"/services/{service['id']}")).json()
        if not current["active"]:
            break
        assert time.monotonic() < deadline, "the crash-looping service was never deactivated"
        await asyncio.sleep(0.5)
    found = await notifications()
    types = [n["type"] for n in found]
    assert "InitError" in types, found
    forced = [n for n in found if n["type"] == "ServiceForcedDeactivation"]
    assert len(forced) == 1, found
    assert "Service Init Function Error" in forced[0]["message"]
    assert any("the model file is missing" in line for line in forced[0]["logTail"]), forced
    assert current["crashloop"], current
    # Reactivation is one call, and starts clean.
    resumed = await client.post(f"/services/{service['id']}/resume")
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["active"] is True
    assert not resumed.json().get("crashloop")
    await client.post(f"/services/{service['id']}/stop")


async def test_force_update_kills_running_work_at_once(
    platform: LocalPlatform, client: httpx.AsyncClient, ledgers: Path
) -> None:
    ledger = ledgers / "force.jsonl"
    async with deployed(
        platform,
        client,
        "forced",
        runtime={"numReplicas": 1, "concurrency": 1},
        drainTime=600,
        onReset="failed",
        maxAttempts=1,
    ) as service:
        queue = f"{platform.namespace}.service.{service['id']}"
        await eventually_consumers(queue, 1)
        slow = await submit(client, service["id"], ledger, "slow", 60.0)
        await eventually("the slow execution running", lambda: bool(read_events(ledger)), 20)
        started = time.monotonic()
        await _patch(client, service["id"], {"executionTimeout": 1000}, force="true")
        done = await await_terminal(client, service["id"], {slow}, timeout=30)
        assert done[slow]["latestStatus"]["status"] == "failed", done[slow]
        assert time.monotonic() - started < 20  # not drainTime (600 s)
        await eventually_consumers(queue, 1)  # the new revision serves


async def test_every_process_serves_liveness_readiness_and_metrics(
    platform: LocalPlatform, client: httpx.AsyncClient, ledgers: Path
) -> None:
    async with deployed(platform, client, "probed", runtime={"numReplicas": 1}) as service:
        queue = f"{platform.namespace}.service.{service['id']}"
        await eventually_consumers(queue, 1)
        done = await await_terminal(
            client,
            service["id"],
            {await submit(client, service["id"], ledgers / "probed.jsonl", "p", 0.01)},
            timeout=30,
        )
        assert [e["latestStatus"]["status"] for e in done.values()] == [SUCCESS]
        (replica,) = live_agents(platform.state_dir, "probed")
        port = (platform.state_dir / "replicas" / replica / "ops.port").read_text().strip()
        urls = {name: platform.ops_url(name) for name in platform.processes}
        urls["agent"] = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(timeout=10) as ops:
            for name, url in urls.items():
                assert url is not None, name
                assert (await ops.get(f"{url}/livez")).status_code == 200, name
                assert (await ops.get(f"{url}/readyz")).status_code == 200, name
                text = (await ops.get(f"{url}/metrics")).text
                assert "spool_bus_reconnects_total" in text, name
            ready = (await ops.get(f"{urls['agent']}/readyz")).json()
            assert ready["running"] == 0
            sid = service["id"]
            gateway = (await ops.get(f"{urls['gateway']}/metrics")).text
            assert f'spool_executions_total{{service_id="{sid}",status="success"}} 1.0' in gateway
            assert f'spool_execution_latency_seconds_count{{service_id="{sid}"}} 1.0' in gateway
            # The scheduler exports replica counts once per reconcile round (1 s).
            ready = f'spool_replicas{{service_id="{sid}",state="ready"}} 1.0'
            for _ in range(50):
                scheduler = (await ops.get(f"{urls['scheduler']}/metrics")).text
                if ready in scheduler:
                    break
                await asyncio.sleep(0.1)
            assert ready in scheduler
