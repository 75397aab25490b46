"""Spool's side of the throughput and latency benchmarks (issue 8), on a whole local platform.

    .venv/bin/python bench/spool_bench.py throughput -n 20000 [--replicas 2 --concurrency 100]
        [--services 1000] [--stored 1000000] [--single]
    .venv/bin/python bench/spool_bench.py latency -n 1000
    .venv/bin/python bench/spool_bench.py autoscale -n 5
    .venv/bin/python bench/spool_bench.py dashboard -n 200 [--services 100 --stored 1000000]

Each run starts the platform (gateway, scheduler, autoscaler, trigger engine; process driver)
in a namespace of its own on the shared RabbitMQ and PostgreSQL, deploys `bench/noop` (one
function that does nothing), waits for its replicas, measures, then stops everything and drops
its schemas, exchanges and queues. Durability is the platform's default and is never relaxed
here: synchronous commits, persistent messages on quorum queues, publisher confirms, the full
status log.

throughput: N executions are created through the API as fast as one client can (the batch
endpoint, 500 a request, 4 requests in flight; `--single`: one POST each, 64 in flight); the
time runs from the first create to the last success recorded (`finished_at` of the last
execution, read from PostgreSQL). `--services K` deploys K-1 more services of the same package
with no replicas (the load stays on the first); `--stored M` writes M finished executions to the
store first. The box's busy CPU over the same window gives the CPU per execution.

latency: N sequential executions, one in flight. `http`: POST /executions then GET …/wait, as a
client sees them; `path`: the execution's success timestamp (stamped by the agent) minus its
createdAt (stamped by the gateway before the insert).

dashboard: what the dashboard's polling costs. `--services K` services with no replicas in one
project and `--stored M` finished executions spread over them and over the last day, then `-n`
rounds of each read a page polls: the services page (GET /services, /services/load and
/services/status; and, for comparison, the same page reading one GET /services/{id}/status per
service as it did at first, six at a time as a browser does over HTTP/1.1), a service page's
load (60 s window) and chart (1 h window), and the executions page filtered by function and
the last hour. Latency is per page poll, as the browser waits for it.

Prints one JSON line (bench/measure.py's Result) on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvloop

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent / "tests")]

from measure import BoxCpu, Result, log, process_cpu, summary_ms  # noqa: E402  (paths set above)
from support.broker import await_consumers  # noqa: E402
from support.platform import LocalPlatform, running_platform  # noqa: E402
from support.rabbit_node import rabbit_node  # noqa: E402
from support.servers import AMQP_URL  # noqa: E402

from spool_common.archive import build_archive  # noqa: E402

# The platform's production timings (the e2e tests scale them down).
PRODUCTION_ENV = {
    "SPOOL_LEASE_SECONDS": "30",
    "SPOOL_REAPER_INTERVAL": "5",
    "SPOOL_AGENT_LEASE_RENEW_INTERVAL": "10",
    "SPOOL_LOG_LEVEL": "info",
}
BATCH = 500


def _role(cmdline: bytes) -> str | None:
    args = cmdline.split(b"\0")
    text = b" ".join(args)
    if b"beam.smp" in args[0]:
        return "rabbitmq"
    if args[0].startswith(b"postgres"):
        return "postgresql"
    if b"spool_agent.runner" in text:
        return "runner"
    for name in (b"gateway", b"scheduler", b"autoscaler", b"trigger_engine", b"agent"):
        if b"spool_" + name in text:
            return name.decode().replace("_", "-")
    if b"spool_bench.py" in text:
        return "bench client"
    return None


def cpu_by_role() -> dict[str, float]:
    """CPU seconds used so far by the platform's processes, the servers and this client,
    by role (processes that ended during the window are not counted)."""
    totals: dict[str, float] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            role = _role((proc / "cmdline").read_bytes())
            if role is not None:
                totals[role] = totals.get(role, 0.0) + process_cpu([int(proc.name)], children=False)
        except OSError:
            continue
    return totals


def cpu_split(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, float]:
    """Microseconds of CPU per execution, by role."""
    return {
        role: round((after[role] - before.get(role, 0.0)) * 1e6 / n)
        for role in sorted(after, key=lambda r: before.get(r, 0.0) - after[r])
    }


def _files() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (BENCH / "noop").iterdir() if p.is_file()}


async def _check(response: httpx.Response, status: int = 200) -> Any:
    if response.status_code != status:
        sys.exit(f"{response.request.method} {response.request.url} → {response.text}")
    return response.json()


async def push(client: httpx.AsyncClient, project: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A project and `bench/noop` pushed into it."""
    created = await _check(await client.post("/projects", json={"name": project}), 201)
    upload = {"codebase": ("code.zip", build_archive(_files()), "application/zip")}
    package = await _check(
        await client.post("/packages", files=upload, data={"projectId": created["id"]}), 201
    )
    return created, package


