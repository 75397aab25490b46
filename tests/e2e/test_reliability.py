"""Reliability under faults (reference/reliability.md §7: T01, T02, T03, T06, T16), checked
against a ground-truth ledger written by the user function itself (support/ledger.py).

Invariants checked after each fault (I1-I6): every accepted execution ends; starts <= attempts
<= maxAttempts; runs of one execution never overlap; the status log follows the allowed graph;
a success is the last run in the ledger; afterwards no process of the test is left and the
service queue holds no ready message. Tests pause their service at the end, so a later
scheduler restart in this module only restarts what the running test deployed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import re
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
import pytest_asyncio
from aio_pika.abc import AbstractChannel, AbstractExchange
from support.broker import queue_counts
from support.faults import record, scale, tally
from support.ledger import (
    FAILED,
    IN_PROGRESS,
    SUCCESS,
    TERMINAL,
    Interval,
    attempt_problems,
    children,
    claimed_by,
    execution_problems,
    intervals,
    is_alive,
    ledger_input,
    live_agents,
    read_events,
    status_log_problems,
    statuses,
)
from support.platform import LocalPlatform, wait
from support.runs import (
    await_no_ready_messages as _await_no_ready_messages,
)
from support.runs import (
    await_replicas as _await_replicas,
)
from support.runs import (
    await_terminal as _await_terminal,
)
from support.runs import (
    deployed as _deployed,
)
from support.runs import (
    eventually as _eventually,
)
from support.runs import (
    executions as _executions,
)
from support.runs import (
    replica_processes as _replica_processes,
)
from support.runs import (
    submit as _submit,
)

from spool_common.messages import (
    AnyMessage,
    ClaimReply,
    ClaimRequest,
    ClaimVerdict,
    ExecutionFinished,
    ExecutionRequested,
    decode,
    encode,
)
from spool_common.models import ExecutionStatus
from spool_scheduler.supervisor import KILL_MARGIN

pytestmark = [pytest.mark.e2e, pytest.mark.reliability, pytest.mark.asyncio(loop_scope="module")]

Execution = dict[str, Any]
SLACK = 0.5  # seconds allowed between a signal and its effect on a loaded 2-core machine


@pytest_asyncio.fixture(loop_scope="module")
async def client(platform: LocalPlatform) -> AsyncIterator[httpx.AsyncClient]:
    async with platform.client() as c:
        yield c


# --- helpers ---------------------------------------------------------------------------------


async def _await_starts(ledger: Path, keys: set[str], count: int, timeout: float) -> None:
    def started() -> bool:
        return len({e.key for e in read_events(ledger) if e.event == "start"} & keys) >= count

    await _eventually(f"{count} starts in {ledger.name}", started, timeout)


def _log_events(text: str, event: str) -> list[dict[str, Any]]:
    found = []
    for line in text.splitlines():
        if f'"{event}"' not in line:
            continue
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if record.get("event") == event:
                found.append(record)
    return found


def _at(record: Mapping[str, Any]) -> float:
    return datetime.fromisoformat(str(record["timestamp"])).timestamp()


async def _draining_signal_time(platform: LocalPlatform, replica_id: str) -> float:
    """When the scheduler sent SIGTERM to the replica's agent (its `replica_draining` line)."""

    def found() -> list[dict[str, Any]]:
        lines = _log_events(platform.log("scheduler"), "replica_draining")
        return [r for r in lines if r.get("replica_id") == replica_id]

    await _eventually(f"replica_draining for {replica_id}", lambda: bool(found()), 10)
    return _at(found()[-1])


def _stop_scheduler(platform: LocalPlatform) -> asyncio.Task[int]:
    return asyncio.create_task(platform.stop_service("scheduler"))


# --- T01 ------------------------------------------------------------------------------------


@dataclass
class Chaos:
    """What the kill loop did, for the invariants and the figures."""

    killed: list[str] = field(default_factory=list)  # replica ids, in order
    runners: list[int] = field(default_factory=list)
    died: dict[int, float] = field(default_factory=dict)  # runner pid -> seen dead at
    skipped: int = 0


async def _watch_death(pids: list[int], died: dict[int, float]) -> None:
    """Record when each process is first seen dead (an upper bound of its end), for 10 s."""
    for _ in range(500):
        for pid in pids:
            if pid not in died and not is_alive(pid):
                died[pid] = time.time()
        if all(p in died for p in pids):
            return
        await asyncio.sleep(0.02)


