"""T27, the authorization matrix: every operation of the gateway's OpenAPI document, called by
each of eight principals, answers what the role policy says.

The principals: anonymous (no Authorization header), expired (a user token whose expiry has
passed), revoked (a user token revoked through DELETE /users/me/tokens/{id}), Owner A,
Developer A, Viewer A (users with that role in project A), Developer B (a developer of project
B only) and bot A (a bot of project A with the role developer, calling with a bot token).

The policy, by the class of the operation (`Access`):

- anonymous, expired and revoked: 401, whatever the operation;
- ADMIN (GET and POST /users): 403 for every authenticated principal;
- SELF (/users/me and the caller's own tokens): every user 2xx; a bot gets what the code
  answers today (403: these need a user's token), recorded per operation in `bot`;
- USERS (POST /projects): users 201, a bot 403;
- ANY (GET /projects, GET /instance-types): 200 for everyone; GET /projects lists project A
  to A's members only, never to Developer B;
- READ (reads of project A's objects): Owner A, Developer A, Viewer A and bot A 2xx;
  Developer B 404, the answer for an object that does not exist;
- WRITE (changes in project A): Owner A, Developer A and bot A 2xx; Viewer A 403;
  Developer B 404;
- OWNER (project A's members): Owner A 2xx; Developer A, Viewer A and bot A 403;
  Developer B 404.

Each operation has a request builder that makes a valid request, so that the only possible
refusal is authorization. Destructive operations (deletes, terminate, rerun, token revokes...)
get an object of their own per call, made with the admin token just before it, so that one
principal's success does not change what the next one sees. Success codes are exact (201 vs
200 vs 204 vs 202). The table is keyed by (METHOD, path template) and checked against the
served OpenAPI document both ways: an operation the table does not classify, or one it names
that does not exist, fails the test. Every cell runs; the failure lists every mismatch (cell,
expected, got, an excerpt of the answer), and the run prints how many operations and cells
(operations times 8 principals) were checked.
"""

from __future__ import annotations

import base64
import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from types import SimpleNamespace
from typing import Any, cast

import asyncpg
import httpx
import orjson
import pytest
from pydantic import SecretStr
from support.gateway_live import Live, live_gateway

from spool_common.archive import build_archive
from spool_common.bus.amqp import Bus
from spool_common.messages import ReplicaChanged, ReplicaState
from spool_gateway.api import API_PREFIX, create_app
from spool_gateway.core import Gateway
from spool_gateway.settings import GatewaySettings

pytestmark = pytest.mark.integration

KEY = base64.b64encode(os.urandom(32)).decode()

ANONYMOUS = "anonymous"
EXPIRED = "expired"
REVOKED = "revoked"
OWNER_A = "owner A"
DEVELOPER_A = "developer A"
VIEWER_A = "viewer A"
DEVELOPER_B = "developer B"
BOT_A = "bot A"
PRINCIPALS = (ANONYMOUS, EXPIRED, REVOKED, OWNER_A, DEVELOPER_A, VIEWER_A, DEVELOPER_B, BOT_A)
UNAUTHENTICATED = frozenset({ANONYMOUS, EXPIRED, REVOKED})
MEMBERS_OF_A = frozenset({OWNER_A, DEVELOPER_A, VIEWER_A, BOT_A})
USERS_WITH_TOKENS = frozenset({OWNER_A, DEVELOPER_A, VIEWER_A, DEVELOPER_B})

MAIN = b"""
class ServiceRunner:
    def run(self, item=None):
        return item
"""

_serial = itertools.count(1)


def unique(prefix: str) -> str:
    """A name no other call of this module uses (valid for projects, packages, services,
    triggers, bots and users)."""
    return f"{prefix}-{next(_serial)}"


def codebase(name: str) -> dict[str, tuple[str, bytes, str]]:
    """A multipart `codebase` field: a package `name` whose `run` takes an optional Item."""
    manifest = {
        "name": name,
        "modules": [
            {
                "name": "default_module",
                "functions": [{"name": "run", "input": [{"name": "item", "type": "Item"}]}],
            }
        ],
    }
    files = {"main.py": MAIN, "package.json": orjson.dumps(manifest)}
    return {"codebase": ("code.zip", build_archive(files), "application/zip")}


def _ok(response: httpx.Response, status: int) -> Any:
    """A set-up call's answer (JSON), which must be `status`."""
    assert response.status_code == status, f"{response.request.url}: {response.text}"
    return response.json() if response.content else None


@dataclass(frozen=True)
class Principal:
    name: str
    token: str | None  # None: no Authorization header
    subject: str | None  # the user's or bot's id
    token_id: str | None