async def deploy(
    client: httpx.AsyncClient, replicas: int, concurrency: int, services: int
) -> dict[str, Any]:
    """The loaded service (and `services - 1` idle ones), ready to run."""
    project, package = await push(client, "bench")

    async def create(name: str, runtime: dict[str, int]) -> dict[str, Any]:
        body = {
            "name": name,
            "projectId": project["id"],
            "packageId": package["id"],
            "runtime": runtime,
            "maxAttempts": 3,
        }
        found: dict[str, Any] = await _check(await client.post("/services", json=body), 201)
        return found

    service = await create("noop", {"numReplicas": replicas, "concurrency": concurrency})
    for start in range(1, services, 50):
        names = [f"idle-{i:04d}" for i in range(start, min(start + 50, services))]
        await asyncio.gather(*(create(name, {"numReplicas": 0}) for name in names))
    if services > 1:
        log(f"deployed {services - 1} idle services")
    # Every replica up: as many executions at once as there are replicas, each must succeed.
    for _ in range(3):
        await run_one(client, service["id"], patience=10)
    await _await_replicas(client, service["id"], replicas)
    return service


async def _await_replicas(client: httpx.AsyncClient, service_id: str, replicas: int) -> None:
    for _ in range(600):
        status = await _check(await client.get(f"/services/{service_id}/status"))
        ready = [r for r in status["runtimeStatus"] if r["state"] == "ready"]
        if len(ready) >= replicas:
            return
        await asyncio.sleep(0.1)
    sys.exit(f"the service's {replicas} replicas did not become ready: {status}")


async def run_one(client: httpx.AsyncClient, service_id: str, patience: int = 1) -> dict[str, Any]:
    """One execution, created and awaited (for up to `patience` minutes)."""
    created = await _check(
        await client.post(f"/executions/{service_id}", json={"functionName": "noop"}), 201
    )
    done: dict[str, Any] = {}
    for _ in range(patience):
        done = await _check(
            await client.get(f"/executions/{created['id']}/wait", params={"timeout": 60})
        )
        if done["latestStatus"]["status"] not in ("created", "in-progress"):
            break
    if done["latestStatus"]["status"] != "success":
        sys.exit(f"execution ended {done['latestStatus']}")
    return done


async def store_history(platform: LocalPlatform, service_id: str, count: int) -> None:
    """`count` finished executions of the service, written straight to the store (what a
    year of use leaves behind), then vacuumed and analysed as autovacuum would."""
    await _store_generated(
        platform,
        count,
        "INSERT INTO executions (id, project_id, service_id, function_name, input, "
        "status, status_log, attempts, max_attempts, meta, creator, created_at, "
        "updated_at, finished_at, kind) "
        "SELECT 'hist-' || g, s.project_id, s.id, 'noop', '{}'::jsonb, 'success', "
        "jsonb_build_array(jsonb_build_object('status', 'created', 'timestamp', "
        "now()), jsonb_build_object('status', 'success', 'timestamp', now())), "
        "1, 3, '{}'::jsonb, 'bench', now() - interval '1 day', now(), now(), "
        "'execution' FROM generate_series($2::int, $3::int) g, services s "
        "WHERE s.id = $1",
        service_id,
    )


async def _store_generated(
    platform: LocalPlatform, count: int, insert: str, key: str, *extra: Any
) -> None:
    """Run `insert` for g in [0, count) by 100,000 (its $2 and $3; $1 is `key`, then
    `extra`), then VACUUM ANALYZE as autovacuum would."""
    conn = await asyncpg.connect(platform.database_url)
    try:
        await conn.execute(f"SET search_path TO {platform.schema('gateway')}")
        started = time.perf_counter()
        for offset in range(0, count, 100_000):
            await conn.execute(insert, key, offset, min(offset + 100_000, count) - 1, *extra)
        await conn.execute("VACUUM ANALYZE executions")
        log(f"stored {count} executions in {time.perf_counter() - started:.0f} s")
    finally:
        await conn.close()


