"""The gateway's use cases, shared by the HTTP API and the bus handlers."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from spool_common import metrics
from spool_common.bus.amqp import Bus
from spool_common.coalesce import Coalescer
from spool_common.errors import FieldError, ValidationFailure, raise_if_any
from spool_common.messages import (
    ClaimReplies,
    ClaimReply,
    ClaimRequest,
    Claims,
    ClaimVerdict,
    CredentialReply,
    CredentialRequest,
    ExecutionFinished,
    ExecutionProgress,
    ExecutionRequested,
    InterruptReason,
    LeaseRenewal,
    encode,
)
from spool_common.models import Execution, ExecutionStatus, Service, StatusEntry
from spool_gateway.catalog import Catalog
from spool_gateway.control_store import ControlStore
from spool_gateway.deployments import Deployments
from spool_gateway.deployments_store import ServiceStore
from spool_gateway.identity_store import IdentityStore
from spool_gateway.inputs import ValidatedInput, validate_input
from spool_gateway.ledger import Cause, Ledger, Lost, NewExecution
from spool_gateway.lifecycle import (
    ExecutionKind,
    exhausted_entry,
    plan_interrupted,
    refused_claim,
)
from spool_gateway.logs_store import LogStore
from spool_gateway.notifications_store import NotificationStore
from spool_gateway.outbox import OutboxRelay, OutboxRow
from spool_gateway.query_log_store import QueryLogStore
from spool_gateway.quotas import Quotas
from spool_gateway.scaling_store import ScalingStore
from spool_gateway.settings import GatewaySettings
from spool_gateway.triggers_store import TriggerStore
from spool_gateway.waiters import Waiters

# An agent uses its token only to fetch its service and codebase when it starts.
AGENT_TOKEN_TTL = 3600.0


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Gateway:
    settings: GatewaySettings
    bus: Bus
    catalog: Catalog
    services: ServiceStore
    ledger: Ledger
    relay: OutboxRelay
    waiters: Waiters
    clock: Callable[[], datetime] = utcnow

    def __post_init__(self) -> None:
        self.logs = LogStore(self.ledger.pool)
        self.control = ControlStore(self.ledger.pool)
        self.notifications = NotificationStore(self.ledger.pool)
        self.triggers = TriggerStore(self.ledger.pool)
        self.scaling = ScalingStore(self.ledger.pool)
        self.query_log = QueryLogStore(self.ledger.pool)
        self.identity = IdentityStore(self.ledger.pool)
        self.deployments = Deployments(
            self.catalog, self.services, self.bus, self.relay, self.clock
        )
        self._creates = Coalescer(self.ledger.create_many, max_batch=1000)
        self.quotas = Quotas(self.settings, self.ledger.count_waiting)

    # outbox rows -----------------------------------------------------------------------
    def _request_row(self, msg: ExecutionRequested) -> OutboxRow:
        return OutboxRow(self.bus.topology.executions, msg.service_id, encode(msg))

    # executions ------------------------------------------------------------------------
    async def create_execution(
        self,
        service: Service,
        function_name: str,
        raw_input: dict[str, Any],
        creator: str,
        kind: ExecutionKind = ExecutionKind.EXECUTION,
    ) -> Execution:
        """Validate, then record the execution and its publish in one transaction (shared
        with the other requests of the moment: see `Ledger.create_many`)."""
        (created,) = await self.create_executions(
            service, [(function_name, raw_input)], creator, kind
        )
        return created

    async def create_executions(
        self,
        service: Service,
        calls: list[tuple[str, dict[str, Any]]],
        creator: str,
        kind: ExecutionKind = ExecutionKind.EXECUTION,
    ) -> list[Execution]:
        """Several executions of one service: all valid and recorded, or none (a
        ValidationFailure naming each bad one as `executions[i].<field>`)."""
        many = len(calls) > 1
        self.quotas.take(service.project_id, len(calls))
        prepared: list[NewExecution] = []
        errors: list[FieldError] = []
        for i, (function_name, raw_input) in enumerate(calls):
            try:
                prepared.append(
                    await self._prepare(
                        service, function_name, raw_input, creator, None, None, kind
                    )
                )
            except ValidationFailure as e:
                if not many:
                    raise
                errors.extend(FieldError(f"executions[{i}].{f.field}", f.reason) for f in e.errors)
        raise_if_any(errors)
        await self.quotas.admit(service.id, len(prepared))
        ids = await self._creates.submit_many(prepared)
        self.relay.hand_over([p.publish for p in prepared], ids)
        return [p.execution.model_copy(update=meta_fields(p.meta)) for p in prepared]

    async def fire_execution(
        self,
        service: Service,
        function_name: str,
        raw_input: dict[str, Any],
        trigger_id: str,
        cause: Cause,
    ) -> Execution | None:
        """A trigger's execution, created at most once per `cause.key`: None if one was."""
        creator = f"trigger:{trigger_id}"
        new = await self._prepare(service, function_name, raw_input, creator, trigger_id, cause)
        row_id = await self.ledger.create(new, cause)
        if row_id is None:
            return None
        self.relay.hand_over([new.publish], [row_id])
        return new.execution.model_copy(update=meta_fields(new.meta))

    async def _prepare(
        self,
        service: Service,
        function_name: str,
        raw_input: dict[str, Any],
        creator: str,
        trigger_id: str | None,
        cause: Cause | None,
        kind: ExecutionKind = ExecutionKind.EXECUTION,
    ) -> NewExecution:
        package = await self.catalog.package_revision(service.package_id, service.package_revision)
        module = package.module(service.module_name) if package else None
        function = module.function(function_name) if module else None
        if package is None or module is None or function is None:
            known = ", ".join(f.name for f in module.functions) if module else ""
            raise ValidationFailure(
                FieldError("functionName", f"no function '{function_name}' in {known or '-'}")
            )
        checked = validate_input(function, raw_input, max_bytes=self.settings.max_input_bytes)
        execution = self._new_execution(service, function_name, checked, creator, trigger_id)
        meta = {
            "serviceName": service.name,
            "packageId": service.package_id,
            "packageName": package.name,
            "packageRevision": service.package_revision,
            "moduleName": service.module_name,
        }
        row = self._again(
            execution.id,
            service.id,
            service.project_id,
            function_name,
            execution.input,
            trigger_id,
            execution.created_at,
            cause.event if cause else None,
        )
        return NewExecution(execution, meta, row, kind)

    def _new_execution(
        self,
        service: Service,
        function_name: str,
        checked: ValidatedInput,
        creator: str,
        trigger_id: str | None,
    ) -> Execution:
        now = self.clock()
        return Execution(
            id=new_id(),
            project_id=service.project_id,
            service_id=service.id,
            function_name=function_name,
            input=checked.input,
            status_log=[StatusEntry(status=ExecutionStatus.CREATED, timestamp=now)],
            latest_status=StatusEntry(status=ExecutionStatus.CREATED, timestamp=now),
            max_attempts=service.max_attempts,
            trigger_id=trigger_id,
            resources=checked.resources,
            creator=creator,
            created_at=now,
            updated_at=now,
        )

    # agent traffic -----------------------------------------------------------------------
    async def claim(self, request: ClaimRequest) -> ClaimReply:
        (reply,) = (await self.claim_many(request)).replies
        return reply

    async def claim_many(self, request: ClaimRequest | Claims) -> ClaimReplies:
        """Start the next attempt of each execution asked for, in one statement: GRANTED
        with the attempt number, or why not (see `refused_claim`), in the order asked."""
        ids, claim_ids = claimed(request)
        lease = self.settings.lease_seconds
        results = await self.ledger.claim_many(
            ids,
            request.service_id,
            request.replica_id,
            lease,
            self.clock(),
            request.init_seconds,
            request.revision,
            claim_ids,
        )
        replies: list[ClaimReply] = []
        for execution_id, result in zip(ids, results, strict=True):
            if isinstance(result, int):
                replies.append(
                    ClaimReply(
                        execution_id=execution_id,
                        verdict=ClaimVerdict.GRANTED,
                        attempt=result,
                        lease_seconds=lease,
                    )
                )
                continue
            verdict = refused_claim(result)
            if verdict is ClaimVerdict.EXHAUSTED:
                entry = exhausted_entry(result.max_attempts, self.clock())
                await self.ledger.fail_queued(execution_id, entry)
                self.waiters.wake(execution_id)
            replies.append(ClaimReply(execution_id=execution_id, verdict=verdict))
        return ClaimReplies(replies=replies)

    async def finish(self, report: ExecutionFinished) -> bool:
        (applied,) = await self.finish_many([report])
        return applied

    async def finish_many(self, reports: list[ExecutionFinished]) -> list[bool]:
        """Apply final reports (one per execution at most); which ones applied (the others
        were stale: not the running attempt)."""
        finished = {f.id: f for f in await self.ledger.finish_many(reports)}
        for report in reports:
            if (done := finished.get(report.execution_id)) is not None:
                self.waiters.wake(done.id)
                metrics.execution_changed(
                    done.service_id, report.status, done.created_at, report.finished_at
                )
        return [report.execution_id in finished for report in reports]

    async def progress(self, report: ExecutionProgress) -> bool:
        return await self.ledger.progress(report)

    async def renew(self, renewal: LeaseRenewal) -> int:
        return await self.ledger.renew(renewal.attempts, self.settings.lease_seconds)

    async def extend_leases(self) -> int:
        return await self.ledger.extend_leases(self.settings.lease_seconds)

    async def issue_credential(self, request: CredentialRequest) -> CredentialReply:
        found = await self.services.get(request.service_id)
        if found is None:
            return CredentialReply(service_id=request.service_id, error="no such service")
        token = "spa_" + secrets.token_urlsafe(32)
        subject = f"replica:{request.replica_id}"
        await self.catalog.ensure_token(
            hash_token(token), "agent", subject, request.service_id, ttl=AGENT_TOKEN_TTL
        )
        return CredentialReply(service_id=request.service_id, token=token)

    # reaper ----------------------------------------------------------------------------
    def decide_interrupted(self, lost: Lost, reason: InterruptReason) -> tuple[StatusEntry, bool]:
        plan = plan_interrupted(
            reason=reason,
            on_reset=lost.on_reset,
            attempts=lost.attempts,
            max_attempts=lost.max_attempts,
            to_terminate=lost.to_terminate,
            now=self.clock(),
        )
        return plan.entry, plan.requeue

    def requeue_row(self, lost: Lost) -> OutboxRow:
        return self._again(
            lost.id,
            lost.service_id,
            lost.project_id,
            lost.function_name,
            lost.input,
            lost.trigger_id,
            lost.created_at,
            lost.event,
        )

    def request_row_for(
        self, execution: Execution, event: dict[str, Any] | None = None
    ) -> OutboxRow:
        """The outbox row that queues `execution` again; `event` is the entity event that
        fired it, if one did (`ControlStore.event_of`)."""
        return self._again(
            execution.id,
            execution.service_id,
            execution.project_id,
            execution.function_name,
            execution.input,
            execution.trigger_id,
            execution.created_at,
            event,
        )

    def _again(
        self,
        execution_id: str,
        service_id: str,
        project_id: str,
        function_name: str,
        inputs: dict[str, Any],
        trigger_id: str | None,
        created_at: datetime,
        event: dict[str, Any] | None,
    ) -> OutboxRow:
        """The outbox row that queues an execution (again, for a rerun or a requeue)."""
        return self._request_row(
            ExecutionRequested(
                execution_id=execution_id,
                service_id=service_id,
                project_id=project_id,
                function_name=function_name,
                input=inputs,
                trigger_id=trigger_id,
                event=event,
                created_at=created_at,
            )
        )

    async def reap(self) -> int:
        count, rows, ids = await self.ledger.reap(
            lambda lost: self.decide_interrupted(lost, InterruptReason.LOST), self.requeue_row
        )
        self.relay.hand_over(rows, ids)
        return count


def claimed(request: ClaimRequest | Claims) -> tuple[list[str], list[str | None]]:
    """The executions a claim asks for, and the claim id of each (None: not named)."""
    if isinstance(request, ClaimRequest):
        return [request.execution_id], [request.claim_id]
    if request.claim_ids is None:
        return request.execution_ids, [None] * len(request.execution_ids)
    return request.execution_ids, list[str | None](request.claim_ids)


def meta_fields(meta: dict[str, Any]) -> dict[str, Any]:
    """Execution metadata keys (camelCase in the row) as model field names."""
    return {
        "service_name": meta["serviceName"],
        "package_id": meta["packageId"],
        "package_name": meta["packageName"],
        "package_revision": meta["packageRevision"],
        "module_name": meta["moduleName"],
    }
