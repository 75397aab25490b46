"""Users, tokens, project members and bots through a whole gateway on the real servers: who
sees which project, who may change members and bots, tokens shown once and stored hashed,
revocation and expiry, the last owner, and server-owned fields a body cannot set."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from support.gateway_live import Live, live_gateway

from spool_common.bus.amqp import Bus
from spool_gateway.core import hash_token


@dataclass
class World:
    live: Live

    def as_(self, token: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=self.live.api._transport,
            base_url=self.live.api.base_url,
            headers={"Authorization": f"Bearer {token}"},
        )

    async def user(self, name: str) -> tuple[str, str]:
        """A new user: (id, token)."""
        created = await self.live.api.post("/users", json={"name": name})
        assert created.status_code == 201, created.text
        body = created.json()
        return body["user"]["id"], body["token"]["token"]


@pytest.fixture
async def world(pool: asyncpg.Pool, bus: Bus, broker_cleanup: list[str]) -> AsyncIterator[World]:
    async with live_gateway(pool, bus) as live:
        yield World(live)


async def _json(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def test_projects_are_seen_by_members_only_and_roles_gate_changes(world: World) -> None:
    alice_id, alice = await world.user("alice")
    bob_id, bob = await world.user("bob")
    carol_id, carol = await world.user("carol")
    async with world.as_(alice) as a, world.as_(bob) as b, world.as_(carol) as c:
        # Server-owned fields in the body are ignored: the caller is the creator.
        project = await _json(
            await a.post("/projects", json={"name": "vision", "creator": "mallory", "id": "x1"}),
            201,
        )
        pid = project["id"]
        assert project["creator"] == alice_id
        assert pid != "x1"
        assert [p["id"] for p in await _json(await a.get("/projects"))] == [pid]
        assert await _json(await b.get("/projects")) == []
        # Not a member: the project does not exist, as far as bob can tell.
        missing = await b.get(f"/projects/{pid}")
        assert missing.status_code == 404
        assert missing.json()["details"][0]["field"] == "projectId"
        assert (await b.get(f"/projects/{pid}/members")).status_code == 404

        await _json(
            await a.post(
                f"/projects/{pid}/members", json={"memberId": bob_id, "role": "developer"}
            ),
            201,
        )
        await _json(
            await a.post(f"/projects/{pid}/members", json={"memberId": carol_id, "role": "viewer"}),
            201,
        )
        assert (await _json(await c.get(f"/projects/{pid}")))["id"] == pid
        members = await _json(await c.get(f"/projects/{pid}/members"))
        assert {(m["memberId"], m["role"]) for m in members} == {
            (alice_id, "owner"),
            (bob_id, "developer"),
            (carol_id, "viewer"),
        }
        # Viewers and developers do not manage members; viewers do not create bots.
        denied = await c.post(
            f"/projects/{pid}/members", json={"memberId": carol_id, "role": "owner"}
        )
        assert denied.status_code == 403
        assert (await b.delete(f"/projects/{pid}/members/{carol_id}")).status_code == 403
        assert (await c.post(f"/projects/{pid}/bots", json={"name": "etl"})).status_code == 403
        # Users do not create users.
        assert (await a.post("/users", json={"name": "eve"})).status_code == 403

        # The last owner stays.
        last = await a.delete(f"/projects/{pid}/members/{alice_id}")
        assert last.status_code == 409
        assert last.json()["details"][0]["field"] == "memberId"
        demote = await a.put(f"/projects/{pid}/members/{alice_id}", json={"role": "viewer"})
        assert demote.status_code == 409
        await _json(await a.delete(f"/projects/{pid}/members/{carol_id}"), 204)
        assert (await c.get(f"/projects/{pid}")).status_code == 404


async def test_bots_act_in_their_project_and_stop_when_deleted(world: World) -> None:
    _, alice = await world.user("alice2")
    _, bob = await world.user("bob2")
    async with world.as_(alice) as a, world.as_(bob) as b:
        pid = (await _json(await a.post("/projects", json={"name": "etl"}), 201))["id"]
        other = (await _json(await b.post("/projects", json={"name": "other"}), 201))["id"]
        bot = await _json(await a.post(f"/projects/{pid}/bots", json={"name": "runner"}), 201)
        minted = await _json(await a.post(f"/projects/{pid}/bots/{bot['id']}/tokens", json={}), 201)
        assert minted["token"].startswith("spl_")
        async with world.as_(minted["token"]) as robot:
            assert [p["id"] for p in await _json(await robot.get("/projects"))] == [pid]
            assert (await robot.get(f"/projects/{other}")).status_code == 404
            # A bot of one project is not a bot of another.
            elsewhere = await b.get(f"/projects/{other}/bots/{bot['id']}/tokens")
            assert elsewhere.status_code == 404
            # The other project's owner may add it to act there.
            await _json(
                await b.post(
                    f"/projects/{other}/members", json={"memberId": bot["id"], "role": "viewer"}
                ),
                201,
            )
            assert (await robot.get(f"/projects/{other}")).status_code == 200
            await _json(await a.delete(f"/projects/{pid}/bots/{bot['id']}"), 204)
            # Deleted: its token stops working at once, and it left every project.
            assert (await robot.get("/projects")).status_code == 401
        members = await _json(await b.get(f"/projects/{other}/members"))
        assert bot["id"] not in {m["memberId"] for m in members}


async def test_no_one_gains_a_role_through_a_bot(world: World) -> None:
    """A Developer cannot hold the credentials of a bot that owns a project (or it would make
    them an owner), and an owning bot that is a project's last owner cannot be deleted."""
    owner_id, owner = await world.user("olga")
    dev_id, dev = await world.user("dmitri")
    async with world.as_(owner) as o, world.as_(dev) as d:
        pid = (await _json(await o.post("/projects", json={"name": "guarded"}), 201))["id"]
        await _json(
            await o.post(
                f"/projects/{pid}/members", json={"memberId": dev_id, "role": "developer"}
            ),
            201,
        )
        boss = await _json(
            await o.post(f"/projects/{pid}/bots", json={"name": "boss", "role": "owner"}), 201
        )
        worker = await _json(await d.post(f"/projects/{pid}/bots", json={"name": "worker"}), 201)
        tokens = f"/projects/{pid}/bots/{boss['id']}/tokens"
        assert (await d.post(tokens, json={})).status_code == 403
        assert (await d.get(tokens)).status_code == 403
        assert (await d.delete(f"/projects/{pid}/bots/{boss['id']}")).status_code == 403
        await _json(await d.post(f"/projects/{pid}/bots/{worker['id']}/tokens", json={}), 201)
        await _json(await o.post(tokens, json={}), 201)
        # A bot made owner of another project is managed by Owners only, here too.
        other = (await _json(await d.post("/projects", json={"name": "dmitri's"}), 201))["id"]
        await _json(
            await d.post(
                f"/projects/{other}/members", json={"memberId": worker["id"], "role": "owner"}
            ),
            201,
        )
        assert (
            await d.post(f"/projects/{pid}/bots/{worker['id']}/tokens", json={})
        ).status_code == 403
        # The owner leaves; the owning bot is now the project's last owner.
        await _json(await o.put(f"/projects/{pid}/members/{dev_id}", json={"role": "owner"}), 200)
        await _json(await d.delete(f"/projects/{pid}/members/{owner_id}"), 204)
        await _json(await d.put(f"/projects/{pid}/members/{dev_id}", json={"role": "viewer"}), 200)
        last = await world.live.api.delete(f"/projects/{pid}/bots/{boss['id']}")
        assert last.status_code == 409, last.text
        assert last.json()["details"][0]["field"] == "botId"