async def _create_all(client: httpx.AsyncClient, service_id: str, n: int, single: bool) -> None:
    if single:
        slots = asyncio.Semaphore(64)

        async def one() -> None:
            async with slots:
                await _check(
                    await client.post(f"/executions/{service_id}", json={"functionName": "noop"}),
                    201,
                )

        await asyncio.gather(*(one() for _ in range(n)))
        return
    slots = asyncio.Semaphore(4)

    async def batch(size: int) -> None:
        body = {"executions": [{"functionName": "noop"}] * size}
        async with slots:
            await _check(await client.post(f"/executions/{service_id}/batch", json=body), 201)

    await asyncio.gather(*(batch(min(BATCH, n - i)) for i in range(0, n, BATCH)))


async def _await_done(platform: LocalPlatform, service_id: str, n: int, since: datetime) -> float:
    """Wait until n executions created since `since` succeeded; the last one's finished_at."""
    conn = await asyncpg.connect(platform.database_url)
    try:
        await conn.execute(f"SET search_path TO {platform.schema('gateway')}")
        while True:
            row = await conn.fetchrow(
                "SELECT count(*) FILTER (WHERE status = 'success') AS done, "
                "count(*) FILTER (WHERE status IN ('failed', 'terminated')) AS bad, "
                "max(finished_at) AS last FROM executions "
                "WHERE service_id = $1 AND created_at >= $2",
                service_id,
                since,
            )
            if row["bad"]:
                sys.exit(f"{row['bad']} executions did not succeed")
            if row["done"] >= n:
                phases = await conn.fetchrow(
                    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM "
                    "started_at - created_at)) AS queued, percentile_cont(0.5) WITHIN GROUP "
                    "(ORDER BY extract(epoch FROM finished_at - started_at)) AS running "
                    "FROM executions WHERE service_id = $1 AND created_at >= $2",
                    service_id,
                    since,
                )
                log(
                    f"median queued {phases['queued'] * 1000:.1f} ms, "
                    f"median claimed → finished {phases['running'] * 1000:.1f} ms"
                )
                last: datetime = row["last"]
                return last.timestamp()
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def broker(own: bool) -> AsyncIterator[str | None]:
    """None (the shared broker), or the AMQP URL of a throwaway node of this run's own, for
    runs that may leave the broker in a state the shared one must never be left in (a
    thousand services' quorum queues)."""
    if not own:
        yield None
        return
    async with rabbit_node() as node:
        log(f"own RabbitMQ node {node.name} on port {node.port}")
        yield node.amqp_url


async def throughput(args: argparse.Namespace) -> Result:
    with tempfile.TemporaryDirectory(prefix="spool-bench-") as root:
        async with (
            broker(args.own_broker) as amqp_url,
            running_platform(Path(root), PRODUCTION_ENV, amqp_url) as platform,
            platform.client() as client,
        ):
            service = await deploy(client, args.replicas, args.concurrency, args.services)
            if args.stored:
                await store_history(platform, service["id"], args.stored)
            await asyncio.sleep(1.0)  # let the start-up settle
            since = datetime.now().astimezone()
            cpu = BoxCpu().start()
            roles = cpu_by_role()
            started = time.time()
            await _create_all(client, service["id"], args.n, args.single)
            created = time.time() - started
            last = await _await_done(platform, service["id"], args.n, since)
            cpu.stop()
            split = cpu_split(roles, cpu_by_role(), args.n)
    log(f"created {args.n} in {created:.2f} s")
    return Result(
        system="spool",
        variant="single" if args.single else "batch",
        n=args.n,
        seconds=last - started,
        cpu_seconds=cpu.seconds,
        params={
            "replicas": args.replicas,
            "concurrency": args.concurrency,
            "services": args.services,
            "stored": args.stored,
            "own_broker": args.own_broker,
            "create_seconds": round(created, 3),
            "cpu_us_per_exec": split,
        },
    )


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