async def _kill_agents(
    platform: LocalPlatform, name: str, rng: random.Random, rounds: int, every: float
) -> Chaos:
    """Every `every` seconds, SIGKILL the process group of one random live agent of `name`."""
    chaos = Chaos()
    watchers = []
    for _ in range(rounds):
        await asyncio.sleep(every)
        agents = live_agents(platform.state_dir, name)
        if not agents:
            chaos.skipped += 1
            continue
        replica = rng.choice(sorted(agents))
        runners = children(agents[replica])
        with contextlib.suppress(ProcessLookupError):
            os.killpg(agents[replica], signal.SIGKILL)
        chaos.killed.append(replica)
        chaos.runners += runners
        watchers.append(asyncio.create_task(_watch_death(runners, chaos.died)))
    await asyncio.gather(*watchers)
    return chaos


async def _submit_paced(
    client: httpx.AsyncClient,
    service_id: str,
    ledger: Path,
    durations: list[float],
    interval: float,
) -> dict[str, str]:
    """Key -> execution id, submitting one execution every `interval` seconds."""
    ids = {}
    for i, seconds in enumerate(durations):
        key = f"t01-{i:03d}"
        ids[key] = await _submit(client, service_id, ledger, key, seconds)
        await asyncio.sleep(interval)
    return ids


def _t01_figures(
    done: Mapping[str, Execution], runs: Mapping[str, list[Interval]], chaos: Chaos
) -> dict[str, Any]:
    by_key = {e["input"]["exec_key"]: e for e in done.values()}
    final = [e["latestStatus"]["status"] for e in done.values()]
    starts = {k: len(runs.get(k, [])) for k in by_key}
    return {
        "submitted": len(done),
        "succeeded": final.count(SUCCESS),
        "failed": final.count(FAILED),
        "other_terminal": sum(1 for s in final if s in TERMINAL and s not in (SUCCESS, FAILED)),
        "lost": sum(1 for s in final if s not in TERMINAL),
        "over_attempted": sum(
            1 for k, e in by_key.items() if max(e["attempts"], starts[k]) > e["maxAttempts"]
        ),
        "max_attempts_seen": max(e["attempts"] for e in done.values()),
        "max_starts_seen": max(starts.values()),
        "rerun_executions": sum(1 for e in done.values() if e["attempts"] > 1),
        "attempts_never_started": sum(e["attempts"] - starts[k] for k, e in by_key.items()),
        "kills": len(chaos.killed),
        "kills_skipped_no_live_agent": chaos.skipped,
    }


def _failed_only_by_kills(done: Mapping[str, Execution], killed: set[str]) -> list[str]:
    """A failed execution used every attempt, and every attempt was on a killed replica."""
    problems = []
    for e in done.values():
        if e["latestStatus"]["status"] != FAILED:
            continue
        if e["attempts"] != e["maxAttempts"] or not set(claimed_by(e)) <= killed:
            problems.append(f"{e['id']} failed: attempts={e['attempts']} {claimed_by(e)}")
    return problems


def _longest_rerun_wait(runs: Mapping[str, list[Interval]], died: Mapping[int, float]) -> float:
    """The longest time an execution whose run was killed waited to start again."""
    waits = [
        after.start - died[before.pid]
        for found in runs.values()
        for before, after in itertools.pairwise(found)
        if before.end is None and before.pid in died
    ]
    return max(waits, default=0.0)


