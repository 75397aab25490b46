"""Bus handlers: decode, one call into the gateway core, an outcome that settles the delivery."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from spool_common.backoff import BackoffPolicy
from spool_common.bus.amqp import BusError, Delivery, settle_after
from spool_common.bus.dispositions import Outcome
from spool_common.failpoints import failpoint
from spool_common.keyed_lock import KeyedLocks
from spool_common.logging import get_logger
from spool_common.messages import (
    AnyMessage,
    AnyReport,
    AttemptInterrupted,
    ClaimRequest,
    Claims,
    ClaimVerdict,
    CredentialRequest,
    ExecutionFinished,
    ExecutionLogs,
    ExecutionProgress,
    ExecutionRequested,
    LeaseRenewal,
    ReplicaChanged,
    Reports,
    ScaleDecided,
    ServiceNotification,
    TriggerFired,
)
from spool_common.store.pg import TRANSIENT_ERRORS
from spool_gateway.bot_ops import BotGuard
from spool_gateway.core import Gateway
from spool_gateway.event_ops import fire
from spool_gateway.execution_ops import interrupted
from spool_gateway.lifecycle import dead_letter_entry
from spool_gateway.notifications import record_notification
from spool_gateway.scaling_store import Recorded

log = get_logger(__name__)

_REPLY_ERRORS: tuple[type[BaseException], ...] = (*TRANSIENT_ERRORS, BusError)

# While PostgreSQL is unavailable a delivery is tried again here, then requeued: RabbitMQ
# hands a requeued message straight back, a busy loop for as long as the outage lasts.
STORE_BACKOFF = BackoffPolicy(initial=0.1, factor=2.0, maximum=1.0, jitter=0.2)
STORE_RETRIES = 15  # about 10 s of waiting per delivery before it goes back to the queue

Work = Callable[[Delivery, AnyMessage | None], Awaitable[Outcome]]


class Handlers:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._executions = KeyedLocks()
        self._bots = BotGuard(gateway)

    def settling(self, work: Work) -> Callable[[Delivery], Awaitable[None]]:
        async def handler(delivery: Delivery) -> None:
            await settle_after(
                delivery, lambda m: patiently(lambda: work(delivery, m)), TRANSIENT_ERRORS
            )

        return handler

    async def claim(self, delivery: Delivery, message: AnyMessage | None) -> Outcome:
        """Requests are not persistent: on failure the agent times out and asks again while
        it keeps its own deliveries unacked, so a failed claim is simply dropped. One granted
        but never answered (the reply failed, or the gateway died: failpoint
        `claim.before_reply`) is granted again when asked again under its claim id. A `Claims`
        (several at once) is answered by a `ClaimReplies`, a `ClaimRequest` by a ClaimReply."""
        if not isinstance(message, ClaimRequest | Claims):
            return Outcome.UNDECODABLE
        try:
            answer = await self._bots.claim(message)
            failpoint("claim.before_reply")
            for reply in answer.replies:
                if reply.verdict is not ClaimVerdict.GRANTED:
                    log.info(
                        "claim_refused",
                        execution_id=reply.execution_id,
                        replica_id=message.replica_id,
                        verdict=reply.verdict,
                    )
            single = isinstance(message, ClaimRequest)
            await self.gateway.bus.reply(delivery, answer.replies[0] if single else answer)
        except _REPLY_ERRORS as e:
            log.warning("claim_failed", replica_id=message.replica_id, error=str(e))
            return Outcome.DUPLICATE
        return Outcome.HANDLED

    async def credential(self, delivery: Delivery, message: AnyMessage | None) -> Outcome:
        if not isinstance(message, CredentialRequest):
            return Outcome.UNDECODABLE
        try:
            await self.gateway.bus.reply(delivery, await self.gateway.issue_credential(message))
        except _REPLY_ERRORS as e:
            log.warning("credential_failed", service_id=message.service_id, error=str(e))
        return Outcome.HANDLED

    async def report(self, _: Delivery, message: AnyMessage | None) -> Outcome:
        """Reports are persistent: acked only once recorded (or found stale). Reports about
        one execution are applied in the order they arrived (an agent publishes them in
        order), so a last progress is never judged stale because the end overtook it."""
        if isinstance(message, Reports):
            async with self._executions.hold_many(r.execution_id for r in message.reports):
                await self._apply_reports(message.reports)
            return Outcome.HANDLED
        execution_id = getattr(message, "execution_id", None)
        if not isinstance(execution_id, str) or not execution_id:
            return await self._apply_report(message)
        async with self._executions.hold(execution_id):
            return await self._apply_report(message)

    async def _apply_report(self, message: AnyMessage | None) -> Outcome:
        if isinstance(message, ExecutionFinished):
            applied = await self.gateway.finish(message)
        elif isinstance(message, ExecutionProgress):
            applied = await self.gateway.progress(message)
        elif isinstance(message, LeaseRenewal):
            applied = await self.gateway.renew(message) > 0
        elif isinstance(message, AttemptInterrupted):
            applied = await interrupted(self.gateway, message)
        elif isinstance(message, ExecutionLogs):
            await self.gateway.logs.append(message)
            applied = True
        else:
            return Outcome.UNDECODABLE
        if not applied:
            log.info(
                "report_stale",
                type=message.type,
                execution_id=getattr(message, "execution_id", None),
            )
        return Outcome.HANDLED if applied else Outcome.DUPLICATE

    async def _apply_reports(self, reports: list[AnyReport]) -> None:
        """Round by round (see `in_rounds`), each kind of report of a round in one statement
        where it has a batched form: a busy agent's results cost one UPDATE, not one each."""
        for round_ in in_rounds(reports):
            finished = [r for r in round_ if isinstance(r, ExecutionFinished)]
            if finished:
                applied = await self.gateway.finish_many(finished)
                for done, ok in zip(finished, applied, strict=True):
                    if not ok:
                        log.info("report_stale", type=done.type, execution_id=done.execution_id)
            logs = [r for r in round_ if isinstance(r, ExecutionLogs)]
            if logs:
                await self.gateway.logs.append_many(logs)
            for report in round_:
                if not isinstance(report, ExecutionFinished | ExecutionLogs):
                    await self._apply_report(report)

    async def replica(self, _: Delivery, message: AnyMessage | None) -> Outcome:
        if not isinstance(message, ReplicaChanged):
            return Outcome.UNDECODABLE if message is None else Outcome.HANDLED
        await self.gateway.services.record_replica(message)
        return Outcome.HANDLED

    async def notification(self, _: Delivery, message: AnyMessage | None) -> Outcome:
        """Recorded once by id; a sustained crash loop also deactivates the service."""
        if not isinstance(message, ServiceNotification):
            return Outcome.UNDECODABLE if message is None else Outcome.HANDLED
        return await record_notification(self.gateway, message)

    async def scaling(self, _: Delivery, message: AnyMessage | None) -> Outcome:
        """A scale decision, recorded once for `GET /services/{id}/scaling` (a redelivery and
        a decision about a service that is gone are acked)."""
        if not isinstance(message, ScaleDecided):
            return Outcome.UNDECODABLE if message is None else Outcome.HANDLED
        keep = self.gateway.settings.scaling_history
        recorded = await self.gateway.scaling.record(message, keep)
        if recorded is Recorded.RECORDED:
            log.info(
                "scale_decision_recorded",
                service_id=message.service_id,
                replicas=message.replicas,
                previous=message.previous,
                rule=message.rule,
            )
        else:
            log.info("scale_decision_not_recorded", service_id=message.service_id, why=recorded)
        return Outcome.DUPLICATE if recorded is Recorded.DUPLICATE else Outcome.HANDLED

    async def fired(self, _: Delivery, message: AnyMessage | None) -> Outcome:
        """A trigger fired: its execution, created once per key (a repeat is acked)."""
        if not isinstance(message, TriggerFired):
            return Outcome.UNDECODABLE if message is None else Outcome.REJECTED
        return await fire(self.gateway, message)

    async def dead(self, delivery: Delivery, message: AnyMessage | None) -> Outcome:
        """A dead-lettered execution request ends as a failed execution with the reason;
        anything else dead-lettered is logged and dropped (it already failed once)."""
        if not isinstance(message, ExecutionRequested):
            log.error(
                "message_dead_lettered",
                routing_key=delivery.raw.routing_key,
                error=str(delivery.error),
            )
            return Outcome.HANDLED
        reason = _death_reason(delivery)
        entry = dead_letter_entry(reason, self.gateway.clock())
        if await self.gateway.ledger.fail_queued(message.execution_id, entry):
            self.gateway.waiters.wake(message.execution_id)
        log.warning("execution_dead_lettered", execution_id=message.execution_id, reason=reason)
        return Outcome.HANDLED


