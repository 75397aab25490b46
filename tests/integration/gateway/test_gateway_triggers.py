"""Triggers, entity events and fires through a whole gateway on the real servers: trigger CRUD
and its `trigger.*` announcements, every validation error (and that nothing is written), deploy
from file, POST /events with its origin chain, dry runs, and TriggerFired -> one execution per
key. Messages are read off queues of the test's own bound to the events exchange."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from support.broker import queue_counts
from support.gateway_live import Live, live_gateway, until

from spool_common.archive import build_archive
from spool_common.bus.amqp import Bus, Delivery
from spool_common.bus.dispositions import Disposition, Outcome
from spool_common.bus.topology import Binding, QueueSpec
from spool_common.messages import (
    AnyMessage,
    ClaimRequest,
    ClaimVerdict,
    EntityEvent,
    ExecutionFinished,
    ExecutionRequested,
    OriginHop,
    TriggerChanged,
    TriggerFired,
)
from spool_common.models import (
    ExecutionStatus,
    FunctionIO,
    PackageFunction,
    PackageModule,
    TriggerAction,
    TriggerResource,
)
from spool_gateway.core import new_id
from spool_gateway.event_ops import fire

pytestmark = pytest.mark.integration


def io(name: str, kind: str, **extra: Any) -> FunctionIO:
    return FunctionIO.model_validate({"name": name, "type": kind, **extra})


MODULE = PackageModule(
    functions=[
        PackageFunction(name="run", input=[io("item", "Item"), io("threshold", "Float")]),
        PackageFunction(name="on_dataset", input=[io("dataset", "Dataset")]),
        PackageFunction(name="tick", input=[io("config", "Json", mandatory=True)]),
        PackageFunction(name="plain"),
    ]
)


@dataclass
class Tap:
    """Messages (and their routing keys) off a queue of the test's own."""

    got: list[tuple[str, AnyMessage]] = field(default_factory=list)

    async def on(self, delivery: Delivery) -> None:
        if delivery.message is not None:
            self.got.append((delivery.raw.routing_key or "", delivery.message))
        await delivery.settle(Disposition.ACK)

    async def wait(self, count: int) -> list[tuple[str, AnyMessage]]:
        async def enough() -> bool:
            return len(self.got) >= count

        await until(enough)
        return self.got


async def tap(bus: Bus, name: str, *bindings: Binding) -> Tap:
    collected = Tap()
    spec = QueueSpec(bus.topology.name(name), bindings, durable=False, auto_delete=True)
    await bus.consume(spec, collected.on, prefetch=50)
    return collected


