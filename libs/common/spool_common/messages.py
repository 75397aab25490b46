"""Every message that crosses the bus, each with a `type` and a `version`, and one codec.

A message that cannot be decoded (bad JSON, unknown type or version, wrong fields) raises
`DecodeError`, which callers treat as permanent: dead-letter it, never redeliver it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import orjson
from pydantic import Field, TypeAdapter, ValidationError, model_validator

from spool_common.models import (
    ExecutionError,
    ExecutionStatus,
    Service,
    Trigger,
    TriggerAction,
    TriggerResource,
    WireModel,
)


class DecodeError(ValueError):
    """The body is not a message this version of Spool understands. Permanent."""


class Message(WireModel):
    type: str
    version: Literal[1] = 1


# --- work ------------------------------------------------------------------------------


class ExecutionRequested(Message):
    """Gateway -> a service's queue: run this execution. Published through the outbox."""

    type: Literal["execution.requested"] = "execution.requested"
    execution_id: str
    service_id: str
    project_id: str
    function_name: str
    input: dict[str, Any] = Field(default_factory=dict)
    trigger_id: str | None = None
    event: dict[str, Any] | None = None  # the entity event that fired it (context.event)
    created_at: datetime


# --- agent <-> gateway (request/reply and reports) -------------------------------------


class ClaimRequest(Message):
    """Agent -> gateway: may this replica run this execution now? (request/reply)

    `claim_id` names the delivery being claimed, the same on every retry of its claim: a
    request the gateway granted but could not answer (it died before replying, and the
    request comes back; or the reply came after the agent gave up and asked again) is
    granted again, the same attempt, instead of being refused as a duplicate of itself."""

    type: Literal["execution.claim"] = "execution.claim"
    execution_id: str
    service_id: str
    replica_id: str
    init_seconds: float | None = None  # how long the replica took to start (cold start)
    revision: int | None = None  # the service revision the replica runs (recorded on the run)
    claim_id: str | None = None


class Claims(Message):
    """Agent -> gateway: ClaimRequest for several deliveries at once (those that arrived
    while the previous claim was in flight); answered by one ClaimReplies, in order."""

    type: Literal["execution.claims"] = "execution.claims"
    execution_ids: list[str] = Field(min_length=1)
    service_id: str
    replica_id: str
    init_seconds: float | None = None
    revision: int | None = None
    claim_ids: list[str] | None = None  # one per execution id, as ClaimRequest.claim_id

    @model_validator(mode="after")
    def _one_claim_id_per_execution(self) -> Claims:
        if self.claim_ids is not None and len(self.claim_ids) != len(self.execution_ids):
            raise ValueError("claim_ids must name one claim per execution id")
        return self


class ClaimVerdict(StrEnum):
    GRANTED = "granted"
    DUPLICATE = "duplicate"  # already running elsewhere or already finished: drop the delivery
    GONE = "gone"  # no such execution (or wrong service): drop the delivery
    EXHAUSTED = "exhausted"  # attempts used up: the gateway failed it; drop the delivery
    PAUSED = "paused"  # the service is paused: give the delivery back and stop consuming
    UNAUTHORIZED = "unauthorized"  # the service's bot may not run it: failed; drop the delivery


class ClaimReply(Message):
    type: Literal["execution.claim.reply"] = "execution.claim.reply"
    execution_id: str
    verdict: ClaimVerdict
    attempt: int = 0
    lease_seconds: float = 0.0
    reason: str | None = None


class ClaimReplies(Message):
    type: Literal["execution.claims.reply"] = "execution.claims.reply"
    replies: list[ClaimReply]


class ExecutionProgress(Message):
    type: Literal["execution.progress"] = "execution.progress"
    execution_id: str
    attempt: int
    replica_id: str
    percent_complete: int = Field(ge=0, le=100)
    message: str | None = None
    at: datetime


class ExecutionFinished(Message):
    """Agent -> gateway: the attempt ended. Applied fenced by (execution_id, attempt)."""

    type: Literal["execution.finished"] = "execution.finished"
    execution_id: str
    attempt: int
    replica_id: str
    status: ExecutionStatus
    output: Any = None
    error: ExecutionError | None = None
    message: str | None = None
    started_at: datetime
    finished_at: datetime


class InterruptReason(StrEnum):
    TIMEOUT = "timeout"  # the execution ran past executionTimeout
    RESET = "reset"  # the replica's runner was restarted under it
    DRAIN = "drain"  # the replica stopped before it finished (drainTime)
    LOST = "lost"  # the replica stopped reporting (its lease expired)


