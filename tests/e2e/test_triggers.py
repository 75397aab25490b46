"""Triggers on the real platform: entity events over HTTP and the bus become executions
(Created/Updated/Deleted, Once vs Always, filters that match and do not, the entity passed as
the typed input), loops are stopped with a notification, and cron fires once per tick with two
trigger engines running."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from support.faults import record, tally
from support.platform import LocalPlatform, deploy, running_platform

from spool_common.bus.amqp import Bus
from spool_common.bus.topology import Topology
from spool_common.messages import EntityEvent
from spool_common.models import TriggerAction, TriggerResource

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

LOOP_DEPTH = 3

CODE = b"""
class ServiceRunner:
    def on_item(self, item, context):
        return {"itemId": item.id, "name": item.name, "trigger": context.trigger_id,
                "event": (context.event or {}).get("action")}

    def on_dataset(self, dataset):
        return {"datasetId": dataset.id}

    def on_annotation(self, annotation):
        return {"annotationId": annotation.id}

    def tick(self, config):
        return config
"""

PACKAGE = orjson.dumps(
    {
        "name": "trig",
        "modules": [
            {
                "name": "default_module",
                "functions": [
                    {"name": "on_item", "input": [{"name": "item", "type": "Item"}]},
                    {"name": "on_dataset", "input": [{"name": "dataset", "type": "Dataset"}]},
                    {
                        "name": "on_annotation",
                        "input": [{"name": "annotation", "type": "Annotation"}],
                    },
                    {"name": "tick", "input": [{"name": "config", "type": "Json"}]},
                ],
            }
        ],
    }
)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(
    tmp_path_factory: pytest.TempPathFactory, servers: None
) -> AsyncIterator[LocalPlatform]:
    env = {"SPOOL_MAX_LOOP_DEPTH": str(LOOP_DEPTH)}
    async with running_platform(tmp_path_factory.mktemp("platform"), env) as p:
        await p.start_service("trigger-engine", instance="second")  # two engines, one inbox
        await p.wait_healthy()
        yield p


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(client: httpx.AsyncClient) -> dict[str, Any]:
    files = {"main.py": CODE, "package.json": PACKAGE}
    return await deploy(client, files, "trig", runtime={"concurrency": 4})


async def _trigger(client: httpx.AsyncClient, service: dict[str, Any], **spec: Any) -> str:
    name = spec.pop("name", f"t-{uuid.uuid4().hex[:6]}")
    kind = spec.pop("type", "Event")
    body = {
        "name": name,
        "projectId": service["projectId"],
        "type": kind,
        "spec": {"operation": {"type": "function", "serviceId": service["id"]}, **spec},
    }
    if "functionName" in spec:
        body["spec"]["operation"]["functionName"] = spec.pop("functionName")
        body["spec"].pop("functionName", None)
    response = await client.post("/triggers", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _event(
    client: httpx.AsyncClient,
    service: dict[str, Any],
    resource: str,
    action: str,
    entity: dict[str, Any],
    origin: str | None = None,
) -> None:
    body: dict[str, Any] = {
        "resource": resource,
        "action": action,
        "projectId": service["projectId"],
        "entity": entity,
    }
    if origin is not None:
        body["originExecutionId"] = origin
    response = await client.post("/events", json=body)
    assert response.status_code == 202, response.text


async def _executions(client: httpx.AsyncClient, trigger_id: str) -> list[dict[str, Any]]:
    response = await client.get("/executions", params={"triggerId": trigger_id, "limit": 1000})
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


async def _settle(
    client: httpx.AsyncClient,
    trigger_id: str,
    count: int,
    quiet: float = 1.5,
    timeout: float = 30.0,
) -> list[dict[str, Any]]:
    """The trigger's executions once there are `count` and nothing new came for `quiet` s."""
    deadline = time.monotonic() + timeout
    while True:
        found = await _executions(client, trigger_id)
        if len(found) >= count:
            await asyncio.sleep(quiet)
            return await _executions(client, trigger_id)
        assert time.monotonic() < deadline, (
            f"{len(found)} executions of {trigger_id}, wanted {count}"
        )
        await asyncio.sleep(0.1)


async def test_item_created_once_fires_once_per_item_with_the_item_as_input(
    client: httpx.AsyncClient, service: dict[str, Any]
) -> None:
    trigger = await _trigger(
        client,
        service,
        resource="Item",
        actions=["Created"],
        executionMode="Once",
        functionName="on_item",
        filter={"$and": [{"metadata.system.mimetype": "image/*"}, {"dir": "/dogs"}]},
    )
    cat = {
        "id": "i-cat",
        "name": "cat.jpg",
        "dir": "/dogs",
        "metadata": {"system": {"mimetype": "image/jpeg"}},
    }
    await _event(client, service, "Item", "Created", cat)
    await _event(client, service, "Item", "Created", cat)  # the same item again: Once
    await _event(
        client,
        service,
        "Item",
        "Created",
        {**cat, "id": "i-vid", "metadata": {"system": {"mimetype": "video/mp4"}}},
    )
    await _event(client, service, "Item", "Created", {**cat, "id": "i-hidden", "hidden": True})
    await _event(client, service, "Item", "Updated", {**cat, "id": "i-upd"})  # not an action of it
    found = await _settle(client, trigger, 1)
    assert len(found) == 1, found
    (execution,) = found
    assert [r["id"] for r in execution["resources"]] == ["i-cat"]
    response = await client.get(f"/executions/{execution['id']}/wait", params={"timeout": 30})
    done = response.json()
    assert done["latestStatus"]["status"] == "success", done
    assert done["output"] == {
        "itemId": "i-cat",
        "name": "cat.jpg",
        "trigger": trigger,
        "event": "Created",
    }


