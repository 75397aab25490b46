"""T28, secret hygiene with a canary (reference/reliability.md §5.2): a project secret whose
value is a unique canary reaches the user's code as an environment variable, and the platform
itself never shows it: not in an API answer, a bus message, a service's log (at DEBUG) or a
database row, where the value is ciphertext.

The policy (docs/architecture.md, "Secrets"): what user code prints, raises or returns is the
user's own output, and the platform carries it like any output. So the canary may appear in
the records of the executions whose code printed or raised it (their output, status messages,
logs: over the bus, in the database, in the API) and in the replica's runner.log, and nowhere
else. Executions that only use the secret must leave no trace of it at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import asyncpg
import httpx
import orjson
import pytest
import pytest_asyncio
from support.platform import SERVICES, LocalPlatform, run, running_platform

from spool_common.archive import build_archive

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

CODE = b"""
import hashlib
import os
import logging
import os
import sys


class ServiceRunner:
    def __init__(self):
        self.at_init = bool(os.environ.get("T28_CANARY"))

    def probe(self):
        value = os.environ.get("T28_CANARY", "")
        return {"atInit": self.at_init, "sha256": hashlib.sha256(value.encode()).hexdigest(),
                "spool": sorted(k for k in os.environ if k.startswith("SPOOL_")),
                "plain": os.environ.get("T28_PLAIN")}

    def shout(self):
        print("env:", dict(os.environ))
        print("stderr:", os.environ["T28_CANARY"], file=sys.stderr)
        logging.getLogger("user").warning("logged %s", os.environ["T28_CANARY"])
        return "printed"

    def boom(self):
        raise RuntimeError("leaking " + os.environ["T28_CANARY"])

    def crash(self):
        secret = os.environ["T28_CANARY"]
        return {}[secret]  # KeyError: a traceback whose message is the value
