"""Helpers for end-to-end tests that drive the ledger package (support/ledger.py) on a
LocalPlatform: deploy it, submit work, wait for the end, and check nothing is left."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
from support.broker import queue_counts
from support.ledger import (
    IN_PROGRESS,
    LEDGER_PACKAGE,
    TERMINAL,
    ledger_input,
    live_agents,
    processes_under,
    read_events,
)
from support.platform import LocalPlatform, deploy

Execution = dict[str, Any]


def deployed(
    platform: LocalPlatform, client: httpx.AsyncClient, name: str, **service: Any
) -> contextlib.AbstractAsyncContextManager[Execution]:
    """The ledger package deployed as service `name` (see `deployed_package`)."""
    return deployed_package(platform, client, name, LEDGER_PACKAGE, **service)


@contextlib.asynccontextmanager
async def deployed_package(
    platform: LocalPlatform,
    client: httpx.AsyncClient,
    name: str,
    files: dict[str, bytes],
    **service: Any,
) -> AsyncIterator[Execution]:
    """`files` (a package that writes the ledger) deployed as service `name`. It is paused on
    the way out whatever happened, so a failed test leaves no replica for a later scheduler
    restart to bring back; on a clean exit I6 is checked too: no process of any of its
    replicas is left."""
    deployed = await deploy(client, files, name, **service)
    try:
        yield deployed
    except BaseException:
        with contextlib.suppress(Exception):
            await client.post(f"/services/{deployed['id']}/stop")
        raise
    await pause_and_check_clean(platform, client, deployed)


async def submit(
    client: httpx.AsyncClient, service_id: str, ledger: Path, key: str, seconds: float
) -> str:
    body = {"functionName": "run", "input": ledger_input(ledger, key, seconds)}
    response = await client.post(f"/executions/{service_id}", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def eventually(
    what: str, check: Callable[[], bool], timeout: float, interval: float = 0.05
) -> None:
    for _ in range(int(timeout / interval) + 1):
        if check():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"not within {timeout} s: {what}")


async def executions(client: httpx.AsyncClient, service_id: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": 1000}
    if service_id is not None:
        params["serviceId"] = service_id
    response = await client.get("/executions", params=params)
    assert response.status_code == 200, response.text
    return {e["id"]: e for e in response.json()}


async def await_terminal(
    client: httpx.AsyncClient, service_id: str, ids: set[str], timeout: float
) -> dict[str, Execution]:
    """Every execution in `ids` as it is once all are terminal, or when `timeout` runs out."""
    deadline = time.monotonic() + timeout
    while True:
        found = await executions(client, service_id)
        ended = [i for i in ids if found[i]["latestStatus"]["status"] in TERMINAL]
        if len(ended) == len(ids) or time.monotonic() > deadline:
            return {i: found[i] for i in ids}
        await asyncio.sleep(0.5)


async def ready_messages(platform: LocalPlatform, service_id: str) -> int:
    queue = f"{platform.namespace}.service.{service_id}"
    ready, _ = await queue_counts(platform.env["SPOOL_AMQP_URL"], queue)
    return ready


async def await_no_ready_messages(platform: LocalPlatform, service_id: str) -> None:
    """I6: nothing left in the service queue (a duplicate the broker redelivers is consumed
    and refused by the claim shortly after)."""
    ready = -1
    for _ in range(50):
        ready = await ready_messages(platform, service_id)
        if ready == 0:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{ready} messages still ready in the queue of {service_id}")


async def await_replicas(platform: LocalPlatform, name: str, count: int) -> dict[str, int]:
    """The service's `count` agents (replica id -> pid), once each has said agent_ready."""

    def ready() -> bool:
        agents = live_agents(platform.state_dir, name)
        logs = [platform.state_dir / "replicas" / r / "agent.log" for r in agents]
        return len(agents) == count and all(
            p.exists() and "agent_ready" in p.read_text(errors="replace") for p in logs
        )

    await eventually(f"{count} ready replicas of {name}", ready, 60, 0.1)
    return live_agents(platform.state_dir, name)


async def first_start_after(
    ledger: Path, after: float, timeout: float, keys: set[str] | None = None
) -> float:
    """When (time.time()) the first run (of `keys`, if given) started after `after`: when
    work resumed after a fault."""

    def starts() -> list[float]:
        return [
            e.t
            for e in read_events(ledger)
            if e.event == "start" and e.t > after and (keys is None or e.key in keys)
        ]

    await eventually(f"a run started after {after:.1f}", lambda: bool(starts()), timeout)
    return min(starts())


def replica_processes(platform: LocalPlatform, name: str) -> list[int]:
    dirs = (platform.state_dir / "replicas").glob(f"{name}-*")
    return [pid for d in dirs for pid in processes_under(d)]


async def pause_and_check_clean(
    platform: LocalPlatform, client: httpx.AsyncClient, service: Execution
) -> None:
    """I6: pausing the service stops its replicas, no agent, runner or user process of any of
    its replicas (killed ones included) is left, its queue holds no message and has no
    consumer, and none of its executions stays in progress (the reaper settles a run whose
    replica is gone within a lease)."""
    response = await client.post(f"/services/{service['id']}/stop")
    assert response.status_code == 200, response.text
    name = service["name"]
    await eventually(
        f"no process left of {name}: {replica_processes(platform, name)}",
        lambda: not replica_processes(platform, name),
        30,
        0.1,
    )
    queue = f"{platform.namespace}.service.{service['id']}"
    counts = (-1, -1)
    for _ in range(50):  # unacked messages of stopped agents return to ready first
        counts = await queue_counts(platform.env["SPOOL_AMQP_URL"], queue)
        if counts == (0, 0):
            break
        await asyncio.sleep(0.2)
    assert counts == (0, 0), f"{name}'s queue holds (ready, consumers) = {counts} after a pause"
    lease = float(platform.env.get("SPOOL_LEASE_SECONDS", "3"))
    running: list[str] = []
    for _ in range(int((lease + 5) / 0.25)):
        found = await executions(client, service["id"])
        running = [i for i, e in found.items() if e["latestStatus"]["status"] == IN_PROGRESS]
        if not running:
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"in progress without a replica: {running}")