async def latency(args: argparse.Namespace) -> Result:
    http: list[float] = []
    path: list[float] = []
    to_claim: list[float] = []
    to_end: list[float] = []
    with tempfile.TemporaryDirectory(prefix="spool-bench-") as root:
        async with (
            running_platform(Path(root), PRODUCTION_ENV) as platform,
            platform.client() as client,
        ):
            service = await deploy(client, 1, 10, 1)
            for _ in range(args.warmup):
                await run_one(client, service["id"])
            cpu = BoxCpu().start()
            roles = cpu_by_role()
            started = time.perf_counter()
            for _ in range(args.n):
                begun = time.perf_counter()
                done = await run_one(client, service["id"])
                http.append(time.perf_counter() - begun)
                ended = _ts(done["latestStatus"]["timestamp"])
                path.append(ended - _ts(done["createdAt"]))
                claimed = _ts(done["phases"]["startedAt"])
                to_claim.append(claimed - _ts(done["createdAt"]))
                to_end.append(ended - claimed)
            elapsed = time.perf_counter() - started
            cpu.stop()
            split = cpu_split(roles, cpu_by_role(), args.n)
    log("path (createdAt → success):", summary_ms(path))
    log("createdAt → claim recorded:", summary_ms(to_claim))
    log("claim recorded → success stamped:", summary_ms(to_end))
    return Result(
        system="spool",
        variant="latency",
        n=args.n,
        seconds=elapsed,
        cpu_seconds=cpu.seconds,
        latency_ms=summary_ms(http),
        params={
            "path_ms": summary_ms(path),
            "created_to_claimed_ms": summary_ms(to_claim),
            "claimed_to_success_ms": summary_ms(to_end),
            "cpu_us_per_exec": split,
        },
    )


async def autoscale(args: argparse.Namespace) -> Result:
    """Backlog → first new replica consuming, `-n` times (a fresh service each time): a
    service at 1 replica, concurrency 1, with the queue rule (queueLength 2, pollingInterval
    2 s, the platform's load sample every 2 s) gets 12 calls of 1.5 s at once; the clock runs
    from the batch's 201 to the queue's second consumer (the new agent has started, fetched
    the package, imported it and attached its consumer)."""
    reactions: list[float] = []
    with tempfile.TemporaryDirectory(prefix="spool-bench-") as root:
        async with (
            running_platform(Path(root), PRODUCTION_ENV) as platform,
            platform.client() as client,
        ):
            project, package = await push(client, "scale")
            cpu = BoxCpu().start()
            started = time.perf_counter()
            for i in range(args.n):
                runtime = {
                    "numReplicas": 1,
                    "concurrency": 1,
                    "autoscaler": {
                        "type": "rabbitmq",
                        "minReplicas": 1,
                        "maxReplicas": 3,
                        "queueLength": 2,
                        "pollingInterval": 2,
                        "cooldownPeriod": 5,
                    },
                }
                body = {
                    "name": f"scale-{i}",
                    "projectId": project["id"],
                    "packageId": package["id"],
                    "runtime": runtime,
                }
                service = await _check(await client.post("/services", json=body), 201)
                queue = f"{platform.namespace}.service.{service['id']}"
                await await_consumers(AMQP_URL, queue, 1, timeout=120)
                calls = [{"functionName": "sleep", "input": {"seconds": 1.5}}] * 12
                await _check(
                    await client.post(
                        f"/executions/{service['id']}/batch", json={"executions": calls}
                    ),
                    201,
                )
                reactions.append(await await_consumers(AMQP_URL, queue, 2, timeout=120))
                log(f"run {i + 1}: {reactions[-1]:.2f} s")
                await client.post(f"/services/{service['id']}/stop", params={"force": "true"})
            elapsed = time.perf_counter() - started
            cpu.stop()
    return Result(
        system="spool",
        variant="autoscale",
        n=args.n,
        seconds=elapsed,
        cpu_seconds=cpu.seconds,
        latency_ms=summary_ms(reactions),
        params={"reaction_s": [round(r, 2) for r in reactions]},
    )


async def store_spread(platform: LocalPlatform, project_id: str, count: int) -> None:
    """`count` finished executions over every service of the project and over the last day
    (one a second per service at a million and a dozen services), each 50 ms to 2 s long,
    written straight to the store."""
    await _store_generated(
        platform,
        count,
        "WITH ids AS (SELECT array_agg(id ORDER BY id) AS ids FROM services "
        "WHERE project_id = $1), "
        "rows AS (SELECT g, ids[1 + g % cardinality(ids)] AS service_id, "
        "now() - make_interval(secs => (g * 86400.0 / $4) + 0.0) AS ended, "
        "make_interval(secs => 0.05 + (g % 40) * 0.05) AS took "
        "FROM generate_series($2::int, $3::int) g, ids) "
        "INSERT INTO executions (id, project_id, service_id, function_name, input, "
        "status, status_log, attempts, max_attempts, meta, creator, created_at, "
        "updated_at, started_at, finished_at, ended_at, kind) "
        "SELECT 'hist-' || g, $1, service_id, 'noop', '{}'::jsonb, 'success', "
        "jsonb_build_array(jsonb_build_object('status', 'created', 'timestamp', "
        "ended - took), jsonb_build_object('status', 'success', 'timestamp', ended)), "
        "1, 3, '{}'::jsonb, 'bench', ended - took, ended, ended - took / 2, ended, "
        "ended, 'execution' FROM rows",
        project_id,
        count,
    )