"""

PACKAGE = orjson.dumps(
    {
        "name": "t28",
        "modules": [
            {
                "name": "default_module",
                "functions": [{"name": n} for n in ("probe", "shout", "boom", "crash")],
            }
        ],
    }
)
LOUD = ("shout", "boom", "crash")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(
    tmp_path_factory: pytest.TempPathFactory, servers: None
) -> AsyncIterator[LocalPlatform]:
    """Every service logs at DEBUG."""
    root = tmp_path_factory.mktemp("platform")
    async with running_platform(root, extra_env={"SPOOL_LOG_LEVEL": "debug"}) as p:
        yield p


@dataclass
class Hits:
    """What was searched, how much, and where the canary was found (allowed or not)."""

    searched: dict[str, int] = field(default_factory=dict)
    allowed: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)

    def add(self, kind: str, amount: int = 1) -> None:
        self.searched[kind] = self.searched.get(kind, 0) + amount


def _rabbitmqctl(command: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", command], check=True, timeout=60, capture_output=True)


class Tap:
    """Every message published to the namespace's exchanges, through RabbitMQ's firehose
    (`rabbitmqctl trace_on`): a copy of each publish goes to amq.rabbitmq.trace with the
    routing key `publish.<exchange>`. Binding to the exchanges themselves cannot see the
    direct ones, whose keys (service and replica ids) are not known beforehand."""

    def __init__(self, amqp_url: str, namespace: str) -> None:
        self.amqp_url = amqp_url
        self.namespace = namespace
        self.messages: list[tuple[str, bytes]] = []

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Tap]:
        await asyncio.to_thread(_rabbitmqctl, "trace_on")
        connection = await aio_pika.connect(self.amqp_url)
        try:
            channel = await connection.channel()
            queue = await channel.declare_queue(exclusive=True)
            await queue.bind("amq.rabbitmq.trace", f"publish.{self.namespace}.#")
            yield self
            await asyncio.sleep(1.0)  # the last reports' copies
            while (message := await queue.get(fail=False, no_ack=True)) is not None:
                exchange = str((message.headers or {}).get("exchange_name", "?"))
                self.messages.append((exchange, message.body))
        finally:
            await connection.close()
            await asyncio.to_thread(_rabbitmqctl, "trace_off")


def scrub(value: Any, loud: set[str]) -> Any:
    """The JSON without the records of the executions whose code printed the canary."""
    if isinstance(value, dict):
        if loud & {value.get("id"), value.get("executionId")}:
            return "<a loud execution>"
        return {k: scrub(v, loud) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, loud) for v in value]
    return value


async def deploy_with_secret(client: httpx.AsyncClient, canary: str) -> dict[str, Any]:
    project = (await client.post("/projects", json={"name": f"t28-{uuid.uuid4().hex[:8]}"})).json()
    secret = {"name": "T28_CANARY", "value": canary}
    created = await client.post(f"/projects/{project['id']}/secrets", json=secret)
    assert created.status_code == 201, created.text
    files = {"main.py": CODE, "package.json": PACKAGE}
    upload = {"codebase": ("code.zip", build_archive(files), "application/zip")}
    pushed = await client.post("/packages", files=upload, data={"projectId": project["id"]})
    assert pushed.status_code == 201, pushed.text
    body = {
        "name": "t28",
        "projectId": project["id"],
        "packageId": pushed.json()["id"],
        "secrets": ["T28_CANARY"],
        "maxAttempts": 1,
        # The secret wins over a service variable of the same name.
        "runtime": {"env": {"T28_CANARY": "from-service-env", "T28_PLAIN": "plain"}},
    }
    deployed = await client.post("/services", json=body)
    assert deployed.status_code == 201, deployed.text
    result: dict[str, Any] = deployed.json()
    return result


async def logs_done(client: httpx.AsyncClient, execution_id: str) -> None:
    for _ in range(100):
        body = (await client.get(f"/executions/{execution_id}/logs")).json()
        if any(e["message"] == "[Done] Executing function." for e in body["logs"]):
            return
        await asyncio.sleep(0.1)


async def walk_api(
    platform: LocalPlatform, client: httpx.AsyncClient, ids: dict[str, str], loud: set[str]
) -> tuple[Hits, list[str]]:
    """GET every path of the gateway's OpenAPI document whose parameters we can fill."""
    hits, skipped = Hits(), []
    async with httpx.AsyncClient(base_url=platform.url, headers=client.headers) as root:
        spec = await root.get("/openapi.json")
    paths = [p for p, ops in spec.json()["paths"].items() if "get" in ops]
    urls = [(p, p) for p in paths]
    urls += [(f"/api/v1/executions/{i}/logs", "loud logs") for i in loud]
    urls += [(f"/api/v1/executions/{i}", "loud execution") for i in loud]
    for path, label in urls:
        try:
            url = path.format(**ids)
        except KeyError:
            skipped.append(path)
            continue
        response = await client.get(url.removeprefix("/api/v1"), params={"limit": 1000})
        hits.add("responses")
        hits.add("response bytes", len(response.content))
        if ids["canary"] not in response.text:
            continue
        clean = label.startswith("loud") or ids["canary"] not in orjson.dumps(
            scrub(response.json(), loud)
        ).decode(errors="replace")
        (hits.allowed if clean else hits.leaks).append(f"GET {url} {response.status_code}")
    hits.add("responses")
    if ids["canary"] in spec.text:
        hits.leaks.append("GET /openapi.json")
    return hits, skipped


def grep_logs(platform: LocalPlatform, canary: str) -> Hits:
    hits = Hits()
    files = [*(platform.root / "logs").glob("*.log"), *platform.state_dir.rglob("*.log")]
    for path in files:
        text = path.read_bytes()
        hits.add("log files")
        hits.add("log bytes", len(text))
        if canary.encode() in text:
            (hits.allowed if path.name == "runner.log" else hits.leaks).append(str(path))
    return hits


async def scan_database(platform: LocalPlatform, canary: str, loud: set[str]) -> Hits:
    """Every row of every table of the platform's schemas, as text (bytea as hex)."""
    hits = Hits()
    needles = (canary, canary.encode().hex())
    connection = await asyncpg.connect(platform.database_url)
    try:
        for service in SERVICES:
            schema = platform.schema(service)
            tables = await connection.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 "
                "AND table_type = 'BASE TABLE'",
                schema,
            )
            for table in tables:
                name = f'"{schema}"."{table["table_name"]}"'
                query = f"SELECT row_to_json(t)::text AS r FROM {name} t"  # noqa: S608 - catalog names
                rows = await connection.fetch(query)
                hits.add("tables")
                hits.add("rows", len(rows))
                for row in rows:
                    if any(n in row["r"] for n in needles):
                        where = f"{name}: {row['r'][:200]}"
                        loud_row = any(i in row["r"] for i in loud)
                        (hits.allowed if loud_row else hits.leaks).append(where)
    finally:
        await connection.close()
    return hits


