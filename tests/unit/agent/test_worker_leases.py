"""Which attempts a replica renews the lease of (Worker.held): from the claim until the
gateway has the final report, not only while the code runs. A final report held back by the
broker (T07: a frozen broker, then a backlog of reports after the reconnect) must not let
the lease expire and the execution run a second time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

from spool_agent.handlers import Worker
from spool_agent.reporting import Reporter
from spool_agent.runner_client import CallResult, Runner
from spool_common.bus.amqp import Bus, Delivery
from spool_common.bus.topology import Topology
from spool_common.messages import (
    AttemptInterrupted,
    ClaimReply,
    ClaimVerdict,
    ExecutionFinished,
    ExecutionRequested,
    Message,
)
from spool_common.models import Package, Service

AT = datetime(2026, 11, 23, tzinfo=UTC)


class _Bus:
    """Grants every claim at attempt 1 (the agent's bus, at its boundary)."""

    topology = Topology("t")

    async def request(self, exchange: str, key: str, message: Message, *, timeout: float) -> Any:
        execution_id = getattr(message, "execution_id")  # noqa: B009 (a ClaimRequest)
        return ClaimReply(execution_id=execution_id, verdict=ClaimVerdict.GRANTED, attempt=1)


class _Raw:
    """The broker's message under a Delivery: settles count for nothing here."""

    async def ack(self) -> None:
        pass


class _Runner:
    """Ends every call at once, successfully."""

    async def call(self, call_id: str, *args: object, **kwargs: object) -> CallResult:
        return CallResult(ok=True, output={"done": True}, error=None, duration=0.0)


class _Reporter:
    """Holds each final report back until `through` is set (the broker away)."""

    def __init__(self) -> None:
        self.through = asyncio.Event()
        self.last: list[ExecutionFinished | AttemptInterrupted] = []

    async def send_last(self, report: ExecutionFinished | AttemptInterrupted) -> None:
        await self.through.wait()
        self.last.append(report)

    def forget(self, execution_id: str) -> None:
        pass


async def _worker(reporter: _Reporter) -> Worker:
    service = Service(
        id="s1", name="svc", project_id="p1", package_id="k1", package_revision="1", created_at=AT
    )
    package = Package(id="k1", name="pkg", project_id="p1", created_at=AT)

    async def start_runner() -> Runner:
        return cast(Runner, _Runner())

    worker = Worker(
        cast(Bus, _Bus()), cast(Reporter, reporter), service, package, "r1", start_runner
    )
    await worker.start()
    return worker


async def _delivered(worker: Worker, execution_id: str) -> None:
    message = ExecutionRequested(
        execution_id=execution_id,
        service_id="s1",
        project_id="p1",
        function_name="run",
        created_at=AT,
    )
    await worker.on_delivery(Delivery(cast(Any, _Raw()), message, None))


async def _until(check: Any) -> None:
    for _ in range(1000):  # turns of the event loop, not time
        if check():
            return
        await asyncio.sleep(0)
    raise AssertionError("never")


async def test_an_ended_attempt_is_held_until_its_final_report_is_through() -> None:
    reporter = _Reporter()
    worker = await _worker(reporter)

    await _delivered(worker, "e1")
    await _until(lambda: not worker.running)  # the call ended; its report is held back

    assert worker.held() == [("e1", 1)]
    reporter.through.set()
    await _until(lambda: reporter.last)
    assert worker.held() == []
    assert [r.execution_id for r in reporter.last] == ["e1"]


async def test_a_running_attempt_is_held_from_its_claim() -> None:
    reporter = _Reporter()
    worker = await _worker(reporter)
    gate = asyncio.Event()

    async def slow_call(call_id: str, *args: object, **kwargs: object) -> CallResult:
        await gate.wait()
        return CallResult(ok=True, output=None, error=None, duration=0.0)

    assert worker.runner is not None
    worker.runner.call = slow_call  # type: ignore[method-assign]
    await _delivered(worker, "e2")

    assert worker.held() == [("e2", 1)]
    gate.set()
    reporter.through.set()
    await _until(lambda: reporter.last)
    assert worker.held() == []
