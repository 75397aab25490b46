"""PostgreSQL faults (reference/reliability.md §7 B: T17, T18) against the whole platform on a
cluster of this module's own (support/pg_cluster.py), on the shared RabbitMQ.

T17 restarts the cluster (fast, then immediate) and kills every service's backends while
executions are submitted continuously; T18 lets executions finish while the cluster is
stopped. Both check the ledger invariants I1-I6 (support/ledger.py) and end with the
reliability report line (support/faults.py).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from support.faults import record, scale, tally
from support.ledger import (
    SUCCESS,
    execution_problems,
    intervals,
    ledger_input,
    live_agents,
    read_events,
)
from support.pg_cluster import PgCluster, StopMode, pg_cluster
from support.platform import LocalPlatform, running_platform
from support.runs import (
    await_no_ready_messages,
    await_replicas,
    await_terminal,
    deployed,
    eventually,
    first_start_after,
    submit,
)

pytestmark = [pytest.mark.e2e, pytest.mark.reliability, pytest.mark.asyncio(loop_scope="module")]

Execution = dict[str, Any]
PROBE_EVERY = 0.2  # seconds between looks at the gateway during and after a fault
RECOVERY_BOUND = 60.0  # seconds a service may take to come back after the cluster does
UNAVAILABLE = 503


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster() -> AsyncIterator[PgCluster]:
    async with pg_cluster() as c:
        yield c


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(
    tmp_path_factory: pytest.TempPathFactory, servers: None, cluster: PgCluster
) -> AsyncIterator[LocalPlatform]:
    root = tmp_path_factory.mktemp("platform")
    async with running_platform(root, database_url=cluster.url) as p:
        yield p


# --- what the gateway answered ---------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    at: float  # time.time(), comparable with the ledger's
    status: int
    body: str


def answer_problems(answers: Iterable[Answer]) -> list[str]:
    """Every answer but a success is a 503 whose body is the API's JSON error, with no stack
    trace in it."""
    problems = []
    for a in answers:
        if a.status < 300:
            continue
        if a.status != UNAVAILABLE or not a.body.startswith('{"error":'):
            problems.append(f"answered {a.status}: {a.body[:200]}")
        elif "Traceback" in a.body or 'File "' in a.body:
            problems.append(f"a stack trace in the answer: {a.body[:200]}")
    return problems


async def _ask(call: Awaitable[httpx.Response]) -> Answer:
    response = await call
    return Answer(time.time(), response.status_code, response.text)


@dataclass
class Load:
    """Executions of 0.2-1.5 s submitted one every `every` seconds until `stop`: those the
    gateway accepted (201) by ledger key, and every other answer."""

    client: httpx.AsyncClient
    service_id: str
    ledger: Path
    rng: random.Random
    accepted: dict[str, str] = field(default_factory=dict)
    refused: list[Answer] = field(default_factory=list)

    async def run(self, stop: asyncio.Event, every: float) -> None:
        n = 0
        while not stop.is_set():
            key = f"{self.service_id[:6]}-{n:04d}"
            seconds = round(self.rng.uniform(0.2, 1.5), 3)
            await self._submit(key, seconds)
            n += 1
            await asyncio.sleep(every)

    async def _submit(self, key: str, seconds: float) -> None:
        body = {"functionName": "run", "input": ledger_input(self.ledger, key, seconds)}
        answer = await _ask(self.client.post(f"/executions/{self.service_id}", json=body))
        if answer.status == 201:
            self.accepted[key] = str(orjson.loads(answer.body)["id"])
        else:  # kept with its answer, not counted as submitted
            self.refused.append(answer)

    async def submitted(self, count: int, timeout: float) -> None:
        """Until `count` more executions have been accepted."""
        target = len(self.accepted) + count
        await eventually(f"{target} accepted", lambda: len(self.accepted) >= target, timeout)


# --- faults ----------------------------------------------------------------------------------


@dataclass
class Outage:
    """What the gateway answered during a fault, and how long it took to come back."""

    answers: list[Answer] = field(default_factory=list)
    ended: float = 0.0  # time.time() when the fault was over (the cluster accepting again)
    answered: float = 0.0  # ... when the gateway first answered 200 after that


async def _probe(client: httpx.AsyncClient, service_id: str, fault: Awaitable[None]) -> Outage:
    """GET the service's executions every PROBE_EVERY seconds while `fault` runs, then until
    the gateway answers 200 again."""
    outage = Outage()
    running = asyncio.ensure_future(fault)
    params: dict[str, str | int] = {"serviceId": service_id, "limit": 1}
    while True:
        answer = await _ask(client.get("/executions", params=params))
        outage.answers.append(answer)
        if running.done():
            await running  # its error, if any
            outage.ended = outage.ended or time.time()
            if answer.status == 200 and answer.at > outage.ended:
                outage.answered = answer.at
                return outage
            if time.time() - outage.ended > RECOVERY_BOUND:
                raise AssertionError(f"the gateway did not recover: {outage.answers[-3:]}")
        await asyncio.sleep(PROBE_EVERY)


async def _stopped_for(cluster: PgCluster, mode: StopMode, down: float) -> None:
    """The cluster stopped in `mode` for `down` seconds, then started again."""
    await cluster.stop(mode)
    await asyncio.sleep(down)  # the outage itself; nothing is asserted on time
    await cluster.start()


def _services_exited(platform: LocalPlatform) -> list[str]:
    """The platform processes that exited (none may: they reconnect)."""
    return [n for n, p in platform.processes.items() if p.returncode is not None]


def _ledger_problems(done: Mapping[str, Execution], ledger: Path) -> list[str]:
    runs = intervals(read_events(ledger))
    return [
        p
        for e in done.values()
        for p in execution_problems(e, runs.get(e["input"]["exec_key"], []), {})
    ]


# --- T17 -------------------------------------------------------------------------------------


@pytest.mark.timeout(600)
async def test_t17_restarting_postgresql_and_killing_backends_under_load_loses_nothing(
    platform: LocalPlatform, cluster: PgCluster, client: httpx.AsyncClient, ledgers: Path
) -> None:
    """Executions are submitted every 0.2 s onto 2 replicas x concurrency 3 while the cluster
    is stopped fast for a while and started, then stopped immediate (a crash: recovered from
    the WAL) and started, then every backend is terminated. While it is down the gateway
    answers 503 with the API's JSON error; afterwards every service is still running and
    every accepted execution ends (I1-I6)."""
    ledger = ledgers / "t17.jsonl"
    between, down = scale(12, 60), scale(3, 10)
    spec = {"onReset": "rerun", "maxAttempts": 3, "drainTime": 5}
    runtime = {"numReplicas": 2, "concurrency": 3}
    async with deployed(platform, client, "t17", **spec, runtime=runtime) as service:
        await await_replicas(platform, "t17", 2)
        load = Load(client, service["id"], ledger, random.Random(17))
        stop = asyncio.Event()
        loading = asyncio.create_task(load.run(stop, every=0.2))
        outages: list[Outage] = []
        resumed: list[float] = []
        try:
            faults: list[Callable[[], Awaitable[Any]]] = [
                lambda: _stopped_for(cluster, "fast", down),
                lambda: _stopped_for(cluster, "immediate", down),
                cluster.terminate_backends,
            ]
            for fault in faults:
                await load.submitted(between, timeout=120)
                outages.append(await _probe(client, service["id"], fault()))
                resumed.append(await first_start_after(ledger, outages[-1].ended, RECOVERY_BOUND))
            await load.submitted(between, timeout=120)
            await platform.wait_healthy()  # every service reconnected, none exited
        finally:
            stop.set()
            await loading
        done = await await_terminal(client, service["id"], set(load.accepted.values()), 180)
        recovery = max(max(o.answered, r) - o.ended for o, r in zip(outages, resumed, strict=True))
        run = record(
            tally(
                "T17 PostgreSQL restarted (fast, immediate) and backends killed",
                done.values(),
                intervals(read_events(ledger)),
                recovery=recovery,
            )
        )
        problems = _ledger_problems(done, ledger)
        problems += answer_problems([*load.refused, *(a for o in outages for a in o.answers)])
        problems += [
            f"no 503 while the cluster was stopped ({mode})"
            for mode, o in zip(("fast", "immediate"), outages, strict=False)
            if UNAVAILABLE not in {a.status for a in o.answers}
        ]
        problems += [f"{name} exited" for name in _services_exited(platform)]
        assert not problems, f"{run.line()}\n" + "\n".join(problems[:30])
        assert run.clean, run.line()
        await await_no_ready_messages(platform, service["id"])


# --- T18 -------------------------------------------------------------------------------------


@pytest.mark.timeout(600)
async def test_t18_executions_that_finish_while_postgresql_is_stopped_are_not_lost(
    platform: LocalPlatform, cluster: PgCluster, client: httpx.AsyncClient, ledgers: Path
) -> None:
    """Every slot of 2 replicas runs an execution that ends while the cluster is stopped
    (~10 s smoke, ~30 s full). The agents' finish reports wait on RabbitMQ: once the cluster
    is back every execution is `success` with one attempt, and no agent died."""
    ledger = ledgers / "t18.jsonl"
    concurrency, down = scale(3, 6), scale(10, 30)
    spec = {"onReset": "rerun", "maxAttempts": 3, "drainTime": 5}
    runtime = {"numReplicas": 2, "concurrency": concurrency}
    rng = random.Random(18)
    async with deployed(platform, client, "t18", **spec, runtime=runtime) as service:
        agents = await await_replicas(platform, "t18", 2)
        keys = [f"t18-{i:02d}" for i in range(2 * concurrency)]
        ids = {
            k: await submit(client, service["id"], ledger, k, rng.uniform(2.0, down * 0.6))
            for k in keys
        }
        await eventually("every execution running", lambda: _started(ledger) >= set(keys), 60)
        stopped = time.time()
        outage = await _probe(client, service["id"], _stopped_for(cluster, "fast", down))
        ended = {e.key: e.t for e in read_events(ledger) if e.event == "end"}
        done = await await_terminal(client, service["id"], set(ids.values()), 120)
        applied = time.time()
        run = record(
            tally(
                "T18 PostgreSQL stopped while executions finished",
                done.values(),
                intervals(read_events(ledger)),
                recovery=applied - outage.ended,
            )
        )
        problems = _ledger_problems(done, ledger)
        problems += answer_problems(outage.answers)
        problems += [
            f"{k} ended at {ended.get(k)}, not while the cluster was stopped"
            for k in keys
            if not stopped < ended.get(k, 0.0) < outage.ended
        ]
        problems += [
            f"{e['id']}: {e['latestStatus']['status']} after {e['attempts']} attempts"
            for e in done.values()
            if e["latestStatus"]["status"] != SUCCESS or e["attempts"] != 1
        ]
        if live_agents(platform.state_dir, "t18") != agents:
            problems.append(f"agents changed: {agents} -> {live_agents(platform.state_dir, 't18')}")
        problems += [f"{name} exited" for name in _services_exited(platform)]
        assert not problems, f"{run.line()}\n" + "\n".join(problems[:30])
        assert run.clean, run.line()
        await await_no_ready_messages(platform, service["id"])


def _started(ledger: Path) -> set[str]:
    return {e.key for e in read_events(ledger) if e.event == "start"}