def tapped(tap: Tap, canary: str, loud: set[str]) -> Hits:
    hits = Hits()
    for exchange, body in tap.messages:
        hits.add("messages")
        hits.add(f"messages via {exchange}")
        if canary.encode() in body:
            loud_message = any(i.encode() in body for i in loud)
            (hits.allowed if loud_message else hits.leaks).append(f"{exchange}: {body[:200]!r}")
    return hits


async def test_t28_the_canary_reaches_user_code_and_leaks_nowhere(
    platform: LocalPlatform, client: httpx.AsyncClient
) -> None:
    canary = f"t28-canary-{uuid.uuid4().hex}"
    tap = Tap(platform.env["SPOOL_AMQP_URL"], platform.namespace)
    async with tap.running():
        service = await deploy_with_secret(client, canary)
        quiet = await run(client, service["id"], {}, function="probe")
        loud = {f: await run(client, service["id"], {}, function=f) for f in LOUD}
        again = await run(client, service["id"], {}, function="probe")
        for execution in loud.values():
            await logs_done(client, execution["id"])
        stopped = await client.post(f"/services/{service['id']}/stop")
        assert stopped.status_code == 200, stopped.text

    # Delivered: present at init and in calls, over the service's env; of SPOOL_* only the
    # API's address and the bot's token (test_bot_identity.py).
    digest = hashlib.sha256(canary.encode()).hexdigest()
    for probe in (quiet, again):
        assert probe["latestStatus"]["status"] == "success", probe
        assert probe["output"] == {
            "atInit": True,
            "sha256": digest,
            "spool": ["SPOOL_TOKEN", "SPOOL_URL"],
            "plain": "plain",
        }
    assert loud["shout"]["latestStatus"]["status"] == "success"
    assert canary in loud["boom"]["latestStatus"]["message"]  # the user's own error, shown
    assert loud["crash"]["latestStatus"]["status"] == "failed"
    shouted = (await client.get(f"/executions/{loud['shout']['id']}/logs")).json()
    assert any(canary in e["message"] for e in shouted["logs"])  # the user's own print, kept

    loud_ids = {e["id"] for e in loud.values()}
    ids = {
        "project_id": service["projectId"],
        "service_id": service["id"],
        "package_id": service["packageId"],
        "execution_id": quiet["id"],
        "name": "T28_CANARY",
        "canary": canary,
    }
    api, skipped = await walk_api(platform, client, ids, loud_ids)
    bus = tapped(tap, canary, loud_ids)
    logs = grep_logs(platform, canary)
    db = await scan_database(platform, canary, loud_ids)
    sealed = await stored_ciphertext(platform, service["projectId"])

    report = {
        "api": {**api.searched, "skipped": skipped, "allowed": len(api.allowed)},
        "bus": {**bus.searched, "allowed": len(bus.allowed)},
        "logs": {**logs.searched, "allowed": len(logs.allowed)},
        "db": {**db.searched, "allowed": len(db.allowed)},
        "leaks": api.leaks + bus.leaks + logs.leaks + db.leaks,
    }
    print("T28", orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    assert report["leaks"] == [], report
    # The searches saw something, and found what the user printed where it should be.
    assert api.searched["responses"] >= 15
    assert bus.searched.get("messages", 0) >= 10
    assert logs.searched["log bytes"] > 0
    assert db.searched["rows"] > 0
    assert api.allowed
    assert bus.allowed
    assert db.allowed
    assert canary.encode() not in sealed
    assert len(sealed) > len(canary)


async def stored_ciphertext(platform: LocalPlatform, project_id: str) -> bytes:
    connection = await asyncpg.connect(platform.database_url)
    try:
        value: bytes = await connection.fetchval(
            f'SELECT ciphertext FROM "{platform.schema("gateway")}".project_secrets '  # noqa: S608
            "WHERE project_id = $1",
            project_id,
        )
    finally:
        await connection.close()
    return value
