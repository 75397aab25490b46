"""T19 (reference/reliability.md §7): the gateway killed in each dual-write window, by a
failpoint (spool_common.failpoints) that `os._exit(137)`s it there: the two of its
transactional outbox, and the one between granting a claim and replying to it.

Each round restarts the gateway with one point armed and asks for a batch of executions of
the ledger package (support/ledger.py) in one request: the batch commits in one transaction,
so the whole batch is in the window when the gateway dies, and the client gets no answer.
The gateway is then started again without failpoints, and every execution of the batch that
exists afterwards (listed through the API: nobody was told it was accepted) must run exactly
once and end `success`:

* `outbox.before_publish`: rows committed, nothing published. The sweep of the next life
  publishes them; nothing can have started before the restart.
* `outbox.before_delete`: every row confirmed by the broker, none deleted. The sweep
  publishes each one again, and the claim refuses the second copy (I2, I3).
* `claim.before_reply`: the first claim of the batch committed, its agent never answered.
  The request comes back to the next life (or the agent asks again): it must be granted
  again, the same attempt, not refused as a duplicate of itself and left to its lease.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import pytest_asyncio
from support.faults import record, scale, tally
from support.ledger import SUCCESS, execution_problems, intervals, ledger_input, read_events
from support.platform import LocalPlatform, wait
from support.runs import await_no_ready_messages, await_terminal, deployed, executions, submit

from spool_common.failpoints import ENV, EXIT_STATUS

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.reliability,
    pytest.mark.asyncio(loop_scope="module"),
]

Execution = dict[str, Any]
ROUNDS = scale(2, 5)  # gateway deaths per window
BATCH = scale(10, 60)  # executions in the window at each death
SECONDS = 0.2  # how long each execution runs
SPEC: dict[str, Any] = {"onReset": "rerun", "maxAttempts": 3, "drainTime": 5}
RUNTIME = {"numReplicas": 1, "concurrency": 4}


@pytest_asyncio.fixture(loop_scope="module")
async def client(platform: LocalPlatform) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the test's own: the module's one would keep connections to a gateway
    this test kills."""
    async with platform.client() as c:
        yield c


@dataclass
class Round:
    """One death of the gateway and what it left."""

    keys: list[str]
    answered: bool  # the client got an answer before the gateway died
    restarted: float  # time.time() when the gateway was started again
    log_offset: int  # where the gateway's log of its next life begins
    ids: dict[str, str] = field(default_factory=dict)  # key -> execution id, found afterwards
    swept: int = 0  # rows the sweep of the next life published


async def _create_batch(platform: LocalPlatform, service_id: str, body: dict[str, Any]) -> bool:
    """POST the batch on a connection of its own; whether any answer came back."""
    async with platform.client() as client:
        try:
            response = await client.post(f"/executions/{service_id}/batch", json=body)
        except httpx.TransportError:
            return False
    assert response.status_code == 201, response.text
    return True


async def _restart_gateway(platform: LocalPlatform, failpoint: str | None) -> float:
    """Start the gateway (stopped or dead), with `failpoint` armed; when it was started."""
    if platform.processes["gateway"].returncode is None:
        assert await platform.stop_service("gateway") == 0
    started = time.time()
    await platform.start_service("gateway", extra_env={ENV: failpoint} if failpoint else None)
    await platform.wait_healthy()
    return started


async def _crash_round(
    platform: LocalPlatform, service_id: str, ledger: Path, failpoint: str, keys: list[str]
) -> Round:
    """Arm `failpoint`, create the batch, see the gateway die with 137, start it again."""
    await _restart_gateway(platform, failpoint)
    calls = [{"functionName": "run", "input": ledger_input(ledger, k, SECONDS)} for k in keys]
    answered = await _create_batch(platform, service_id, {"executions": calls})
    code = await asyncio.wait_for(platform.processes["gateway"].wait(), 60)
    assert code == EXIT_STATUS, f"the gateway exited {code}, not at {failpoint}"
    assert f'"failpoint":"{failpoint}"' in platform.log("gateway").replace(" ", "")
    offset = len(platform.log("gateway"))
    return Round(keys, answered, await _restart_gateway(platform, None), offset)


