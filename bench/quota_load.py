"""The rate limit and the queue cap under load (reliability reference, T30), on a whole local
platform.

    .venv/bin/python bench/quota_load.py [--rate 100 --burst 200 --cap 2000]
        [--baseline 20 --overload 45 --after 10] [--quiet-rate 20 --clients 48]
        [--out bench/results/quota_load.json]

Starts the platform as bench/spool_bench.py does (production timings), with the gateway's
admission settings lowered: SPOOL_EXECUTION_RATE / SPOOL_EXECUTION_BURST (the per-project
token bucket, 429) and SPOOL_MAX_WAITING_EXECUTIONS (the per-service queue cap, 503). Two
projects, each with `bench/noop` pushed: "quiet" runs it on one replica; "noisy" has a service
with no replicas, so whatever it is admitted waits in its queue until the cap is reached.

- baseline (`--baseline` s): quiet alone creates executions at `--quiet-rate` per second;
- overload (`--overload` s): noisy also creates executions with `--clients` requests in flight
  (one POST each, as fast as this process can send them: one core), far above its rate;
- after (`--after` s): quiet alone again.

Quiet's sender is a child process of its own (this script, `--quiet-sender`), open loop: each
create is sent at its scheduled time whatever the earlier ones are doing, and its latency runs
from that scheduled time to the answer, so a stalled sender or gateway shows up as latency
instead of as fewer requests. The gateway's RSS (/proc/<pid>/status) and CPU time and the
number of noisy executions waiting (created or rerun: what the cap counts, read from
PostgreSQL) are sampled every second.

Checks afterwards (what "never a 2xx that is later dropped" can mean here): every id answered
201 is found by GET /executions/{id}; quiet's all end in success; noisy's rows in the ledger
are exactly the ids answered 201 (none was ever claimed: no replicas) and never more than the
cap; its queue in RabbitMQ holds one message per row (no message trimmed or lost).

Prints a summary table on stdout, progress on stderr; writes everything to `--out`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvloop

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent / "tests")]

from measure import BoxCpu, log, percentile, process_cpu  # noqa: E402  (paths set above)
from spool_bench import PRODUCTION_ENV, _await_replicas, _check, _role, push, run_one  # noqa: E402
from support.broker import queue_counts  # noqa: E402
from support.platform import LocalPlatform, running_platform  # noqa: E402
from support.servers import AMQP_URL  # noqa: E402

TOKEN_ENV = "SPOOL_BENCH_TOKEN"  # noqa: S105  (the name of the variable the sender reads it from)
PHASES = ("baseline", "overload", "after")
NOOP = {"functionName": "noop"}


# --- quiet: the steady sender (a child process) --------------------------------------------


async def send_steady(
    url: str, service_id: str, rate: float, start_at: float, seconds: float
) -> list[dict[str, Any]]:
    """Creates at `rate` per second from wall time `start_at` for `seconds`, open loop: one
    record per create, {at (scheduled wall time), ms (scheduled → answered), status, id}."""
    headers = {"Authorization": f"Bearer {os.environ[TOKEN_ENV]}"}
    records: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:

        async def one(at: float) -> None:
            record: dict[str, Any] = {"at": at, "status": 0, "id": None}
            try:
                response = await client.post(f"/executions/{service_id}", json=NOOP)
                record["status"] = response.status_code
                if response.status_code == 201:
                    record["id"] = response.json()["id"]
            except httpx.HTTPError as e:
                record["error"] = type(e).__name__
            record["ms"] = (time.time() - at) * 1000
            records.append(record)

        tasks: list[asyncio.Task[None]] = []
        for i in range(round(rate * seconds)):
            at = start_at + i / rate
            await asyncio.sleep(max(0.0, at - time.time()))
            tasks.append(asyncio.create_task(one(at)))
        await asyncio.gather(*tasks)
    return records


async def spawn_quiet(
    platform: LocalPlatform, service_id: str, rate: float, start_at: float, seconds: float
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--quiet-sender",
        f"{platform.url}/api/v1",
        service_id,
        str(rate),
        str(start_at),
        str(seconds),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, TOKEN_ENV: platform.token},
    )


# --- noisy: the hammer ---------------------------------------------------------------------


@dataclass
class Hammer:
    statuses: Counter[int] = field(default_factory=Counter)
    retry_after: Counter[str] = field(default_factory=Counter)  # "429: 1" → how many
    without_retry_after: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies: dict[int, list[float]] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)
    first_503: float | None = None  # wall time: the queue cap reached

    def record(self, response: httpx.Response, seconds: float) -> None:
        status = response.status_code
        self.statuses[status] += 1
        self.latencies.setdefault(status, []).append(seconds)
        if status == 201:
            self.ids.append(response.json()["id"])
        elif status in (429, 503):
            if status == 503 and self.first_503 is None:
                self.first_503 = time.time()
            value = response.headers.get("retry-after")
            if value is None:
                self.without_retry_after[status] += 1
            else:
                self.retry_after[f"{status}: {value}"] += 1


async def hammer(platform: LocalPlatform, service_id: str, clients: int, seconds: float) -> Hammer:
    """`clients` loops creating executions back to back for `seconds`."""
    found = Hammer()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Authorization": f"Bearer {platform.token}"}
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(
        base_url=f"{platform.url}/api/v1", headers=headers, timeout=60, limits=limits
    ) as client:

        async def loop() -> None:
            while time.monotonic() < deadline:
                begun = time.perf_counter()
                try:
                    response = await client.post(f"/executions/{service_id}", json=NOOP)
                except httpx.HTTPError as e:
                    found.errors[type(e).__name__] += 1
                    continue
                found.record(response, time.perf_counter() - begun)

        await asyncio.gather(*(loop() for _ in range(clients)))
    return found


# --- sampling ------------------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def gateway_pid(platform: LocalPlatform) -> int:
    """The gateway's pid, checked against its command line as spool_bench's roles are."""
    pid = platform.processes["gateway"].pid
    if _role(Path(f"/proc/{pid}/cmdline").read_bytes()) != "gateway":
        raise RuntimeError(f"process {pid} is not the gateway")
    return pid


class Sampler:
    """Once a second: the gateway's RSS and CPU time, noisy's waiting executions."""

    def __init__(self, pid: int, conn: asyncpg.Connection, noisy_id: str) -> None:
        self.pid = pid
        self.conn = conn
        self.noisy_id = noisy_id
        self.phase = "setup"
        self.samples: list[dict[str, Any]] = []

    async def waiting(self) -> int:
        count: int = await self.conn.fetchval(
            "SELECT count(*) FROM executions WHERE service_id = $1 "
            "AND status = ANY(ARRAY['created', 'rerun'])",
            self.noisy_id,
        )
        return count

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set (not cancelled: a query cut short would spoil the connection)."""
        while not stop.is_set():
            self.samples.append(
                {
                    "t": time.time(),
                    "phase": self.phase,
                    "rss_mib": round(rss_mib(self.pid), 2),
                    "cpu_s": process_cpu([self.pid], children=False),
                    "waiting": await self.waiting(),
                }
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


# --- set-up and checks ---------------------------------------------------------------------


async def create_service(
    client: httpx.AsyncClient, project: str, runtime: dict[str, int]
) -> dict[str, Any]:
    created, package = await push(client, project)
    body = {
        "name": project,
        "projectId": created["id"],
        "packageId": package["id"],
        "runtime": runtime,
    }
    service: dict[str, Any] = await _check(await client.post("/services", json=body), 201)
    return service


async def await_ended(conn: asyncpg.Connection, ids: list[str]) -> int:
    """Wait (up to 2 minutes) for these executions to end; how many succeeded."""
    query = (
        "SELECT count(*) FILTER (WHERE status = 'success') AS ok, "
        "count(*) FILTER (WHERE status NOT IN ('created', 'rerun', 'in-progress')) AS done "
        "FROM executions WHERE id = ANY($1::text[])"
    )
    deadline = time.monotonic() + 120
    while True:
        row = await conn.fetchrow(query, ids)
        if row["done"] >= len(ids) or time.monotonic() > deadline:
            if row["done"] < len(ids):
                log(f"only {row['done']} of {len(ids)} executions ended within 2 minutes")
            return int(row["ok"])
        await asyncio.sleep(0.1)


async def look_up(client: httpx.AsyncClient, ids: Sequence[str]) -> Counter[str]:
    """GET /executions/{id} for every id: how many are found in each status, or missing."""
    found: Counter[str] = Counter()
    slots = asyncio.Semaphore(16)

    async def one(execution_id: str) -> None:
        async with slots:
            response = await client.get(f"/executions/{execution_id}")
        if response.status_code == 200:
            found[response.json()["latestStatus"]["status"]] += 1
        else:
            found[f"HTTP {response.status_code}"] += 1

    await asyncio.gather(*(one(i) for i in ids))
    return found


async def broker_messages(platform: LocalPlatform, service_id: str, rows: int) -> int:
    """Ready messages in the service's queue, once the outbox has published `rows` (or after
    30 s, whatever it holds then)."""
    queue = f"{platform.namespace}.service.{service_id}"
    ready = 0
    for _ in range(60):
        ready, _consumers = await queue_counts(AMQP_URL, queue)
        if ready >= rows:
            break
        await asyncio.sleep(0.5)
    return ready


# --- the run -------------------------------------------------------------------------------


@dataclass
class Run:
    bounds: dict[str, tuple[float, float]]  # phase → wall-time [start, end)
    quiet: list[dict[str, Any]]  # the quiet sender's records
    noisy: Hammer
    samples: list[dict[str, Any]]
    client_cpu_percent: float  # this process (noisy's load generator) over the overload


def settings_env(args: argparse.Namespace) -> dict[str, str]:
    return {
        **PRODUCTION_ENV,
        "SPOOL_EXECUTION_RATE": str(args.rate),
        "SPOOL_EXECUTION_BURST": str(args.burst),
        "SPOOL_MAX_WAITING_EXECUTIONS": str(args.cap),
    }


async def drive(
    args: argparse.Namespace,
    platform: LocalPlatform,
    conn: asyncpg.Connection,
    quiet_id: str,
    noisy_id: str,
) -> Run:
    """The three phases, quiet's sender running through all of them."""
    sampler = Sampler(gateway_pid(platform), conn, noisy_id)
    total = args.baseline + args.overload + args.after
    start = time.time() + 2.0  # time for the sender to start
    sender = await spawn_quiet(platform, quiet_id, args.quiet_rate, start, total)
    stop = asyncio.Event()
    sampling = asyncio.create_task(sampler.run(stop))
    try:
        await asyncio.sleep(start - time.time())
        sampler.phase = "baseline"
        log(f"baseline: quiet alone at {args.quiet_rate}/s for {args.baseline} s")
        await asyncio.sleep(args.baseline)
        overload = time.time()
        client_cpu = process_cpu([os.getpid()], children=False)
        sampler.phase = "overload"
        log(f"overload: noisy with {args.clients} in flight for {args.overload} s")
        noisy = await hammer(platform, noisy_id, args.clients, args.overload)
        after = time.time()
        client_cpu = process_cpu([os.getpid()], children=False) - client_cpu
        sampler.phase = "after"
        log(f"after: quiet alone until the end ({start + total - after:.0f} s)")
        stdout, _ = await sender.communicate()
        end = time.time()
        sampler.phase = "checks"
        await asyncio.sleep(1.0)  # one sample after the load
    finally:
        stop.set()
        await sampling
        if sender.returncode is None:
            sender.kill()
            await sender.wait()
    if sender.returncode != 0:
        sys.exit(f"the quiet sender exited with {sender.returncode}")
    bounds = {"baseline": (start, overload), "overload": (overload, after), "after": (after, end)}
    client_percent = round(100 * client_cpu / (after - overload), 1)
    return Run(bounds, json.loads(stdout), noisy, sampler.samples, client_percent)


async def check(
    platform: LocalPlatform,
    client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    run: Run,
    services: dict[str, str],
) -> dict[str, Any]:
    """What became of every create answered 201 (see the module's docstring)."""
    quiet_ids = [r["id"] for r in run.quiet if r["id"] is not None]
    log(f"checks: waiting for quiet's {len(quiet_ids)} executions to end")
    quiet_success = await await_ended(conn, quiet_ids)
    log(f"checks: GET /executions/{{id}} for {len(quiet_ids) + len(run.noisy.ids)} ids")
    quiet_found = await look_up(client, quiet_ids)
    noisy_found = await look_up(client, run.noisy.ids)
    rows = {
        r["id"]: r["status"]
        for r in await conn.fetch(
            "SELECT id, status FROM executions WHERE service_id = $1", services["noisy"]
        )
    }
    answered = set(run.noisy.ids)
    log("checks: the noisy service's queue in RabbitMQ")
    messages = await broker_messages(platform, services["noisy"], len(rows))
    return {
        "quiet_ids": len(quiet_ids),
        "quiet_found": dict(quiet_found),
        "quiet_success": quiet_success,
        "noisy_ids": len(answered),
        "noisy_found": dict(noisy_found),
        "noisy_rows": len(rows),
        "noisy_rows_by_status": dict(Counter(rows.values())),
        "noisy_201_not_in_ledger": len(answered - rows.keys()),
        "noisy_rows_never_answered_201": len(rows.keys() - answered),
        "noisy_max_waiting_sampled": max(s["waiting"] for s in run.samples),
        "noisy_queue_messages": messages,
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="spool-bench-") as root:
        async with (
            running_platform(Path(root), settings_env(args)) as platform,
            platform.client() as client,
        ):
            quiet = await create_service(client, "quiet", {"numReplicas": 1, "concurrency": 10})
            noisy = await create_service(client, "noisy", {"numReplicas": 0})
            for _ in range(3):
                await run_one(client, quiet["id"], patience=10)
            await _await_replicas(client, quiet["id"], 1)
            services = {"quiet": quiet["id"], "noisy": noisy["id"]}
            await asyncio.sleep(1.0)  # let the start-up settle
            conn = await asyncpg.connect(platform.database_url)
            try:
                await conn.execute(f"SET search_path TO {platform.schema('gateway')}")
                cpu = BoxCpu().start()
                run = await drive(args, platform, conn, quiet["id"], noisy["id"])
                cpu.stop()
                checks = await check(platform, client, conn, run, services)
            finally:
                await conn.close()
    return summarise(args, run, checks, cpu.seconds)


# --- the figures ---------------------------------------------------------------------------


def latency_ms(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "n": len(values),
        **{f"p{p}": round(percentile(values, p), 1) for p in (50, 95, 99)},
        "max": round(max(values), 1),
    }


def in_phase(t: float, bounds: tuple[float, float]) -> bool:
    return bounds[0] <= t < bounds[1]


def quiet_figures(run: Run) -> dict[str, Any]:
    """Per phase, and the overload split at the noisy service's first 503 (its queue full)."""
    bounds = dict(run.bounds)
    if run.noisy.first_503 is not None:
        begin, end = run.bounds["overload"]
        bounds["overload, below the cap"] = (begin, run.noisy.first_503)
        bounds["overload, at the cap"] = (run.noisy.first_503, end)
    out: dict[str, Any] = {}
    for phase, span in bounds.items():
        records = [r for r in run.quiet if in_phase(r["at"], span)]
        out[phase] = {
            "latency_ms": latency_ms([r["ms"] for r in records]),
            "statuses": dict(Counter(str(r["status"]) for r in records)),
            "errors": dict(Counter(r["error"] for r in records if "error" in r)),
        }
    return out


def noisy_figures(run: Run) -> dict[str, Any]:
    found = run.noisy
    seconds = run.bounds["overload"][1] - run.bounds["overload"][0]
    total = sum(found.statuses.values())
    return {
        "requests": total,
        "requests_per_s": round(total / seconds, 1),
        "statuses": {str(k): v for k, v in sorted(found.statuses.items())},
        "retry_after": dict(sorted(found.retry_after.items())),
        "without_retry_after": {str(k): v for k, v in found.without_retry_after.items()},
        "transport_errors": dict(found.errors),
        "latency_ms": {
            str(k): latency_ms([v * 1000 for v in values])
            for k, values in sorted(found.latencies.items())
        },
    }


def rss_slope(samples: Sequence[dict[str, Any]]) -> float:
    """Least-squares slope of the RSS, in MiB per minute."""
    fit = statistics.linear_regression([s["t"] for s in samples], [s["rss_mib"] for s in samples])
    return round(fit.slope * 60, 2)


def gateway_figures(run: Run) -> dict[str, Any]:
    """RSS start / peak / end and its slope over the overload (all of it, and from its 5th
    second on, past the connections' set-up); CPU use per phase."""
    rss = [s["rss_mib"] for s in run.samples if s["phase"] in PHASES]
    overload = [s for s in run.samples if s["phase"] == "overload"]
    settled = [s for s in overload if s["t"] >= run.bounds["overload"][0] + 5]
    cpu: dict[str, float] = {}
    for phase in PHASES:
        inside = [s for s in run.samples if s["phase"] == phase]
        if len(inside) > 1:
            used = inside[-1]["cpu_s"] - inside[0]["cpu_s"]
            cpu[phase] = round(100 * used / (inside[-1]["t"] - inside[0]["t"]), 1)
    return {
        "rss_mib": {
            "start": rss[0],
            "peak": max(rss),
            "end_of_overload": overload[-1]["rss_mib"],
            "end": rss[-1],
        },
        "rss_slope_mib_per_min_overload": rss_slope(overload),
        "rss_slope_mib_per_min_overload_from_5s": rss_slope(settled),
        "cpu_percent_of_one_core": cpu,
    }


def summarise(
    args: argparse.Namespace, run: Run, checks: dict[str, Any], box_cpu: float
) -> dict[str, Any]:
    return {
        "bench": "quota_load",
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": {
            **{k: v for k, v in settings_env(args).items() if k not in PRODUCTION_ENV},
            "quiet_rate_per_s": args.quiet_rate,
            "noisy_clients": args.clients,
            "phases_s": {p: round(run.bounds[p][1] - run.bounds[p][0], 1) for p in PHASES},
        },
        "quiet": quiet_figures(run),
        "noisy": noisy_figures(run),
        "noisy_cap_reached_after_s": (
            None
            if run.noisy.first_503 is None
            else round(run.noisy.first_503 - run.bounds["overload"][0], 1)
        ),
        "gateway": gateway_figures(run),
        "load_generator_cpu_percent_overload": run.client_cpu_percent,
        "box_cpu_seconds": round(box_cpu, 1),
        "checks": checks,
        "samples": run.samples,
    }


