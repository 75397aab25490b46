"""End to end: the four services and their agents as real processes on the real servers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import httpx
import orjson
import pytest
import pytest_asyncio
from support.platform import LocalPlatform, deploy, run, wait, wait_for_status

from spool_common.messages import ExecutionRequested, encode

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

ROOT = Path(__file__).resolve().parents[2]

SLEEPER = {
    "main.py": b"""
import os, time

class ServiceRunner:
    def run(self, seconds, progress=None):
        time.sleep(seconds)
        return {"pid": os.getpid(), "slept": seconds}
""",
    "package.json": orjson.dumps(
        {
            "name": "sleeper",
            "modules": [
                {
                    "name": "default_module",
                    "functions": [{"name": "run", "input": [{"name": "seconds", "type": "Float"}]}],
                }
            ],
        }
    ),
}


@pytest_asyncio.fixture(loop_scope="module")
async def client(platform: LocalPlatform) -> AsyncIterator[httpx.AsyncClient]:
    async with platform.client() as c:
        yield c


def _run_demo(platform: LocalPlatform) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SPOOL_GATEWAY_URL": platform.url, "SPOOL_ADMIN_TOKEN": platform.token}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_the_demo_prints_a_successful_hello_world_execution_last(
    platform: LocalPlatform,
) -> None:
    for _ in range(2):  # running it again works, reusing what the first run deployed
        done = await asyncio.to_thread(_run_demo, platform)
        assert done.returncode == 0, done.stderr + platform.agent_logs()[-3000:]
        execution = orjson.loads(done.stdout.strip().splitlines()[-1])
        assert execution["latestStatus"]["status"] == "success"
        assert execution["output"] == "hello world"
        statuses = [e["status"] for e in execution["statusLog"]]
        assert statuses == ["created", "in-progress", "success"]
        assert execution["attempts"] == 1
        assert execution["latestStatus"]["replicaId"].startswith("hello-")


async def test_openapi_is_served(platform: LocalPlatform) -> None:
    async with httpx.AsyncClient() as c:
        spec = (await c.get(f"{platform.url}/openapi.json")).json()
    assert "/api/v1/executions/{service_id}" in spec["paths"]


async def test_a_killed_agent_is_replaced_and_its_execution_rerun(
    platform: LocalPlatform, client: httpx.AsyncClient
) -> None:
    service = await deploy(
        client,
        SLEEPER,
        "rerun",
        onReset="rerun",
        maxAttempts=3,
        runtime={"numReplicas": 1, "concurrency": 2},
    )
    first = await run(client, service["id"], {"seconds": 0.01})  # the replica is up
    assert first["latestStatus"]["status"] == "success", first
    body = {"input": {"seconds": 2.5}}
    created = (await client.post(f"/executions/{service['id']}", json=body)).json()
    current = await wait_for_status(client, created["id"], "in-progress")
    agent_pid = _agent_pid(platform, current["latestStatus"]["replicaId"])
    # The agent, mid-execution (its runner, in a session of its own, exits once the pipe closes).
    os.killpg(agent_pid, signal.SIGKILL)
    done = await wait(client, created["id"], timeout=60)
    assert done["latestStatus"]["status"] == "success", done
    assert done["attempts"] == 2
    statuses = [e["status"] for e in done["statusLog"]]
    assert statuses == ["created", "in-progress", "rerun", "in-progress", "success"]
    assert done["statusLog"][1]["replicaId"] != done["statusLog"][3]["replicaId"]


def _agent_pid(platform: LocalPlatform, replica_id: str) -> int:
    pid_file = platform.state_dir / "replicas" / replica_id / "pid"
    return int(pid_file.read_text().split()[0])


async def test_stopping_the_scheduler_drains_running_executions(
    platform: LocalPlatform, client: httpx.AsyncClient
) -> None:
    service = await deploy(
        client, SLEEPER, "drain", drainTime=30, runtime={"numReplicas": 1, "concurrency": 2}
    )
    await run(client, service["id"], {"seconds": 0.01})
    body = {"input": {"seconds": 1.5}}
    created = (await client.post(f"/executions/{service['id']}", json=body)).json()
    await wait_for_status(client, created["id"], "in-progress")
    assert await platform.stop_service("scheduler") == 0  # SIGTERM: agents drain, then exit
    done = (await client.get(f"/executions/{created['id']}")).json()
    assert done["latestStatus"]["status"] == "success", done
    assert done["attempts"] == 1
    await platform.start_service("scheduler")
    again = await run(client, service["id"], {"seconds": 0.01})
    assert again["latestStatus"]["status"] == "success"


async def test_a_poison_message_is_dead_lettered_and_the_agent_keeps_working(
    platform: LocalPlatform, client: httpx.AsyncClient
) -> None:
    service = await deploy(client, SLEEPER, "poison", runtime={"numReplicas": 1})
    await run(client, service["id"], {"seconds": 0.01})
    connection = await aio_pika.connect(platform.env["SPOOL_AMQP_URL"])
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(f"{platform.namespace}.executions")
        await exchange.publish(aio_pika.Message(b"{not json"), routing_key=service["id"])
    after = await run(client, service["id"], {"seconds": 0.01})
    assert after["latestStatus"]["status"] == "success"
    for _ in range(100):
        if "message_dead_lettered" in platform.log("gateway"):
            break
        await asyncio.sleep(0.05)
    assert platform.log("gateway").count("message_dead_lettered") == 1
    assert "poison_delivery" in platform.agent_logs()


async def test_an_execution_dead_lettered_by_the_broker_ends_failed_with_the_reason(
    platform: LocalPlatform, client: httpx.AsyncClient
) -> None:
    service = await deploy(client, SLEEPER, "expired", runtime={"numReplicas": 0})
    created = (
        await client.post(f"/executions/{service['id']}", json={"input": {"seconds": 1}})
    ).json()
    request = ExecutionRequested(
        execution_id=created["id"],
        service_id=service["id"],
        project_id=service["projectId"],
        function_name="run",
        created_at=datetime.now(UTC),
    )
    connection = await aio_pika.connect(platform.env["SPOOL_AMQP_URL"])
    async with connection:
        channel = await connection.channel()
        # A queue whose messages expire at once into Spool's dead-letter exchange.
        queue = await channel.declare_queue(
            f"{platform.namespace}.test-expiring",
            auto_delete=False,
            arguments={"x-message-ttl": 1, "x-dead-letter-exchange": f"{platform.namespace}.dead"},
        )
        await channel.default_exchange.publish(aio_pika.Message(encode(request)), queue.name)
        done = await wait(client, created["id"], timeout=20)
        await queue.delete()
    assert done["latestStatus"]["status"] == "failed"
    assert done["latestStatus"]["error"]["type"] == "DeadLettered"
    assert "expired" in done["latestStatus"]["message"]