@dataclass(frozen=True)
class Call:
    """One request, relative to the API prefix."""

    method: str
    url: str
    json: Any = None
    params: dict[str, Any] | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None
    data: dict[str, str] | None = None


@dataclass
class World:
    """Projects A and B, the principals, and objects of each project (made by the admin)."""

    live: Live
    pool: asyncpg.Pool
    principals: dict[str, Principal]
    clients: dict[str, httpx.AsyncClient]
    project_a: str
    project_b: str
    package_a: str
    package_a_name: str
    package_b: str
    service_a: str  # executions, triggers and reads
    service_m: str  # changed by PATCH, rollback, stop, resume and activate
    service_b: str
    execution_a: str
    execution_b: str
    trigger_a: str
    trigger_b: str
    secret_a: str
    bot_a: str  # the principal
    tools_bot: str  # a second bot of A, whose tokens the bot-token operations manage

    @property
    def admin(self) -> httpx.AsyncClient:
        return self.live.api

    def ids(self) -> dict[str, str]:
        """The names a request template may use: {project_a}, {service_a}..."""
        return {k: v for k, v in vars(self).items() if isinstance(v, str)}

    async def send(self, who: str, call: Call) -> httpx.Response:
        return await self.clients[who].request(
            call.method,
            call.url,
            json=call.json,
            params=call.params,
            files=call.files,
            data=call.data,
        )

    # --- fresh objects, made with the admin token ---------------------------------------

    async def fresh_service(
        self, project_id: str | None = None, package_id: str | None = None
    ) -> str:
        body = {
            "name": unique("svc"),
            "projectId": project_id or self.project_a,
            "packageId": package_id or self.package_a,
            "runtime": {"numReplicas": 0},
        }
        return str(_ok(await self.admin.post("/services", json=body), 201)["id"])

    async def fresh_execution(
        self, service_id: str | None = None, *, finished: bool = False
    ) -> str:
        """A queued execution of service A; `finished`: terminated (by the admin) already."""
        target = service_id or self.service_a
        body = {"functionName": "run", "input": {}}
        created = _ok(await self.admin.post(f"/executions/{target}", json=body), 201)
        if finished:
            _ok(await self.admin.post(f"/executions/{created['id']}/terminate"), 200)
        return str(created["id"])

    def trigger_body(
        self, service_id: str | None = None, project_id: str | None = None
    ) -> dict[str, Any]:
        operation = {
            "type": "function",
            "serviceId": service_id or self.service_a,
            "functionName": "run",
        }
        return {
            "name": unique("trg"),
            "projectId": project_id or self.project_a,
            "spec": {"resource": "Item", "actions": ["Created"], "operation": operation},
        }

    async def fresh_trigger(self) -> str:
        return str(_ok(await self.admin.post("/triggers", json=self.trigger_body()), 201)["id"])

    async def fresh_secret(self) -> str:
        name = f"S_{next(_serial)}"
        body = {"name": name, "value": "v"}
        _ok(await self.admin.post(f"/projects/{self.project_a}/secrets", json=body), 201)
        return name

    async def fresh_bot(self) -> str:
        body = {"name": unique("bot")}
        return str(
            _ok(await self.admin.post(f"/projects/{self.project_a}/bots", json=body), 201)["id"]
        )

    async def fresh_bot_token(self, bot_id: str | None = None) -> str:
        """A new token of the tools bot (or `bot_id`): its id."""
        url = f"/projects/{self.project_a}/bots/{bot_id or self.tools_bot}/tokens"
        return str(_ok(await self.admin.post(url, json={}), 201)["info"]["id"])

    async def fresh_user(self) -> str:
        created = _ok(await self.admin.post("/users", json={"name": unique("user")}), 201)
        return str(created["user"]["id"])

    async def fresh_member(self) -> str:
        """A new user, a viewer of project A."""
        user = await self.fresh_user()
        body = {"memberId": user, "role": "viewer"}
        _ok(await self.admin.post(f"/projects/{self.project_a}/members", json=body), 201)
        return user

    async def own_token_id(self, who: Principal) -> str:
        """The id of a token of the caller's own that it may revoke without losing the token
        it calls with: a second one (minted by a user itself; for the bot, by the admin)."""
        if who.name in USERS_WITH_TOKENS:
            minted = _ok(await self.clients[who.name].post("/users/me/tokens", json={}), 201)
            return str(minted["info"]["id"])
        if who.name == BOT_A:
            return await self.fresh_bot_token(self.bot_a)
        return who.token_id or "no-token"


