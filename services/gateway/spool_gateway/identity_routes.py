"""HTTP routes for users, their tokens, project members and project bots.

Admins create users (the answer carries the user's first token, shown once); a user manages
their own tokens; a project's Owners manage its members; Developers create and delete its bots
and their tokens (Owners, for a bot that owns a project). A token is shown once, stored as a
SHA-256 hash, may expire, and is revoked at once in this gateway (other gateways: within the
authentication cache's few seconds).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Request, Response
from pydantic import Field

from spool_common.errors import FieldError
from spool_common.models_base import WireModel
from spool_gateway.access import authorize, require_admin
from spool_gateway.api import GatewayDep, PrincipalDep
from spool_gateway.catalog import Principal
from spool_gateway.core import Gateway, hash_token, new_id
from spool_gateway.http_errors import ApiError, not_found
from spool_gateway.identity import Role, leaves_no_owner, new_token, role_to_hold_bot
from spool_gateway.identity_store import Bot, LastOwner, Member, TokenInfo, User

router = APIRouter()

Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][\w.@+-]*$")]
MAX_TOKEN_SECONDS = 366 * 86400


class UserCreate(WireModel):
    name: Name


class TokenCreate(WireModel):
    name: str | None = Field(default=None, max_length=128)
    expires_in: int | None = Field(
        default=None, ge=60, le=MAX_TOKEN_SECONDS, description="seconds; none: never expires"
    )


class NewToken(WireModel):
    """The token itself appears here, once, and nowhere else."""

    token: str
    info: TokenInfo


class NewUser(WireModel):
    user: User
    token: NewToken


class MemberSet(WireModel):
    member_id: str = Field(min_length=1, max_length=64)
    role: Role


class RoleSet(WireModel):
    role: Role


class BotCreate(WireModel):
    name: Name
    role: Role = Role.DEVELOPER


def _forget(request: Request, *digests: bytes) -> None:
    request.app.state.authenticate.forget(*digests)


async def _issue(gw: Gateway, kind: str, subject: str, body: TokenCreate) -> NewToken:
    token = new_token()
    info = await gw.identity.add_token(
        new_id(), hash_token(token), kind, subject, body.name, body.expires_in
    )
    return NewToken(token=token, info=info)


def _user(who: Principal) -> str:
    if who.kind != "user":
        raise ApiError(403, "forbidden", "this operation needs a user's token")
    return who.subject


# --- users and their tokens ----------------------------------------------------------------


@router.post("/users", status_code=201, tags=["users"])
async def create_user(body: UserCreate, gw: GatewayDep, who: PrincipalDep) -> NewUser:
    require_admin(who)
    user = await gw.identity.create_user(new_id(), body.name, who.subject)
    if user is None:
        raise ApiError(
            409, "conflict", f"a user named '{body.name}' exists", (FieldError("name", "taken"),)
        )
    return NewUser(user=user, token=await _issue(gw, "user", user.id, TokenCreate(name="first")))


@router.get("/users", tags=["users"])
async def list_users(gw: GatewayDep, who: PrincipalDep) -> list[User]:
    require_admin(who)
    return await gw.identity.users()


class WhoAmI(WireModel):
    kind: Literal["admin", "user", "bot", "agent"]
    id: str = Field(description="the user's or bot's id (a member id); the admin's subject")


@router.get("/whoami", tags=["users"])
async def who_am_i(who: PrincipalDep) -> WhoAmI:
    """Who the token belongs to, whatever its kind: `/users/me` is for users only. A client
    finds its role in a project among the project's members by this id."""
    return WhoAmI.model_validate({"kind": who.kind, "id": who.subject})


@router.get("/users/me", tags=["users"])
async def me(gw: GatewayDep, who: PrincipalDep) -> User:
    user = await gw.identity.user(_user(who))
    if user is None:
        raise not_found("user", "userId", who.subject)
    return user


@router.post("/users/me/tokens", status_code=201, tags=["users"])
async def create_my_token(body: TokenCreate, gw: GatewayDep, who: PrincipalDep) -> NewToken:
    return await _issue(gw, "user", _user(who), body)


@router.get("/users/me/tokens", tags=["users"])
async def list_my_tokens(gw: GatewayDep, who: PrincipalDep) -> list[TokenInfo]:
    return await gw.identity.tokens(_user(who))


@router.delete("/users/me/tokens/{token_id}", status_code=204, tags=["users"])
async def revoke_my_token(
    token_id: str, request: Request, gw: GatewayDep, who: PrincipalDep
) -> Response:
    digest = await gw.identity.revoke_token(_user(who), token_id)
    if digest is None:
        raise not_found("token", "tokenId", token_id)
    _forget(request, digest)
    return Response(status_code=204)


# --- project members -------------------------------------------------------------------------


@router.get("/projects/{project_id}/members", tags=["projects"])
async def list_members(project_id: str, gw: GatewayDep, who: PrincipalDep) -> list[Member]:
    await authorize(gw, who, project_id, Role.VIEWER)
    return await gw.identity.members(project_id)


@router.post("/projects/{project_id}/members", status_code=201, tags=["projects"])
async def set_member(project_id: str, body: MemberSet, gw: GatewayDep, who: PrincipalDep) -> Member:
    """Add a user or a bot (of this project or another) with a role, or change its role."""
    await authorize(gw, who, project_id, Role.OWNER)
    kind = await gw.identity.member_kind(body.member_id)
    if kind is None:
        raise not_found("user or bot", "memberId", body.member_id)
    await _keep_an_owner(gw, project_id, body.member_id, body.role)
    return await gw.identity.set_member(project_id, body.member_id, kind, body.role, who.subject)


