"""Entity events: what an event must carry, the origin chain of an event an execution caused,
dry-run verdicts, and the input of the execution a fire creates."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from spool_common.errors import ValidationFailure
from spool_common.messages import EntityEvent, OriginHop
from spool_common.models import (
    FunctionIO,
    PackageFunction,
    Trigger,
)
from spool_common.models import (
    TriggerAction as A,
)
from spool_common.models import (
    TriggerResource as R,
)
from spool_gateway.event_rules import (
    MATCHES,
    EntityRef,
    checked_entity,
    dry_run,
    fired_input,
    next_origin,
)
from spool_gateway.inputs import MAX_INPUT_BYTES, validate_input

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def io(name: str, kind: str) -> FunctionIO:
    return FunctionIO.model_validate({"name": name, "type": kind})


# --- checked_entity --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entity", "entity_id", "expected"),
    [
        ({"id": "I1", "name": "a.jpg"}, None, EntityRef("I1", {"id": "I1", "name": "a.jpg"})),
        ({"name": "a.jpg"}, "I1", EntityRef("I1", {"id": "I1", "name": "a.jpg"})),
        ({"id": "I1"}, "I1", EntityRef("I1", {"id": "I1"})),
        ({}, "I1", EntityRef("I1", {"id": "I1"})),
        (None, "I1", EntityRef("I1", {"id": "I1"})),
    ],
)
def test_the_entity_id_is_entity_id_else_the_entitys_own(
    entity: Any, entity_id: str | None, expected: EntityRef
) -> None:
    assert checked_entity(R.ITEM, A.CREATED, entity, entity_id) == expected


@pytest.mark.parametrize(
    ("resource", "action", "entity", "entity_id", "problems"),
    [
        pytest.param(
            R.DATASET, A.CLONE, {"id": "D"}, None, [("action", "Dataset has no action 'Clone'")]
        ),
        pytest.param(
            R.ITEM, A.CREATED, [1], "I", [("entity", "must be a JSON object, not a list")]
        ),
        pytest.param(R.ITEM, A.CREATED, {}, None, [("entityId", "is required")]),
        pytest.param(R.ITEM, A.CREATED, {"id": 7}, None, [("entityId", "is required")]),
        pytest.param(R.ITEM, A.CREATED, {"id": "  "}, None, [("entityId", "is required")]),
        pytest.param(
            R.ITEM, A.CREATED, {"id": "I1"}, "I2", [("entityId", "is 'I2' but entity.id is 'I1'")]
        ),
        pytest.param(
            R.ITEM,
            A.CREATED,
            {"id": "I", "blob": "x" * MAX_INPUT_BYTES},
            None,
            [("entity", "is too large")],
        ),
        pytest.param(
            R.TASK,
            A.CLONE,
            "x",
            None,
            [("action", "Task has no action"), ("entity", "must be a JSON object")],
            id="all-at-once",
        ),
    ],
)
def test_a_bad_event_names_each_field(
    resource: R, action: A, entity: Any, entity_id: str | None, problems: list[tuple[str, str]]
) -> None:
    with pytest.raises(ValidationFailure) as caught:
        checked_entity(resource, action, entity, entity_id)
    got = [(e.field, e.reason) for e in caught.value.errors]
    assert [f for f, _ in got] == [f for f, _ in problems]
    for (_, reason), (_, wanted) in zip(got, problems, strict=True):
        assert wanted in reason


def test_a_prefix_names_where_the_event_is() -> None:
    with pytest.raises(ValidationFailure) as caught:
        checked_entity(R.ITEM, A.CREATED, {}, None, "event.")
    assert [e.field for e in caught.value.errors] == ["event.entityId"]


# --- origin ----------------------------------------------------------------------------------


def test_an_events_origin_is_its_executions_chain_plus_that_execution() -> None:
    first = OriginHop(execution_id="E0", trigger_id=None, entity_id=None)
    second = OriginHop(execution_id="E1", trigger_id="T1", entity_id="I1")
    assert next_origin([], "E0", None, None) == [first]
    assert next_origin([first], "E1", "T1", "I1") == [first, second]


# --- dry run ---------------------------------------------------------------------------------


def trigger(spec: dict[str, Any], *, kind: str = "Event", active: bool = True) -> Trigger:
    operation = {"serviceId": "S", "functionName": "run"}
    return Trigger.model_validate(
        {
            "id": "T",
            "name": "t",
            "projectId": "P",
            "type": kind,
            "active": active,
            "spec": {"operation": operation, **spec},
        }
    )


IMAGE = {
    "id": "I1",
    "hidden": False,
    "type": "file",
    "metadata": {"system": {"mimetype": "image/png"}},
}
IMAGES = {"$and": [{"metadata.system.mimetype": "image/*"}]}


@pytest.mark.parametrize(
    ("found", "resource", "action", "entity", "fires", "reason"),
    [
        pytest.param(trigger({}), R.ITEM, A.CREATED, IMAGE, True, MATCHES, id="defaults"),
        pytest.param(
            trigger({"filter": IMAGES, "actions": ["Created", "Updated"]}),
            R.ITEM,
            A.UPDATED,
            IMAGE,
            True,
            MATCHES,
            id="filter",
        ),
        pytest.param(
            trigger({}, active=False),
            R.ITEM,
            A.CREATED,
            IMAGE,
            False,
            "the trigger is inactive",
            id="inactive",
        ),
        pytest.param(
            trigger({"cron": "* * * * *"}, kind="Cron"),
            R.ITEM,
            A.CREATED,
            IMAGE,
            False,
            "a Cron trigger fires on its schedule, never on events",
            id="cron",
        ),
        pytest.param(
            trigger({"resource": "Dataset"}),
            R.ITEM,
            A.CREATED,
            IMAGE,
            False,
            "listens to Dataset events, not Item",
            id="resource",
        ),
        pytest.param(
            trigger({"actions": ["Created", "Clone"]}),
            R.ITEM,
            A.DELETED,
            IMAGE,
            False,
            "listens to the actions Created, Clone, not Deleted",
            id="action",
        ),
    ],
)
def test_dry_run_says_whether_and_why(
    found: Trigger,
    resource: R,
    action: A,
    entity: dict[str, Any],
    fires: bool,
    reason: str,
) -> None:
    assert dry_run(found, resource, action, entity) == (fires, reason)


def test_dry_run_names_the_filter_clause_that_fails() -> None:
    video = {**IMAGE, "metadata": {"system": {"mimetype": "video/mp4"}}}
    fires, reason = dry_run(trigger({"filter": IMAGES}), R.ITEM, A.CREATED, video)
    assert fires is False
    assert reason.startswith("its filter does not match: ")
    assert "metadata.system.mimetype" in reason


def test_dry_run_applies_the_item_defaults() -> None:
    hidden = {**IMAGE, "hidden": True}
    fires, reason = dry_run(trigger({}), R.ITEM, A.CREATED, hidden)
    assert fires is False
    assert "hidden" in reason


# --- fired input -----------------------------------------------------------------------------


def event(resource: R, entity: dict[str, Any], entity_id: str = "X1") -> EntityEvent:
    return EntityEvent(
        id="ev",
        resource=resource,
        action=A.UPDATED,
        project_id="P",
        entity_id=entity_id,
        entity=entity,
        at=NOW,
    )


RUN = PackageFunction(name="run", input=[io("note", "String"), io("item", "Item"), io("x", "Item")])


@pytest.mark.parametrize(
    ("function", "spec_input", "fired", "expected"),
    [
        pytest.param(
            RUN,
            {"note": "hi"},
            event(R.ITEM, {"id": "X1", "name": "a.jpg"}),
            {"note": "hi", "item": {"id": "X1", "name": "a.jpg", "item_id": "X1"}},
            id="first-item-input",
        ),
        pytest.param(
            RUN,
            {},
            event(R.ITEM_STATUS, {"status": "done", "item_id": "stale"}),
            {"item": {"status": "done", "item_id": "X1", "id": "X1"}},
            id="item-status-is-an-item",
        ),
        pytest.param(
            PackageFunction(name="d", input=[io("dataset", "Dataset")]),
            {},
            event(R.DATASET, {"name": "ds"}, "D1"),
            {"dataset": {"name": "ds", "dataset_id": "D1", "id": "D1"}},
            id="dataset",
        ),
        pytest.param(RUN, {"note": "n"}, None, {"note": "n"}, id="cron"),
        pytest.param(RUN, {}, event(R.DATASET, {}), None, id="no-input-of-the-type"),
    ],
)
def test_the_entity_goes_to_the_first_input_of_its_type(
    function: PackageFunction,
    spec_input: dict[str, Any],
    fired: EntityEvent | None,
    expected: dict[str, Any] | None,
) -> None:
    assert fired_input(function, spec_input, fired) == expected


def test_a_fired_input_is_what_a_users_entity_input_becomes() -> None:
    fired = event(R.ITEM, {"id": "X1", "dir": "/a"})
    mapped = fired_input(RUN, {}, fired)
    assert mapped is not None
    checked = validate_input(RUN, mapped)
    assert checked.input == {"item": {"id": "X1", "dir": "/a", "item_id": "X1"}}
    assert [r.to_wire() for r in checked.resources] == [{"type": "Item", "id": "X1"}]