async def _principal_user(admin: httpx.AsyncClient, name: str) -> tuple[str, str, str]:
    """A new user: (id, token, token id)."""
    created = _ok(await admin.post("/users", json={"name": unique(name)}), 201)
    return created["user"]["id"], created["token"]["token"], created["token"]["info"]["id"]


def _client(live: Live, token: str | None) -> httpx.AsyncClient:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return httpx.AsyncClient(
        transport=live.api._transport, base_url=live.api.base_url, headers=headers
    )


async def _build(live: Live, pool: asyncpg.Pool, stack: AsyncExitStack) -> World:
    admin = live.api
    project_a = _ok(await admin.post("/projects", json={"name": unique("project-a")}), 201)["id"]
    project_b = _ok(await admin.post("/projects", json={"name": unique("project-b")}), 201)["id"]

    principals = {ANONYMOUS: Principal(ANONYMOUS, None, None, None)}
    for name, project, role in (
        (OWNER_A, project_a, "owner"),
        (DEVELOPER_A, project_a, "developer"),
        (VIEWER_A, project_a, "viewer"),
        (DEVELOPER_B, project_b, "developer"),
    ):
        user, token, token_id = await _principal_user(admin, name.replace(" ", "-"))
        body = {"memberId": user, "role": role}
        _ok(await admin.post(f"/projects/{project}/members", json=body), 201)
        principals[name] = Principal(name, token, user, token_id)

    # Expired: the token is never used before its expiry passes (nothing cached it).
    lapsed, token, token_id = await _principal_user(admin, "lapsed")
    await pool.execute(
        "UPDATE tokens SET expires_at = now() - interval '1 second' WHERE id = $1", token_id
    )
    principals[EXPIRED] = Principal(EXPIRED, token, lapsed, token_id)
    # Revoked: a second token of a user, revoked by that user through the API.
    gone, first, _ = await _principal_user(admin, "gone")
    async with _client(live, first) as own:
        second = _ok(await own.post("/users/me/tokens", json={"name": "second"}), 201)
        _ok(await own.delete(f"/users/me/tokens/{second['info']['id']}"), 204)
    principals[REVOKED] = Principal(REVOKED, second["token"], gone, second["info"]["id"])

    bots = f"/projects/{project_a}/bots"
    bot = _ok(await admin.post(bots, json={"name": "robot", "role": "developer"}), 201)["id"]
    minted = _ok(await admin.post(f"{bots}/{bot}/tokens", json={}), 201)
    principals[BOT_A] = Principal(BOT_A, minted["token"], bot, minted["info"]["id"])
    tools = _ok(await admin.post(bots, json={"name": "tools"}), 201)["id"]

    clients = {
        name: await stack.enter_async_context(_client(live, p.token))
        for name, p in principals.items()
    }

    package_a_name = unique("pkg-a")
    packages = []
    for project, name in ((project_a, package_a_name), (project_b, unique("pkg-b"))):
        pushed = await admin.post("/packages", files=codebase(name), data={"projectId": project})
        packages.append(str(_ok(pushed, 201)["id"]))

    world = World(
        live=live,
        pool=pool,
        principals=principals,
        clients=clients,
        project_a=project_a,
        project_b=project_b,
        package_a=packages[0],
        package_a_name=package_a_name,
        package_b=packages[1],
        service_a="",
        service_m="",
        service_b="",
        execution_a="",
        execution_b="",
        trigger_a="",
        trigger_b="",
        secret_a="SHARED",
        bot_a=bot,
        tools_bot=tools,
    )
    world.service_a = await world.fresh_service()
    world.service_m = await world.fresh_service()
    world.service_b = await world.fresh_service(project_b, packages[1])
    world.execution_a = await world.fresh_execution()
    world.execution_b = await world.fresh_execution(world.service_b)
    world.trigger_a = await world.fresh_trigger()
    trigger_b = world.trigger_body(world.service_b, project_b)
    world.trigger_b = str(_ok(await admin.post("/triggers", json=trigger_b), 201)["id"])
    secret = {"name": world.secret_a, "value": "v"}
    _ok(await admin.post(f"/projects/{project_a}/secrets", json=secret), 201)
    return world


@pytest.fixture
async def world(pool: asyncpg.Pool, bus: Bus, broker_cleanup: list[str]) -> AsyncIterator[World]:
    settings = GatewaySettings(secrets_key=SecretStr(KEY))
    async with live_gateway(pool, bus, settings) as live, AsyncExitStack() as stack:
        try:
            yield await _build(live, pool, stack)
        finally:
            # Every service declared a queue (deleted ones too: they are only marked deleted).
            rows = await pool.fetch("SELECT id FROM services")
            topology = bus.topology
            broker_cleanup.extend(topology.service_queue(r["id"]).name for r in rows)