def print_table(result: dict[str, Any]) -> None:
    quiet, noisy, gateway, checks = (result[k] for k in ("quiet", "noisy", "gateway", "checks"))
    print("| quiet creates (ms) | n | p50 | p95 | p99 | max | non-201 |")
    print("|---|---|---|---|---|---|---|")
    for phase in quiet:
        lat = quiet[phase]["latency_ms"]
        other = {k: v for k, v in quiet[phase]["statuses"].items() if k != "201"}
        cells = [lat.get(k, "-") for k in ("n", "p50", "p95", "p99", "max")]
        print(f"| {phase} | {' | '.join(map(str, cells))} | {other or 0} |")
    print()
    print(f"noisy: {noisy['requests']} creates ({noisy['requests_per_s']}/s): {noisy['statuses']}")
    print(f"  Retry-After: {noisy['retry_after']}; missing: {noisy['without_retry_after'] or 0}")
    print(f"  queue cap reached (first 503) {result['noisy_cap_reached_after_s']} s in")
    print(f"  transport errors: {noisy['transport_errors'] or 0}")
    rss = gateway["rss_mib"]
    print(
        f"gateway RSS MiB: start {rss['start']}, peak {rss['peak']}, end of overload "
        f"{rss['end_of_overload']}, end {rss['end']}; slope over the overload "
        f"{gateway['rss_slope_mib_per_min_overload']} MiB/min, from its 5th second "
        f"{gateway['rss_slope_mib_per_min_overload_from_5s']} MiB/min"
    )
    print(
        f"CPU (% of a core): gateway {gateway['cpu_percent_of_one_core']}, load generator "
        f"over the overload {result['load_generator_cpu_percent_overload']}"
    )
    print(f"checks: {json.dumps(checks)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="SPOOL_EXECUTION_RATE")
    parser.add_argument("--burst", type=int, default=200, help="SPOOL_EXECUTION_BURST")
    parser.add_argument("--cap", type=int, default=2000, help="SPOOL_MAX_WAITING_EXECUTIONS")
    parser.add_argument("--baseline", type=float, default=20.0, help="seconds")
    parser.add_argument("--overload", type=float, default=45.0, help="seconds")
    parser.add_argument("--after", type=float, default=10.0, help="seconds")
    parser.add_argument("--quiet-rate", type=float, default=20.0, help="quiet's creates per s")
    parser.add_argument("--clients", type=int, default=48, help="noisy's requests in flight")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "quota_load.json")
    parser.add_argument("--quiet-sender", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quiet_sender is not None:  # the child process: URL SERVICE RATE START SECONDS
        url, service_id, rate, start, seconds = args.quiet_sender
        records = uvloop.run(
            send_steady(url, service_id, float(rate), float(start), float(seconds))
        )
        sys.stdout.write(json.dumps(records))
        return
    result = uvloop.run(measure(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print_table(result)
    log(f"written to {args.out}")


if __name__ == "__main__":
    main()