@pytest.mark.timeout(600)
async def test_t01_killing_agents_under_load_loses_nothing_and_bounds_attempts(
    platform: LocalPlatform,
    client: httpx.AsyncClient,
    ledgers: Path,
    record_property: Callable[[str, object], None],
) -> None:
    """100 executions (300 at full load; 0.05-1 s) onto 2 replicas x concurrency 3 while,
    every 2 s, one live agent's process group is SIGKILLed (the runner leads its own
    session: it exits on the EOF of its pipe, which `died` records as the latest end of its
    unfinished runs). The
    scheduler's crash backoff (1, 2, 4, 8 s) leaves rounds with no live agent: skipped.
    The figures go to the JUnit report (`t01_figures`) and into any assertion message."""
    rng = random.Random(20260101)
    ledger = ledgers / "t01.jsonl"
    spec = {"onReset": "rerun", "maxAttempts": 3, "drainTime": 5}
    runtime = {"numReplicas": 2, "concurrency": 3}
    async with _deployed(platform, client, "t01", **spec, runtime=runtime) as service:
        await _await_replicas(platform, "t01", 2)
        durations = [round(rng.uniform(0.05, 1.0), 3) for _ in range(scale(100, 300))]
        started = time.monotonic()
        submitting = asyncio.create_task(
            _submit_paced(client, service["id"], ledger, durations, 0.08)
        )
        chaos = await _kill_agents(platform, "t01", rng, rounds=scale(6, 14), every=2.0)
        ids = await submitting
        done = await _await_terminal(client, service["id"], set(ids.values()), timeout=300)
        runs = intervals(read_events(ledger))
        waited = _longest_rerun_wait(runs, chaos.died)
        fault = "T01 kill -9 agents under load"
        run = record(tally(fault, done.values(), runs, recovery=waited, died=chaos.died))
        figures = _t01_figures(done, runs, chaos)
        figures["seconds"] = round(time.monotonic() - started, 1)
        record_property("t01_figures", json.dumps(figures))
        print(f"T01 figures: {figures}")

        problems = [
            p
            for e in done.values()
            for p in execution_problems(e, runs.get(e["input"]["exec_key"], []), chaos.died)
        ]
        problems += _failed_only_by_kills(done, set(chaos.killed))
        assert not problems, f"{figures}\n" + "\n".join(problems[:30])
        assert run.clean, f"{run.line()}\n{figures}"
        assert len(chaos.killed) >= 3, figures
        assert set(runs) <= set(ids), "the ledger holds keys this test never submitted"
        await _await_no_ready_messages(platform, service["id"])
        assert not [p for p in chaos.runners if is_alive(p)], "a killed agent's runner survived"


# --- T06 ------------------------------------------------------------------------------------

_CONNECTION_NAME = re.compile(r'\{"connection_name","([^"]*)"\}')


def _agent_connections(replicas: set[str]) -> dict[str, str]:
    """Broker connection pid -> replica id, for the agents of these replicas only (other
    platforms may share the broker: their replica ids are not ours)."""
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties", "--no-table-headers"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    found = {}
    for line in out.splitlines():
        pid, _, properties = line.partition("\t")
        match = _CONNECTION_NAME.search(properties)
        name = match.group(1) if match else ""
        if name.startswith("agent-") and name.removeprefix("agent-") in replicas:
            found[pid.strip()] = name.removeprefix("agent-")
    return found


def _close_connection(pid: str) -> None:
    subprocess.run(
        ["rabbitmqctl", "-q", "close_connection", pid, "spool reliability test T06"],
        capture_output=True,
        check=True,
        timeout=60,
    )


async def _close_agent_connections(replicas: set[str]) -> set[str]:
    """Close the broker connections of these agents; returns the connection pids closed."""
    before = await asyncio.to_thread(_agent_connections, replicas)
    assert sorted(before.values()) == sorted(replicas), before
    for pid in before:
        await asyncio.to_thread(_close_connection, pid)
    return set(before)


async def _await_reconnected(replicas: set[str], closed: set[str], timeout: float) -> float:
    """Seconds until every agent holds a new connection, the same one on two looks a second
    apart: a reconnect attempt that fails opens a connection under the agent's name and
    closes it again, so one sighting proves nothing."""
    started = time.monotonic()
    seen: dict[str, str] = {}
    while time.monotonic() - started < timeout:
        now = await asyncio.to_thread(_agent_connections, replicas)
        whole = sorted(now.values()) == sorted(replicas) and not set(now) & closed
        if whole and now == seen:
            return round(time.monotonic() - started, 1)
        seen = now if whole else {}
        await asyncio.sleep(1.0)
    raise AssertionError(f"the agents {sorted(replicas)} did not reconnect within {timeout} s")