# --- the table ---------------------------------------------------------------------------------


class Access(Enum):
    ADMIN = "admin only"
    SELF = "the caller's own user"
    USERS = "any user"
    ANY = "anyone authenticated"
    READ = "viewer of A"
    WRITE = "developer of A"
    OWNER = "owner of A"


Built = Call | Awaitable[Call]
Builder = Callable[[World, Principal], Built]
Body = Callable[[World, Principal], Any]
Check = Callable[[World, Principal, Any], str | None]


@dataclass(frozen=True)
class Op:
    """One operation: who may call it (`access`), its success status, and its request: a URL
    whose {names} are World.ids() (with a `body` and `params`), or a builder of its own."""

    method: str
    path: str  # the template under API_PREFIX
    access: Access
    ok: int  # the success status
    target: str | Builder
    body: Body | dict[str, Any] | None = None  # a JSON body, or a function giving one
    params: dict[str, Any] | None = None
    bot: frozenset[int] | None = None  # bot A's answer, where the policy leaves it to the code
    check: Check | None = None  # of a 2xx answer's JSON: a problem, or None

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, API_PREFIX + self.path)

    async def call(self, world: World, who: Principal) -> Call:
        if not isinstance(self.target, str):
            built = self.target(world, who)
            return built if isinstance(built, Call) else await built
        ids = world.ids()
        params = {
            k: v.format_map(ids) if isinstance(v, str) else v
            for k, v in (self.params or {}).items()
        }
        body = self.body(world, who) if callable(self.body) else self.body
        return Call(self.method, self.target.format_map(ids), json=body, params=params or None)


def expected(op: Op, who: str) -> frozenset[int]:
    """The statuses the policy allows for `who` calling `op`."""
    ok = frozenset({op.ok})
    if who in UNAUTHENTICATED:
        return frozenset({401})
    if who == BOT_A and op.bot is not None:
        return op.bot
    match op.access:
        case Access.ADMIN:
            return frozenset({403})
        case Access.ANY | Access.SELF:
            return ok
        case Access.USERS:
            return frozenset({403}) if who == BOT_A else ok
        case _ if who == DEVELOPER_B:
            return frozenset({404})
        case Access.READ:
            return ok
        case Access.WRITE:
            return frozenset({403}) if who == VIEWER_A else ok
        case Access.OWNER:
            return ok if who == OWNER_A else frozenset({403})
    raise AssertionError(op.access)


def _ids(body: Any) -> set[str]:
    """The ids of a list answer's items (`serviceId` for the load and status of services)."""
    if not isinstance(body, list):
        return set()
    return {str(item.get("id") or item.get("serviceId")) for item in body}


def whoami(_: World, who: Principal, body: Any) -> str | None:
    """The answer names the caller by kind and member id."""
    wanted = {"kind": "bot" if who.name == BOT_A else "user", "id": who.subject}
    return None if body == wanted else f"{body} is not {wanted}"


def has(attribute: str) -> Check:
    """A list answer that holds project A's object World.<attribute>."""

    def check(world: World, _: Principal, body: Any) -> str | None:
        wanted = world.ids()[attribute]
        return None if wanted in _ids(body) else f"the list lacks A's object {wanted}"

    return check


def projects_seen(world: World, who: Principal, body: Any) -> str | None:
    """GET /projects lists A to A's members only, and B to Developer B."""
    ids = _ids(body)
    if who.name in MEMBERS_OF_A and world.project_a not in ids:
        return "project A is not listed to a member of A"
    if who.name not in MEMBERS_OF_A and world.project_a in ids:
        return "project A is listed to a non-member"
    if who.name == DEVELOPER_B and world.project_b not in ids:
        return "project B is not listed to its developer"
    return None


# Request builders that need a fresh object (or a token of the caller's own).


async def _terminate(w: World, _: Principal) -> Call:
    return Call("POST", f"/executions/{await w.fresh_execution()}/terminate")


async def _rerun(w: World, _: Principal) -> Call:
    # Terminated first, so that a rerun is possible (200, not 409 "only a finished...").
    return Call("POST", f"/executions/{await w.fresh_execution(finished=True)}/rerun")


