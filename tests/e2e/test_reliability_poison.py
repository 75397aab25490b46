"""T15 (reference/reliability.md §7): poison executions, whose user code kills its own process
or raises, checked against a ground-truth ledger the code writes before it misbehaves.

What the platform does (docs/architecture.md, "How an attempt can end"): an exception, and a
MemoryError under the service's memory limit (RLIMIT_AS) is one, is the call's result: failed
at once, with the exception, whatever maxAttempts says. In thread mode (the default) code that
kills its process kills the runner; the agent restarts it and reports the attempt interrupted
(`reset`), which the gateway settles by `onReset`: under `rerun` the execution is queued again
at once (there is no backoff between attempts) until maxAttempts runs are used, then failed.
In process mode the call's own child dies and the runner survives: failed at once, with the
exit status. Each way the agent survives and the service queue ends empty.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from support.faults import record, scale, tally
from support.ledger import (
    FAILED,
    RERUN,
    SUCCESS,
    execution_problems,
    intervals,
    ledger_input,
    live_agents,
    read_events,
    statuses,
)
from support.platform import LocalPlatform, wait
from support.runs import await_no_ready_messages, await_terminal, deployed_package, eventually

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.reliability,
    pytest.mark.asyncio(loop_scope="module"),
]

Execution = dict[str, Any]
MAX_ATTEMPTS = 3
EACH = scale(2, 10)  # executions of each kind of poison

POISON_MAIN = b"""
import json, os, signal, time


class ServiceRunner:
    def run(self, ledger, exec_key, action):
        line = {"key": exec_key, "pid": os.getpid(), "event": "start", "t": time.time()}
        fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(line) + "\\n").encode())
        finally:
            os.close(fd)
        if action == "exit":
            os._exit(1)
        if action == "segv":
            os.kill(os.getpid(), signal.SIGSEGV)
            time.sleep(10)  # the signal is delivered at once; never reached
        if action == "alloc":
            return len(bytearray(4 * 1024**3))  # past the 1 GiB limit: MemoryError
        if action == "raise":
            raise ValueError("poison input: " + exec_key)
        return {"key": exec_key, "pid": os.getpid(), "started": line["t"]}
"""

POISON_PACKAGE: dict[str, bytes] = {
    "main.py": POISON_MAIN,
    "package.json": orjson.dumps(
        {
            "name": "poison",
            "modules": [
                {
                    "name": "default_module",
                    "functions": [
                        {
                            "name": "run",
                            "input": [
                                {"name": "ledger", "type": "String"},
                                {"name": "exec_key", "type": "String"},
                                {"name": "action", "type": "String"},
                            ],
                        }
                    ],
                }
            ],
        }
    ),
}


@pytest_asyncio.fixture(loop_scope="module")
async def client(platform: LocalPlatform) -> AsyncIterator[httpx.AsyncClient]:
    async with platform.client() as c:
        yield c


@dataclass(frozen=True)
class Expected:
    """How an execution of one kind of poison must end."""

    attempts: int
    error_type: str
    message: str  # a part of the final status's message


def _thread_mode() -> dict[str, Expected]:
    reset = Expected(MAX_ATTEMPTS, "ReplicaReset", "the replica's runner was restarted")
    return {
        "exit": reset,
        "segv": reset,
        "raise": Expected(1, "ValueError", "poison input: "),
        "alloc": Expected(1, "MemoryError", ""),
    }


def _process_mode() -> dict[str, Expected]:
    return {
        "exit": Expected(1, "ProcessDied", "exited without a result (exit status 1)"),
        "segv": Expected(1, "ProcessDied", "SIGSEGV (exit status -11)"),
        "raise": Expected(1, "ValueError", "poison input: "),
    }


async def _submit(
    client: httpx.AsyncClient, service_id: str, ledger: Path, key: str, action: str
) -> str:
    ledger_only = {k: v for k, v in ledger_input(ledger, key, 0).items() if k != "seconds"}
    body = {"functionName": "run", "input": {**ledger_only, "action": action}}
    response = await client.post(f"/executions/{service_id}", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _agent(platform: LocalPlatform, name: str) -> int:
    """The pid of the service's one agent, once it is ready."""

    def ready() -> bool:
        agents = live_agents(platform.state_dir, name)
        logs = [platform.state_dir / "replicas" / r / "agent.log" for r in agents]
        return len(agents) == 1 and all(
            "agent_ready" in p.read_text(errors="replace") for p in logs
        )

    await eventually(f"the agent of {name} ready", ready, 60, 0.1)
    (pid,) = live_agents(platform.state_dir, name).values()
    return pid


