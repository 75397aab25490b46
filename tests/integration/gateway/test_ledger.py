"""Execution records on the real PostgreSQL: claims, fencing, leases, the reaper, the outbox."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import pytest
from support.faults import FaultRun, record, scale
from support.stores import seed_service

from spool_common.messages import ExecutionFinished
from spool_common.models import (
    Execution,
    ExecutionStatus,
    OnResetAction,
    Service,
    StatusEntry,
)
from spool_gateway.ledger import Ledger, Lost, NewExecution
from spool_gateway.lifecycle import ClaimState, plan_lost_attempt
from spool_gateway.outbox import OutboxRow

pytestmark = pytest.mark.integration

NOW = datetime(2026, 1, 1, tzinfo=UTC)


async def _execution(ledger: Ledger, service: Service, execution_id: str = "e1") -> None:
    created = StatusEntry(status=ExecutionStatus.CREATED, timestamp=NOW)
    execution = Execution(
        id=execution_id,
        project_id="p1",
        service_id=service.id,
        status_log=[created],
        latest_status=created,
        max_attempts=service.max_attempts,
        created_at=NOW,
        updated_at=NOW,
    )
    await ledger.create_many([NewExecution(execution, {}, OutboxRow("ex", service.id, b"{}"))])


def _finished(attempt: int, status: ExecutionStatus = ExecutionStatus.SUCCESS) -> ExecutionFinished:
    return ExecutionFinished(
        execution_id="e1",
        attempt=attempt,
        replica_id="r",
        status=status,
        output="out",
        started_at=NOW,
        finished_at=NOW,
    )


async def test_creating_an_execution_writes_its_outbox_row_in_the_same_transaction(
    pool: asyncpg.Pool,
) -> None:
    ledger = Ledger(pool)
    service = await seed_service(pool, OnResetAction.FAILED, 3, NOW)
    await _execution(ledger, service)
    rows = await pool.fetch("SELECT exchange, routing_key FROM outbox ORDER BY id")
    assert [(r["exchange"], r["routing_key"]) for r in rows][-1] == ("ex", "s1")
    with pytest.raises(asyncpg.UniqueViolationError):  # a failed insert leaves no outbox row
        await _execution(ledger, service)
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE routing_key = 's1'") == 1


async def test_exactly_one_of_many_concurrent_claims_wins(pool: asyncpg.Pool) -> None:
    ledger = Ledger(pool)
    await _execution(ledger, await seed_service(pool, OnResetAction.FAILED, 3, NOW))
    results = await asyncio.gather(*(ledger.claim("e1", "s1", f"r{i}", 30, NOW) for i in range(20)))
    assert sorted(r for r in results if isinstance(r, int)) == [1]
    refused = [r for r in results if isinstance(r, ClaimState)]
    assert len(refused) == 19
    assert all(r.status is ExecutionStatus.IN_PROGRESS for r in refused)


async def test_reports_are_fenced_by_attempt_and_applied_once(pool: asyncpg.Pool) -> None:
    ledger = Ledger(pool)
    await _execution(ledger, await seed_service(pool, OnResetAction.FAILED, 3, NOW))
    assert await ledger.claim("e1", "s1", "r1", 30, NOW) == 1
    assert await ledger.finish(_finished(attempt=2)) is None  # not the running attempt
    assert await ledger.finish(_finished(attempt=1)) is not None
    assert await ledger.finish(_finished(attempt=1, status=ExecutionStatus.FAILED)) is None
    execution = await ledger.get("e1")
    assert execution is not None
    assert [e.status for e in execution.status_log] == ["created", "in-progress", "success"]
    assert execution.output == "out"
    assert execution.attempts == 1
    assert isinstance(await ledger.claim("e1", "s1", "r2", 30, NOW), ClaimState)  # terminal


async def test_a_batch_of_claims_is_judged_per_execution(pool: asyncpg.Pool) -> None:
    """One statement for a replica's batch: each queued execution gets its first attempt, an
    id given twice is granted once, an unknown id is gone, a finished one a duplicate."""
    ledger = Ledger(pool)
    service = await seed_service(pool, OnResetAction.FAILED, 3, NOW)
    for execution_id in ("e1", "e2", "e3"):
        await _execution(ledger, service, execution_id)
    assert await ledger.claim("e3", "s1", "r0", 30, NOW) == 1
    results = await ledger.claim_many(["e1", "e2", "e1", "nope", "e3"], "s1", "r1", 30, NOW)
    assert results[:2] == [1, 1]
    again, gone, running = results[2:]
    assert isinstance(again, ClaimState)
    assert again.status is ExecutionStatus.IN_PROGRESS
    assert gone == ClaimState(exists=False)
    assert isinstance(running, ClaimState)
    assert running.status is ExecutionStatus.IN_PROGRESS
    e1 = await ledger.get("e1")
    assert e1 is not None
    assert e1.attempts == 1
    assert [e.status for e in e1.status_log] == ["created", "in-progress"]


async def test_a_claim_asked_again_under_its_claim_id_is_granted_again_not_refused(
    pool: asyncpg.Pool,
) -> None:
    """The gateway granted a claim and died before replying (or replied too late): the agent
    asks again under the same claim id and must hear the same grant, with a fresh lease.
    Another delivery of the execution (another claim id), even to the same replica, is
    still a duplicate, and so is the first claim once the attempt has ended."""
    ledger = Ledger(pool)
    service = await seed_service(pool, OnResetAction.FAILED, 3, NOW)
    for execution_id in ("e1", "e2"):
        await _execution(ledger, service, execution_id)
    assert await ledger.claim_many(["e1", "e2"], "s1", "r1", 1, NOW, claim_ids=["c1", "c2"]) == [
        1,
        1,
    ]
    await pool.execute("UPDATE executions SET lease_until = now() - interval '1 s'")
    again = await ledger.claim_many(
        ["e2", "e1", "e1"], "s1", "r1", 30, NOW, claim_ids=["x", "c1", "y"]
    )
    assert again[1] == 1
    assert [type(r) for r in (again[0], again[2])] == [ClaimState, ClaimState]
    assert isinstance(await ledger.claim("e1", "s1", "r2", 30, NOW, claim_id="c1"), ClaimState)
    leases = await pool.fetch("SELECT id, lease_until > now() AS live FROM executions ORDER BY id")
    assert [(r["id"], r["live"]) for r in leases] == [("e1", True), ("e2", False)]
    e1 = await ledger.get("e1")
    assert e1 is not None
    assert (e1.attempts, [e.status for e in e1.status_log]) == (1, ["created", "in-progress"])
    assert await ledger.finish(_finished(attempt=1)) is not None
    assert isinstance(await ledger.claim("e1", "s1", "r1", 30, NOW, claim_id="c1"), ClaimState)


async def test_a_batch_of_final_reports_applies_only_the_running_attempts(
    pool: asyncpg.Pool,
) -> None:
    ledger = Ledger(pool)
    service = await seed_service(pool, OnResetAction.FAILED, 3, NOW)
    for execution_id in ("e1", "e2", "e3"):
        await _execution(ledger, service, execution_id)
    await ledger.claim_many(["e1", "e2"], "s1", "r1", 30, NOW)  # e3 stays queued
    reports = [
        _finished(attempt=1).model_copy(update={"execution_id": "e1", "output": {"n": 1}}),
        _finished(attempt=2).model_copy(update={"execution_id": "e2"}),  # not its attempt
        _finished(attempt=1).model_copy(update={"execution_id": "e3"}),  # not running
    ]
    applied = await ledger.finish_many(reports)
    assert [e.id for e in applied] == ["e1"]
    e1 = await ledger.get("e1")
    assert e1 is not None
    assert e1.output == {"n": 1}
    assert e1.latest_status.status is ExecutionStatus.SUCCESS
    e2 = await ledger.get("e2")
    assert e2 is not None
    assert e2.latest_status.status is ExecutionStatus.IN_PROGRESS


def _decide(lost: Lost) -> tuple[StatusEntry, bool]:
    plan = plan_lost_attempt(
        on_reset=lost.on_reset, attempts=lost.attempts, max_attempts=lost.max_attempts, now=NOW
    )
    return plan.entry, plan.requeue


def _requeue(lost: Lost) -> OutboxRow:
    return OutboxRow("ex", lost.service_id, lost.id.encode())


async def _expire(pool: asyncpg.Pool) -> None:
    await pool.execute("UPDATE executions SET lease_until = now() - interval '1 second'")


async def test_a_lost_attempt_is_rerun_until_attempts_run_out(pool: asyncpg.Pool) -> None:
    ledger = Ledger(pool)
    await _execution(ledger, await seed_service(pool, OnResetAction.RERUN, 2, NOW))
    assert await ledger.claim("e1", "s1", "r1", 30, NOW) == 1
    assert (await ledger.reap(_decide, _requeue))[0] == 0  # lease still valid
    await _expire(pool)
    count, rows, ids = await ledger.reap(_decide, _requeue)
    assert count == 1
    assert rows == [OutboxRow("ex", "s1", b"e1")]
    assert len(ids) == 1
    assert await ledger.claim("e1", "s1", "r2", 30, NOW) == 2
    assert await ledger.finish(_finished(attempt=1)) is None  # the lost attempt is late
    await _expire(pool)
    count, rows, _ = await ledger.reap(_decide, _requeue)
    assert count == 1
    assert rows == []
    execution = await ledger.get("e1")
    assert execution is not None
    assert execution.latest_status.status is ExecutionStatus.FAILED
    statuses = [e.status for e in execution.status_log]
    assert statuses == ["created", "in-progress", "rerun", "in-progress", "failed"]


async def test_renewed_leases_are_not_reaped(pool: asyncpg.Pool) -> None:
    ledger = Ledger(pool)
    await _execution(ledger, await seed_service(pool, OnResetAction.FAILED, 3, NOW))
    await ledger.claim("e1", "s1", "r1", 30, NOW)
    await _expire(pool)
    assert await ledger.renew([("e1", 1), ("e1", 7)], 30) == 1
    assert (await ledger.reap(_decide, _requeue))[0] == 0


async def test_extended_leases_spare_attempts_nobody_could_renew(pool: asyncpg.Pool) -> None:
    """After an outage (renewals could not be recorded) every running attempt gets at least
    a fresh lease, so the reaper spares it; a longer lease is left as it is."""
    ledger = Ledger(pool)
    service = await seed_service(pool, OnResetAction.RERUN, 3, NOW)
    for execution_id in ("e1", "e2"):
        await _execution(ledger, service, execution_id)
        await ledger.claim(execution_id, "s1", "r1", 30, NOW)
    await _expire(pool)
    await pool.execute("UPDATE executions SET lease_until = now() + interval '1 h' WHERE id = 'e2'")
    assert await ledger.extend_leases(30) == 1
    assert (await ledger.reap(_decide, _requeue))[0] == 0
    leases = await pool.fetch(
        "SELECT id, lease_until > now() + interval '20 s' AS fresh, "
        "lease_until > now() + interval '1 min' AS long FROM executions ORDER BY id"
    )
    assert [tuple(r) for r in leases] == [("e1", True, False), ("e2", True, True)]


@pytest.mark.reliability
async def test_t20_racing_reapers_and_late_reports_settle_each_attempt_once(
    pool: asyncpg.Pool,
) -> None:
    """T20: 60 attempts (1000 at full load) whose leases expired, settled by 6 reapers (8) at
    once (SKIP LOCKED) while the replicas' own final reports for half of them arrive at the
    same moment: each attempt ends exactly once, either as the report says or requeued by
    one reaper, never both."""
    ledger = Ledger(pool)
    service = await seed_service(pool, OnResetAction.RERUN, 3, NOW)
    ids = [f"e{i}" for i in range(scale(60, 1000))]
    for execution_id in ids:
        await _execution(ledger, service, execution_id)
    assert await ledger.claim_many(ids, "s1", "r1", 30, NOW) == [1] * len(ids)
    await _expire(pool)
    reports = [
        ExecutionFinished(
            execution_id=execution_id,
            attempt=1,
            replica_id="r1",
            status=ExecutionStatus.SUCCESS,
            output="out",
            started_at=NOW,
            finished_at=NOW,
        )
        for execution_id in ids[::2]
    ]
    reaped, finished = await asyncio.gather(
        asyncio.gather(*(ledger.reap(_decide, _requeue, limit=7) for _ in range(scale(6, 8)))),
        asyncio.gather(*(ledger.finish(r) for r in reports)),
    )
    while (more := await ledger.reap(_decide, _requeue))[0]:  # what the round left over
        reaped = [*reaped, more]
    requeued = [row.body.decode() for _, rows, _ in reaped for row in rows]
    applied = {f.id for f in finished if f is not None}
    settled = [await ledger.get(i) for i in ids]
    run = record(
        FaultRun(
            fault="T20 reapers racing late final reports",
            submitted=len(ids),
            terminal=len(applied | set(requeued)),  # here: attempts settled
            lost=len(set(ids) - applied - set(requeued)),
            over_attempted=sum(1 for e in settled if e is None or e.attempts > e.max_attempts),
            duplicated=len(requeued) - len(set(requeued)) + len(applied & set(requeued)),
            recovery=None,
        )
    )
    assert run.clean, run.line()
    assert len(requeued) == len(set(requeued))  # no attempt requeued twice
    assert not applied & set(requeued)  # finished or requeued, never both
    assert applied | set(requeued) == set(ids)  # and every attempt one of them
    for execution_id in ids:
        execution = await ledger.get(execution_id)
        assert execution is not None
        statuses = [e.status for e in execution.status_log]
        wanted = "success" if execution_id in applied else "rerun"
        assert statuses == ["created", "in-progress", wanted], (execution_id, statuses)