async def _restart_replica(w: World, _: Principal) -> Call:
    """A ready replica of service A, as the scheduler would have reported it (no replicas run
    here: the restart request goes out to no scheduler)."""
    replica_id = unique("replica")
    ready = ReplicaChanged(
        replica_id=replica_id,
        service_id=w.service_a,
        state=ReplicaState.READY,
        at=datetime.now(UTC),
        revision=1,
    )
    await w.live.gw.services.record_replica(ready)
    return Call("POST", f"{SERVICE.format(service_a=w.service_a)}/replicas/{replica_id}/restart")


async def _delete_service(w: World, _: Principal) -> Call:
    return Call("DELETE", f"/services/{await w.fresh_service()}")


async def _delete_trigger(w: World, _: Principal) -> Call:
    return Call("DELETE", f"/triggers/{await w.fresh_trigger()}")


async def _delete_secret(w: World, _: Principal) -> Call:
    return Call("DELETE", f"/projects/{w.project_a}/secrets/{await w.fresh_secret()}")


async def _revoke_my_token(w: World, who: Principal) -> Call:
    return Call("DELETE", f"/users/me/tokens/{await w.own_token_id(who)}")


async def _add_member(w: World, _: Principal) -> Call:
    body = {"memberId": await w.fresh_user(), "role": "viewer"}
    return Call("POST", f"/projects/{w.project_a}/members", json=body)


async def _set_role(w: World, _: Principal) -> Call:
    member = await w.fresh_member()
    body = {"role": "developer"}
    return Call("PUT", f"/projects/{w.project_a}/members/{member}", json=body)


async def _remove_member(w: World, _: Principal) -> Call:
    return Call("DELETE", f"/projects/{w.project_a}/members/{await w.fresh_member()}")


async def _delete_bot(w: World, _: Principal) -> Call:
    return Call("DELETE", f"/projects/{w.project_a}/bots/{await w.fresh_bot()}")


async def _revoke_bot_token(w: World, _: Principal) -> Call:
    token_id = await w.fresh_bot_token()
    return Call("DELETE", f"/projects/{w.project_a}/bots/{w.tools_bot}/tokens/{token_id}")


def _service_body(w: World, _: Principal | None = None) -> dict[str, Any]:
    return {
        "name": unique("svc"),
        "projectId": w.project_a,
        "packageId": w.package_a,
        "runtime": {"numReplicas": 0},
    }


def _event() -> dict[str, Any]:
    return {"resource": "Item", "action": "Created", "entity": {"id": unique("item")}}


def _push(w: World, _: Principal) -> Call:
    data = {"projectId": w.project_a}
    return Call("POST", "/packages", files=codebase(unique("pkg")), data=data)


def _update_package(w: World, _: Principal) -> Call:
    return Call("PATCH", f"/packages/{w.package_a}", files=codebase(w.package_a_name))


def _deploy_package(w: World, _: Principal) -> Call:
    data = {"projectId": w.project_a}
    return Call("POST", "/packages/deploy", files=codebase(unique("pkg")), data=data)


RUN = {"functionName": "run", "input": {}}
ADMIN, SELF, USERS, ANY = Access.ADMIN, Access.SELF, Access.USERS, Access.ANY
READ, WRITE, OWNER = Access.READ, Access.WRITE, Access.OWNER
USER_ONLY = frozenset({403})  # the self operations need a user's token (identity_routes._user)
IN_A = {"projectId": "{project_a}"}
SHORT = {"timeout": 0.1}
BATCH = {"executions": [RUN, RUN]}
FIRST = {"revision": 1}
EXECUTE = "/executions/{service_a}"
EXECUTION = "/executions/{execution_a}"
SERVICE = "/services/{service_a}"
MUTABLE = "/services/{service_m}"
RESTART = "/services/{service_id}/replicas/{replica_id}/restart"
PACKAGE = "/packages/{package_a}"
TRIGGER = "/triggers/{trigger_a}"
PROJECT = "/projects/{project_a}"
SECRETS = "/projects/{project_a}/secrets"
SECRET = "/projects/{project_a}/secrets/{secret_a}"
BOT_TOKENS = "/projects/{project_a}/bots/{tools_bot}/tokens"
BOT_TOKEN = "/projects/{project_id}/bots/{bot_id}/tokens/{token_id}"


def _named(prefix: str) -> Body:
    """A body {"name": <a new name>}."""
    return lambda w, p: {"name": unique(prefix)}


def _on_service_a(w: World, _: Principal) -> dict[str, Any]:
    return {"serviceId": w.service_a}


def _dry_run(w: World, _: Principal) -> dict[str, Any]:
    return {"projectId": w.project_a, "event": _event()}


def _event_in_a(w: World, _: Principal) -> dict[str, Any]:
    return {"projectId": w.project_a, **_event()}