async def test_project_names_are_per_creator_and_reveal_nothing(world: World) -> None:
    _, ann = await world.user("ann")
    _, ben = await world.user("ben")
    async with world.as_(ann) as a, world.as_(ben) as b:
        mine = await _json(await a.post("/projects", json={"name": "shared-name"}), 201)
        theirs = await _json(await b.post("/projects", json={"name": "shared-name"}), 201)
        assert mine["id"] != theirs["id"]
        again = await a.post("/projects", json={"name": "shared-name"})
        assert again.status_code == 409
        assert again.json()["details"] == [{"field": "name", "reason": "already taken"}]
        assert [p["id"] for p in await _json(await b.get("/projects?name=shared-name"))] == [
            theirs["id"]
        ]


async def test_events_carry_the_callers_user_id(world: World) -> None:
    user_id, token = await world.user("eve")
    async with world.as_(token) as e:
        pid = (await _json(await e.post("/projects", json={"name": "events"}), 201))["id"]
        event = {"projectId": pid, "resource": "Item", "action": "Created", "entity": {"id": "i1"}}
        forged = await e.post("/events", json={**event, "userId": "someone-else"})
        assert forged.status_code == 400
        assert forged.json()["details"][0]["field"] == "userId"
        await _json(await e.post("/events", json=event), 202)
        await _json(await e.post("/events", json={**event, "userId": user_id}), 202)


async def test_tokens_are_shown_once_stored_hashed_revoked_at_once_and_expire(
    world: World, pool: asyncpg.Pool
) -> None:
    _, first = await world.user("dana")
    async with world.as_(first) as d:
        minted = await _json(
            await d.post("/users/me/tokens", json={"name": "laptop", "expiresIn": 3600}), 201
        )
        token, info = minted["token"], minted["info"]
        assert info["name"] == "laptop"
        assert info["expiresAt"] is not None
        listed = await _json(await d.get("/users/me/tokens"))
        assert {t["name"] for t in listed} == {"first", "laptop"}
        assert token not in str(listed)
        stored = await pool.fetch("SELECT token_hash::text AS h, name FROM tokens")
        assert all(token not in r["h"] for r in stored)
        row = await pool.fetchrow("SELECT token_hash FROM tokens WHERE id = $1", info["id"])
        assert row is not None
        assert bytes(row["token_hash"]) == hash_token(token)

        async with world.as_(token) as laptop:
            assert (await _json(await laptop.get("/users/me")))["name"] == "dana"
            await _json(await d.delete(f"/users/me/tokens/{info['id']}"), 204)
            refused = await laptop.get("/users/me")
            assert refused.status_code == 401
        assert (await d.delete(f"/users/me/tokens/{info['id']}x")).status_code == 404

        short = await _json(await d.post("/users/me/tokens", json={"expiresIn": 60}), 201)
        await pool.execute(
            "UPDATE tokens SET expires_at = now() - interval '1 second' WHERE id = $1",
            short["info"]["id"],
        )
        async with world.as_(short["token"]) as expired:
            assert (await expired.get("/users/me")).status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"expiresIn": 5}, "expiresIn"),
        ({"expiresIn": 10**9}, "expiresIn"),
        ({"name": "x" * 129}, "name"),
    ],
)
async def test_bad_token_requests_name_the_field(
    world: World, pool: asyncpg.Pool, body: dict[str, Any], field: str
) -> None:
    _, token = await world.user("erin")
    before = await pool.fetchval("SELECT count(*) FROM tokens")
    async with world.as_(token) as e:
        refused = await e.post("/users/me/tokens", json=body)
    assert refused.status_code == 400
    assert refused.json()["details"][0]["field"] == field
    assert await pool.fetchval("SELECT count(*) FROM tokens") == before