@pytest.mark.timeout(150)
async def test_t06_agents_reconnect_when_the_broker_closes_their_connections(
    platform: LocalPlatform,
    client: httpx.AsyncClient,
    ledgers: Path,
    record_property: Callable[[str, object], None],
) -> None:
    rng = random.Random(6)
    ledger = ledgers / "t06.jsonl"
    spec = {"onReset": "rerun", "maxAttempts": 3, "drainTime": 5}
    runtime = {"numReplicas": 2, "concurrency": 3}
    async with _deployed(platform, client, "t06", **spec, runtime=runtime) as service:
        agents = await _await_replicas(platform, "t06", 2)
        keys = [f"t06-{i:02d}" for i in range(30)]
        ids = {
            k: await _submit(client, service["id"], ledger, k, rng.uniform(1.5, 2.5)) for k in keys
        }
        await _await_starts(ledger, set(keys), 6, timeout=30)
        closed = await _close_agent_connections(set(agents))
        reconnect_seconds = await _await_reconnected(set(agents), closed, timeout=15)

        done = await _await_terminal(client, service["id"], set(ids.values()), timeout=90)
        runs = intervals(read_events(ledger))
        fault = "T06 broker closes the agents' connections"
        run = record(tally(fault, done.values(), runs, recovery=reconnect_seconds))
        assert run.clean, run.line()
        figures = {
            "reconnect_seconds": reconnect_seconds,
            "executions_rerun": sum(1 for e in done.values() if e["attempts"] > 1),
            "executions_run_twice": sum(1 for k in keys if len(runs.get(k, [])) > 1),
        }
        record_property("t06_figures", json.dumps(figures))
        problems = [
            f"{e['id']}: {p}"
            for e in done.values()
            for p in status_log_problems(e)
            + attempt_problems(e, runs.get(e["input"]["exec_key"], []))
        ]
        assert not problems, "\n".join(problems)
        assert {i: statuses(e).count(SUCCESS) for i, e in done.items()} == dict.fromkeys(done, 1)
        assert {i: e["latestStatus"]["status"] for i, e in done.items()} == dict.fromkeys(
            done, SUCCESS
        )
        assert live_agents(platform.state_dir, "t06") == agents, "an agent crashed or was replaced"
        queue = f"{platform.namespace}.service.{service['id']}"
        assert await queue_counts(platform.env["SPOOL_AMQP_URL"], queue) == (0, 2), "consumers lost"


@pytest.mark.timeout(90)
async def test_t06_a_broker_blip_does_not_run_running_executions_again(
    platform: LocalPlatform, client: httpx.AsyncClient, ledgers: Path
) -> None:
    ledger = ledgers / "t06-blip.jsonl"
    spec = {"onReset": "rerun", "maxAttempts": 3, "drainTime": 5}
    runtime = {"numReplicas": 1, "concurrency": 2}
    async with _deployed(platform, client, "t06b", **spec, runtime=runtime) as service:
        agents = await _await_replicas(platform, "t06b", 1)
        keys = ["t06b-0", "t06b-1"]
        ids = {k: await _submit(client, service["id"], ledger, k, 4.0) for k in keys}
        await _await_starts(ledger, set(keys), 2, timeout=20)
        closed = await _close_agent_connections(set(agents))
        await _await_reconnected(set(agents), closed, timeout=15)
        done = await _await_terminal(client, service["id"], set(ids.values()), timeout=40)
        runs = intervals(read_events(ledger))
        assert {k: len(runs.get(k, [])) for k in keys} == dict.fromkeys(keys, 1), runs
        assert {e["attempts"] for e in done.values()} == {1}, [statuses(e) for e in done.values()]


# --- T16 ------------------------------------------------------------------------------------


def _count(text: str, event: str, **keys: str) -> int:
    return sum(1 for r in _log_events(text, event) if all(r.get(k) == v for k, v in keys.items()))


@dataclass(frozen=True)
class LogCounts:
    rejected: int  # gateway: delivery_rejected (undecodable on the agent exchange)
    dead: int  # gateway: message_dead_lettered (what the agent dead-lettered)
    poison: int  # agent: poison_delivery
    refused: int  # agent: claim_refused, verdict gone

    @classmethod
    def read(cls, platform: LocalPlatform, unknown: str) -> LogCounts:
        gateway, agents = platform.log("gateway"), platform.agent_logs()
        return cls(
            rejected=_count(gateway, "delivery_rejected"),
            dead=_count(gateway, "message_dead_lettered"),
            poison=_count(agents, "poison_delivery"),
            refused=_count(agents, "claim_refused", execution_id=unknown, verdict="gone"),
        )


async def _claim_reply(
    channel: AbstractChannel, exchange: AbstractExchange, claim: ClaimRequest
) -> AnyMessage:
    """Ask the gateway for a claim as an agent would; the decoded reply."""
    replies = await channel.declare_queue(exclusive=True, auto_delete=True)
    message = aio_pika.Message(encode(claim), reply_to=replies.name, correlation_id="t16")
    await exchange.publish(message, routing_key="claim")
    for _ in range(100):
        got = await replies.get(fail=False)
        if got is not None:
            await got.ack()
            return decode(got.body)
        await asyncio.sleep(0.05)
    raise AssertionError("no reply to a claim within 5 s")


def _finished(execution_id: str, attempt: int, status: ExecutionStatus) -> ExecutionFinished:
    now = datetime.now(UTC)
    return ExecutionFinished(
        execution_id=execution_id,
        attempt=attempt,
        replica_id="t16-forged",
        status=status,
        output={"forged": True},
        started_at=now,
        finished_at=now,
    )