class AttemptInterrupted(Message):
    """Agent -> gateway: this attempt was stopped; the service's onReset decides what next."""

    type: Literal["execution.interrupted"] = "execution.interrupted"
    execution_id: str
    attempt: int
    replica_id: str
    reason: InterruptReason
    at: datetime


class LogLine(WireModel):
    stream: str
    line: str
    at: datetime


class ExecutionLogs(Message):
    """Agent -> gateway: lines an attempt's user code wrote, in order. With an empty
    execution_id (and attempt 0): the replica's own output, e.g. its `__init__`."""

    type: Literal["execution.logs"] = "execution.logs"
    execution_id: str
    attempt: int
    replica_id: str
    service_id: str
    lines: list[LogLine]


AnyReport = Annotated[
    ExecutionProgress | ExecutionFinished | AttemptInterrupted | ExecutionLogs,
    Field(discriminator="type"),
]


class Reports(Message):
    """Agent -> gateway: several reports in the order they were made, as one message (what
    piled up while the previous one was being confirmed). Reports about one execution keep
    their order; the gateway applies them in it."""

    type: Literal["execution.reports"] = "execution.reports"
    replica_id: str
    reports: list[AnyReport] = Field(min_length=1)


class LeaseRenewal(Message):
    """Agent -> gateway, every heartbeat: these attempts are still running here."""

    type: Literal["execution.lease"] = "execution.lease"
    replica_id: str
    service_id: str
    attempts: list[tuple[str, int]]


class CredentialRequest(Message):
    """Scheduler -> gateway: a credential for a replica, scoped to its service (request/reply)."""

    type: Literal["credential.request"] = "credential.request"
    service_id: str
    replica_id: str


class CredentialReply(Message):
    type: Literal["credential.reply"] = "credential.reply"
    service_id: str
    token: str | None = None
    error: str | None = None


# --- events ----------------------------------------------------------------------------


