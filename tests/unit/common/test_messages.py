"""The bus codec: every message survives the wire, and a bad body says what is wrong."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, get_args

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spool_common.messages import (
    AgentCommand,
    AgentControl,
    AnyMessage,
    AttemptInterrupted,
    ClaimReplies,
    ClaimReply,
    ClaimRequest,
    Claims,
    ClaimVerdict,
    CredentialReply,
    CredentialRequest,
    DecodeError,
    EntityEvent,
    ExecutionFinished,
    ExecutionLogs,
    ExecutionProgress,
    ExecutionRequested,
    InterruptReason,
    LeaseRenewal,
    LoadSampled,
    LogLine,
    Message,
    NotificationType,
    OriginHop,
    ReplicaChanged,
    ReplicaRestartRequested,
    ReplicaState,
    Reports,
    ScaleDecided,
    ServiceChange,
    ServiceChanged,
    ServiceLoad,
    ServiceNotification,
    TriggerChanged,
    TriggerFired,
    decode,
    encode,
)
from spool_common.models import (
    ExecutionError,
    ExecutionStatus,
    Service,
    Trigger,
    TriggerAction,
    TriggerResource,
)

AT = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
LATER = datetime(2024, 5, 6, 7, 9, 0, tzinfo=UTC)
SERVICE = Service.model_validate(
    {
        "id": "svc-1",
        "name": "resize",
        "projectId": "p-1",
        "packageId": "pkg-1",
        "packageRevision": "1",
        "initParams": {"threshold": 0.5},
        "runtime": {"numReplicas": 2, "autoscaler": {"type": "rabbitmq", "maxReplicas": 4}},
        "global": True,
    }
)

REQUESTED = ExecutionRequested(
    execution_id="e-1",
    service_id="svc-1",
    project_id="p-1",
    function_name="run",
    input={"item": {"item_id": "i-1"}, "n": [1, 2.5, None, True]},
    trigger_id="t-1",
    created_at=AT,
)
SERVICE_CREATED = ServiceChanged(change=ServiceChange.CREATED, service=SERVICE, revision=3)

TRIGGER = Trigger.model_validate(
    {
        "id": "t-1",
        "name": "on-items",
        "projectId": "p-1",
        "spec": {"resource": "Item", "operation": {"type": "function", "serviceId": "svc-1"}},
    }
)

EXAMPLES: list[Message] = [
    REQUESTED,
    ClaimRequest(execution_id="e-1", service_id="svc-1", replica_id="r-1"),
    ClaimRequest(execution_id="e-1", service_id="svc-1", replica_id="r-1", claim_id="d-1"),
    ClaimReply(execution_id="e-1", verdict=ClaimVerdict.GRANTED, attempt=2, lease_seconds=30.0),
    ClaimReply(execution_id="e-1", verdict=ClaimVerdict.EXHAUSTED, reason="all 3 used"),
    ExecutionProgress(
        execution_id="e-1", attempt=1, replica_id="r-1", percent_complete=45, message="half", at=AT
    ),
    ExecutionFinished(
        execution_id="e-1",
        attempt=1,
        replica_id="r-1",
        status=ExecutionStatus.FAILED,
        output={"partial": [1, 2]},
        error=ExecutionError(type="KeyError", message="'x'", traceback="Traceback ..."),
        message="failed",
        started_at=AT,
        finished_at=LATER,
    ),
    LeaseRenewal(replica_id="r-1", service_id="svc-1", attempts=[("e-1", 1), ("e-2", 3)]),
    AttemptInterrupted(
        execution_id="e-1", attempt=2, replica_id="r-1", reason=InterruptReason.TIMEOUT, at=AT
    ),
    ExecutionLogs(
        execution_id="e-1",
        attempt=1,
        replica_id="r-1",
        service_id="svc-1",
        lines=[LogLine(stream="stdout", line="hello", at=AT)],
    ),
    Claims(execution_ids=["e-1", "e-2"], service_id="svc-1", replica_id="r-1", revision=3),
    Claims(
        execution_ids=["e-1", "e-2"], service_id="svc-1", replica_id="r-1", claim_ids=["d", "f"]
    ),
    ClaimReplies(
        replies=[
            ClaimReply(execution_id="e-1", verdict=ClaimVerdict.GRANTED, attempt=1),
            ClaimReply(execution_id="e-2", verdict=ClaimVerdict.DUPLICATE),
        ]
    ),
    Reports(
        replica_id="r-1",
        reports=[
            ExecutionLogs(
                execution_id="e-1",
                attempt=1,
                replica_id="r-1",
                service_id="svc-1",
                lines=[LogLine(stream="stdout", line="[Done] Executing function.", at=AT)],
            ),
            ExecutionProgress(
                execution_id="e-2", attempt=1, replica_id="r-1", percent_complete=40, at=AT
            ),
            ExecutionFinished(
                execution_id="e-1",
                attempt=1,
                replica_id="r-1",
                status=ExecutionStatus.SUCCESS,
                output={"ok": True},
                started_at=AT,
                finished_at=AT,
            ),
        ],
    ),
    CredentialRequest(service_id="svc-1", replica_id="r-1"),
    CredentialReply(service_id="svc-1", token="spa_secret"),
    CredentialReply(service_id="svc-1", error="no such service"),
    SERVICE_CREATED,
    ReplicaChanged(replica_id="r-1", service_id="svc-1", state=ReplicaState.READY, at=AT),
    ReplicaRestartRequested(service_id="svc-1", replica_id="r-1", requested_by="u-1", at=AT),
    ServiceNotification(
        notification_id="n-1",
        service_id="svc-1",
        notification=NotificationType.INIT_ERROR,
        title="Service Init Function Error",
        message="RuntimeError: no model",
        replica_id="r-1",
        log_tail=["Traceback ...", "RuntimeError: no model"],
        deactivate=False,
        at=AT,
    ),
    ScaleDecided(
        service_id="svc-1",
        replicas=0,
        previous=2,
        rule="queue",
        reason="idle for the whole cooldown",
        inputs={"queued": 0, "running": 0},
        at=AT,
    ),
    LoadSampled(
        at=AT,
        interval=2.0,
        services={"svc-1": ServiceLoad(queued=3, running=1, requests=4, latencies=[0.1])},
    ),
    EntityEvent(
        id="ev-1",
        resource=TriggerResource.ITEM,
        action=TriggerAction.CREATED,
        project_id="p-1",
        entity_id="i-1",
        entity={"name": "cat.jpg"},
        user_id="u-1",
        origin=[OriginHop(execution_id="e-0", trigger_id="t-0", entity_id="i-0")],
        at=AT,
    ),
    TriggerChanged(trigger=TRIGGER, revision=2),
    TriggerFired(
        key="t-1:entity:i-1",
        trigger_id="t-1",
        project_id="p-1",
        service_id="svc-1",
        function_name="run",
        input={"k": 1},
        event=None,
        scheduled_at=AT,
        at=AT,
    ),
    AgentControl(command=AgentCommand.TERMINATE_EXECUTION, execution_id="e-1", reason="user"),
]


def message_id(message: Message) -> str:
    return message.type


def test_examples_cover_every_message_type() -> None:
    (union, _field) = get_args(AnyMessage)
    assert {type(m) for m in EXAMPLES} == set(get_args(union))


@pytest.mark.parametrize("message", EXAMPLES, ids=message_id)
def test_round_trip(message: Message) -> None:
    decoded = decode(encode(message))
    assert type(decoded) is type(message)
    assert decoded == message


@pytest.mark.parametrize("message", EXAMPLES, ids=message_id)
def test_wire_keys_are_camel_case(message: Message) -> None:
    wire = orjson.loads(encode(message))
    assert wire["type"] == message.type
    assert wire["version"] == 1
    assert all(re.fullmatch(r"[a-z][A-Za-z0-9]*", key) for key in wire), sorted(wire)


def test_execution_requested_wire_shape() -> None:
    wire = orjson.loads(encode(REQUESTED))
    assert wire == {
        "type": "execution.requested",
        "version": 1,
        "executionId": "e-1",
        "serviceId": "svc-1",
        "projectId": "p-1",
        "functionName": "run",
        # User data keeps its own keys: only our field names are camelCased.
        "input": {"item": {"item_id": "i-1"}, "n": [1, 2.5, None, True]},
        "triggerId": "t-1",
        "event": None,
        "createdAt": "2024-05-06T07:08:09.123456Z",
    }


def test_nested_entities_use_their_wire_names() -> None:
    wire = orjson.loads(encode(SERVICE_CREATED))
    assert wire["service"]["projectId"] == "p-1"
    assert wire["service"]["global"] is True
    assert wire["service"]["runtime"]["numReplicas"] == 2


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=100, deadline=None)
@given(
    payload=st.dictionaries(st.text(), json_values, max_size=5),
    at=st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    percent=st.integers(min_value=0, max_value=100),
)
def test_user_data_round_trips(payload: dict[str, Any], at: datetime, percent: int) -> None:
    requested = ExecutionRequested(
        execution_id="e",
        service_id="s",
        project_id="p",
        function_name="run",
        input=payload,
        created_at=at,
    )
    finished = ExecutionFinished(
        execution_id="e",
        attempt=1,
        replica_id="r",
        status=ExecutionStatus.SUCCESS,
        output=payload,
        started_at=at,
        finished_at=at,
    )
    progress = ExecutionProgress(
        execution_id="e", attempt=1, replica_id="r", percent_complete=percent, at=at
    )
    for message in (requested, finished, progress):
        assert decode(encode(message)) == message


def claim(**overrides: Any) -> bytes:
    body = {
        "type": "execution.claim",
        "version": 1,
        "executionId": "e-1",
        "serviceId": "svc-1",
        "replicaId": "r-1",
    }
    body.update(overrides)
    return orjson.dumps({k: v for k, v in body.items() if v is not None})


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(b"{", "body is not JSON", id="truncated-json"),
        pytest.param(b"", "body is not JSON", id="empty"),
        pytest.param(b"\xff\xfe", "body is not JSON", id="not-utf8"),
        pytest.param(b"[1, 2]", "<root>: ", id="array"),
        pytest.param(b'"execution.claim"', "<root>: ", id="string"),
        pytest.param(b"null", "<root>: ", id="null"),
        pytest.param(b"{}", "'type'", id="no-type"),
        pytest.param(claim(type="execution.teleport"), "'execution.teleport'", id="unknown-type"),
        pytest.param(claim(version=2), "execution.claim.version: ", id="version-2"),
        pytest.param(claim(version="1"), "execution.claim.version: ", id="version-as-string"),
        pytest.param(claim(executionId=None), "executionId: Field required", id="missing-field"),
        pytest.param(claim(replicaId=7), "replicaId: ", id="wrong-field-type"),
        pytest.param(
            claim(type="execution.claims", executionId=None, executionIds=["a"], claimIds=[]),
            "one claim per execution id",
            id="claim-ids-not-one-per-execution",
        ),
        pytest.param(
            orjson.dumps(
                {
                    "type": "execution.progress",
                    "executionId": "e",
                    "attempt": 1,
                    "replicaId": "r",
                    "percentComplete": 101,
                    "at": "2024-01-01T00:00:00Z",
                }
            ),
            "percentComplete: ",
            id="out-of-range",
        ),
    ],
)
def test_decode_errors_say_what_is_wrong(body: bytes, expected: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode(body)
    assert expected in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_the_default_claim_body_decodes() -> None:
    # The error table above edits this body; unedited it must be a valid claim.
    assert decode(claim()) == ClaimRequest(execution_id="e-1", service_id="svc-1", replica_id="r-1")