async def _publish_malformed(
    platform: LocalPlatform, service: Execution, ledger: Path, ids: tuple[str, str, str]
) -> AnyMessage:
    """Junk straight onto the platform's exchanges (see the T16 test); the claim's reply."""
    running, ended, forged = ids
    ns = platform.namespace
    requested = ExecutionRequested(
        execution_id=forged,
        service_id=service["id"],
        project_id=service["projectId"],
        function_name="run",
        input=ledger_input(ledger, "forged", 0.01),
        created_at=datetime.now(UTC),
    )
    connection = await aio_pika.connect(platform.env["SPOOL_AMQP_URL"])
    async with connection:
        channel = await connection.channel()
        agent = await channel.get_exchange(f"{ns}.agent")
        work = await channel.get_exchange(f"{ns}.executions")
        await agent.publish(aio_pika.Message(b"{not json"), routing_key="report")
        bogus = json.dumps({"type": "execution.bogus", "version": 1}).encode()
        await agent.publish(aio_pika.Message(bogus), routing_key="claim")
        await work.publish(aio_pika.Message(b"[1, 2"), routing_key=service["id"])
        await work.publish(aio_pika.Message(encode(requested)), routing_key=service["id"])
        for report in (
            _finished(running, 2, ExecutionStatus.SUCCESS),  # not the running attempt
            _finished(ended, 1, ExecutionStatus.FAILED),  # after the end
        ):
            await agent.publish(aio_pika.Message(encode(report)), routing_key="report")
        claim = ClaimRequest(execution_id=forged, service_id=service["id"], replica_id="t16-x")
        return await _claim_reply(channel, agent, claim)


@pytest.mark.timeout(90)
async def test_t16_malformed_messages_are_refused_and_change_nothing(
    platform: LocalPlatform, client: httpx.AsyncClient, ledgers: Path
) -> None:
    """Bad JSON and an unknown type on the agent exchange, bad JSON, and a request for an
    unknown execution on the service's queue, reports for an attempt that is not running and
    for an ended execution, and a claim for an unknown execution."""
    ledger = ledgers / "t16.jsonl"
    runtime = {"numReplicas": 1, "concurrency": 2}
    async with _deployed(platform, client, "t16", drainTime=5, runtime=runtime) as service:
        agents = await _await_replicas(platform, "t16", 1)
        witness = await wait(client, await _submit(client, service["id"], ledger, "w", 0.01))
        assert witness["latestStatus"]["status"] == SUCCESS, witness
        running = await _submit(client, service["id"], ledger, "running", 6.0)
        await _await_starts(ledger, {"running"}, 1, timeout=20)
        before = await _executions(client)
        assert before[running]["latestStatus"]["status"] == IN_PROGRESS
        forged = uuid.uuid4().hex
        baseline = LogCounts.read(platform, forged)
        ids = (running, witness["id"], forged)
        reply = await _publish_malformed(platform, service, ledger, ids)
        assert isinstance(reply, ClaimReply), reply
        assert reply.verdict is ClaimVerdict.GONE, reply

        expected = LogCounts(baseline.rejected + 2, baseline.dead + 1, baseline.poison + 1, 1)
        await _eventually(
            "one log line per bad message", lambda: LogCounts.read(platform, forged) == expected, 10
        )
        after = await _executions(client)
        await asyncio.sleep(SLACK)  # anything logged twice would show by now
        assert LogCounts.read(platform, forged) == expected
        # Every ended execution of the platform, and every one of this service, is unchanged
        # (executions other tests left unfinished may still be settled by the reaper).
        watched = {
            i
            for i, e in before.items()
            if e["latestStatus"]["status"] in TERMINAL or e["serviceId"] == service["id"]
        }
        changed = {i for i in watched if after[i]["updatedAt"] != before[i]["updatedAt"]}
        assert not changed, f"bad messages changed executions {changed}"
        assert forged not in after, "a forged message created an execution"
        assert platform.processes["gateway"].returncode is None, "the gateway died"
        assert live_agents(platform.state_dir, "t16") == agents, "the agent died"

        done = await wait(client, running, timeout=30)
        assert statuses(done) == ["created", IN_PROGRESS, SUCCESS], done
        assert done["attempts"] == 1, done
        assert done["output"]["key"] == "running", done["output"]
        normal = await wait(client, await _submit(client, service["id"], ledger, "after", 0.01))
        assert normal["latestStatus"]["status"] == SUCCESS, normal
        assert "forged" not in intervals(read_events(ledger)), "a forged execution ran"
        await _await_no_ready_messages(platform, service["id"])
        mine = await _executions(client, service["id"])
        fault = "T16 malformed, stale and forged messages"
        run = record(tally(fault, mine.values(), intervals(read_events(ledger))))
        assert run.clean, run.line()