class ServiceChange(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"


class ServiceChanged(Message):
    """Gateway -> events `service.<change>`: the desired state of a service."""

    type: Literal["service.changed"] = "service.changed"
    change: ServiceChange
    service: Service
    revision: int
    force: bool = False  # replace or stop replicas at once instead of draining (`?force=true`)


class ReplicaState(StrEnum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    STOPPED = "stopped"
    FAILED = "failed"


class ReplicaChanged(Message):
    """Agent -> events `replica.<state>`."""

    type: Literal["replica.changed"] = "replica.changed"
    replica_id: str
    service_id: str
    state: ReplicaState
    reason: str | None = None
    at: datetime
    revision: int | None = None  # the service revision it runs; None: the sender does not know


class NotificationType(StrEnum):
    """The seed's service notification types (Dataloop notification system)."""

    CODEBASE_ERROR = "CodebaseError"  # the module cannot be imported, the class is missing
    REQUIREMENTS_ERROR = "RequirementsError"  # requirements.txt could not be installed
    INIT_ERROR = "InitError"  # the class's __init__ raised
    AUTHORIZATION_ERROR = "AuthorizationError"  # the replica's credential was refused
    IMAGE_PULL_ERROR = "ImagePullError"
    OOM_KILLED = "OOMKilled"
    UNSCHEDULABLE = "Unschedulable"
    STUCK_REPLICA = "StuckReplica"  # a state threshold was exceeded
    INTERNAL_ERROR = "InternalError"
    FORCED_DEACTIVATION = "ServiceForcedDeactivation"
    TRIGGER_LOOP = "TriggerLoop"  # a trigger kept firing on events its own executions caused


class ServiceNotification(Message):
    """Scheduler -> events `notification.service`: something happened to a service's replicas
    that its owners should see. `deactivate` asks the gateway to set the service inactive
    (a sustained crash loop); the gateway records every notification once (by id)."""

    type: Literal["service.notification"] = "service.notification"
    notification_id: str
    service_id: str
    notification: NotificationType
    title: str  # e.g. "Service Init Function Error"
    message: str
    replica_id: str | None = None
    log_tail: list[str] = Field(default_factory=list)
    deactivate: bool = False
    at: datetime


class ScaleDecided(Message):
    """Autoscaler -> events `scale.decided`: how many replicas a service should run, and why.
    Published when the number changes (and once when the autoscaler must hold for lack of
    data); the scheduler applies `replicas`, the gateway records the decision."""

    type: Literal["scale.decided"] = "scale.decided"
    service_id: str
    replicas: int = Field(ge=0)
    previous: int | None = Field(default=None, ge=0)
    rule: str = "queue"  # queue | rps | latency | bounds | hold
    reason: str
    inputs: dict[str, float] = Field(default_factory=dict)  # the numbers the rule saw
    at: datetime


class ReplicaRestartRequested(Message):
    """Gateway -> events `service.replica-restart`: someone asked to restart one replica of a
    service (`POST /services/{id}/replicas/{replicaId}/restart`). The scheduler drains it (its
    running executions finish within drainTime) and the deployment starts another in its
    place, as `kubectl delete pod` does."""

    type: Literal["replica.restart"] = "replica.restart"
    service_id: str
    replica_id: str
    requested_by: str
    at: datetime


class ServiceLoad(WireModel):
    """One service's load since the previous sample (the gateway's own counts)."""

    queued: int = Field(ge=0)  # executions waiting (created, rerun)
    running: int = Field(ge=0)  # executions in progress
    requests: int = Field(default=0, ge=0)  # executions created and invokes since the last sample
    latencies: list[float] = Field(default_factory=list)  # seconds, create -> end, ended since


class LoadSampled(Message):
    """Gateway -> events `load.sampled`, every few seconds: every service's load in one
    message, so the autoscaler polls 1,000 services without 1,000 round trips."""

    type: Literal["load.sampled"] = "load.sampled"
    at: datetime
    interval: float  # seconds covered by requests and latencies
    services: dict[str, ServiceLoad] = Field(default_factory=dict)


class OriginHop(WireModel):
    """One step of an event's cause: this execution, started by this trigger for this entity,
    made the event happen. The chain lets the trigger engine stop loops."""

    execution_id: str
    trigger_id: str | None = None
    entity_id: str | None = None


class EntityEvent(Message):
    """Any system -> events `entity.<Resource>.<Action>`: something happened to an entity.
    `origin` is the chain of executions that caused it, oldest first (empty: a person or an
    outside system)."""

    type: Literal["entity.event"] = "entity.event"
    id: str
    resource: TriggerResource
    action: TriggerAction
    project_id: str
    entity_id: str
    entity: dict[str, Any] = Field(default_factory=dict)
    user_id: str | None = None
    origin: list[OriginHop] = Field(default_factory=list)
    at: datetime


class TriggerChanged(Message):
    """Gateway -> events `trigger.<change>`: a trigger's definition (through the outbox)."""

    type: Literal["trigger.changed"] = "trigger.changed"
    trigger: Trigger
    deleted: bool = False
    revision: int  # increases with every change of this trigger; older ones are ignored


class TriggerFired(Message):
    """Trigger engine -> agent exchange `trigger.fired` -> the gateway: create this execution.
    `key` makes creation idempotent: the gateway creates at most one execution per key
    (Once: trigger + entity; Always: trigger + event; Cron: trigger + scheduled time)."""

    type: Literal["trigger.fired"] = "trigger.fired"
    key: str
    trigger_id: str
    project_id: str
    service_id: str
    function_name: str
    input: dict[str, Any] = Field(default_factory=dict)  # the trigger's spec.input
    event: EntityEvent | None = None  # None for cron
    scheduled_at: datetime | None = None  # cron: the tick this fire is for
    at: datetime


class AgentCommand(StrEnum):
    DRAIN = "drain"
    TERMINATE_EXECUTION = "terminate-execution"


class AgentControl(Message):
    """Scheduler or gateway -> one agent's control queue."""

    type: Literal["agent.control"] = "agent.control"
    command: AgentCommand
    execution_id: str | None = None
    reason: str | None = None


AnyMessage = Annotated[
    ExecutionRequested
    | ClaimRequest
    | ClaimReply
    | Claims
    | ClaimReplies
    | ExecutionProgress
    | ExecutionFinished
    | AttemptInterrupted
    | ExecutionLogs
    | Reports
    | LeaseRenewal
    | CredentialRequest
    | CredentialReply
    | ServiceChanged
    | ReplicaChanged
    | ReplicaRestartRequested
    | ServiceNotification
    | ScaleDecided
    | LoadSampled
    | EntityEvent
    | TriggerChanged
    | TriggerFired
    | AgentControl,
    Field(discriminator="type"),
]

_ADAPTER: TypeAdapter[AnyMessage] = TypeAdapter(AnyMessage)


def encode(message: Message) -> bytes:
    return orjson.dumps(message.model_dump(mode="json", by_alias=True))


def decode(body: bytes) -> AnyMessage:
    """Decode one message; raise DecodeError naming what is wrong."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise DecodeError(f"body is not JSON: {e}") from e
    try:
        return _ADAPTER.validate_python(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise DecodeError(f"{where}: {first['msg']}") from e