def _new_secret(*_: Any) -> dict[str, Any]:
    return {"name": f"S_{next(_serial)}", "value": "v"}


OPERATIONS: tuple[Op, ...] = (
    # --- projects
    Op("POST", "/projects", USERS, 201, "/projects", body=_named("p")),
    Op("GET", "/projects", ANY, 200, "/projects", check=projects_seen),
    Op("GET", "/projects/{project_id}", READ, 200, PROJECT),
    # --- executions (invoke: 202, still queued after ?timeout: no replica runs here)
    Op("POST", "/executions/{service_id}", WRITE, 201, f"{EXECUTE}", body=RUN),
    Op("POST", "/executions/{service_id}/batch", WRITE, 201, f"{EXECUTE}/batch", body=BATCH),
    Op("POST", "/executions/{service_id}/invoke", WRITE, 202, f"{EXECUTE}/invoke", RUN, SHORT),
    Op("POST", "/executions/{service_id}/curl", READ, 200, f"{EXECUTE}/curl", body=RUN),
    Op("GET", "/executions", READ, 200, "/executions", params=IN_A, check=has("execution_a")),
    Op("GET", "/executions/{execution_id}", READ, 200, EXECUTION),
    Op("GET", "/executions/{execution_id}/wait", READ, 200, f"{EXECUTION}/wait", params=SHORT),
    Op("GET", "/executions/{execution_id}/logs", READ, 200, f"{EXECUTION}/logs"),
    Op("POST", "/executions/{execution_id}/terminate", WRITE, 200, _terminate),
    Op("POST", "/executions/{execution_id}/rerun", WRITE, 200, _rerun),
    Op("POST", "/executions/rerun", WRITE, 200, "/executions/rerun", body=_on_service_a),
    Op("POST", "/services/logs", READ, 200, "/services/logs", body=_on_service_a),
    # --- packages
    Op("POST", "/packages", WRITE, 201, _push),
    Op("GET", "/packages", READ, 200, "/packages", params=IN_A, check=has("package_a")),
    Op("GET", "/packages/{package_id}", READ, 200, PACKAGE),
    Op("PATCH", "/packages/{package_id}", WRITE, 200, _update_package),
    Op("POST", "/packages/deploy", WRITE, 200, _deploy_package),
    Op("GET", "/packages/{package_id}/revisions", READ, 200, f"{PACKAGE}/revisions"),
    Op("GET", "/packages/{package_id}/codebase", READ, 200, f"{PACKAGE}/codebase"),
    # --- services (changes go to service M, so that service A stays as it was made)
    Op("POST", "/services", WRITE, 201, "/services", body=_service_body),
    Op("GET", "/services", READ, 200, "/services", params=IN_A, check=has("service_a")),
    Op("GET", "/services/{service_id}", READ, 200, SERVICE),
    Op("PATCH", "/services/{service_id}", WRITE, 200, MUTABLE, body={"metadata": {"k": 1}}),
    Op("DELETE", "/services/{service_id}", WRITE, 204, _delete_service),
    Op("GET", "/services/{service_id}/revisions", READ, 200, f"{SERVICE}/revisions"),
    Op("POST", "/services/{service_id}/rollback", WRITE, 200, f"{MUTABLE}/rollback", FIRST),
    Op("POST", "/services/{service_id}/stop", WRITE, 200, f"{MUTABLE}/stop"),
    Op("POST", "/services/{service_id}/resume", WRITE, 200, f"{MUTABLE}/resume"),
    Op("POST", "/services/{service_id}/activate", WRITE, 200, f"{MUTABLE}/activate"),
    Op("GET", "/services/{service_id}/status", READ, 200, f"{SERVICE}/status"),
    Op("GET", "/services/load", READ, 200, "/services/load", params=IN_A, check=has("service_a")),
    Op(
        "GET",
        "/services/status",
        READ,
        200,
        "/services/status",
        params=IN_A,
        check=has("service_a"),
    ),
    Op("POST", RESTART, WRITE, 202, _restart_replica),
    Op("GET", "/services/{service_id}/notifications", READ, 200, f"{SERVICE}/notifications"),
    Op("GET", "/services/{service_id}/scaling", READ, 200, f"{SERVICE}/scaling"),
    Op("GET", "/services/{service_id}/query-log", READ, 200, f"{SERVICE}/query-log"),
    Op("GET", "/instance-types", ANY, 200, "/instance-types"),
    Op("GET", "/notifications", READ, 200, "/notifications", params=IN_A),
    # --- triggers and events
    Op("POST", "/triggers", WRITE, 201, "/triggers", body=lambda w, p: w.trigger_body()),
    Op("GET", "/triggers", READ, 200, "/triggers", params=IN_A, check=has("trigger_a")),
    Op("POST", "/triggers/dry-run", READ, 200, "/triggers/dry-run", body=_dry_run),
    Op("GET", "/triggers/{trigger_id}", READ, 200, TRIGGER),
    Op("PATCH", "/triggers/{trigger_id}", WRITE, 200, TRIGGER, body={"active": True}),
    Op("DELETE", "/triggers/{trigger_id}", WRITE, 204, _delete_trigger),
    Op("POST", "/events", WRITE, 202, "/events", body=_event_in_a),
    # --- secrets (metadata only: values never leave the API)
    Op("POST", "/projects/{project_id}/secrets", WRITE, 201, SECRETS, body=_new_secret),
    Op("GET", "/projects/{project_id}/secrets", READ, 200, SECRETS),
    Op("GET", "/projects/{project_id}/secrets/{name}", READ, 200, SECRET),
    Op("PUT", "/projects/{project_id}/secrets/{name}", WRITE, 200, SECRET, body={"value": "w"}),
    Op("DELETE", "/projects/{project_id}/secrets/{name}", WRITE, 204, _delete_secret),
    # --- users and their own tokens
    Op("GET", "/users", ADMIN, 200, "/users"),
    Op("POST", "/users", ADMIN, 201, "/users", body=_named("user")),
    Op("GET", "/whoami", ANY, 200, "/whoami", check=whoami),
    Op("GET", "/users/me", SELF, 200, "/users/me", bot=USER_ONLY),
    Op("GET", "/users/me/tokens", SELF, 200, "/users/me/tokens", bot=USER_ONLY),
    Op("POST", "/users/me/tokens", SELF, 201, "/users/me/tokens", {"name": "t"}, bot=USER_ONLY),
    Op("DELETE", "/users/me/tokens/{token_id}", SELF, 204, _revoke_my_token, bot=USER_ONLY),
    # --- members
    Op("GET", "/projects/{project_id}/members", READ, 200, f"{PROJECT}/members"),
    Op("POST", "/projects/{project_id}/members", OWNER, 201, _add_member),
    Op("PUT", "/projects/{project_id}/members/{member_id}", OWNER, 200, _set_role),
    Op("DELETE", "/projects/{project_id}/members/{member_id}", OWNER, 204, _remove_member),
    # --- bots and their tokens
    Op("POST", "/projects/{project_id}/bots", WRITE, 201, f"{PROJECT}/bots", _named("bot")),
    Op("GET", "/projects/{project_id}/bots", READ, 200, f"{PROJECT}/bots"),
    Op("DELETE", "/projects/{project_id}/bots/{bot_id}", WRITE, 204, _delete_bot),
    Op("POST", "/projects/{project_id}/bots/{bot_id}/tokens", WRITE, 201, BOT_TOKENS, {}),
    Op("GET", "/projects/{project_id}/bots/{bot_id}/tokens", WRITE, 200, BOT_TOKENS),
    Op("DELETE", BOT_TOKEN, WRITE, 204, _revoke_bot_token),
)