async def create_idle_services(
    client: httpx.AsyncClient, project_id: str, package_id: str, count: int
) -> None:
    """`count` services of the package with no replicas, fifty requests at a time."""

    async def create(i: int) -> None:
        body = {
            "name": f"svc-{i:04d}",
            "projectId": project_id,
            "packageId": package_id,
            "runtime": {"numReplicas": 0},
        }
        await _check(await client.post("/services", json=body), 201)

    for start in range(0, count, 50):
        await asyncio.gather(*(create(i) for i in range(start, min(start + 50, count))))


async def dashboard(args: argparse.Namespace) -> Result:
    polls: dict[str, list[float]] = defaultdict(list)
    browser = asyncio.Semaphore(6)  # a browser's connections to one host over HTTP/1.1

    async def get(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
        async with browser:
            return await _check(await client.get(path, params=params))

    with tempfile.TemporaryDirectory(prefix="spool-bench-") as root:
        async with (
            running_platform(Path(root), PRODUCTION_ENV) as platform,
            platform.client() as client,
        ):
            project, package = await push(client, "console")
            await create_idle_services(client, project["id"], package["id"], args.services)
            if args.stored:
                await store_spread(platform, project["id"], args.stored)
            services = await get(client, "/services", projectId=project["id"])
            first = services[0]["id"]

            query = {"projectId": project["id"]}

            async def services_page() -> None:
                await asyncio.gather(
                    get(client, "/services", **query),
                    get(client, "/services/load", **query),
                    get(client, "/services/status", **query),
                )

            async def services_page_per_status() -> None:  # before GET /services/status
                listed, _ = await asyncio.gather(
                    get(client, "/services", **query), get(client, "/services/load", **query)
                )
                await asyncio.gather(*(get(client, f"/services/{s['id']}/status") for s in listed))

            async def executions_page() -> None:
                hour_ago = datetime.now().astimezone() - timedelta(hours=1)
                await get(
                    client,
                    "/executions",
                    projectId=project["id"],
                    functionName="noop",
                    limit=50,
                    **{"from": hour_ago.isoformat()},
                )

            pages = {
                "services": services_page,
                "services_per_status": services_page_per_status,
                "load": lambda: get(client, "/services/load", serviceId=first, window=60),
                "chart": lambda: get(client, "/services/load", serviceId=first, window=3600),
                "executions": executions_page,
            }
            cpu = BoxCpu().start()
            started = time.perf_counter()
            for round_ in range(args.warmup + args.n):
                for name, page in pages.items():
                    begun = time.perf_counter()
                    await page()
                    if round_ >= args.warmup:
                        polls[name].append(time.perf_counter() - begun)
            elapsed = time.perf_counter() - started
            cpu.stop()
    figures = {name: summary_ms(values) for name, values in polls.items()}
    for name, figure in figures.items():
        log(f"{name}: {figure}")
    return Result(
        system="spool",
        variant="dashboard",
        n=args.n * len(pages),
        seconds=elapsed,
        cpu_seconds=cpu.seconds,
        latency_ms=figures["services"],
        params={"services": args.services, "stored": args.stored, "polls_ms": figures},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    tp = sub.add_parser("throughput")
    tp.add_argument("-n", type=int, default=20_000)
    tp.add_argument("--replicas", type=int, default=2)
    tp.add_argument("--concurrency", type=int, default=100)
    tp.add_argument("--services", type=int, default=1)
    tp.add_argument("--stored", type=int, default=0)
    tp.add_argument("--single", action="store_true", help="one POST per execution")
    tp.add_argument("--own-broker", action="store_true", help="on a throwaway RabbitMQ node")
    lat = sub.add_parser("latency")
    lat.add_argument("-n", type=int, default=1000)
    lat.add_argument("--warmup", type=int, default=50)
    scale = sub.add_parser("autoscale")
    scale.add_argument("-n", type=int, default=5)
    console = sub.add_parser("dashboard")
    console.add_argument("-n", type=int, default=200)
    console.add_argument("--warmup", type=int, default=10)
    console.add_argument("--services", type=int, default=100)
    console.add_argument("--stored", type=int, default=0)
    args = parser.parse_args()
    command = {
        "throughput": throughput,
        "latency": latency,
        "autoscale": autoscale,
        "dashboard": dashboard,
    }[args.command]
    uvloop.run(command(args)).emit()


if __name__ == "__main__":
    main()