async def test_always_fires_on_every_update_and_once_only_on_the_first(
    client: httpx.AsyncClient, service: dict[str, Any]
) -> None:
    always = await _trigger(
        client,
        service,
        resource="Annotation",
        actions=["Updated"],
        executionMode="Always",
        functionName="on_annotation",
        filter={"label": "dog"},
    )
    once = await _trigger(
        client,
        service,
        resource="Annotation",
        actions=["Updated"],
        executionMode="Once",
        functionName="on_annotation",
        filter={"label": "dog"},
    )
    for _ in range(3):
        await _event(client, service, "Annotation", "Updated", {"id": "a-1", "label": "dog"})
    await _event(client, service, "Annotation", "Updated", {"id": "a-2", "label": "cat"})
    assert len(await _settle(client, always, 3)) == 3
    assert len(await _settle(client, once, 1)) == 1


async def test_deleted_dataset_events_reach_a_dataset_function_over_the_bus(
    platform: LocalPlatform, client: httpx.AsyncClient, service: dict[str, Any]
) -> None:
    trigger = await _trigger(
        client,
        service,
        resource="Dataset",
        actions=["Deleted"],
        executionMode="Always",
        functionName="on_dataset",
    )
    bus = Bus(platform.env["SPOOL_AMQP_URL"], Topology(platform.namespace), name="test-events")
    await bus.connect()
    try:
        event = EntityEvent(
            id=uuid.uuid4().hex,
            resource=TriggerResource.DATASET,
            action=TriggerAction.DELETED,
            project_id=service["projectId"],
            entity_id="d-1",
            entity={"id": "d-1", "name": "birds"},
            at=datetime.now(UTC),
        )
        await bus.publish(bus.topology.events, "entity.Dataset.Deleted", event)
        await bus.publish(bus.topology.events, "entity.Dataset.Deleted", event)  # redelivered
    finally:
        await bus.close()
    (execution,) = await _settle(client, trigger, 1)
    done = (await client.get(f"/executions/{execution['id']}/wait", params={"timeout": 30})).json()
    assert done["output"] == {"datasetId": "d-1"}


async def test_a_trigger_that_feeds_itself_is_stopped_with_a_notification(
    client: httpx.AsyncClient, service: dict[str, Any]
) -> None:
    trigger = await _trigger(
        client,
        service,
        resource="Item",
        actions=["Updated"],
        executionMode="Always",
        functionName="on_item",
    )
    item = {"id": "i-loop", "name": "loop.jpg", "dir": "/"}
    await _event(client, service, "Item", "Updated", item)
    for depth in range(1, LOOP_DEPTH + 2):
        found = await _settle(client, trigger, min(depth, LOOP_DEPTH), quiet=0.5)
        # What the function would do: update the item it was given, caused by this execution.
        newest = max(found, key=lambda e: e["createdAt"])
        await _event(client, service, "Item", "Updated", item, origin=newest["id"])
    found = await _settle(client, trigger, LOOP_DEPTH, quiet=2.0)
    assert len(found) == LOOP_DEPTH, found
    notes = (await client.get(f"/services/{service['id']}/notifications")).json()
    loops = [n for n in notes if n["type"] == "TriggerLoop"]
    assert loops
    assert trigger in loops[0]["message"]


async def test_dry_run_says_which_trigger_fires_and_why_not(
    client: httpx.AsyncClient, service: dict[str, Any]
) -> None:
    wanted = await _trigger(
        client,
        service,
        resource="Item",
        actions=["Created"],
        functionName="on_item",
        filter={"dir": "/cats"},
    )
    body = {
        "projectId": service["projectId"],
        "event": {"resource": "Item", "action": "Created", "entity": {"id": "x", "dir": "/dogs"}},
    }
    response = await client.post("/triggers/dry-run", json=body)
    assert response.status_code == 200, response.text
    verdicts = {v["triggerId"]: v for v in response.json()}
    assert verdicts[wanted]["fires"] is False
    assert "dir" in verdicts[wanted]["reason"]


@pytest.mark.reliability
async def test_cron_fires_once_per_tick_with_two_engines(
    client: httpx.AsyncClient, service: dict[str, Any]
) -> None:
    trigger = await _trigger(
        client,
        service,
        type="Cron",
        cron="* * * * *",
        input={"config": {"k": 1}},
        functionName="tick",
    )
    # The first tick comes within a minute; wait for it, then make sure no second execution
    # appears for that tick (both engines fired it; the key made it one).
    ticks = await _settle(client, trigger, 1, quiet=3.0, timeout=75.0)
    assert len(ticks) == 1, ticks
    done = (await client.get(f"/executions/{ticks[0]['id']}/wait", params={"timeout": 30})).json()
    assert done["output"] == {"k": 1}
    # One tick, one execution: a second one for the same tick is the duplicate T23 is about.
    run = tally("T23 cron tick with two trigger engines", [done])
    run = record(dataclasses.replace(run, duplicated=len(ticks) - 1))
    assert run.clean, run.line()