@pytest.mark.timeout(60)
async def test_t16_fenced_messages_are_logged_with_a_reason(
    platform: LocalPlatform, client: httpx.AsyncClient, ledgers: Path
) -> None:
    ledger = ledgers / "t16-fenced.jsonl"
    async with _deployed(platform, client, "t16f", drainTime=5) as service:
        await _await_replicas(platform, "t16f", 1)
        ended = await wait(client, await _submit(client, service["id"], ledger, "t16f", 0.01))
        unknown = uuid.uuid4().hex
        offset = len(platform.log("gateway"))  # HTTP traffic about `ended` came before this
        connection = await aio_pika.connect(platform.env["SPOOL_AMQP_URL"])
        async with connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange(f"{platform.namespace}.agent")
            stale = _finished(ended["id"], 1, ExecutionStatus.FAILED)
            await exchange.publish(aio_pika.Message(encode(stale)), routing_key="report")
            claim = ClaimRequest(execution_id=unknown, service_id=service["id"], replica_id="x")
            await _claim_reply(channel, exchange, claim)
        await asyncio.sleep(1.0)
        gateway = platform.log("gateway")[offset:]
        assert ended["id"] in gateway, "the stale report left no trace in the gateway log"
        assert unknown in gateway, "the claim for an unknown execution left no trace"


# --- T02 / T03: drain ------------------------------------------------------------------------


async def _restart_scheduler(platform: LocalPlatform) -> float:
    """Start the scheduler again if it is stopped; when it was started (time.time())."""
    if platform.processes["scheduler"].returncode is not None:
        await platform.start_service("scheduler")
    return time.time()


@pytest.mark.timeout(120)
async def test_t02_stopping_the_scheduler_finishes_running_work_and_takes_nothing_new(
    platform: LocalPlatform, client: httpx.AsyncClient, ledgers: Path
) -> None:
    ledger = ledgers / "t02.jsonl"
    spec = {"maxAttempts": 1, "drainTime": 30}
    runtime = {"numReplicas": 1, "concurrency": 2}
    async with _deployed(platform, client, "t02", **spec, runtime=runtime) as service:
        (replica,) = await _await_replicas(platform, "t02", 1)
        running = {k: await _submit(client, service["id"], ledger, k, 1.2) for k in ("r0", "r1")}
        await _await_starts(ledger, set(running), 2, timeout=20)
        try:
            stopping = _stop_scheduler(platform)
            signalled = await _draining_signal_time(platform, replica)
            await asyncio.sleep(SLACK)  # the agent's consumer is cancelled by now
            late = {k: await _submit(client, service["id"], ledger, k, 0.2) for k in ("l0", "l1")}
            assert await stopping == 0
            runs = intervals(read_events(ledger))
            after = [r for rs in runs.values() for r in rs if r.start > signalled + SLACK]
            assert not after, f"work started after SIGTERM at {signalled:.3f}: {after}"
            ended = await _executions(client, service["id"])
            for key, execution_id in running.items():
                e = ended[execution_id]
                assert statuses(e) == ["created", IN_PROGRESS, SUCCESS], e
                assert e["attempts"] == 1, e
                assert not execution_problems(e, runs[key], {})
            assert [ended[i]["latestStatus"]["status"] for i in late.values()] == ["created"] * 2
            assert not _replica_processes(platform, "t02"), "a process outlived the drain"
        finally:
            restarted = await _restart_scheduler(platform)
        done = await _await_terminal(client, service["id"], set(late.values()), timeout=60)
        runs = intervals(read_events(ledger))
        for key, execution_id in late.items():
            assert not execution_problems(done[execution_id], runs.get(key, []), {})
            assert runs[key][0].start > restarted, "queued work ran before the scheduler restarted"
        await _await_no_ready_messages(platform, service["id"])
        resumed = min(runs[k][0].start for k in late) - restarted
        everything = {**ended, **done}.values()
        run = record(
            tally("T02 SIGTERM drain under running work", everything, runs, recovery=resumed)
        )
        assert run.clean, run.line()