@router.put("/projects/{project_id}/members/{member_id}", tags=["projects"])
async def set_role(
    project_id: str, member_id: str, body: RoleSet, gw: GatewayDep, who: PrincipalDep
) -> Member:
    await authorize(gw, who, project_id, Role.OWNER)
    kind = await gw.identity.member_kind(member_id)
    if kind is None or await gw.identity.role(project_id, member_id) is None:
        raise not_found("member", "memberId", member_id)
    await _keep_an_owner(gw, project_id, member_id, body.role)
    return await gw.identity.set_member(project_id, member_id, kind, body.role, who.subject)


@router.delete("/projects/{project_id}/members/{member_id}", status_code=204, tags=["projects"])
async def remove_member(
    project_id: str, member_id: str, gw: GatewayDep, who: PrincipalDep
) -> Response:
    await authorize(gw, who, project_id, Role.OWNER)
    removed = await gw.identity.remove_member(project_id, member_id)
    if removed is None:
        raise _last_owner(member_id)
    if not removed:
        raise not_found("member", "memberId", member_id)
    return Response(status_code=204)


async def _keep_an_owner(gw: Gateway, project_id: str, member_id: str, role: Role) -> None:
    if leaves_no_owner(await gw.identity.owners(project_id), member_id, role):
        raise _last_owner(member_id)


def _last_owner(member_id: str) -> ApiError:
    return ApiError(
        409,
        "conflict",
        "a project keeps at least one owner",
        (FieldError("memberId", f"'{member_id}' is the project's last owner"),),
    )


# --- project bots ----------------------------------------------------------------------------


@router.post("/projects/{project_id}/bots", status_code=201, tags=["projects"])
async def create_bot(project_id: str, body: BotCreate, gw: GatewayDep, who: PrincipalDep) -> Bot:
    """A bot of this project, a member of it with `role` (Developer by default; services run
    as a bot, and a bot below Developer cannot run them)."""
    await authorize(gw, who, project_id, Role.DEVELOPER)
    if body.role is Role.OWNER:
        await authorize(gw, who, project_id, Role.OWNER)
    bot = Bot(
        id=new_id(),
        project_id=project_id,
        name=body.name,
        created_by=who.subject,
        created_at=gw.clock(),
    )
    if not await gw.identity.create_bot(bot, body.role):
        raise ApiError(
            409, "conflict", f"a bot named '{body.name}' exists", (FieldError("name", "taken"),)
        )
    return bot


@router.get("/projects/{project_id}/bots", tags=["projects"])
async def list_bots(project_id: str, gw: GatewayDep, who: PrincipalDep) -> list[Bot]:
    await authorize(gw, who, project_id, Role.VIEWER)
    return await gw.identity.bots(project_id)


async def _managed_bot(gw: Gateway, who: Principal, project_id: str, bot_id: str) -> Bot:
    """The project's bot, if `who` may hold its credentials or delete it: a Developer of the
    project, or an Owner when the bot owns a project (no one gains through a bot a role they
    do not hold themselves)."""
    await authorize(gw, who, project_id, Role.DEVELOPER)
    bot = await gw.identity.bot(bot_id)
    if bot is None or bot.project_id != project_id:
        raise not_found("bot", "botId", bot_id)
    needed = role_to_hold_bot((await gw.identity.roles_of(bot_id)).values())
    await authorize(gw, who, project_id, needed)
    return bot


@router.delete("/projects/{project_id}/bots/{bot_id}", status_code=204, tags=["projects"])
async def delete_bot(
    project_id: str, bot_id: str, request: Request, gw: GatewayDep, who: PrincipalDep
) -> Response:
    """The bot leaves every project and its tokens stop working at once. 409 if it is the
    last owner of a project."""
    await _managed_bot(gw, who, project_id, bot_id)
    try:
        _forget(request, *await gw.identity.delete_bot(bot_id))
    except LastOwner as e:
        raise ApiError(
            409,
            "conflict",
            f"the bot is the last owner of project '{e.project_id}'; a project keeps an owner",
            (FieldError("botId", "the last owner of a project"),),
        ) from None
    return Response(status_code=204)


@router.post("/projects/{project_id}/bots/{bot_id}/tokens", status_code=201, tags=["projects"])
async def create_bot_token(
    project_id: str, bot_id: str, body: TokenCreate, gw: GatewayDep, who: PrincipalDep
) -> NewToken:
    await _managed_bot(gw, who, project_id, bot_id)
    return await _issue(gw, "bot", bot_id, body)


@router.get("/projects/{project_id}/bots/{bot_id}/tokens", tags=["projects"])
async def list_bot_tokens(
    project_id: str, bot_id: str, gw: GatewayDep, who: PrincipalDep
) -> list[TokenInfo]:
    await _managed_bot(gw, who, project_id, bot_id)
    return await gw.identity.tokens(bot_id)


@router.delete(
    "/projects/{project_id}/bots/{bot_id}/tokens/{token_id}", status_code=204, tags=["projects"]
)
async def revoke_bot_token(
    project_id: str,
    bot_id: str,
    token_id: str,
    request: Request,
    gw: GatewayDep,
    who: PrincipalDep,
) -> Response:
    await _managed_bot(gw, who, project_id, bot_id)
    digest = await gw.identity.revoke_token(bot_id, token_id)
    if digest is None:
        raise not_found("token", "tokenId", token_id)
    _forget(request, digest)
    return Response(status_code=204)