def _runner_deaths(platform: LocalPlatform, name: str) -> dict[int, float]:
    """Runner pid -> when its agent saw it exit (`runner_exited`): the latest end of a run
    that died with it."""
    died = {}
    for log in (platform.state_dir / "replicas").glob(f"{name}-*/agent.log"):
        for line in log.read_text(errors="replace").splitlines():
            if '"runner_exited"' in line:
                entry = json.loads(line)
                at = datetime.fromisoformat(entry["timestamp"]).timestamp()
                died[int(entry["pid"])] = at
    return died


def _outcome_problems(execution: Execution, expected: Expected, starts: int) -> list[str]:
    """The end a user sees: failed, after the expected number of runs, with the error."""
    latest = execution["latestStatus"]
    error = latest.get("error") or {}
    seen = (latest["status"], execution["attempts"], starts, error.get("type"))
    wanted = (FAILED, expected.attempts, expected.attempts, expected.error_type)
    problems = [] if seen == wanted else [f"(status, attempts, starts, error) {seen} != {wanted}"]
    if expected.message not in (latest.get("message") or ""):
        problems.append(f"message {latest.get('message')!r} lacks {expected.message!r}")
    reruns = statuses(execution).count(RERUN)
    if reruns != expected.attempts - 1:
        problems.append(f"{reruns} reruns for {expected.attempts} attempts: {statuses(execution)}")
    return [f"{execution['id']}: {p}" for p in problems]


async def _poison_run(
    platform: LocalPlatform,
    client: httpx.AsyncClient,
    ledger: Path,
    name: str,
    kinds: dict[str, Expected],
    **service: Any,
) -> tuple[dict[str, Execution], list[str]]:
    """Deploy, submit EACH of every kind one after another, then a good one; the executions
    and the problems found in their ends, the agent and the queue."""
    spec = {"onReset": "rerun", "maxAttempts": MAX_ATTEMPTS, "drainTime": 5, **service}
    async with deployed_package(platform, client, name, POISON_PACKAGE, **spec) as deployed:
        agent = await _agent(platform, name)
        keys = {f"{name}-{kind}-{i}": kind for kind in kinds for i in range(EACH)}
        ids = {
            k: await _submit(client, deployed["id"], ledger, k, kind) for k, kind in keys.items()
        }
        done = await await_terminal(client, deployed["id"], set(ids.values()), timeout=240)
        good = await _submit(client, deployed["id"], ledger, f"{name}-ok", "ok")
        problems = _survivor_problems(platform, await wait(client, good), name, agent)
        await await_no_ready_messages(platform, deployed["id"])
    runs = intervals(read_events(ledger))
    died = _runner_deaths(platform, name)
    for key, execution_id in ids.items():
        execution, mine = done[execution_id], runs.get(key, [])
        problems += execution_problems(execution, mine, died)
        problems += _outcome_problems(execution, kinds[keys[key]], len(mine))
    return {e["id"]: e for e in done.values()}, problems


def _survivor_problems(
    platform: LocalPlatform, good: Execution, name: str, agent: int
) -> list[str]:
    """The agent that ran the poison is still the service's one agent, and still works."""
    agents = list(live_agents(platform.state_dir, name).values())
    problems = [] if agents == [agent] else [f"agent {agent} was replaced by {agents}"]
    if good["latestStatus"]["status"] != SUCCESS:
        problems.append(f"a good execution after the poison did not succeed: {good}")
    return problems


@pytest.mark.timeout(600)
async def test_t15_poison_in_thread_mode_is_retried_per_on_reset_only_when_it_kills_the_runner(
    platform: LocalPlatform, client: httpx.AsyncClient, ledgers: Path
) -> None:
    ledger = ledgers / "t15-thread.jsonl"
    runtime = {"concurrency": 1, "resources": {"limits": {"memory": "1Gi"}}}
    done, problems = await _poison_run(
        platform, client, ledger, "t15t", _thread_mode(), runtime=runtime
    )
    runs = intervals(read_events(ledger))
    run = record(tally("T15 poison executions, thread mode", done.values(), runs))
    assert not problems, "\n".join(problems[:30])
    assert run.clean, run.line()


@pytest.mark.timeout(600)
async def test_t15_poison_in_process_mode_fails_at_once_with_its_exit_status(
    platform: LocalPlatform, client: httpx.AsyncClient, ledgers: Path
) -> None:
    ledger = ledgers / "t15-process.jsonl"
    runtime = {"concurrency": 2}
    done, problems = await _poison_run(
        platform,
        client,
        ledger,
        "t15p",
        _process_mode(),
        runExecutionAsProcess=True,
        runtime=runtime,
    )
    runs = intervals(read_events(ledger))
    run = record(tally("T15 poison executions, process mode", done.values(), runs))
    assert not problems, "\n".join(problems[:30])
    assert run.clean, run.line()