@pytest.mark.timeout(60)
async def test_t14_an_agent_holds_no_more_executions_than_its_concurrency(
    platform: LocalPlatform, client: httpx.AsyncClient, ledgers: Path
) -> None:
    ledger = ledgers / "t14.jsonl"
    runtime = {"numReplicas": 1, "concurrency": 1}
    async with _deployed(platform, client, "t14", drainTime=30, runtime=runtime) as service:
        await _await_replicas(platform, "t14", 1)
        ids = [await _submit(client, service["id"], ledger, f"q{i}", 1.5) for i in range(3)]
        try:
            await _await_starts(ledger, {"q0", "q1", "q2"}, 1, timeout=20)
            most = 0
            for _ in range(10):  # while the first one runs (1.5 s)
                found = await _executions(client, service["id"])
                now = sum(1 for i in ids if found[i]["latestStatus"]["status"] == IN_PROGRESS)
                most = max(most, now)
                await asyncio.sleep(0.1)
            assert most <= 1, f"{most} executions in progress on one slot"
        finally:
            done = await _await_terminal(client, service["id"], set(ids), timeout=30)
        runs = intervals(read_events(ledger))
        run = record(tally("T14 concurrency 1 under a backlog", done.values(), runs))
        assert run.clean, run.line()


@pytest.mark.timeout(90)
async def test_t02_a_draining_agent_starts_no_queued_execution(
    platform: LocalPlatform, client: httpx.AsyncClient, ledgers: Path
) -> None:
    ledger = ledgers / "t02-backlog.jsonl"
    spec = {"onReset": "rerun", "maxAttempts": 3, "drainTime": 30}
    runtime = {"numReplicas": 1, "concurrency": 1}
    async with _deployed(platform, client, "t02b", **spec, runtime=runtime) as service:
        (replica,) = await _await_replicas(platform, "t02b", 1)
        keys = ["b0", "b1", "b2"]
        ids = {k: await _submit(client, service["id"], ledger, k, 1.0) for k in keys}
        await _await_starts(ledger, set(keys), 1, timeout=20)
        try:
            stopping = _stop_scheduler(platform)
            signalled = await _draining_signal_time(platform, replica)
            assert await stopping == 0
            runs = intervals(read_events(ledger))
            late = [r for rs in runs.values() for r in rs if r.start > signalled + SLACK]
            assert not late, f"queued work started after SIGTERM at {signalled:.3f}: {late}"
        finally:
            await _restart_scheduler(platform)
            await _await_terminal(client, service["id"], set(ids.values()), timeout=60)


@pytest.mark.timeout(90)
async def test_t02_work_longer_than_the_lease_still_succeeds_during_a_drain(
    platform: LocalPlatform, client: httpx.AsyncClient, ledgers: Path
) -> None:
    ledger = ledgers / "t02-lease.jsonl"
    spec = {"maxAttempts": 1, "drainTime": 30}
    runtime = {"numReplicas": 1, "concurrency": 1}
    async with _deployed(platform, client, "t02l", **spec, runtime=runtime) as service:
        await _await_replicas(platform, "t02l", 1)
        lease = float(platform.env["SPOOL_LEASE_SECONDS"])
        execution_id = await _submit(client, service["id"], ledger, "long", 2.5 * lease)
        await _await_starts(ledger, {"long"}, 1, timeout=20)
        try:
            assert await platform.stop_service("scheduler") == 0
            done = await wait(client, execution_id, timeout=10)
            assert statuses(done) == ["created", IN_PROGRESS, SUCCESS], done["statusLog"]
        finally:
            await _restart_scheduler(platform)


def _ended(ledger: Path, key: str) -> bool:
    return any(e.key == key and e.event == "end" for e in read_events(ledger))


