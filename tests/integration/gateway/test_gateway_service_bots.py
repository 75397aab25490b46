"""A service runs as a project bot: deploying names a bot that is a Developer of the project
(400 `botId` otherwise); while it stays one, claims are granted; demoted or deleted, the next
claim fails the execution with an AuthorizationError and notifies the service once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from support.gateway_live import Live, live_gateway

from spool_common.bus.amqp import Bus
from spool_common.messages import ClaimRequest, ClaimVerdict
from spool_gateway import bot_ops
from spool_gateway.bot_ops import BotGuard


@pytest.fixture
async def live(
    pool: asyncpg.Pool, bus: Bus, broker_cleanup: list[str], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Live]:
    monkeypatch.setattr(bot_ops, "CHECK_SECONDS", 0.0)  # every claim looks again
    async with live_gateway(pool, bus) as harness:
        yield harness


async def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def _execution(live: Live, service_id: str) -> str:
    created = await _ok(await live.api.post(f"/executions/{service_id}", json={}), 201)
    return str(created["id"])


async def test_a_service_runs_only_while_its_bot_is_a_developer(live: Live) -> None:
    project_id, package_id = await live.package()
    api = live.api
    bot = await _ok(await api.post(f"/projects/{project_id}/bots", json={"name": "svc"}), 201)
    viewer = await _ok(
        await api.post(f"/projects/{project_id}/bots", json={"name": "ro", "role": "viewer"}),
        201,
    )
    body = {"name": "svc", "projectId": project_id, "packageId": package_id}
    for bad, why in ((viewer["id"], "viewer"), ("nobody", "no bot")):
        refused = await api.post("/services", json={**body, "botId": bad})
        assert refused.status_code == 400, refused.text
        detail = refused.json()["details"][0]
        assert detail["field"] == "botId"
        assert why in detail["reason"]

    service = await _ok(await api.post("/services", json={**body, "botId": bot["id"]}), 201)
    live.queues.append(live.gw.bus.topology.service_queue(service["id"]).name)
    assert service["botId"] == bot["id"]
    guard = BotGuard(live.gw)

    first = await _execution(live, service["id"])
    claim = ClaimRequest(execution_id=first, service_id=service["id"], replica_id="r")
    assert (await guard.claim(claim)).replies[0].verdict is ClaimVerdict.GRANTED

    await _ok(await api.put(f"/projects/{project_id}/members/{bot['id']}", json={"role": "viewer"}))
    second = await _execution(live, service["id"])
    claim = ClaimRequest(execution_id=second, service_id=service["id"], replica_id="r")
    assert (await guard.claim(claim)).replies[0].verdict is ClaimVerdict.UNAUTHORIZED
    failed = await _ok(await api.get(f"/executions/{second}"))
    assert failed["latestStatus"]["status"] == "failed"
    assert failed["latestStatus"]["error"]["type"] == "AuthorizationError"
    assert bot["id"] in failed["latestStatus"]["message"]

    # Deleted bots are refused too; the notification is recorded once per revision and bot.
    await _ok(await api.delete(f"/projects/{project_id}/bots/{bot['id']}"), 204)
    third = await _execution(live, service["id"])
    claim = ClaimRequest(execution_id=third, service_id=service["id"], replica_id="r")
    assert (await guard.claim(claim)).replies[0].verdict is ClaimVerdict.UNAUTHORIZED
    notes = await _ok(await api.get(f"/services/{service['id']}/notifications"))
    items = notes["items"] if isinstance(notes, dict) else notes
    kinds = [n["type"] for n in items]
    assert kinds.count("AuthorizationError") == 1


async def test_a_service_deployed_without_a_bot_runs_as_the_projects_first_bot(
    live: Live,
) -> None:
    """No `botId`: the project's first bot, created as a Developer if the project has none,
    and the same bot for the project's next service."""
    project_id, package_id = await live.package()
    assert await _ok(await live.api.get(f"/projects/{project_id}/bots")) == []
    services = []
    for name in ("first", "second"):
        body = {"name": name, "projectId": project_id, "packageId": package_id}
        service = await _ok(await live.api.post("/services", json=body), 201)
        live.queues.append(live.gw.bus.topology.service_queue(service["id"]).name)
        services.append(service)
    bots = await _ok(await live.api.get(f"/projects/{project_id}/bots"))
    assert [b["name"] for b in bots] == ["default-bot"]
    assert {s["botId"] for s in services} == {bots[0]["id"]}
    members = await _ok(await live.api.get(f"/projects/{project_id}/members"))
    assert {"memberId": bots[0]["id"], "role": "developer"}.items() <= next(
        m for m in members if m["memberId"] == bots[0]["id"]
    ).items()
    execution = await _execution(live, services[0]["id"])
    claim = ClaimRequest(execution_id=execution, service_id=services[0]["id"], replica_id="r")
    assert (await BotGuard(live.gw).claim(claim)).replies[0].verdict is ClaimVerdict.GRANTED


async def test_no_one_gains_a_role_through_a_services_bot(live: Live) -> None:
    """A Developer's service never runs as a bot stronger than the Developer: an owner bot is
    refused by name and skipped as the default."""
    project_id, package_id = await live.package()
    api = live.api
    owner_bot = await _ok(
        await api.post(f"/projects/{project_id}/bots", json={"name": "boss", "role": "owner"}),
        201,
    )
    user = await _ok(await api.post("/users", json={"name": "deb"}), 201)
    await _ok(
        await api.post(
            f"/projects/{project_id}/members",
            json={"memberId": user["user"]["id"], "role": "developer"},
        ),
        201,
    )
    headers = {"Authorization": f"Bearer {user['token']['token']}"}
    body = {"name": "devs", "projectId": project_id, "packageId": package_id}
    refused = await api.post("/services", json={**body, "botId": owner_bot["id"]}, headers=headers)
    assert refused.status_code == 400, refused.text
    assert refused.json()["details"][0]["field"] == "botId"
    assert "you: developer" in refused.json()["details"][0]["reason"]

    service = await _ok(await api.post("/services", json=body, headers=headers), 201)
    live.queues.append(live.gw.bus.topology.service_queue(service["id"]).name)
    bots = await _ok(await api.get(f"/projects/{project_id}/bots"))
    default = next(b for b in bots if b["name"] == "default-bot")
    assert service["botId"] == default["id"] != owner_bot["id"]
    # The admin may run a service as the owner bot.
    admins = await _ok(
        await api.post("/services", json={**body, "name": "admins", "botId": owner_bot["id"]}),
        201,
    )
    live.queues.append(live.gw.bus.topology.service_queue(admins["id"]).name)
    # ...and a Developer then may not change it (the new revision would run as that bot).
    changed = await api.patch(
        f"/services/{admins['id']}", json={"runtime": {"concurrency": 2}}, headers=headers
    )
    assert changed.status_code == 400, changed.text
    assert changed.json()["details"][0]["field"] == "botId"
