"""T22: the execution record as a state machine, driven by hypothesis against the real SQL.

Each example creates one execution of a service with `onReset: rerun` and 3 attempts, then
applies a random sequence of what replicas and the gateway do to it: claims by any replica,
progress and final reports for the running attempt or a stale or future one, interruptions
(a timeout, a reset, a drain) of any attempt, and dead-lettering. A simple model says what
each step must do; after every step the stored record must agree with the model, and:

- attempts only grow, and never past maxAttempts;
- only the running attempt's reports change the record (fencing): a stale or future report,
  and any report once the execution ended, are refused and change nothing;
- nothing follows a final status in the status log, and each claim's entry carries the
  next attempt number;
- a granted claim answers exactly the attempt the record then holds.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from support.faults import FaultRun, record, scale
from support.stores import drop, migrated_pool, seed_service

import spool_gateway
from spool_common.messages import ExecutionFinished, ExecutionProgress, InterruptReason
from spool_common.models import (
    Execution,
    ExecutionStatus,
    OnResetAction,
    StatusEntry,
)
from spool_gateway.ledger import Ledger, Lost, NewExecution
from spool_gateway.lifecycle import ClaimState, dead_letter_entry, plan_interrupted
from spool_gateway.outbox import OutboxRow

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

MIGRATIONS = Path(spool_gateway.__file__).parent / "migrations"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
MAX_ATTEMPTS = 3
QUEUED = {ExecutionStatus.CREATED, ExecutionStatus.RERUN}
FINAL = {ExecutionStatus.SUCCESS, ExecutionStatus.FAILED, ExecutionStatus.TERMINATED}
REPLICAS = st.sampled_from(["r1", "r2", "r3"])
OFFSETS = st.sampled_from([0, 0, 0, -1, 1])  # mostly the running attempt; sometimes not
REASONS = st.sampled_from(list(InterruptReason))
T = TypeVar("T")


@dataclass
class Db:
    """A pool on a loop of the test's own: hypothesis's rules are plain functions."""

    loop: asyncio.AbstractEventLoop
    ledger: Ledger

    def run(self, step: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(step)


@pytest.fixture
def db(database_url: str, namespace: str) -> Iterator[Db]:
    loop = asyncio.new_event_loop()
    schema = f"gateway_{namespace}"
    pool: asyncpg.Pool = loop.run_until_complete(migrated_pool(database_url, schema, MIGRATIONS))
    try:
        loop.run_until_complete(seed_service(pool, OnResetAction.RERUN, MAX_ATTEMPTS, NOW))
        yield Db(loop, Ledger(pool))
    finally:
        loop.run_until_complete(drop(database_url, pool, schema))
        loop.close()


def _requeue(lost: Lost) -> OutboxRow:
    return OutboxRow("ex", lost.service_id, b"{}")


class ExecutionRecord(RuleBasedStateMachine):
    """One execution, and a model of what each step must do to it."""

    db: Db  # set by the test
    ids = itertools.count()
    steps: list[str] = []
    ended: list[tuple[Execution, ExecutionStatus]] = []  # each record at teardown, and the model's

    @initialize()
    def create(self) -> None:
        self.id = f"e{next(self.ids)}"
        self.status = ExecutionStatus.CREATED
        self.attempts = 0
        created = StatusEntry(status=ExecutionStatus.CREATED, timestamp=NOW)
        execution = Execution(
            id=self.id,
            project_id="p1",
            service_id="s1",
            status_log=[created],
            latest_status=created,
            max_attempts=MAX_ATTEMPTS,
            created_at=NOW,
            updated_at=NOW,
        )
        news = [NewExecution(execution, {}, OutboxRow("ex", "s1", b"{}"))]
        self.db.run(self.db.ledger.create_many(news))

    @rule(replica=REPLICAS)
    def claim(self, replica: str) -> None:
        self.steps.append("claim")
        got = self.db.run(self.db.ledger.claim(self.id, "s1", replica, 30, NOW))
        if self.status in QUEUED and self.attempts < MAX_ATTEMPTS:
            assert got == self.attempts + 1
            self.attempts += 1
            self.status = ExecutionStatus.IN_PROGRESS
        else:
            assert isinstance(got, ClaimState), got
            assert got.status is self.status

    @rule(offset=OFFSETS, ok=st.booleans())
    def finish(self, offset: int, ok: bool) -> None:
        self.steps.append("finish")
        status = ExecutionStatus.SUCCESS if ok else ExecutionStatus.FAILED
        report = ExecutionFinished(
            execution_id=self.id,
            attempt=self.attempts + offset,
            replica_id="r",
            status=status,
            output="out",
            started_at=NOW,
            finished_at=NOW,
        )
        applied = self.db.run(self.db.ledger.finish(report)) is not None
        assert applied == (self._running() and offset == 0)
        if applied:
            self.status = status

    @rule(offset=OFFSETS, percent=st.integers(0, 100))
    def progress(self, offset: int, percent: int) -> None:
        self.steps.append("progress")
        report = ExecutionProgress(
            execution_id=self.id,
            attempt=self.attempts + offset,
            replica_id="r",
            percent_complete=percent,
            at=NOW,
        )
        applied = self.db.run(self.db.ledger.progress(report))
        assert applied == (self._running() and offset == 0)

    @rule(offset=OFFSETS, reason=REASONS)
    def interrupt(self, offset: int, reason: InterruptReason) -> None:
        self.steps.append("interrupt")

        def decide(lost: Lost) -> tuple[StatusEntry, bool]:
            plan = plan_interrupted(
                reason=reason,
                on_reset=lost.on_reset,
                attempts=lost.attempts,
                max_attempts=lost.max_attempts,
                to_terminate=lost.to_terminate,
                now=NOW,
            )
            return plan.entry, plan.requeue

        settled = self.db.run(
            self.db.ledger.interrupt(self.id, self.attempts + offset, decide, _requeue)
        )
        assert (settled is not None) == (self._running() and offset == 0)
        if settled is not None:
            requeued = self.attempts < MAX_ATTEMPTS  # onReset: rerun
            self.status = ExecutionStatus.RERUN if requeued else ExecutionStatus.FAILED
            assert len(settled[0]) == int(requeued)  # a requeue publishes it again

    @rule()
    def dead_letter(self) -> None:
        self.steps.append("dead_letter")
        applied = self.db.run(
            self.db.ledger.fail_queued(self.id, dead_letter_entry("expired", NOW))
        )
        assert applied == (self.status in QUEUED)
        if applied:
            self.status = ExecutionStatus.FAILED

    def _running(self) -> bool:
        return self.status is ExecutionStatus.IN_PROGRESS

    def teardown(self) -> None:
        stored = self.db.run(self.db.ledger.get(self.id))
        assert stored is not None
        self.ended.append((stored, self.status))

    @invariant()
    def the_record_agrees_with_the_model(self) -> None:
        stored = self.db.run(self.db.ledger.get(self.id))
        assert stored is not None
        assert stored.attempts == self.attempts <= MAX_ATTEMPTS
        assert stored.latest_status.status is self.status
        log = [e.status for e in stored.status_log]
        finals = [i for i, s in enumerate(log) if s in FINAL]
        assert finals in ([], [len(log) - 1]), log  # nothing after a final status
        started = [
            e.attempt
            for e in stored.status_log
            if e.status is ExecutionStatus.IN_PROGRESS and e.percent_complete is None
        ]
        assert started == list(range(1, self.attempts + 1)), started


def test_t22_the_execution_record_follows_its_state_machine(db: Db) -> None:
    ExecutionRecord.db = db
    ExecutionRecord.steps.clear()
    ExecutionRecord.ended.clear()
    run_state_machine_as_test(
        ExecutionRecord,
        settings=settings(
            max_examples=scale(60, 1000),
            stateful_step_count=25,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        ),
    )
    # The rules were all exercised, not just the first.
    assert {"claim", "finish", "progress", "interrupt", "dead_letter"} <= set(ExecutionRecord.steps)
    run = record(_fault_run(ExecutionRecord.ended))
    assert run.clean, run.line()


def _fault_run(ended: list[tuple[Execution, ExecutionStatus]]) -> FaultRun:
    """The suite's line for T22, one execution per generated machine: `lost` is a record whose
    status is not the model's (a step's effect went missing), `duplicated` a record holding
    more than one final status."""
    finals = [sum(1 for e in stored.status_log if e.status in FINAL) for stored, _ in ended]
    return FaultRun(
        fault="T22 execution record state machine (hypothesis)",
        submitted=len(ended),
        terminal=sum(1 for stored, _ in ended if stored.latest_status.status in FINAL),
        lost=sum(1 for stored, model in ended if stored.latest_status.status is not model),
        over_attempted=sum(1 for stored, _ in ended if stored.attempts > MAX_ATTEMPTS),
        duplicated=sum(1 for n in finals if n > 1),
        recovery=None,
    )