def operations_of(spec: dict[str, Any]) -> set[tuple[str, str]]:
    """(METHOD, path template) of every operation of an OpenAPI document."""
    methods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    return {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in methods
    }


def unclassified(spec: dict[str, Any]) -> list[str]:
    """Operations the table leaves out, and table rows naming no operation."""
    served = operations_of(spec)
    table = [op.key for op in OPERATIONS]
    problems = [f"{m} {p}: not classified by the matrix" for m, p in sorted(served - set(table))]
    problems += [f"{m} {p}: in the matrix, not in the API" for m, p in sorted(set(table) - served)]
    problems += [
        f"{m} {p}: twice in the matrix"
        for m, p in sorted(k for k in set(table) if table.count(k) > 1)
    ]
    return problems


def _stand_in_openapi() -> dict[str, Any]:
    """The document, built in process without servers (as tests/e2e/test_fuzz.py does)."""
    stand_in = SimpleNamespace(settings=GatewaySettings(), catalog=SimpleNamespace(principal=None))
    spec: dict[str, Any] = create_app(cast(Gateway, stand_in)).openapi()
    return spec


def test_the_matrix_classifies_every_operation_of_the_openapi_document() -> None:
    problems = unclassified(_stand_in_openapi())
    assert not problems, "\n".join(problems)


def _excerpt(response: httpx.Response) -> str:
    text = response.text.replace("\n", " ")
    return text[:200] + ("..." if len(text) > 200 else "")


