"""The whole platform as real processes, isolated by namespace: its own bus names, its own
schemas, its own gateway port and state directory. Used by the end-to-end tests."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson

from spool_common.archive import build_archive
from spool_common.store.pg import TRANSIENT_ERRORS, drop_schema

SERVICES = ("gateway", "scheduler", "autoscaler", "trigger-engine")

# A package of one module whose `run(name)` answers "hello <name>".
HELLO = {
    "main.py": b"class ServiceRunner:\n    def run(self, name):\n        return 'hello ' + name\n",
    "package.json": orjson.dumps(
        {
            "name": "hello",
            "modules": [
                {"functions": [{"name": "run", "input": [{"name": "name", "type": "String"}]}]}
            ],
        }
    ),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalPlatform:
    def __init__(
        self,
        root: Path,
        namespace: str,
        amqp_url: str,
        database_url: str,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.root = root
        self.namespace = namespace
        self.database_url = database_url
        self.url = f"http://127.0.0.1:{free_port()}"
        self.token = f"spu_test_{namespace}"
        self.state_dir = root / "state"
        # The key project secrets are sealed with; only the gateway is given it.
        self.secrets_key = base64.b64encode(os.urandom(32)).decode()
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.env = {
            **{k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ},
            "SPOOL_AMQP_URL": amqp_url,
            "SPOOL_DATABASE_URL": database_url,
            "SPOOL_BUS_NAMESPACE": namespace,
            "SPOOL_GATEWAY_URL": self.url,
            "SPOOL_STATE_DIR": str(self.state_dir),
            "SPOOL_ADMIN_TOKEN": self.token,
            "SPOOL_LOG_LEVEL": "info",
            # Scaled-down time: leases expire in 3 s, agents renew every second.
            "SPOOL_LEASE_SECONDS": "3",
            "SPOOL_REAPER_INTERVAL": "0.5",
            "SPOOL_AGENT_LEASE_RENEW_INTERVAL": "1",
            **(extra_env or {}),  # e.g. a lower SPOOL_MAX_UPLOAD_BYTES; for every service
        }

    def schema(self, service: str) -> str:
        return f"{service.replace('-', '_')}_{self.namespace}"

    async def start(self) -> None:
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        for name in SERVICES:
            await self.start_service(name)
        await self.wait_healthy()

    async def start_service(
        self, name: str, instance: str | None = None, extra_env: dict[str, str] | None = None
    ) -> None:
        """Start a service; `instance` starts one more process of it (e.g. a second trigger
        engine), keyed `<name>@<instance>`, with a state directory of its own; `extra_env`
        is for this process only (e.g. SPOOL_FAILPOINTS for one life of the gateway)."""
        key = name if instance is None else f"{name}@{instance}"
        env = {**self.env, "SPOOL_DB_SCHEMA": self.schema(name), **(extra_env or {})}
        if instance is not None:
            env["SPOOL_STATE_DIR"] = str(self._state_of(key))
        if name == "gateway":
            env["SPOOL_PORT"] = self.url.rsplit(":", 1)[1]
            env.setdefault("SPOOL_SECRETS_KEY", self.secrets_key)
        module = "spool_" + name.replace("-", "_")
        with (self.root / "logs" / f"{key}.log").open("ab") as log:
            self.processes[key] = await asyncio.create_subprocess_exec(
                sys.executable, "-m", module, env=env, stdout=log, stderr=log, cwd=self.root
            )

    def _state_of(self, key: str) -> Path:
        instance = key.partition("@")[2]
        return self.state_dir if not instance else self.root / f"state-{instance}"

    async def wait_healthy(self, timeout: float = 60.0) -> None:
        """Every service ready: the gateway on its API port, the others on the ops port each
        writes to `<state_dir>/<name>.ops.port`. A service that exits fails at once."""
        async with httpx.AsyncClient() as client:
            for name in self.processes:
                await self._wait_ready(client, name, timeout)

    async def _wait_ready(self, client: httpx.AsyncClient, name: str, timeout: float) -> None:
        for _ in range(int(timeout / 0.1)):
            url = self.ops_url(name)
            if url is not None:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{url}/readyz")).status_code == 200:
                        return
            if self.processes[name].returncode is not None:
                break
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{name} not ready; log:\n{self.log(name)[-3000:]}")

    def ops_url(self, name: str) -> str | None:
        """Where a service serves /livez, /readyz and /metrics (None: not yet known)."""
        if name == "gateway":
            return self.url
        service = name.partition("@")[0]
        try:
            port = int((self._state_of(name) / f"{service}.ops.port").read_text())
        except (OSError, ValueError):
            return None
        return f"http://127.0.0.1:{port}"

    def log(self, name: str) -> str:
        path = self.root / "logs" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def agent_logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in self.state_dir.glob("replicas/*/agent.log")
        )

    async def stop_service(self, name: str, sig: int = signal.SIGTERM) -> int:
        process = self.processes[name]
        if process.returncode is None:
            process.send_signal(sig)
        try:
            return await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            return await process.wait()

    async def stop(self) -> None:
        await asyncio.gather(*(self.stop_service(n) for n in self.processes))
        for name in SERVICES:
            # A throwaway cluster may be stopped or gone by now, and its schemas with it.
            with contextlib.suppress(*TRANSIENT_ERRORS):
                await drop_schema(self.database_url, self.schema(name))

    def client(self) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.AsyncClient(base_url=f"{self.url}/api/v1", headers=headers, timeout=60)


@contextlib.asynccontextmanager
async def running_platform(
    root: Path,
    extra_env: dict[str, str] | None = None,
    amqp_url: str | None = None,
    database_url: str | None = None,
) -> AsyncIterator[LocalPlatform]:
    """A whole platform in a namespace of its own, on the shared servers; stopped and its
    schemas, exchanges and queues removed on the way out. With `amqp_url` (a throwaway node
    of the caller's, see support/rabbit_node.py), on that broker instead, which the caller
    removes whole; with `database_url` (a throwaway cluster, support/pg_cluster.py), on that
    PostgreSQL instead."""
    from support.broker import delete_namespace, queues_with_prefix
    from support.servers import AMQP_URL, DATABASE_URL

    namespace = f"e{uuid.uuid4().hex[:10]}"
    broker = amqp_url or AMQP_URL
    database = database_url or DATABASE_URL
    platform = LocalPlatform(root, namespace, broker, database, extra_env=extra_env)
    try:
        await platform.start()
        yield platform
    finally:
        await platform.stop()
        if amqp_url is None:
            queues = await asyncio.to_thread(queues_with_prefix, f"{namespace}.")
            await delete_namespace(AMQP_URL, namespace, queues)


async def deploy(
    client: httpx.AsyncClient, files: dict[str, bytes], name: str, **service: Any
) -> dict[str, Any]:
    """Create a project, push `files` as a package and deploy it as a service."""
    project = (await client.post("/projects", json={"name": f"p-{name}"})).json()
    upload = {"codebase": ("code.zip", build_archive(files), "application/zip")}
    response = await client.post("/packages", files=upload, data={"projectId": project["id"]})
    assert response.status_code == 201, response.text
    package = response.json()
    body = {"name": name, "projectId": project["id"], "packageId": package["id"], **service}
    response = await client.post("/services", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def run(
    client: httpx.AsyncClient, service_id: str, inputs: dict[str, Any], function: str = "run"
) -> dict[str, Any]:
    """Create an execution and wait for it to end (server-side wait)."""
    body = {"functionName": function, "input": inputs}
    created = await client.post(f"/executions/{service_id}", json=body)
    assert created.status_code == 201, created.text
    return await wait(client, created.json()["id"])


async def wait(client: httpx.AsyncClient, execution_id: str, timeout: float = 60) -> dict[str, Any]:
    response = await client.get(f"/executions/{execution_id}/wait", params={"timeout": timeout})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def wait_for_status(
    client: httpx.AsyncClient, execution_id: str, status: str, timeout: float = 10
) -> dict[str, Any]:
    """Poll until the execution's latest status is `status` (for tests that act mid-run)."""
    for _ in range(int(timeout / 0.05)):
        current: dict[str, Any] = (await client.get(f"/executions/{execution_id}")).json()
        if current["latestStatus"]["status"] == status:
            return current
        await asyncio.sleep(0.05)
    raise AssertionError(f"execution {execution_id} never reached {status}: {current}")
