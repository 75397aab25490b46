"""Service notifications, crash-loop deactivation, `?force=true` and the revision that ran an
execution, through a whole gateway on the real servers: its consumers, its outbox relay and its
HTTP API (in process, without uvicorn: support/gateway_live.py). `service.*` events are read off
the scheduler's inbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from support.gateway_live import Live, live_gateway, until

from spool_common.bus.amqp import Bus
from spool_common.bus.dispositions import Outcome
from spool_common.messages import (
    ClaimReply,
    ClaimRequest,
    ClaimVerdict,
    NotificationType,
    ServiceChange,
    ServiceNotification,
)
from spool_gateway.core import new_id
from spool_gateway.notifications import record_notification

pytestmark = pytest.mark.integration

KEYS = {
    "id",
    "projectId",
    "serviceId",
    "type",
    "title",
    "message",
    "replicaId",
    "logTail",
    "deactivated",
    "createdAt",
}


@pytest.fixture
async def live(pool: asyncpg.Pool, bus: Bus, broker_cleanup: list[str]) -> AsyncIterator[Live]:
    async with live_gateway(pool, bus) as harness:
        yield harness
    broker_cleanup.extend(harness.queues)


def notification(
    service_id: str,
    notification_id: str | None = None,
    *,
    at: datetime | None = None,
    kind: NotificationType = NotificationType.INIT_ERROR,
    deactivate: bool = False,
) -> ServiceNotification:
    return ServiceNotification(
        notification_id=notification_id or new_id(),
        service_id=service_id,
        notification=kind,
        title="Service Init Function Error",
        message="ValueError: no model file",
        replica_id="svc-r1",
        log_tail=["Traceback (most recent call last):", "ValueError: no model file"],
        deactivate=deactivate,
        at=at or datetime.now(UTC),
    )


async def publish(bus: Bus, message: ServiceNotification) -> None:
    await bus.publish(bus.topology.events, "notification.service", message)


async def stored(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM notifications"))


# --- notifications ---------------------------------------------------------------------------


async def test_notifications_are_recorded_once_and_listed_newest_first_per_project(
    live: Live, bus: Bus, pool: asyncpg.Pool
) -> None:
    project_id, package_id = await live.package()
    service_id = await live.deploy(project_id, package_id)
    other_project, other_package = await live.package()
    other_service = await live.deploy(other_project, other_package)
    t0 = datetime.now(UTC)
    old = notification(service_id, "n-old", at=t0)
    new = notification(
        service_id, "n-new", at=t0 + timedelta(minutes=1), kind=NotificationType.OOM_KILLED
    )
    for message in (old, new, old, notification(other_service, "n-other", at=t0)):
        await publish(bus, message)

    async def all_three() -> bool:
        return await stored(pool) >= 3

    await until(all_three)

    # Delivered again, or about a service that does not exist: nothing more is recorded.
    assert await record_notification(live.gw, old) is Outcome.DUPLICATE
    assert await record_notification(live.gw, notification("no-such-service")) is Outcome.HANDLED
    assert await stored(pool) == 3

    listed = await live.api.get("/notifications", params={"projectId": project_id})
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert [n["id"] for n in body] == ["n-new", "n-old"]
    assert set(body[0]) == KEYS
    assert body[1] == {
        "id": "n-old",
        "projectId": project_id,
        "serviceId": service_id,
        "type": "InitError",
        "title": "Service Init Function Error",
        "message": "ValueError: no model file",
        "replicaId": "svc-r1",
        "logTail": ["Traceback (most recent call last):", "ValueError: no model file"],
        "deactivated": False,
        "createdAt": body[1]["createdAt"],
    }
    assert datetime.fromisoformat(body[1]["createdAt"]) == t0

    async def ids(path: str, **params: str | int) -> list[str]:
        response = await live.api.get(path, params=params)
        assert response.status_code == 200, response.text
        return [n["id"] for n in response.json()]

    assert await ids("/notifications", projectId=project_id, type="InitError") == ["n-old"]
    assert await ids("/notifications", projectId=project_id, limit=1, offset=1) == ["n-old"]
    assert await ids("/notifications", projectId=project_id, serviceId=other_service) == []
    assert await ids("/notifications", projectId=other_project) == ["n-other"]
    assert await ids(f"/services/{service_id}/notifications") == ["n-new", "n-old"]


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        pytest.param({}, 400, "projectId", id="projectId-missing"),
        pytest.param({"projectId": "nope"}, 404, "projectId", id="projectId-unknown"),
        pytest.param({"projectId": "P", "type": "Bogus"}, 400, "type", id="type-unknown"),
        pytest.param({"projectId": "P", "limit": 0}, 400, "limit", id="limit-zero"),
        pytest.param({"projectId": "P", "offset": -1}, 400, "offset", id="offset-negative"),
    ],
)
async def test_a_bad_notification_query_names_the_field(
    live: Live, params: dict[str, Any], status: int, field: str
) -> None:
    response = await live.api.get("/notifications", params=params)
    assert response.status_code == status, response.text
    assert [d["field"] for d in response.json()["details"]] == [field]


# --- crash loops -----------------------------------------------------------------------------


async def test_a_crash_loop_deactivates_the_service_until_one_resume(
    live: Live, bus: Bus, pool: asyncpg.Pool
) -> None:
    project_id, package_id = await live.package()
    service_id = await live.deploy(project_id, package_id)
    crash = notification(service_id, "n-loop", deactivate=True)
    await publish(bus, crash)
    await publish(bus, crash)  # delivered twice: deactivates once

    async def inactive() -> bool:
        return (await live.service(service_id))["active"] is False

    await until(inactive)
    service = await live.service(service_id)
    assert service["crashloop"] == {
        "cause": "InitError",
        "title": "Service Init Function Error",
        "message": "ValueError: no model file",
        "replicaId": "svc-r1",
        "notificationId": "n-loop",
        "at": crash.at.isoformat(),
    }
    created, stopped = await live.changes_of(service_id, 2)
    assert (created.change, created.revision, created.service.active) == ("created", 1, True)
    assert (stopped.change, stopped.revision, stopped.service.active) == ("updated", 2, False)
    assert stopped.service.crashloop == service["crashloop"]
    assert stopped.force is False
    listed = (await live.api.get(f"/services/{service_id}/notifications")).json()
    assert [(n["id"], n["deactivated"]) for n in listed] == [("n-loop", True)]

    resumed = await live.api.post(f"/services/{service_id}/resume")
    assert resumed.status_code == 200, resumed.text
    assert (resumed.json()["active"], resumed.json()["crashloop"]) == (True, None)
    *_, started = await live.changes_of(service_id, 3)
    assert (started.revision, started.service.active, started.service.crashloop) == (3, True, None)

    # The same notification once more (a late redelivery) does not deactivate it again.
    assert await record_notification(live.gw, crash) is Outcome.DUPLICATE
    revisions = (await live.api.get(f"/services/{service_id}/revisions")).json()
    assert [(r["revision"], r["service"]["active"]) for r in revisions] == [
        (1, True),
        (2, False),
        (3, True),
    ]
    assert revisions[1]["creator"] == "system:scheduler"


async def test_a_crash_loop_older_than_the_last_change_or_of_a_paused_service_only_notifies(
    live: Live,
) -> None:
    project_id, package_id = await live.package()
    service_id = await live.deploy(project_id, package_id)
    before_deploy = datetime.now(UTC) - timedelta(minutes=10)
    stale = notification(service_id, "n-stale", at=before_deploy, deactivate=True)
    assert await record_notification(live.gw, stale) is Outcome.HANDLED
    assert (await live.service(service_id))["active"] is True

    paused = await live.api.post(f"/services/{service_id}/stop")
    assert paused.status_code == 200, paused.text
    late = notification(service_id, "n-paused", deactivate=True)
    assert await record_notification(live.gw, late) is Outcome.HANDLED
    service = await live.service(service_id)
    assert (service["active"], service["crashloop"]) == (False, None)
    listed = (await live.api.get(f"/services/{service_id}/notifications")).json()
    assert [(n["id"], n["deactivated"]) for n in listed] == [
        ("n-paused", False),
        ("n-stale", False),
    ]
    assert [c.revision for c in await live.changes_of(service_id, 2)] == [1, 2]


async def test_activate_is_resume(live: Live) -> None:
    project_id, package_id = await live.package()
    service_id = await live.deploy(project_id, package_id)
    crash = notification(service_id, deactivate=True)
    assert await record_notification(live.gw, crash) is Outcome.HANDLED
    assert (await live.service(service_id))["crashloop"] is not None
    response = await live.api.post(f"/services/{service_id}/activate")
    assert response.status_code == 200, response.text
    assert (response.json()["active"], response.json()["crashloop"]) == (True, None)


# --- force -----------------------------------------------------------------------------------


async def test_force_is_carried_in_the_service_change(live: Live) -> None:
    project_id, package_id = await live.package()
    service_id = await live.deploy(project_id, package_id)
    steps: list[tuple[str, str, dict[str, Any] | None]] = [
        ("PATCH", f"/services/{service_id}?force=true", {"runtime": {"concurrency": 3}}),
        ("POST", f"/services/{service_id}/stop?force=1", None),
        ("POST", f"/services/{service_id}/resume", None),
        ("POST", f"/services/{service_id}/rollback?force=true", {"revision": 1}),
        ("POST", f"/services/{service_id}/stop?force=false", None),
        ("DELETE", f"/services/{service_id}?force=true", None),
    ]
    for method, path, body in steps:
        response = await live.api.request(method, path, json=body)
        assert response.status_code in (200, 204), f"{method} {path}: {response.text}"
    changes = await live.changes_of(service_id, 7)
    assert [(c.revision, c.change, c.force) for c in changes] == [
        (1, ServiceChange.CREATED, False),
        (2, ServiceChange.UPDATED, True),
        (3, ServiceChange.UPDATED, True),
        (4, ServiceChange.UPDATED, False),
        (5, ServiceChange.UPDATED, True),
        (6, ServiceChange.UPDATED, False),
        (7, ServiceChange.DELETED, True),
    ]


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        pytest.param("PATCH", "", {"runtime": {"concurrency": 3}}, id="update"),
        pytest.param("POST", "/stop", None, id="stop"),
        pytest.param("POST", "/resume", None, id="resume"),
        pytest.param("POST", "/rollback", {"revision": 1}, id="rollback"),
        pytest.param("DELETE", "", None, id="delete"),
    ],
)
async def test_a_bad_force_is_refused_naming_the_field_and_changes_nothing(
    live: Live, method: str, suffix: str, body: dict[str, Any] | None
) -> None:
    project_id, package_id = await live.package()
    service_id = await live.deploy(project_id, package_id)
    response = await live.api.request(
        method, f"/services/{service_id}{suffix}?force=maybe", json=body
    )
    assert response.status_code == 400, response.text
    assert [d["field"] for d in response.json()["details"]] == ["force"]
    revisions = (await live.api.get(f"/services/{service_id}/revisions")).json()
    assert [r["revision"] for r in revisions] == [1]


# --- the revision that ran an execution ---------------------------------------------------------


async def test_a_granted_claim_records_the_revision_the_replica_runs(
    live: Live, bus: Bus, pool: asyncpg.Pool
) -> None:
    project_id, package_id = await live.package()
    service_id = await live.deploy(project_id, package_id)
    executions = []
    for _ in range(2):
        created = await live.api.post(f"/executions/{service_id}", json={"functionName": "run"})
        assert created.status_code == 201, created.text
        executions.append(str(created.json()["id"]))
    for execution_id, revision in zip(executions, (1, None), strict=True):
        request = ClaimRequest(
            execution_id=execution_id, service_id=service_id, replica_id="r1", revision=revision
        )
        reply = await bus.request(bus.topology.agent, "claim", request, timeout=10)
        assert isinstance(reply, ClaimReply)
        assert reply.verdict is ClaimVerdict.GRANTED
    rows = {
        r["id"]: r
        for r in await pool.fetch(
            "SELECT id, service_revision, status_log FROM executions WHERE id = ANY($1)",
            executions,
        )
    }
    with_revision, without = rows[executions[0]], rows[executions[1]]
    assert with_revision["service_revision"] == 1
    assert with_revision["status_log"][-1]["status"] == "in-progress"
    assert with_revision["status_log"][-1]["serviceRevision"] == 1
    assert without["service_revision"] is None
    assert "serviceRevision" not in without["status_log"][-1]
