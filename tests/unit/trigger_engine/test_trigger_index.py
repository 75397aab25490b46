"""The trigger index finds exactly the triggers a scan of all of them would."""

from __future__ import annotations

import random
from typing import Any

from spool_common.dql import compile_filter
from spool_common.models import (
    EventTriggerSpec,
    Trigger,
    TriggerAction,
    TriggerResource,
)
from spool_trigger_engine.index import TriggerIndex

ITEM = TriggerResource.ITEM
CREATED, UPDATED = TriggerAction.CREATED, TriggerAction.UPDATED


def trigger(
    trigger_id: str,
    flt: dict[str, Any],
    *,
    project: str = "p",
    resource: TriggerResource = ITEM,
    actions: tuple[TriggerAction, ...] = (CREATED,),
    active: bool = True,
    cron: bool = False,
) -> Trigger:
    operation = {"type": "function", "serviceId": "s"}
    spec: dict[str, Any] = (
        {"cron": "* * * * *", "operation": operation}
        if cron
        else {
            "resource": resource.value,
            "actions": [a.value for a in actions],
            "filter": flt,
            "operation": operation,
        }
    )
    body = {"id": trigger_id, "name": trigger_id, "projectId": project, "active": active}
    return Trigger.model_validate({**body, "type": "Cron" if cron else "Event", "spec": spec})


def ids(index: TriggerIndex, entity: dict[str, Any], action: TriggerAction = CREATED) -> set[str]:
    return {c.trigger.id for c in index.matching("p", ITEM, action, entity)}


def test_pins_find_their_values_and_unpinned_triggers_are_always_candidates() -> None:
    index = TriggerIndex()
    index.put(trigger("by-dataset", {"datasetId": "d1"}))
    index.put(trigger("by-dir", {"dir": "/dogs", "name": "*.jpg"}))
    index.put(trigger("glob-only", {"name": "*.png"}))
    index.put(trigger("everything", {}))
    assert ids(index, {"datasetId": "d1", "name": "a.png"}) == {
        "by-dataset",
        "glob-only",
        "everything",
    }
    assert ids(index, {"dir": "/dogs", "name": "a.jpg"}) == {"by-dir", "everything"}
    assert ids(index, {"dir": "/dogs", "name": "a.jpg", "hidden": True}) == set()  # item default
    assert ids(index, {"datasetId": ["d0", "d1"]}) == {"by-dataset", "everything"}  # list field


def test_updates_replace_and_inactive_cron_and_removed_triggers_never_match() -> None:
    index = TriggerIndex()
    index.put(trigger("t", {"datasetId": "d1"}))
    index.put(trigger("t", {"datasetId": "d2"}, actions=(CREATED, UPDATED)))
    assert ids(index, {"datasetId": "d1"}) == set()
    assert ids(index, {"datasetId": "d2"}, UPDATED) == {"t"}
    index.put(trigger("t", {"datasetId": "d2"}, active=False))
    assert ids(index, {"datasetId": "d2"}) == set()
    index.put(trigger("c", {}, cron=True))
    assert len(index) == 0
    index.put(trigger("t", {}))
    index.remove("t")
    assert ids(index, {}) == set()
    assert len(index) == 0


def test_other_projects_resources_and_actions_are_never_candidates() -> None:
    index = TriggerIndex()
    index.put(trigger("other-project", {}, project="q"))
    index.put(trigger("dataset", {}, resource=TriggerResource.DATASET))
    index.put(trigger("updated", {}, actions=(UPDATED,)))
    assert ids(index, {}) == set()


FIELDS = ["datasetId", "dir", "label", "name", "hidden", "type", "score"]
VALUES: dict[str, list[Any]] = {
    "datasetId": ["d0", "d1", "d2"],
    "dir": ["/a", "/b"],
    "label": ["cat", "dog", None],
    "name": ["x.jpg", "y.png"],
    "hidden": [True, False],
    "type": ["file", "dir"],
    "score": [0, 1, 2.5],
}


def _random_filter(rng: random.Random) -> dict[str, Any]:
    clauses: list[dict[str, Any]] = []
    for name in rng.sample(FIELDS, rng.randint(0, 3)):
        value = rng.choice(VALUES[name])
        op = rng.choice(["eq", "eq", "ne", "in", "glob"])
        if op == "ne":
            clauses.append({name: {"$ne": value}})
        elif op == "in":
            clauses.append({name: {"$in": rng.sample(VALUES[name], 2)}})
        elif op == "glob" and isinstance(value, str):
            clauses.append({name: value[:1] + "*"})
        else:
            clauses.append({name: value})
    return {"$and": clauses} if clauses else {}


def test_the_index_agrees_with_a_scan_of_every_trigger() -> None:
    rng = random.Random(11)
    index = TriggerIndex()
    triggers = [trigger(f"t{i}", _random_filter(rng)) for i in range(400)]
    for t in triggers:
        index.put(t)
    matchers = {
        t.id: compile_filter(t.spec.filter, ITEM)
        for t in triggers
        if isinstance(t.spec, EventTriggerSpec)
    }
    for _ in range(500):
        entity: dict[str, Any] = {}
        for name in rng.sample(FIELDS, rng.randint(0, len(FIELDS))):
            value = rng.choice(VALUES[name])
            entity[name] = [value, rng.choice(VALUES[name])] if rng.random() < 0.1 else value
        expected = {tid for tid, m in matchers.items() if m.matches(entity)}
        assert ids(index, entity) == expected, entity
