"""Everything the agent tells the gateway besides claims: results, interruptions, progress,
logs and lease renewals. Reports are persistent and retried until the broker confirms them;
the gateway fences each by (execution, attempt), so a repeat changes nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spool_agent.progress import should_record
from spool_common.backoff import BackoffPolicy
from spool_common.bus.amqp import Bus, BusError
from spool_common.logging import get_logger
from spool_common.messages import (
    AnyReport,
    AttemptInterrupted,
    ExecutionFinished,
    ExecutionLogs,
    ExecutionProgress,
    LeaseRenewal,
    LogLine,
    Message,
    Reports,
)

log = get_logger(__name__)

REPORT_BACKOFF = BackoffPolicy(initial=0.2, factor=2.0, maximum=5.0, jitter=0.0)
REPORT_BATCH = 200  # reports in one `Reports` message at most
MOMENT_TURNS = 12  # turns of the event loop a batch may wait for its moment to end
MOMENT_STILL = 4  # turns without a new report that end it


def utcnow() -> datetime:
    return datetime.now(UTC)


def split_call_id(call_id: str) -> tuple[str, int]:
    execution_id, _, attempt = call_id.rpartition(":")
    return execution_id, int(attempt)


def call_id_of(execution_id: str, attempt: int) -> str:
    return f"{execution_id}:{attempt}"


class Reporter:
    def __init__(self, bus: Bus, service_id: str, replica_id: str) -> None:
        self.bus = bus
        self.service_id = service_id
        self.replica_id = replica_id
        self._recorded: dict[str, int] = {}
        self._ordered: asyncio.Queue[tuple[AnyReport, asyncio.Future[None] | None]] = (
            asyncio.Queue()
        )
        self._sender: asyncio.Task[None] | None = None

    async def send(self, message: Message) -> None:
        """Publish until the broker confirms it."""
        failures = 0
        while True:
            try:
                await self.bus.publish(self.bus.topology.agent, "report", message)
                return
            except BusError as e:
                failures += 1
                log.warning("report_retry", type=message.type, error=str(e))
                await self.bus.retry_after(REPORT_BACKOFF.delay(failures, 0.0))

    def _enqueue(self, message: AnyReport, sent: asyncio.Future[None] | None = None) -> None:
        """Progress, logs and final reports go out in order without blocking the caller: one
        publish in flight at a time, and what piles up meanwhile goes as one `Reports`."""
        self._ordered.put_nowait((message, sent))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._drain_ordered())

    async def _drain_ordered(self) -> None:
        while not self._ordered.empty():
            await self._let_the_moment_finish()
            batch = [self._ordered.get_nowait()]
            while len(batch) < REPORT_BATCH and not self._ordered.empty():
                batch.append(self._ordered.get_nowait())
            reports = [message for message, _ in batch]
            if len(reports) == 1:
                await self.send(reports[0])
            else:
                await self.send(Reports(replica_id=self.replica_id, reports=reports))
            for _, sent in batch:
                if sent is not None and not sent.done():
                    sent.set_result(None)

    async def _let_the_moment_finish(self) -> None:
        """Yield to the event loop until no report joined the queue for MOMENT_STILL turns (at most
        MOMENT_TURNS): a call's last log lines and its result arrive in one read from the
        runner, and its final report is queued a few turns after them, so without this the
        final report would wait behind the confirm of its own logs. Turns, not time: this
        costs microseconds when nothing else is coming."""
        size, still = self._ordered.qsize(), 0
        for _ in range(MOMENT_TURNS):
            await asyncio.sleep(0)
            if self._ordered.qsize() == size:
                still += 1
                if still == MOMENT_STILL:
                    return
            else:
                size, still = self._ordered.qsize(), 0

    async def send_last(self, message: ExecutionFinished | AttemptInterrupted) -> None:
        """Publish an attempt's final report behind the progress and logs it queued before,
        so the gateway never sees the end of an attempt before its last progress."""
        sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue(message, sent)
        await sent

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait (bounded) until queued progress and logs are published."""
        if self._sender is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._sender), timeout)

    def forget(self, execution_id: str) -> None:
        self._recorded.pop(execution_id, None)

    def on_progress(self, call_id: str, percent: int, text: str | None) -> None:
        execution_id, attempt = split_call_id(call_id)
        if not should_record(self._recorded.get(execution_id), percent):
            return
        self._recorded[execution_id] = percent
        self._enqueue(
            ExecutionProgress(
                execution_id=execution_id,
                attempt=attempt,
                replica_id=self.replica_id,
                percent_complete=min(percent, 100),
                message=text,
                at=utcnow(),
            )
        )

    def on_log(self, call_id: str, lines: Sequence[tuple[str, str, datetime]]) -> None:
        execution_id, attempt = split_call_id(call_id)
        batch = [LogLine(stream=str(stream), line=line, at=at) for stream, line, at in lines]
        self._enqueue(
            ExecutionLogs(
                execution_id=execution_id,
                attempt=attempt,
                replica_id=self.replica_id,
                service_id=self.service_id,
                lines=batch,
            )
        )

    async def tail_replica_log(self, path: Path, stop: asyncio.Event, every: float = 0.5) -> None:
        """Forward what user code writes outside any call (`__init__`, its own threads) to the
        service's logs, as lines of no execution."""
        offset, pending = 0, b""
        while True:
            offset, pending = self._forward_new_lines(path, offset, pending)
            if stop.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)

    def _forward_new_lines(self, path: Path, offset: int, pending: bytes) -> tuple[int, bytes]:
        try:
            with path.open("rb") as f:
                f.seek(offset)
                chunk = f.read(1 << 20)
        except FileNotFoundError:
            return offset, pending
        data = pending + chunk
        *lines, rest = data.split(b"\n")
        if lines:
            now = utcnow()
            self.on_log(
                call_id_of("", 0), [("log", line.decode(errors="replace"), now) for line in lines]
            )
        return offset + len(chunk), rest

    async def renew_leases(
        self, held: Callable[[], list[tuple[str, int]]], interval: float, stop: asyncio.Event
    ) -> None:
        """Renew the leases of the attempts `held` every `interval`, and at once when the
        connection is restored (the gateway's reaper extends leases only for a while after
        the broker was away), until `stop`."""
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                if attempts := held():
                    renewal = LeaseRenewal(
                        replica_id=self.replica_id, service_id=self.service_id, attempts=attempts
                    )
                    try:
                        await self.bus.publish(self.bus.topology.agent, "report", renewal)
                    except BusError as e:
                        log.warning("lease_renewal_failed", error=str(e))
                back = self.bus.next_reconnect()
                waits: set[asyncio.Future[Any]] = {stopping, back}
                try:
                    await asyncio.wait(waits, timeout=interval)
                finally:
                    back.cancel()
        finally:
            stopping.cancel()
