"""Project secrets through a whole gateway on the real servers: the store holds ciphertext
only, the API is write-only for values (no answer or error repeats one), services may only
name secrets their project has, a secret in use is not deleted, and only the service's own
agent gets the values, in its bootstrap."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import SecretStr
from support.gateway_live import Live, live_gateway

from spool_common.bus.amqp import Bus
from spool_gateway.core import hash_token
from spool_gateway.secrets_crypto import keyring_from, unseal
from spool_gateway.settings import GatewaySettings

pytestmark = pytest.mark.integration

KEY = base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
async def live(pool: asyncpg.Pool, bus: Bus, broker_cleanup: list[str]) -> AsyncIterator[Live]:
    settings = GatewaySettings(secrets_key=SecretStr(KEY))
    async with live_gateway(pool, bus, settings) as harness:
        yield harness
    broker_cleanup.extend(harness.queues)


def canary() -> str:
    return f"canary-{uuid.uuid4().hex}"


async def create(live: Live, project_id: str, name: str, value: str) -> httpx.Response:
    return await live.api.post(
        f"/projects/{project_id}/secrets", json={"name": name, "value": value}
    )


async def test_secrets_are_stored_sealed_and_the_api_never_shows_a_value(live: Live) -> None:
    project_id, _ = await live.package()
    value = canary()
    created = await create(live, project_id, "API_TOKEN", value)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "API_TOKEN"
    assert body["projectId"] == project_id
    assert set(body) == {
        "projectId",
        "name",
        "keyId",
        "creator",
        "updatedBy",
        "createdAt",
        "updatedAt",
    }
    listed = await live.api.get(f"/projects/{project_id}/secrets")
    one = await live.api.get(f"/projects/{project_id}/secrets/API_TOKEN")
    assert [s["name"] for s in listed.json()] == ["API_TOKEN"]
    assert one.json() == body
    for response in (created, listed, one):
        assert value not in response.text
    row = await live.gw.ledger.pool.fetchrow(
        "SELECT ciphertext, key_id, row_to_json(s)::text AS text FROM project_secrets s "
        "WHERE project_id = $1",
        project_id,
    )
    assert value.encode() not in row["ciphertext"]
    assert value not in row["text"]
    keyring = keyring_from(KEY, None)
    assert keyring is not None
    assert row["key_id"] == keyring.current
    assert unseal(keyring, project_id, "API_TOKEN", row["ciphertext"]) == value


async def test_replace_changes_the_value_and_duplicates_and_unknowns_are_refused(
    live: Live,
) -> None:
    project_id, _ = await live.package()
    old, new = canary(), canary()
    assert (await create(live, project_id, "A", old)).status_code == 201
    again = await create(live, project_id, "A", new)
    assert again.status_code == 409
    assert again.json()["details"][0]["field"] == "name"
    replaced = await live.api.put(f"/projects/{project_id}/secrets/A", json={"value": new})
    assert replaced.status_code == 200, replaced.text
    ciphertext = await live.gw.ledger.pool.fetchval(
        "SELECT ciphertext FROM project_secrets WHERE project_id = $1", project_id
    )
    keyring = keyring_from(KEY, None)
    assert keyring is not None
    assert unseal(keyring, project_id, "A", ciphertext) == new
    missing = await live.api.put(f"/projects/{project_id}/secrets/B", json={"value": new})
    assert missing.status_code == 404
    gone = await live.api.get("/projects/nope/secrets")
    assert gone.status_code == 404
    assert gone.json()["details"][0]["field"] == "projectId"
    for response in (again, replaced, missing):
        assert old not in response.text
        assert new not in response.text


BAD: list[tuple[str, Callable[[str], Any], str]] = [
    ("lower", lambda c: c, "name"),
    ("SPOOL_AGENT_TOKEN", lambda c: c, "name"),
    ("OK", lambda c: c + "V" * 64 * 1024, "value"),
    ("OK", lambda c: c + "\0", "body"),  # refused at the edge: no NUL reaches PostgreSQL
    ("OK", lambda c: [c], "value"),
    ("OK", lambda c: {"nested": c}, "value"),
]


@pytest.mark.parametrize(("name", "value_of", "field"), BAD)
async def test_a_bad_secret_is_refused_naming_the_field_never_the_value(
    live: Live, name: str, value_of: Callable[[str], Any], field: str
) -> None:
    project_id, _ = await live.package()
    value = canary()  # rides along in every bad value
    body = {"name": name, "value": value_of(value)}
    response = await live.api.post(f"/projects/{project_id}/secrets", json=body)
    assert response.status_code == 400, response.text
    assert [d["field"] for d in response.json()["details"]] == [field]
    assert value not in response.text
    assert (await live.api.get(f"/projects/{project_id}/secrets")).json() == []


async def test_services_name_only_existing_secrets_and_a_used_secret_is_not_deleted(
    live: Live,
) -> None:
    project_id, package_id = await live.package()
    assert (await create(live, project_id, "A", canary())).status_code == 201
    body = {"name": "svc", "projectId": project_id, "packageId": package_id}
    refused = await live.api.post("/services", json={**body, "secrets": ["A", "B"]})
    assert refused.status_code == 400, refused.text
    assert [d["field"] for d in refused.json()["details"]] == ["secrets[1]"]
    deployed = await live.api.post("/services", json={**body, "secrets": ["A"]})
    assert deployed.status_code == 201, deployed.text
    service_id = deployed.json()["id"]
    live.queues.append(live.gw.bus.topology.service_queue(service_id).name)
    update = await live.api.patch(f"/services/{service_id}", json={"secrets": ["A", "C"]})
    assert update.status_code == 400
    assert update.json()["details"][0]["field"] == "secrets[1]"
    in_use = await live.api.delete(f"/projects/{project_id}/secrets/A")
    assert in_use.status_code == 409
    assert "svc" in in_use.json()["message"]
    detached = await live.api.patch(f"/services/{service_id}", json={"secrets": []})
    assert detached.status_code == 200, detached.text
    assert (await live.api.delete(f"/projects/{project_id}/secrets/A")).status_code == 204
    assert (await live.api.delete(f"/projects/{project_id}/secrets/A")).status_code == 404


async def test_only_the_services_own_agent_gets_the_values(live: Live) -> None:
    project_id, package_id = await live.package()
    value = canary()
    assert (await create(live, project_id, "A", value)).status_code == 201
    service_id = await live.deploy(project_id, package_id, "with-secret")
    patched = await live.api.patch(f"/services/{service_id}", json={"secrets": ["A"]})
    assert patched.status_code == 200, patched.text
    other_id = await live.deploy(project_id, package_id, "without")
    for sid in (service_id, other_id):
        await live.gw.catalog.ensure_token(hash_token(f"agent-{sid}"), "agent", "a", sid)

    async def bootstrap(token: str | None) -> httpx.Response:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return await live.api.get("/agent/bootstrap", headers=headers)

    mine = await bootstrap(f"agent-{service_id}")
    assert mine.status_code == 200, mine.text
    assert mine.json()["secrets"] == {"A": value}
    theirs = await bootstrap(f"agent-{other_id}")
    assert theirs.json()["secrets"] == {}
    assert value not in theirs.text
    admin = await bootstrap(None)  # the harness's admin token
    assert admin.status_code == 403
    assert value not in admin.text


async def test_without_a_key_secrets_are_refused_with_a_clear_error(
    pool: asyncpg.Pool, bus: Bus, broker_cleanup: list[str]
) -> None:
    async with live_gateway(pool, bus, GatewaySettings(secrets_key=None)) as live:
        project_id, _ = await live.package()
        response = await create(live, project_id, "A", canary())
    assert response.status_code == 503
    assert response.json()["error"] == "secrets_unavailable"
    assert "SPOOL_SECRETS_KEY" in response.json()["message"]