@pytest.mark.timeout(90)
async def test_t02_a_claim_in_flight_when_sigterm_lands_runs_on_the_draining_replica(
    platform: LocalPlatform, client: httpx.AsyncClient, ledgers: Path
) -> None:
    """The gateway may grant a claim the agent sent before its SIGTERM: that attempt is the
    replica's, and the drain must wait for it as for a running call rather than stop the
    runner under it (which would fail it as a reset nobody caused). The gateway is frozen
    (SIGSTOP) so the claim is still unanswered when the drain begins."""
    ledger = ledgers / "t02-claim.jsonl"
    spec = {"maxAttempts": 1, "drainTime": 30}
    runtime = {"numReplicas": 1, "concurrency": 1}
    gateway = platform.processes["gateway"].pid
    async with _deployed(platform, client, "t02c", **spec, runtime=runtime) as service:
        (replica,) = await _await_replicas(platform, "t02c", 1)
        first = await _submit(client, service["id"], ledger, "first", 1.5)
        await _await_starts(ledger, {"first"}, 1, timeout=20)
        second = await _submit(client, service["id"], ledger, "second", 0.2)
        await asyncio.sleep(0.3)  # the agent holds the delivery, waiting for the slot
        try:
            os.kill(gateway, signal.SIGSTOP)
            await _eventually("the first run's end", lambda: _ended(ledger, "first"), 10)
            await asyncio.sleep(0.3)  # the slot is free: the second claim waits on the gateway
            stopping = _stop_scheduler(platform)
            await _draining_signal_time(platform, replica)
            await asyncio.sleep(SLACK)
            os.kill(gateway, signal.SIGCONT)  # well inside the agent's claim timeout (5 s)
            assert await stopping == 0
        finally:
            os.kill(gateway, signal.SIGCONT)
            restarted = await _restart_scheduler(platform)
        done = await _await_terminal(client, service["id"], {first, second}, timeout=30)
        runs = intervals(read_events(ledger))
        for key, execution_id in (("first", first), ("second", second)):
            e = done[execution_id]
            assert statuses(e) == ["created", IN_PROGRESS, SUCCESS], e["statusLog"]
            assert e["attempts"] == 1, e
            assert not execution_problems(e, runs[key], {})
        assert runs["second"][0].start < restarted, "it ran only after the scheduler restarted"


async def _overrun_drain(
    platform: LocalPlatform, client: httpx.AsyncClient, ledger: Path, service: Execution
) -> tuple[str, int]:
    """Run an 8 s execution, stop the scheduler under it and check the drain deadline: the
    stop takes at most drainTime plus the kill margins and nothing of the replica survives.
    Returns the execution id and the pid of its run."""
    name, drain_time = service["name"], float(service["drainTime"])
    await _await_replicas(platform, name, 1)
    execution_id = await _submit(client, service["id"], ledger, "long", 8.0)
    await _await_starts(ledger, {"long"}, 1, timeout=20)
    (first,) = read_events(ledger)
    started = time.monotonic()
    assert await platform.stop_service("scheduler") == 0
    took = time.monotonic() - started
    # The scheduler signals its agents within a reconcile interval (1 s); the agent stops its
    # runner at drainTime + 1 s; the driver SIGKILLs the agent at drainTime + KILL_MARGIN.
    assert took < drain_time + KILL_MARGIN + 1 + 2 * SLACK, f"the stop took {took:.1f} s"
    assert not is_alive(first.pid), "the runner outlived the drain deadline"
    assert not _replica_processes(platform, name), "a process outlived the drain deadline"
    return execution_id, first.pid


async def _await_not_in_progress(
    client: httpx.AsyncClient, execution_id: str, timeout: float
) -> Execution:
    """I6: no execution stays in-progress once its replica is gone (the lease settles it)."""
    current: Execution = {}
    for _ in range(int(timeout / 0.1)):
        current = (await client.get(f"/executions/{execution_id}")).json()
        if current["latestStatus"]["status"] != IN_PROGRESS:
            return current
        await asyncio.sleep(0.1)
    raise AssertionError(f"still in progress {timeout} s after its replica was stopped: {current}")


@pytest.mark.timeout(120)
async def test_t03_work_beyond_drain_time_is_killed_at_the_deadline_and_rerun(
    platform: LocalPlatform, client: httpx.AsyncClient, ledgers: Path
) -> None:
    ledger = ledgers / "t03.jsonl"
    spec = {"onReset": "rerun", "maxAttempts": 3, "drainTime": 2}
    runtime = {"numReplicas": 1, "concurrency": 1}
    async with _deployed(platform, client, "t03", **spec, runtime=runtime) as service:
        try:
            execution_id, pid = await _overrun_drain(platform, client, ledger, service)
            died = {pid: time.time()}
            lease = float(platform.env["SPOOL_LEASE_SECONDS"])
            ended = await _await_not_in_progress(client, execution_id, timeout=lease + 2)
            assert ended["latestStatus"]["status"] == "rerun", ended  # onReset, while stopped
        finally:
            await _restart_scheduler(platform)
        done = await wait(client, execution_id, timeout=60)
        runs = intervals(read_events(ledger))
        assert not execution_problems(done, runs["long"], died)
        assert statuses(done) == ["created", IN_PROGRESS, "rerun", IN_PROGRESS, SUCCESS], done
        assert [r.end is None for r in runs["long"]] == [True, False], runs["long"]
        fault = "T03 drain deadline exceeded, rerun elsewhere"
        run = record(tally(fault, [done], runs, recovery=runs["long"][1].start - died[pid]))
        assert run.clean, run.line()