@dataclass
class World:
    live: Live
    project_id: str
    service_id: str
    triggers: Tap  # trigger.* on the events exchange
    entities: Tap  # entity.# on the events exchange

    @property
    def api(self) -> httpx.AsyncClient:
        return self.live.api

    def body(self, spec: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
        """A trigger request on this service's `run` (Item)."""
        operation = {"type": "function", "serviceId": self.service_id, "functionName": "run"}
        given = dict(spec or {})
        given["operation"] = {**operation, **given.get("operation", {})}
        return {"projectId": self.project_id, "spec": given, **top}

    async def create(self, spec: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
        response = await self.api.post("/triggers", json=self.body(spec, **top))
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def changes(self, count: int) -> list[TriggerChanged]:
        got = await self.triggers.wait(count)
        return [m for _, m in got if isinstance(m, TriggerChanged)]


@pytest.fixture
async def world(pool: asyncpg.Pool, bus: Bus, broker_cleanup: list[str]) -> AsyncIterator[World]:
    async with live_gateway(pool, bus) as live:
        project_id, package_id = await live.package([MODULE])
        service_id = await live.deploy(project_id, package_id)
        events = bus.topology.events
        triggers = await tap(bus, "test.triggers", Binding(events, "trigger.*"))
        entities = await tap(bus, "test.entities", Binding(events, "entity.#"))
        yield World(live, project_id, service_id, triggers, entities)
    broker_cleanup.extend(live.queues)


async def trigger_rows(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM triggers"))


# --- CRUD ------------------------------------------------------------------------------------


async def test_a_trigger_is_created_with_dataloops_defaults_and_announced(world: World) -> None:
    minimal = {
        "projectId": world.project_id,
        "spec": {"operation": {"serviceId": world.service_id}},
    }
    response = await world.api.post("/triggers", json=minimal)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["name"] == "svc"  # the service's name
    assert (created["type"], created["active"], created["projectId"]) == (
        "Event",
        True,
        world.project_id,
    )
    assert created["spec"] == {
        "resource": "Item",
        "actions": ["Created"],
        "filter": {},
        "executionMode": "Once",
        "input": {},
        "operation": {"type": "function", "serviceId": world.service_id, "functionName": "run"},
    }
    assert created["creator"] == "admin"
    fetched = await world.api.get(f"/triggers/{created['id']}")
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == created
    listed = await world.api.get("/triggers", params={"serviceId": world.service_id})
    assert [t["id"] for t in listed.json()] == [created["id"]]

    [change] = await world.changes(1)
    assert (change.revision, change.deleted) == (1, False)
    assert change.trigger.to_wire() == created
    assert world.triggers.got[0][0] == "trigger.created"


async def test_the_project_defaults_to_the_services(world: World) -> None:
    body = {"name": "no-project", "spec": {"operation": {"serviceId": world.service_id}}}
    response = await world.api.post("/triggers", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["projectId"] == world.project_id
    unknown = await world.api.post(
        "/triggers", json={"spec": {"operation": {"serviceId": "no-such-service"}}}
    )
    assert unknown.status_code == 404, unknown.text
    assert unknown.json()["details"][0]["field"] == "serviceId"


async def test_an_empty_action_list_means_created(world: World) -> None:
    created = await world.create({"actions": []}, name="t")
    assert created["spec"]["actions"] == ["Created"]


async def test_updates_and_the_delete_are_announced_with_rising_revisions(
    world: World, pool: asyncpg.Pool
) -> None:
    created = await world.create({"filter": {"$and": [{"dir": "/a"}]}}, name="t")
    path = f"/triggers/{created['id']}"
    patch = {"active": False, "spec": {"actions": ["Created", "Updated"]}}
    first = await world.api.patch(path, json=patch)
    assert first.status_code == 200, first.text
    assert first.json()["active"] is False
    assert first.json()["spec"]["actions"] == ["Created", "Updated"]
    assert first.json()["spec"]["filter"] == {"$and": [{"dir": "/a"}]}
    assert first.json()["createdAt"] == created["createdAt"]
    second = await world.api.patch(path, json={"spec": {"filter": {"$or": [{"dir": "/b"}]}}})
    assert second.status_code == 200, second.text
    assert second.json()["spec"]["filter"] == {"$or": [{"dir": "/b"}]}  # replaced, not merged
    deleted = await world.api.delete(path)
    assert deleted.status_code == 204, deleted.text

    changes = await world.changes(4)
    assert [(c.revision, c.deleted, c.trigger.active) for c in changes] == [
        (1, False, True),
        (2, False, False),
        (3, False, False),
        (4, True, False),
    ]
    assert [key for key, _ in world.triggers.got] == [
        "trigger.created",
        "trigger.updated",
        "trigger.updated",
        "trigger.deleted",
    ]
    assert (await world.api.get(path)).status_code == 404
    assert (await world.api.patch(path, json={"active": True})).status_code == 404
    assert (await world.api.delete(path)).status_code == 404
    assert await trigger_rows(pool) == 0


async def test_names_are_unique_per_project(world: World) -> None:
    await world.create(name="first")
    second = await world.create(name="second")
    again = await world.api.post("/triggers", json=world.body(name="first"))
    assert again.status_code == 409, again.text
    assert again.json()["details"] == [{"field": "name", "reason": "already taken"}]
    renamed = await world.api.patch(f"/triggers/{second['id']}", json={"name": "first"})
    assert renamed.status_code == 409, renamed.text
    assert (await world.api.get(f"/triggers/{second['id']}")).json()["name"] == "second"

    other_project, other_package = await world.live.package([MODULE])
    other_service = await world.live.deploy(other_project, other_package)
    elsewhere = {
        "projectId": other_project,
        "name": "first",
        "spec": {"operation": {"serviceId": other_service}},
    }
    assert (await world.api.post("/triggers", json=elsewhere)).status_code == 201


def spec_of(function: str, **spec: Any) -> dict[str, Any]:
    return {"operation": {"functionName": function}, **spec}


CRON = {"cron": "0 5 * * *", "input": {"config": {"k": 1}}}

REFUSED = [
    pytest.param({"projectId": 5}, "projectId", "Input should be a valid string", id="project"),
    pytest.param({"type": "Webhook"}, "type", "Input should be 'Event' or 'Cron'", id="type"),
    pytest.param({"name": " x"}, "name", "not start or end with a space", id="name"),
    pytest.param({"spec": "nope"}, "spec", "valid dictionary", id="spec"),
    pytest.param(
        {"spec": {"operation": {"serviceId": "nope"}}},
        "spec.operation.serviceId",
        "no such service in this project",
        id="service-unknown",
    ),
    pytest.param(
        {"spec": {"operation": {"type": "webhook", "webhookId": "W"}}},
        "spec.operation.type",
        "must be 'function'",
        id="webhook",
    ),
    pytest.param(
        {"spec": spec_of("nope")},
        "spec.operation.functionName",
        "no function 'nope' in module 'default_module' (functions: run, on_dataset, tick, plain)",
        id="function",
    ),
    pytest.param(
        {"spec": spec_of("plain")},
        "spec.resource",
        "function 'plain' has no input of type Item to receive the Item that fires it "
        "(its inputs: none)",
        id="no-entity-input",
    ),
    pytest.param(
        {"spec": spec_of("run", resource="Dataset")},
        "spec.resource",
        "has no input of type Dataset",
        id="other-entity",
    ),
    pytest.param(
        {"spec": spec_of("on_dataset", resource="Dataset", actions=["Clone"])},
        "spec.actions[0]",
        "Dataset has no action 'Clone' (its actions: Created, Updated, Deleted)",
        id="action-of-resource",
    ),
    pytest.param(
        {"spec": spec_of("run", actions=["Exploded"])},
        "spec.actions[0]",
        "Input should be",
        id="action",
    ),
    pytest.param(
        {"spec": spec_of("run", resource="Planet")}, "spec.resource", "Input", id="resource"
    ),
    pytest.param(
        {"spec": spec_of("run", executionMode="Twice")}, "spec.executionMode", "Input", id="mode"
    ),
    pytest.param(
        {"spec": spec_of("run", filter={"score": {"$regex": "a"}})},
        "spec.filter",
        "",
        id="filter",
    ),
    pytest.param(
        {"spec": spec_of("run", input={"item": "I1"})},
        "spec.input.item",
        "is filled with the Item that fires the trigger; leave it out",
        id="input-entity",
    ),
    pytest.param(
        {"spec": spec_of("run", input={"threshold": "high"})},
        "spec.input.threshold",
        "must be a finite number, not a string",
        id="input-type",
    ),
    pytest.param(
        {"type": "Cron", "spec": spec_of("tick", cron="61 * * * *", input={"config": 1})},
        "spec.cron",
        'minute "61" is not valid: use 0-59',
        id="cron",
    ),
    pytest.param(
        {"type": "Cron", "spec": spec_of("tick", cron="* * * * *")},
        "spec.input.config",
        "is required by function 'tick'",
        id="cron-input",
    ),
    pytest.param(
        {
            "type": "Cron",
            "spec": spec_of(
                "tick", **CRON, startAt="2024-05-02T00:00:00", endAt="2024-05-01T00:00:00"
            ),
        },
        "spec.endAt",
        "is before startAt (2024-05-02T00:00:00+00:00)",
        id="cron-window",
    ),
    *(
        pytest.param(
            {"type": "Cron", "spec": spec_of("tick", **CRON, **{key: value})},
            f"spec.{key}",
            "is not allowed in a Cron trigger (only Event triggers have it)",
            id=f"cron-{key}",
        )
        for key, value in (
            ("filter", {}),
            ("resource", "Item"),
            ("actions", ["Created"]),
            ("executionMode", "Once"),
        )
    ),
]


@pytest.mark.parametrize(("change", "field", "reason"), REFUSED)
async def test_a_bad_trigger_is_refused_naming_the_field_and_nothing_is_written(
    world: World, pool: asyncpg.Pool, change: dict[str, Any], field: str, reason: str
) -> None:
    body = world.body()
    spec = change.get("spec")
    if isinstance(spec, dict):
        body["spec"] = {**body["spec"], **spec}
        body["spec"]["operation"] = {**world.body()["spec"]["operation"], **spec["operation"]}
    body.update({k: v for k, v in change.items() if k != "spec" or not isinstance(v, dict)})
    response = await world.api.post("/triggers", json=body)
    assert response.status_code == 400, response.text
    [detail] = response.json()["details"]
    assert detail["field"].startswith(field)
    assert reason in detail["reason"]
    assert await trigger_rows(pool) == 0
    # Nothing was announced either: the first trigger.* message is the next valid trigger's.
    valid = await world.create(name="valid")
    [change_seen] = await world.changes(1)
    assert change_seen.trigger.id == valid["id"]


async def test_an_unknown_project_is_not_found(world: World) -> None:
    body = {**world.body(), "projectId": "no-such-project"}
    response = await world.api.post("/triggers", json=body)
    assert response.status_code == 404, response.text
    assert response.json()["details"] == [{"field": "projectId", "reason": "no such project"}]


async def test_a_service_of_another_project_is_refused(world: World) -> None:
    other_project, other_package = await world.live.package([MODULE])
    other_service = await world.live.deploy(other_project, other_package)
    body = world.body({"operation": {"serviceId": other_service}})
    response = await world.api.post("/triggers", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["details"] == [
        {"field": "spec.operation.serviceId", "reason": "no such service in this project"}
    ]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        pytest.param({"type": "Cron"}, "type", id="type"),
        pytest.param({"projectId": "other"}, "projectId", id="project"),
        pytest.param({"spec": {"actions": ["statusChanged"]}}, "spec.actions[0]", id="action"),
        pytest.param({"spec": {"operation": {"serviceId": "x"}}}, "spec.operation.serviceId"),
        pytest.param({"name": ""}, "name", id="name"),
    ],
)
async def test_a_bad_update_changes_nothing(
    world: World, patch: dict[str, Any], field: str
) -> None:
    created = await world.create(name="t")
    response = await world.api.patch(f"/triggers/{created['id']}", json=patch)
    assert response.status_code == 400, response.text
    assert [d["field"] for d in response.json()["details"]] == [field]
    assert (await world.api.get(f"/triggers/{created['id']}")).json() == created
    await asyncio.sleep(0.2)
    assert [c.revision for c in await world.changes(1)] == [1]


# --- deploy from file and service deletion ----------------------------------------------------

MAIN = b"""
class ServiceRunner:
    def run(self, item):
        return item
"""


def manifest(trigger: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "from-file",
        "modules": [
            {
                "name": "default_module",
                "functions": [{"name": "run", "input": [{"name": "item", "type": "Item"}]}],
            }
        ],
        "services": [
            {"name": "from-file-svc", "runtime": {"numReplicas": 0}, "triggers": [trigger]}
        ],
    }


async def deploy_file(world: World, trigger: dict[str, Any]) -> httpx.Response:
    files = {"main.py": MAIN, "package.json": orjson.dumps(manifest(trigger))}
    upload = {"codebase": ("code.zip", build_archive(files), "application/zip")}
    return await world.api.post(
        "/packages/deploy", files=upload, data={"projectId": world.project_id}
    )


async def test_deploy_from_file_checks_and_announces_its_triggers(world: World) -> None:
    bad = {"name": "on-dataset", "spec": {"resource": "Dataset"}}
    refused = await deploy_file(world, bad)
    assert refused.status_code == 400, refused.text
    assert [d["field"] for d in refused.json()["details"]] == [
        "package.json.services[0].triggers[0].spec.resource"
    ]
    packages = await world.api.get("/packages", params={"projectId": world.project_id})
    assert [p["name"] for p in packages.json()] == ["pkg"]  # nothing was written

    good = {"spec": {"resource": "Item", "actions": ["Created"], "filter": {}}}
    first = await deploy_file(world, good)
    assert first.status_code == 200, first.text
    [service] = first.json()["services"]
    world.live.queues.append(world.live.gw.bus.topology.service_queue(service["id"]).name)
    [trigger] = first.json()["triggers"]
    assert trigger["name"] == "from-file-svc"  # the service's name
    assert trigger["spec"]["operation"]["serviceId"] == service["id"]
    again = await deploy_file(world, {**good, "active": False})
    assert again.status_code == 200, again.text
    [replaced] = again.json()["triggers"]
    assert (replaced["id"], replaced["active"]) == (trigger["id"], False)
    assert replaced["createdAt"] == trigger["createdAt"]

    changes = await world.changes(2)
    assert [(c.trigger.id, c.revision, c.trigger.active) for c in changes] == [
        (trigger["id"], 1, True),
        (trigger["id"], 2, False),
    ]
    assert [key for key, _ in world.triggers.got] == ["trigger.created", "trigger.updated"]


async def test_deleting_a_service_deletes_and_announces_its_triggers(world: World) -> None:
    one = await world.create(name="one")
    two = await world.create(name="two")
    assert (await world.api.delete(f"/services/{world.service_id}")).status_code == 204
    changes = await world.changes(4)
    deleted = {(c.trigger.id, c.revision) for c in changes if c.deleted}
    assert deleted == {(one["id"], 2), (two["id"], 2)}
    assert (await world.api.get("/triggers", params={"projectId": world.project_id})).json() == []


# --- events ----------------------------------------------------------------------------------


def fired(
    world: World,
    trigger_id: str,
    key: str,
    event: EntityEvent | None,
    inputs: dict[str, Any] | None = None,
    function: str = "run",
    service_id: str | None = None,
) -> TriggerFired:
    return TriggerFired(
        key=key,
        trigger_id=trigger_id,
        project_id=world.project_id,
        service_id=service_id or world.service_id,
        function_name=function,
        input=inputs or {},
        event=event,
        scheduled_at=None if event else datetime(2026, 1, 1, 5, tzinfo=UTC),
        at=datetime.now(UTC),
    )


def item_event(world: World, entity: dict[str, Any], origin: list[OriginHop]) -> EntityEvent:
    return EntityEvent(
        id=new_id(),
        resource=TriggerResource.ITEM,
        action=TriggerAction.CREATED,
        project_id=world.project_id,
        entity_id=str(entity["id"]),
        entity=entity,
        origin=origin,
        at=datetime.now(UTC),
    )


async def test_an_event_is_published_with_the_origin_chain_of_its_execution(
    world: World, pool: asyncpg.Pool
) -> None:
    trigger = await world.create(name="t")
    hop0 = OriginHop(execution_id="e0", trigger_id="t0", entity_id="i0")
    fire_event = item_event(world, {"id": "I1", "name": "a.jpg"}, [hop0])
    outcome = await fire(world.live.gw, fired(world, trigger["id"], "k1", fire_event))
    assert outcome is Outcome.HANDLED
    [execution_id] = [r["id"] for r in await pool.fetch("SELECT id FROM executions")]
    manual = await world.api.post(f"/executions/{world.service_id}", json={"input": {"item": "I9"}})
    assert manual.status_code == 201, manual.text

    bodies = [
        {"resource": "Item", "action": "Updated", "projectId": world.project_id,
         "entity": {"id": "I2", "dir": "/a"}, "userId": "u1", "originExecutionId": execution_id},
        {"resource": "Dataset", "action": "Created", "projectId": world.project_id,
         "entityId": "D1", "originExecutionId": manual.json()["id"]},
        {"resource": "Annotation", "action": "Deleted", "projectId": world.project_id,
         "entityId": "A1"},
    ]  # fmt: skip
    ids = []
    for body in bodies:
        response = await world.api.post("/events", json=body)
        assert response.status_code == 202, response.text
        assert set(response.json()) == {"id"}
        ids.append(response.json()["id"])

    got = await world.entities.wait(3)
    assert [key for key, _ in got] == [
        "entity.Item.Updated",
        "entity.Dataset.Created",
        "entity.Annotation.Deleted",
    ]
    events = [m for _, m in got]
    assert all(isinstance(e, EntityEvent) for e in events)
    first, second, third = (e for e in events if isinstance(e, EntityEvent))
    assert [first.id, second.id, third.id] == ids
    assert (first.entity_id, first.entity, first.user_id) == ("I2", {"id": "I2", "dir": "/a"}, "u1")
    assert first.origin == [
        hop0,
        OriginHop(execution_id=execution_id, trigger_id=trigger["id"], entity_id="I1"),
    ]
    assert second.origin == [
        OriginHop(execution_id=manual.json()["id"], trigger_id=None, entity_id=None)
    ]
    assert (second.entity_id, second.entity) == ("D1", {"id": "D1"})
    assert third.origin == []


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        pytest.param({"action": "Clone", "resource": "Dataset"}, 400, "action", id="matrix"),
        pytest.param({"action": "Exploded"}, 400, "action", id="action"),
        pytest.param({"resource": "Planet"}, 400, "resource", id="resource"),
        pytest.param({"entity": [1]}, 400, "entity", id="entity-list"),
        pytest.param({"entity": {"name": "x"}}, 400, "entityId", id="no-id"),
        pytest.param({"entityId": "other"}, 400, "entityId", id="ids-differ"),
        pytest.param({"entity": {"id": "I", "b": "x" * 1100000}}, 400, "entity", id="too-large"),
        pytest.param({"originExecutionId": "nope"}, 400, "originExecutionId", id="origin"),
        pytest.param({"projectId": "nope"}, 404, "projectId", id="project"),
    ],
)
async def test_a_bad_event_is_refused_naming_the_field(
    world: World, pool: asyncpg.Pool, change: dict[str, Any], status: int, field: str
) -> None:
    body = {"resource": "Item", "action": "Created", "projectId": world.project_id,
            "entity": {"id": "I1"}, **change}  # fmt: skip
    response = await world.api.post("/events", json=body)
    assert response.status_code == status, response.text
    assert [d["field"] for d in response.json()["details"]] == [field]
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE routing_key LIKE 'entity.%'") == 0


async def test_an_execution_of_another_project_is_no_origin(world: World) -> None:
    other_project, other_package = await world.live.package([MODULE])
    other_service = await world.live.deploy(other_project, other_package, name="other")
    theirs = await world.api.post(f"/executions/{other_service}", json={"input": {"item": "I"}})
    assert theirs.status_code == 201, theirs.text
    body = {"resource": "Item", "action": "Created", "projectId": world.project_id,
            "entityId": "I1", "originExecutionId": theirs.json()["id"]}  # fmt: skip
    response = await world.api.post("/events", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["details"] == [
        {"field": "originExecutionId", "reason": "no such execution in this project"}
    ]


# --- dry run ---------------------------------------------------------------------------------


async def test_a_dry_run_says_which_triggers_would_fire_and_why_not(world: World) -> None:
    images = {"$and": [{"metadata.system.mimetype": "image/*"}]}
    made = {
        "images": await world.create({"filter": images}, name="images"),
        "inactive": await world.create(name="inactive", active=False),
        "dataset": await world.create(
            {"resource": "Dataset", "operation": {"functionName": "on_dataset"}}, name="dataset"
        ),
        "updated": await world.create({"actions": ["Updated"]}, name="updated"),
        "videos": await world.create(
            {"filter": {"metadata.system.mimetype": "video/*"}}, name="videos"
        ),
        "cron": await world.create(
            {**CRON, "operation": {"functionName": "tick"}}, name="cron", type="Cron"
        ),
    }
    body = {
        "projectId": world.project_id,
        "event": {
            "resource": "Item",
            "action": "Created",
            "entity": {"id": "I1", "metadata": {"system": {"mimetype": "image/png"}}},
        },
    }
    response = await world.api.post("/triggers/dry-run", json=body)
    assert response.status_code == 200, response.text
    verdicts = {v["name"]: v for v in response.json()}
    assert set(verdicts) == set(made)
    for name, trigger in made.items():
        assert verdicts[name]["triggerId"] == trigger["id"]
        assert set(verdicts[name]) == {"triggerId", "name", "fires", "reason"}
    reasons = {name: (v["fires"], v["reason"]) for name, v in verdicts.items()}
    assert reasons["images"] == (True, "matches")
    assert reasons["inactive"] == (False, "the trigger is inactive")
    assert reasons["dataset"] == (False, "listens to Dataset events, not Item")
    assert reasons["updated"] == (False, "listens to the actions Updated, not Created")
    assert reasons["cron"] == (False, "a Cron trigger fires on its schedule, never on events")
    assert reasons["videos"][0] is False
    assert reasons["videos"][1].startswith("its filter does not match: ")
    assert "metadata.system.mimetype" in reasons["videos"][1]
    assert world.entities.got == []  # nothing was published


async def test_a_bad_dry_run_names_the_field(world: World) -> None:
    body = {"projectId": world.project_id,
            "event": {"resource": "Dataset", "action": "Clone", "entity": {"id": "D"}}}  # fmt: skip
    response = await world.api.post("/triggers/dry-run", json=body)
    assert response.status_code == 400, response.text
    assert [d["field"] for d in response.json()["details"]] == ["event.action"]


# --- fires -----------------------------------------------------------------------------------


async def test_a_fire_creates_one_execution_per_key_with_the_entity_as_its_input(
    world: World, bus: Bus, pool: asyncpg.Pool, amqp_url: str
) -> None:
    trigger = await world.create({"input": {"threshold": 0.5}}, name="t")
    paused = await world.api.post(f"/services/{world.service_id}/stop")
    assert paused.status_code == 200, paused.text  # a paused service still queues
    requests = Tap()
    await bus.consume(bus.topology.service_queue(world.service_id).name, requests.on, prefetch=10)
    hop = OriginHop(execution_id="e0", trigger_id="t0", entity_id="i0")
    entity = {"id": "I1", "name": "a.jpg", "dir": "/d"}
    event = item_event(world, entity, [hop])
    message = fired(world, trigger["id"], f"{trigger['id']}:entity:I1", event, {"threshold": 0.5})
    for _ in range(2):  # delivered twice
        await bus.publish(bus.topology.agent, "trigger.fired", message)

    async def settled() -> bool:
        ready, _ = await queue_counts(amqp_url, bus.topology.gateway_fired.name)
        return ready == 0 and len(requests.got) >= 1

    await until(settled)
    assert await fire(world.live.gw, message) is Outcome.DUPLICATE  # and once more, directly
    listed = await world.api.get("/executions", params={"triggerId": trigger["id"]})
    [execution] = listed.json()
    assert execution["input"] == {
        "item": {"id": "I1", "name": "a.jpg", "dir": "/d", "item_id": "I1"},
        "threshold": 0.5,
    }
    assert execution["resources"] == [{"type": "Item", "id": "I1"}]
    assert (execution["triggerId"], execution["functionName"]) == (trigger["id"], "run")
    by_resource = await world.api.get("/executions", params={"resourceId": "I1"})
    assert [e["id"] for e in by_resource.json()] == [execution["id"]]
    row = await pool.fetchrow("SELECT origin, event, dedup_key FROM executions")
    assert row["origin"] == [hop.to_wire()]
    assert row["event"] == event.to_wire()
    assert row["dedup_key"] == message.key

    await asyncio.sleep(0.2)
    [(_, request)] = requests.got
    assert isinstance(request, ExecutionRequested)
    assert request.execution_id == execution["id"]
    assert request.event == event.to_wire()
    assert (request.trigger_id, request.input) == (trigger["id"], execution["input"])


async def test_a_cron_fire_passes_the_triggers_input(world: World) -> None:
    trigger = await world.create({**CRON, "operation": {"functionName": "tick"}}, type="Cron")
    message = fired(world, trigger["id"], "cron-key", None, {"config": {"k": 1}}, "tick")
    assert await fire(world.live.gw, message) is Outcome.HANDLED
    [execution] = (await world.api.get("/executions", params={"triggerId": trigger["id"]})).json()
    assert execution["input"] == {"config": {"k": 1}}
    assert execution["resources"] == []
    assert execution["functionName"] == "tick"


async def test_a_fire_for_a_service_or_function_that_is_gone_is_acked_and_records_nothing(
    world: World, bus: Bus, pool: asyncpg.Pool, amqp_url: str
) -> None:
    event = item_event(world, {"id": "I1"}, [])
    gone = [
        fired(world, "t", "k-service", event, service_id="no-such-service"),
        fired(world, "t", "k-function", event, function="removed"),
        fired(world, "t", "k-input", event, function="plain"),  # no input takes the item
        fired(world, "t", "k-bad-input", None, {"config": None}, function="tick"),
    ]
    for message in gone:
        assert await fire(world.live.gw, message) is Outcome.HANDLED
        await bus.publish(bus.topology.agent, "trigger.fired", message)

    async def drained() -> bool:
        ready, _ = await queue_counts(amqp_url, bus.topology.gateway_fired.name)
        return ready == 0

    await until(drained)
    await asyncio.sleep(0.2)
    assert await pool.fetchval("SELECT count(*) FROM executions") == 0


async def test_a_rerun_of_a_fired_execution_hands_its_event_again(world: World, bus: Bus) -> None:
    trigger = await world.create(name="t")
    requests = Tap()
    await bus.consume(bus.topology.service_queue(world.service_id).name, requests.on, prefetch=10)
    event = item_event(world, {"id": "I1"}, [])
    assert await fire(world.live.gw, fired(world, trigger["id"], "k", event)) is Outcome.HANDLED
    [(_, first)] = await requests.wait(1)
    assert isinstance(first, ExecutionRequested)
    gw, now = world.live.gw, datetime.now(UTC)
    claim = ClaimRequest(
        execution_id=first.execution_id, service_id=world.service_id, replica_id="r"
    )
    granted = await gw.claim(claim)
    assert granted.verdict is ClaimVerdict.GRANTED
    done = ExecutionFinished(
        execution_id=first.execution_id,
        attempt=granted.attempt,
        replica_id="r",
        status=ExecutionStatus.SUCCESS,
        started_at=now,
        finished_at=now,
    )
    assert await gw.finish(done)
    rerun = await world.api.post(f"/executions/{first.execution_id}/rerun")
    assert rerun.status_code == 200, rerun.text
    [_, (_, again)] = await requests.wait(2)
    assert isinstance(again, ExecutionRequested)
    assert (again.execution_id, again.trigger_id) == (first.execution_id, trigger["id"])
    assert again.event == event.to_wire()