async def _outbox_rows(platform: LocalPlatform) -> int:
    connection = await asyncpg.connect(platform.database_url)
    try:
        table = f"{platform.schema('gateway')}.outbox"
        return int(await connection.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608
    finally:
        await connection.close()


async def _await_empty_outbox(platform: LocalPlatform, timeout: float = 60) -> None:
    """Every row the dead gateway left is published and deleted by the sweep of the next
    life: the next round must not start with rows its armed gateway would die on."""
    for _ in range(int(timeout / 0.5)):
        if await _outbox_rows(platform) == 0:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{await _outbox_rows(platform)} outbox rows left after {timeout} s")


def _swept(platform: LocalPlatform, offset: int) -> int:
    """Rows the sweep published since `offset` in the gateway's log."""
    lines = platform.log("gateway")[offset:].splitlines()
    found = [orjson.loads(line) for line in lines if '"outbox_swept"' in line]
    return sum(int(r["published"]) for r in found if r.get("event") == "outbox_swept")


async def _settle(
    platform: LocalPlatform, client: httpx.AsyncClient, service_id: str, crash: Round
) -> dict[str, Execution]:
    """Every execution of the round that exists, once the outbox is empty and all of them
    ended; the queue is empty too (the refused duplicates are consumed)."""
    await _await_empty_outbox(platform)
    crash.swept = _swept(platform, crash.log_offset)
    found = await executions(client, service_id)
    crash.ids = {
        e["input"]["exec_key"]: i for i, e in found.items() if e["input"]["exec_key"] in crash.keys
    }
    done = await await_terminal(client, service_id, set(crash.ids.values()), timeout=120)
    await await_no_ready_messages(platform, service_id)
    return done


def _ended_at(execution: Execution) -> float:
    return datetime.fromisoformat(execution["latestStatus"]["timestamp"]).timestamp()


async def _run_rounds(
    platform: LocalPlatform, client: httpx.AsyncClient, ledger: Path, name: str, failpoint: str
) -> tuple[dict[str, Execution], list[Round], float]:
    """Deploy, warm up, then ROUNDS deaths at `failpoint`: every execution found afterwards,
    the rounds, and the longest time from a restart until the last execution of its round
    ended."""
    async with deployed(platform, client, name, **SPEC, runtime=RUNTIME) as service:
        warm = await wait(client, await submit(client, service["id"], ledger, "warm", 0.01))
        assert warm["latestStatus"]["status"] == SUCCESS, warm
        done: dict[str, Execution] = {}
        rounds: list[Round] = []
        recovery = 0.0
        for r in range(ROUNDS):
            keys = [f"{name}-{r}-{i:03d}" for i in range(BATCH)]
            crash = await _crash_round(platform, service["id"], ledger, failpoint, keys)
            settled = await _settle(platform, client, service["id"], crash)
            assert crash.ids, f"round {r}: the batch was not committed before the gateway died"
            recovery = max([recovery, *(_ended_at(e) - crash.restarted for e in settled.values())])
            done |= settled
            rounds.append(crash)
    return done, rounds, recovery


def _problems(done: dict[str, Execution], ledger: Path) -> list[str]:
    """I1-I5 for each execution, and each ran exactly once and succeeded."""
    runs = intervals(read_events(ledger))
    problems = []
    for e in done.values():
        mine = runs.get(e["input"]["exec_key"], [])
        problems += execution_problems(e, mine, {})
        if len(mine) != 1 or e["latestStatus"]["status"] != SUCCESS or e["attempts"] != 1:
            problems.append(f"{e['id']}: {len(mine)} runs, attempts {e['attempts']}, {e}")
    return problems


@pytest.mark.timeout(600)
async def test_t19_executions_committed_before_the_gateway_died_are_published_by_the_sweep(
    platform: LocalPlatform, client: httpx.AsyncClient, ledgers: Path
) -> None:
    ledger = ledgers / "t19-publish.jsonl"
    done, rounds, recovery = await _run_rounds(
        platform, client, ledger, "t19p", "outbox.before_publish"
    )
    assert not any(r.answered for r in rounds), "a client was answered before the publish"
    assert sum(len(r.ids) for r in rounds) == len(done) == ROUNDS * BATCH
    problems = _problems(done, ledger)
    runs = intervals(read_events(ledger))
    for crash in rounds:
        early = [k for k in crash.ids if runs[k][0].start < crash.restarted]
        problems += [
            f"{k} started before the gateway that committed it was restarted" for k in early
        ]
        if crash.swept < len(crash.ids):
            problems.append(f"the sweep published {crash.swept} of {len(crash.ids)} rows")
    run = record(
        tally(
            "T19 gateway killed between commit and publish", done.values(), runs, recovery=recovery
        )
    )
    assert not problems, "\n".join(problems[:30])
    assert run.clean, run.line()


@pytest.mark.timeout(600)
async def test_t19_executions_published_before_the_gateway_died_run_once_though_sent_twice(
    platform: LocalPlatform, client: httpx.AsyncClient, ledgers: Path
) -> None:
    ledger = ledgers / "t19-delete.jsonl"
    done, rounds, recovery = await _run_rounds(
        platform, client, ledger, "t19d", "outbox.before_delete"
    )
    assert sum(len(r.ids) for r in rounds) == len(done) == ROUNDS * BATCH
    problems = _problems(done, ledger)
    for crash in rounds:
        if crash.swept < len(crash.ids):  # each was published before the death, and again
            problems.append(f"the sweep published {crash.swept} of {len(crash.ids)} rows")
    runs = intervals(read_events(ledger))
    run = record(
        tally(
            "T19 gateway killed between publish and delete", done.values(), runs, recovery=recovery
        )
    )
    assert not problems, "\n".join(problems[:30])
    assert run.clean, run.line()


@pytest.mark.timeout(600)
async def test_t19_a_claim_granted_by_a_gateway_that_died_before_replying_is_granted_again(
    platform: LocalPlatform, client: httpx.AsyncClient, ledgers: Path
) -> None:
    ledger = ledgers / "t19-claim.jsonl"
    done, rounds, recovery = await _run_rounds(
        platform, client, ledger, "t19c", "claim.before_reply"
    )
    assert sum(len(r.ids) for r in rounds) == len(done) == ROUNDS * BATCH
    problems = _problems(done, ledger)  # attempts 1: no grant was lost with the gateway
    runs = intervals(read_events(ledger))
    run = record(
        tally(
            "T19 gateway killed between a claim's commit and its reply",
            done.values(),
            runs,
            recovery=recovery,
        )
    )
    assert not problems, "\n".join(problems[:30])
    assert run.clean, run.line()