def _judge(op: Op, world: World, who: Principal, response: httpx.Response) -> str | None:
    """What is wrong with one cell's answer, if anything."""
    want, got = expected(op, who.name), response.status_code
    if got not in want:
        return f"expected {'/'.join(map(str, sorted(want)))}, got {got}: {_excerpt(response)}"
    if op.check is not None and got < 300:
        return op.check(world, who, response.json())
    return None


async def test_every_operation_answers_every_principal_as_the_policy_says(world: World) -> None:
    served = await world.admin.get("http://gateway/openapi.json")
    spec = _ok(served, 200)
    problems = unclassified(spec)
    operations = operations_of(spec)
    cells = 0
    for op in OPERATIONS:
        if op.key not in operations:
            continue
        for who in PRINCIPALS:
            principal = world.principals[who]
            response = await world.send(who, await op.call(world, principal))
            cells += 1
            if (problem := _judge(op, world, principal, response)) is not None:
                problems.append(f"{op.method} {op.path} as {who}: {problem}")
    ops = len({op.key for op in OPERATIONS} & operations)
    tally = f"{ops} operations × {len(PRINCIPALS)} principals = {cells} cells"  # noqa: RUF001
    print(f"\nT27 authorization matrix: {tally}")
    assert not problems, f"{len(problems)} of {tally} wrong:\n" + "\n".join(problems)


async def test_lists_without_a_project_show_only_the_callers_projects(world: World) -> None:
    """Without ?projectId: Developer B sees B's objects and none of A's; Owner A the reverse."""
    lists = {
        "/executions": (world.execution_a, world.execution_b),
        "/services": (world.service_a, world.service_b),
        "/services/status": (world.service_a, world.service_b),
        "/packages": (world.package_a, world.package_b),
        "/triggers": (world.trigger_a, world.trigger_b),
        "/projects": (world.project_a, world.project_b),
    }
    problems = []
    for url, (of_a, of_b) in lists.items():
        for who, mine, theirs, project in (
            (DEVELOPER_B, of_b, of_a, world.project_b),
            (OWNER_A, of_a, of_b, world.project_a),
        ):
            response = await world.send(who, Call("GET", url))
            if response.status_code != 200:
                problems.append(f"GET {url} as {who}: {response.status_code} {_excerpt(response)}")
                continue
            body = response.json()
            ids = _ids(body)
            if mine not in ids:
                problems.append(f"GET {url} as {who}: lacks its own project's {mine}")
            if theirs in ids:
                problems.append(f"GET {url} as {who}: shows the other project's {theirs}")
            if url == "/services/status":  # its items name their service only
                services = await world.send(who, Call("GET", "/services"))
                foreign = ids - _ids(services.json())
            else:
                foreign = {
                    str(item.get("id"))
                    for item in body
                    if url != "/projects" and item.get("projectId") != project
                }
            if foreign:
                problems.append(f"GET {url} as {who}: objects of other projects {foreign}")
    assert not problems, "\n".join(problems)


async def test_server_owned_fields_in_a_body_are_ignored(world: World) -> None:
    """Developer A sends ids, creators and statuses: the server's own values stand (unknown
    fields are ignored, not refused: WireModel's extra='ignore')."""
    me = world.principals[DEVELOPER_A].subject
    owned = {"id": "forged", "creator": "mallory", "createdAt": "2000-01-01T00:00:00Z"}
    body = {**RUN, **owned, "status": "success", "attempts": 7, "output": 42}
    response = await world.send(
        DEVELOPER_A, Call("POST", f"/executions/{world.service_a}", json=body)
    )
    execution = _ok(response, 201)
    assert execution["id"] != "forged"
    assert execution["creator"] == me
    assert execution["latestStatus"]["status"] == "created"
    assert execution["attempts"] == 0
    assert execution["output"] is None
    assert not execution["createdAt"].startswith("2000")
    stored = _ok(await world.admin.get(f"/executions/{execution['id']}"), 200)
    assert (stored["creator"], stored["latestStatus"]["status"]) == (me, "created")

    service_body = {**_service_body(world), **owned, "version": "9.9.9", "crashloop": True}
    response = await world.send(DEVELOPER_A, Call("POST", "/services", json=service_body))
    service = _ok(response, 201)
    assert service["id"] != "forged"
    assert service["creator"] == me
    assert not service["createdAt"].startswith("2000")
    assert not service.get("crashloop")

    trigger_body = {**world.trigger_body(), **owned}
    trigger = _ok(await world.send(DEVELOPER_A, Call("POST", "/triggers", json=trigger_body)), 201)
    assert trigger["id"] != "forged"
    assert trigger["creator"] == me
