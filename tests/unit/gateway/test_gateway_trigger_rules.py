"""Trigger rules: the resource -> action matrix, Dataloop's create defaults, the checks against
the function a trigger runs, merge-patch updates, and the cron syntax the gateway accepts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from spool_common.errors import ValidationFailure
from spool_common.models import (
    CronTriggerSpec,
    EventTriggerSpec,
    FunctionIO,
    PackageFunction,
    PackageModule,
    Trigger,
    TriggerExecutionMode,
    TriggerType,
)
from spool_common.models import (
    TriggerAction as A,
)
from spool_common.models import (
    TriggerResource as R,
)
from spool_gateway.trigger_rules import (
    RESOURCE_ACTIONS,
    action_problem,
    build_trigger,
    check_trigger,
    entity_input,
    patched_body,
    read_trigger,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def io(name: str, kind: str, **extra: Any) -> FunctionIO:
    return FunctionIO.model_validate({"name": name, "type": kind, **extra})


MODULE = PackageModule(
    functions=[
        PackageFunction(name="run", input=[io("item", "Item"), io("threshold", "Float")]),
        PackageFunction(name="on_dataset", input=[io("dataset", "Dataset")]),
        PackageFunction(name="on_status", input=[io("note", "String"), io("it", "Item")]),
        PackageFunction(name="tick", input=[io("config", "Json", mandatory=True)]),
        PackageFunction(name="plain"),
        PackageFunction(name="many", input=[io("items", "Item[]")]),
    ]
)


def body(spec: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    operation = {"serviceId": "S", "functionName": "run"}
    spec = {"operation": operation, **(spec or {})}
    return {"projectId": "P", "spec": spec, **top}


def refused(raw: Any) -> list[tuple[str, str]]:
    with pytest.raises(ValidationFailure) as caught:
        check_trigger(read_trigger(raw), MODULE)
    return [(e.field, e.reason) for e in caught.value.errors]


# --- the matrix ------------------------------------------------------------------------------

MATRIX = {
    R.ITEM: {A.CREATED, A.UPDATED, A.DELETED, A.CLONE},
    R.DATASET: {A.CREATED, A.UPDATED, A.DELETED},
    R.ANNOTATION: {A.CREATED, A.UPDATED, A.DELETED},
    R.ITEM_STATUS: {A.UPDATED, A.TASK_ASSIGNED},
    R.TASK: {A.CREATED, A.UPDATED, A.DELETED, A.STATUS_CHANGED},
    R.ASSIGNMENT: {A.CREATED, A.UPDATED, A.DELETED, A.STATUS_CHANGED},
    R.MODEL: {A.CREATED, A.UPDATED, A.DELETED},
}


@pytest.mark.parametrize("resource", list(R))
@pytest.mark.parametrize("action", list(A))
def test_each_resource_has_exactly_its_actions(resource: R, action: A) -> None:
    problem = action_problem(resource, action)
    if action in MATRIX[resource]:
        assert problem is None
    else:
        assert problem is not None
        assert problem.startswith(f"{resource.value} has no action '{action.value}'")
        assert ", ".join(a.value for a in RESOURCE_ACTIONS[resource]) in problem


@pytest.mark.parametrize(
    ("resource", "function", "receiver"),
    [
        (R.ITEM, "run", "item"),
        (R.ITEM_STATUS, "on_status", "it"),  # the Item whose status changed, first of its type
        (R.DATASET, "on_dataset", "dataset"),
        (R.DATASET, "run", None),
        (R.ITEM, "many", None),  # a list of items does not receive one item
        (R.ITEM, "plain", None),
    ],
)
def test_the_first_input_of_the_entity_type_receives_the_entity(
    resource: R, function: str, receiver: str | None
) -> None:
    found = MODULE.function(function)
    assert found is not None
    got = entity_input(found, resource)
    assert (got.name if got else None) == receiver


# --- defaults --------------------------------------------------------------------------------


def test_an_event_trigger_takes_dataloops_create_defaults() -> None:
    draft = read_trigger({"projectId": "P", "spec": {"operation": {"serviceId": "S"}}})
    assert (draft.name, draft.type, draft.active) == (None, TriggerType.EVENT, True)
    assert isinstance(draft.spec, EventTriggerSpec)
    assert draft.spec.to_wire() == {
        "resource": "Item",
        "actions": ["Created"],
        "filter": {},
        "executionMode": "Once",
        "input": {},
        "operation": {"type": "function", "serviceId": "S", "functionName": "run"},
    }


@pytest.mark.parametrize(
    ("actions", "expected"),
    [
        ([], [A.CREATED]),
        (None, [A.CREATED]),
        ("Updated", [A.UPDATED]),
        (["Updated", "Created", "Updated"], [A.UPDATED, A.CREATED]),
    ],
)
def test_actions_empty_single_or_repeated(actions: Any, expected: list[A]) -> None:
    draft = read_trigger(body({"actions": actions}))
    assert isinstance(draft.spec, EventTriggerSpec)
    assert draft.spec.actions == expected


def test_a_cron_window_without_an_offset_is_utc() -> None:
    spec = {"cron": "0 5 * * *", "startAt": "2024-05-01T00:00:00", "endAt": None}
    draft = read_trigger(body(spec, type="Cron"))
    assert isinstance(draft.spec, CronTriggerSpec)
    assert draft.spec.start_at == datetime(2024, 5, 1, tzinfo=UTC)
    assert draft.spec.end_at is None


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        pytest.param([], "body", id="not-an-object"),
        pytest.param({"spec": {"operation": {"serviceId": "S"}}}, "projectId", id="no-project"),
        pytest.param(body(type="Webhook"), "type", id="type"),
        pytest.param(body(name=" padded"), "name", id="name-padded"),
        pytest.param(body(name=""), "name", id="name-empty"),
        pytest.param(body(name="x" * 129), "name", id="name-long"),
        pytest.param({"projectId": "P", "spec": "x"}, "spec", id="spec-not-object"),
        pytest.param({"projectId": "P", "spec": {}}, "spec.operation", id="no-operation"),
        pytest.param(
            body({"operation": {"type": "webhook", "webhookId": "W"}}),
            "spec.operation.type",
            id="webhook",
        ),
        pytest.param(
            body({"operation": {"functionName": "run"}}),
            "spec.operation.serviceId",
            id="no-service",
        ),
        pytest.param(body({"resource": "Planet"}), "spec.resource", id="resource"),
        pytest.param(body({"actions": ["Exploded"]}), "spec.actions[0]", id="action"),
        pytest.param(body({"executionMode": "Twice"}), "spec.executionMode", id="mode"),
        pytest.param(body({"filter": [1]}), "spec.filter", id="filter-not-object"),
        pytest.param(body({"input": "x"}), "spec.input", id="input-not-object"),
        pytest.param(body({"cron": "* * * * *", "filter": {}}, type="Cron"), "spec.filter"),
        pytest.param(body({"cron": "* * * * *", "resource": "Item"}, type="Cron"), "spec.resource"),
        pytest.param(body({"cron": "* * * * *", "actions": []}, type="Cron"), "spec.actions"),
        pytest.param(
            body({"cron": "* * * * *", "executionMode": "Once"}, type="Cron"),
            "spec.executionMode",
        ),
        pytest.param(body(type="Cron"), "spec.cron", id="cron-missing"),
        pytest.param(body({"cron": "* * * * *", "startAt": "soon"}, type="Cron"), "spec.startAt"),
    ],
)
def test_a_malformed_request_names_the_field(raw: Any, field: str) -> None:
    with pytest.raises(ValidationFailure) as caught:
        read_trigger(raw)
    assert [e.field for e in caught.value.errors] == [field]


def test_a_prefix_names_where_a_manifests_trigger_is() -> None:
    with pytest.raises(ValidationFailure) as caught:
        read_trigger(body({"resource": "Planet"}), "package.json.services[0].triggers[1].")
    fields = [e.field for e in caught.value.errors]
    assert fields == ["package.json.services[0].triggers[1].spec.resource"]


# --- checks against the function --------------------------------------------------------------


def op(function: str) -> dict[str, Any]:
    return {"operation": {"serviceId": "S", "functionName": function}}


@pytest.mark.parametrize(
    ("spec", "kind", "field", "reason"),
    [
        pytest.param(
            op("nope"), "Event", "spec.operation.functionName", "no function 'nope'", id="function"
        ),
        pytest.param(
            op("plain"), "Event", "spec.resource", "has no input of type Item", id="no-input"
        ),
        pytest.param(
            {**op("run"), "resource": "Dataset"},
            "Event",
            "spec.resource",
            "no input of type Dataset to receive the Dataset",
            id="other-type",
        ),
        pytest.param(
            {**op("on_dataset"), "resource": "Dataset", "actions": ["Created", "Clone"]},
            "Event",
            "spec.actions[1]",
            "Dataset has no action 'Clone' (its actions: Created, Updated, Deleted)",
            id="action",
        ),
        pytest.param(
            {**op("run"), "input": {"item": "I1"}},
            "Event",
            "spec.input.item",
            "is filled with the Item that fires the trigger",
            id="input-is-the-entity",
        ),
        pytest.param(
            {**op("run"), "input": {"bogus": 1}},
            "Event",
            "spec.input.bogus",
            "not an input of function 'run'",
            id="input-unknown",
        ),
        pytest.param(
            {**op("run"), "input": {"threshold": "high"}},
            "Event",
            "spec.input.threshold",
            "must be a finite number",
            id="input-type",
        ),
        pytest.param(
            {**op("tick"), "cron": "* * *", "input": {"config": 1}},
            "Cron",
            "spec.cron",
            "has 3 fields",
            id="cron",
        ),
        pytest.param(
            {**op("tick"), "cron": "* * * * *"},
            "Cron",
            "spec.input.config",
            "is required",
            id="cron-input-missing",
        ),
        pytest.param(
            {
                **op("tick"),
                "cron": "* * * * *",
                "input": {"config": {}},
                "startAt": "2024-05-02T00:00:00Z",
                "endAt": "2024-05-01T00:00:00Z",
            },
            "Cron",
            "spec.endAt",
            "is before startAt",
            id="window",
        ),
        pytest.param(
            {**op("nope"), "cron": "* * * * *"},
            "Cron",
            "spec.operation.functionName",
            "(functions: run, on_dataset, on_status, tick, plain, many)",
            id="cron-function",
        ),
    ],
)
def test_a_trigger_that_does_not_suit_its_function_is_refused(
    spec: dict[str, Any], kind: str, field: str, reason: str
) -> None:
    [(got_field, got_reason)] = refused({"projectId": "P", "type": kind, "spec": spec})
    assert got_field == field
    assert reason in got_reason


def test_every_problem_is_reported_at_once() -> None:
    spec = {**op("run"), "actions": ["statusChanged"], "input": {"bogus": 1}}
    assert [f for f, _ in refused(body(spec))] == ["spec.actions[0]", "spec.input.bogus"]


def test_a_filter_that_does_not_compile_names_its_clause() -> None:
    spec = {**op("run"), "filter": {"$and": [{"score": {"$between": [1, 2]}}]}}
    [(field, reason)] = refused(body(spec))
    assert field.startswith("spec.filter")
    assert reason


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(op("run"), id="item"),
        pytest.param({**op("run"), "input": {"threshold": 0.5}}, id="with-input"),
        pytest.param(
            {**op("on_status"), "resource": "ItemStatus", "actions": ["taskAssigned"]},
            id="item-status",
        ),
        pytest.param(
            {**op("run"), "filter": {"$and": [{"metadata.system.mimetype": "image/*"}]}},
            id="filter",
        ),
    ],
)
def test_a_trigger_that_suits_its_function_passes(spec: dict[str, Any]) -> None:
    check_trigger(read_trigger(body(spec)), MODULE)


def test_a_cron_trigger_that_suits_its_function_passes() -> None:
    spec = {**op("tick"), "cron": "*/5 9-17 * JAN-jun mon-fri", "input": {"config": {"k": 1}}}
    check_trigger(read_trigger(body(spec, type="Cron")), MODULE)


# --- updates ---------------------------------------------------------------------------------


def stored(spec: dict[str, Any] | None = None) -> Trigger:
    draft = read_trigger(body(spec, name="t"))
    return build_trigger(draft, name="t", trigger_id="T1", who="u", now=NOW, previous=None)


def test_an_update_merges_the_spec_but_replaces_filter_and_input() -> None:
    current = stored({"filter": {"$and": [{"dir": "/a"}]}, "input": {"threshold": 1}})
    patch = {"active": False, "spec": {"actions": ["Updated"], "filter": {"$or": [{"dir": "/b"}]}}}
    merged = read_trigger(patched_body(current, patch))
    assert isinstance(merged.spec, EventTriggerSpec)
    assert merged.active is False
    assert merged.spec.actions == [A.UPDATED]
    assert merged.spec.filter == {"$or": [{"dir": "/b"}]}
    assert merged.spec.input == {"threshold": 1}
    assert merged.spec.execution_mode is TriggerExecutionMode.ONCE


def test_null_removes_a_field_which_takes_its_default_again() -> None:
    current = stored({"actions": ["Updated"], "executionMode": "Always"})
    merged = read_trigger(patched_body(current, {"spec": {"actions": None}, "name": None}))
    assert isinstance(merged.spec, EventTriggerSpec)
    assert merged.spec.actions == [A.CREATED]
    assert merged.spec.execution_mode is TriggerExecutionMode.ALWAYS
    assert merged.name is None  # the service's name, when stored


def test_the_whole_trigger_json_sent_back_is_accepted() -> None:
    current = stored()
    wire = {**current.to_wire(), "createdAt": "whenever", "active": False}
    merged = read_trigger(patched_body(current, wire))
    assert merged.active is False


@pytest.mark.parametrize("key", ["id", "projectId", "type"])
def test_an_update_cannot_change_what_identifies_a_trigger(key: str) -> None:
    with pytest.raises(ValidationFailure) as caught:
        patched_body(stored(), {key: "Cron" if key == "type" else "other"})
    assert [(e.field, e.reason) for e in caught.value.errors] == [
        (key, "cannot be changed by an update")
    ]


def test_an_update_keeps_the_creator_and_creation_time() -> None:
    current = stored()
    later = datetime(2026, 2, 1, tzinfo=UTC)
    draft = read_trigger(patched_body(current, {"active": False}))
    updated = build_trigger(draft, name="t", trigger_id="T1", who="v", now=later, previous=current)
    assert (updated.creator, updated.created_at) == ("u", NOW)
    assert (updated.updated_by, updated.updated_at) == ("v", later)


# --- cron ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("* * *", "has 3 fields; write exactly 5"),
        ("61 * * * *", 'minute "61" is not valid'),
        ("@daily", 'write "0 0 * * *" instead'),
        ("0 0 31 2 *", "never occurs"),
    ],
)
def test_a_cron_the_trigger_engine_would_not_run_is_refused(expression: str, reason: str) -> None:
    spec = {**op("tick"), "cron": expression, "input": {"config": 1}}
    [(field, got)] = refused(body(spec, type="Cron"))
    assert field == "spec.cron"
    assert reason in got
