"""The agent's work loop: claim each delivery through the gateway, ack, run it in the runner
child within executionTimeout, report how it ended, fenced by its attempt number.

Ack-after-claim: a delivery is acked as soon as the gateway has recorded the attempt as
in-progress, so RabbitMQ's consumer_timeout and reconnects can never redeliver a running
execution. From then on the attempt is owned by its lease in PostgreSQL, which the agent
renews while the code runs; if the agent dies, the gateway's reaper settles it.

A call the agent must stop (timeout, terminate, drain) is killed on its own in process mode;
in thread mode a thread cannot be killed safely, so the whole runner is restarted ("the
service undergoes a restart") and every call it held is reported as reset, for onReset.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Iterator

from spool_agent.outcomes import Attempt, Stop, finished, stopped, terminated_before_start
from spool_agent.protocol import DONE_LINE
from spool_agent.reporting import REPORT_BACKOFF, Reporter, call_id_of, utcnow
from spool_agent.runner_client import Runner, RunnerCrashed, RunnerInitError
from spool_common.bus.amqp import Bus, BusError, Delivery
from spool_common.bus.dispositions import Disposition
from spool_common.coalesce import Coalescer
from spool_common.logging import get_logger
from spool_common.messages import (
    AgentCommand,
    AgentControl,
    AttemptInterrupted,
    ClaimReply,
    ClaimRequest,
    Claims,
    ClaimVerdict,
    ExecutionFinished,
    ExecutionRequested,
)
from spool_common.models import Package, Service

log = get_logger(__name__)

TERMINATE_GRACE = 5.0  # how long a thread gets to honour a termination before a reset


class Worker:
    def __init__(
        self,
        bus: Bus,
        reporter: Reporter,
        service: Service,
        package: Package,
        replica_id: str,
        start_runner: Callable[[], Awaitable[Runner]],
    ) -> None:
        self.bus = bus
        self.reporter = reporter
        self.service = service
        self.replica_id = replica_id
        self.start_runner = start_runner
        module = package.module(service.module_name)
        self.types = {
            f.name: {io.name: io.type.value for io in f.input}
            for f in (module.functions if module else [])
        }
        self.revision: int | None = None  # the service revision this replica runs
        # Called when a claim finds the service paused: stop consuming its queue.
        self.on_paused: Callable[[], Awaitable[None]] | None = None
        self.runner: Runner | None = None
        self.ready = asyncio.Event()
        self.failed = asyncio.Event()  # the runner could not be restarted: the replica must go
        self.idle = asyncio.Event()  # nothing running and no claim in flight
        self.idle.set()
        self.running: dict[str, int] = {}
        self.reporting: dict[str, int] = {}  # ended attempts whose final report is not through
        self._claiming = 0  # deliveries whose claim is in flight
        self.stops: dict[str, Stop] = {}
        self.draining = False
        self.claim_timeout = 5.0
        self.init_seconds: float | None = None
        self._reset: asyncio.Task[None] | None = None
        self._reset_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self.slots = asyncio.Semaphore(service.runtime.concurrency)
        # Deliveries that arrive while a claim is in flight are claimed together, next; each
        # as (execution id, claim id).
        self._claims: Coalescer[tuple[str, str], ClaimReply] = Coalescer(self._claim_batch)

    async def start(self) -> None:
        started = asyncio.get_running_loop().time()
        self.runner = await self.start_runner()
        self.init_seconds = round(asyncio.get_running_loop().time() - started, 3)
        self.ready.set()

    # deliveries --------------------------------------------------------------------------
    async def on_delivery(self, delivery: Delivery) -> None:
        """Claim only when a slot is free: once acked, a delivery no longer counts against the
        prefetch, so the slots (one per unit of concurrency) are what bound the claimed work.
        The run itself is a task of the worker's, not of the channel's: a broker reconnect
        cancels the channel's delivery tasks, and a running execution must outlive that."""
        message = delivery.message
        if not isinstance(message, ExecutionRequested):
            log.error("poison_delivery", error=str(delivery.error))
            await delivery.settle(Disposition.DEAD_LETTER)
            return
        await self.slots.acquire()
        with self._claim_in_flight():
            try:
                reply = None if self.draining else await self._claim(message)
                paused = reply is not None and reply.verdict is ClaimVerdict.PAUSED
                if reply is None or paused:  # draining or paused: give it back untouched
                    await delivery.settle(Disposition.REQUEUE)
                    self.slots.release()
                    if paused and self.on_paused is not None:
                        log.info("service_paused", execution_id=message.execution_id)
                        await self.on_paused()  # take nothing more; the scheduler drains us
                    return
                await delivery.settle(Disposition.ACK)
            except BaseException:
                self.slots.release()
                raise
            if reply.verdict is not ClaimVerdict.GRANTED:
                log.info("claim_refused", execution_id=message.execution_id, verdict=reply.verdict)
                self.slots.release()
                return
            self.running[message.execution_id] = reply.attempt  # counted from the claim on
            run = self._execute_in_slot(message, reply.attempt)
            task = asyncio.get_running_loop().create_task(run)
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    @contextlib.contextmanager
    def _claim_in_flight(self) -> Iterator[None]:
        """A drain waits for a claim in flight as for a running call: the gateway may grant
        it after SIGTERM, and a granted attempt is this replica's to run (stopping the runner
        under it would report a reset the user never caused)."""
        self._claiming += 1
        self.idle.clear()
        try:
            yield
        finally:
            self._claiming -= 1
            self._set_idle_if_idle()

    def _set_idle_if_idle(self) -> None:
        if not self.running and not self._claiming:
            self.idle.set()

    async def _execute_in_slot(self, message: ExecutionRequested, attempt: int) -> None:
        try:
            await self._execute(message, attempt)
        finally:
            self.slots.release()

    async def _claim(self, message: ExecutionRequested) -> ClaimReply | None:
        """Ask until answered, every time under one claim id for this delivery: if the
        gateway granted an earlier ask but its answer was lost, it grants this one again."""
        claim_id = uuid.uuid4().hex
        failures = 0
        while not self.draining:
            try:
                return await self._claims.submit((message.execution_id, claim_id))
            except BusError as e:
                failures += 1
                log.warning("claim_retry", execution_id=message.execution_id, error=str(e))
                await self.bus.retry_after(REPORT_BACKOFF.delay(failures, 0.0))
        return None

    async def _claim_batch(self, claims: list[tuple[str, str]]) -> list[ClaimReply]:
        """One request for several deliveries: a `ClaimRequest` for one, `Claims` for more."""
        execution_ids = [execution_id for execution_id, _ in claims]
        claim_ids = [claim_id for _, claim_id in claims]
        common = {
            "service_id": self.service.id,
            "replica_id": self.replica_id,
            "init_seconds": self.init_seconds,
            "revision": self.revision,
        }
        request: ClaimRequest | Claims
        if len(claims) == 1:
            request = ClaimRequest(execution_id=execution_ids[0], claim_id=claim_ids[0], **common)
        else:
            request = Claims(execution_ids=execution_ids, claim_ids=claim_ids, **common)
        reply = await self.bus.request(
            self.bus.topology.agent, "claim", request, timeout=self.claim_timeout
        )
        replies = [reply] if isinstance(reply, ClaimReply) else getattr(reply, "replies", [])
        if [r.execution_id for r in replies] != execution_ids:
            raise BusError(f"the claim was answered with {reply.type}, not its replies")
        return replies

    # running -----------------------------------------------------------------------------
    async def _execute(self, message: ExecutionRequested, attempt: int) -> None:
        await self.ready.wait()
        info = Attempt(message.execution_id, attempt, self.replica_id, utcnow())
        try:
            report = await self._run(message, info)
        finally:
            self.running.pop(message.execution_id, None)
            self.stops.pop(message.execution_id, None)
            self.reporter.forget(message.execution_id)
            self._set_idle_if_idle()
        log.info(
            "execution_done",
            execution_id=message.execution_id,
            type=report.type,
            status=getattr(report, "status", None) or getattr(report, "reason", None),
        )
        self.reporting[message.execution_id] = attempt
        try:
            await self.reporter.send_last(report)
        finally:
            if self.reporting.get(message.execution_id) == attempt:
                del self.reporting[message.execution_id]

    def held(self) -> list[tuple[str, int]]:
        """(execution id, attempt) of every attempt whose lease is this replica's to renew:
        running, or ended with its final report not through yet. Until the gateway has that
        report the attempt is still this replica's, and a lease left to expire meanwhile (the
        broker away) would run it a second time."""
        return [*self.running.items(), *self.reporting.items()]

    async def _run(
        self, message: ExecutionRequested, info: Attempt
    ) -> ExecutionFinished | AttemptInterrupted:
        runner = self.runner
        assert runner is not None
        if self.stops.get(info.execution_id) is Stop.TERMINATE:  # terminated before it started
            return terminated_before_start(info, self.service.run_execution_as_process, utcnow())
        call_id = call_id_of(info.execution_id, info.attempt)
        call = asyncio.ensure_future(
            runner.call(
                call_id,
                message.function_name,
                message.input,
                self._context(message, info.attempt),
                types=self.types.get(message.function_name),
            )
        )
        done, _ = await asyncio.wait({call}, timeout=self.service.execution_timeout)
        if not done:
            log.warning("execution_timeout", execution_id=info.execution_id)
            await self._stop(info.execution_id, call_id, Stop.TIMEOUT)
        try:
            result = await call
        except RunnerCrashed:
            why = self.stops.get(info.execution_id)
            if why is None:
                self._schedule_reset("the runner died")
            # The runner could not end this call's log: end it here, for log followers.
            self.reporter.on_log(call_id, [("log", DONE_LINE, utcnow())])
            return stopped(info, why, utcnow())
        if self.stops.get(info.execution_id) is Stop.TIMEOUT:
            return stopped(info, Stop.TIMEOUT, utcnow())
        return finished(info, result.ok, result.output, result.error, utcnow())

    def _context(self, message: ExecutionRequested, attempt: int) -> dict[str, object]:
        return {
            "execution_id": message.execution_id,
            "attempt": attempt,
            "service_id": self.service.id,
            "service_name": self.service.name,
            "project_id": message.project_id,
            "trigger_id": message.trigger_id,
            "event": message.event,
            "replica_id": self.replica_id,
        }

    # stopping calls ----------------------------------------------------------------------
    async def _stop(self, execution_id: str, call_id: str, why: Stop) -> None:
        """Kill one call (process mode) or reset the runner (thread mode)."""
        self.stops[execution_id] = why
        runner = self.runner
        if (
            runner is not None
            and self.service.run_execution_as_process
            and runner.kill_call(call_id)
        ):
            return
        await self.reset(runner, f"{why} of {execution_id}")

    def _schedule_reset(self, why: str) -> None:
        runner = self.runner
        if runner is not None and (self._reset is None or self._reset.done()):
            self._reset = asyncio.get_running_loop().create_task(self.reset(runner, why))

    async def reset(self, runner: Runner | None, why: str) -> None:
        """Kill `runner` (every call in it is reported per its stop reason, or as a reset) and
        start a fresh one; new calls wait meanwhile. A runner already replaced is left be."""
        async with self._reset_lock:
            if runner is None or runner is not self.runner:
                return
            log.warning("runner_reset", reason=why, running=list(self.running))
            self.ready.clear()
            for execution_id in self.running:
                self.stops.setdefault(execution_id, Stop.RESET)
            runner.kill()
            try:
                await self.start()
            except RunnerInitError as e:
                log.error("runner_restart_failed", **e.error)
                self.failed.set()

    async def on_control(self, delivery: Delivery) -> None:
        command = delivery.message
        await delivery.settle(Disposition.ACK)
        if not isinstance(command, AgentControl) or command.execution_id is None:
            return
        if command.command is AgentCommand.TERMINATE_EXECUTION:
            task = asyncio.get_running_loop().create_task(self.terminate(command.execution_id))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def terminate(self, execution_id: str) -> None:
        attempt = self.running.get(execution_id)
        runner = self.runner
        if attempt is None or runner is None:
            # The gateway routes a terminate to the replica that claimed the execution, so it
            # can arrive between the claim and the start of the call: it stops the call then.
            self.stops[execution_id] = Stop.TERMINATE
            return
        call_id = call_id_of(execution_id, attempt)
        self.stops[execution_id] = Stop.TERMINATE
        if self.service.run_execution_as_process and runner.kill_call(call_id):
            return
        runner.terminate(call_id)  # thread mode: raise in the call's thread
        deadline = asyncio.get_running_loop().time() + TERMINATE_GRACE
        while self.running.get(execution_id) == attempt:
            if asyncio.get_running_loop().time() > deadline:  # the thread did not honour it
                await self.reset(runner, f"termination of {execution_id} not honoured")
                return
            await asyncio.sleep(0.05)

    async def drain(self, drain_time: float) -> None:
        """Let running calls finish within drain_time; then stop the rest (reported `drain`)."""
        self.draining = True
        try:
            await asyncio.wait_for(self.idle.wait(), drain_time)
        except TimeoutError:
            log.warning("drain_time_exceeded", still_running=list(self.running))
            for execution_id in self.running:
                self.stops[execution_id] = Stop.DRAIN
            if self.runner is not None:
                self.runner.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.idle.wait(), 10.0)
        await self.reporter.flush()
        if self.runner is not None:
            await self.runner.stop(grace=1.0)