async def patiently(
    work: Callable[[], Awaitable[Outcome]],
    *,
    rand: Callable[[], float] = random.random,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Outcome:
    """`work`, tried again after STORE_BACKOFF while the store fails transiently; the last
    failure (after STORE_RETRIES) is raised, for the delivery to be requeued. Meanwhile the
    delivery stays unacked with us, so nothing is lost and one execution's reports keep
    their order."""
    failures = 0
    while True:
        try:
            return await work()
        except TRANSIENT_ERRORS:
            failures += 1
            if failures > STORE_RETRIES:
                raise
            await sleep(STORE_BACKOFF.delay(failures, rand()))


def in_rounds(reports: list[AnyReport]) -> list[list[AnyReport]]:
    """Split reports into rounds that keep each execution's order: round k holds the k-th
    report of every execution (so no execution appears twice in a round, and a round's
    reports can be applied together)."""
    rounds: list[list[AnyReport]] = []
    seen: dict[str, int] = {}
    for report in reports:
        k = seen.get(report.execution_id, 0)
        seen[report.execution_id] = k + 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append(report)
    return rounds


def _death_reason(delivery: Delivery) -> str:
    headers = delivery.raw.headers or {}
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return str(deaths[0].get("reason", "unknown"))
    return str(headers.get("x-first-death-reason", "unknown"))
