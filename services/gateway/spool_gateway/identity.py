"""Pure: roles in a project, what each may do, and new bearer tokens.

A project member is a user or a bot with one role. Roles are ordered: an Owner may do what a
Developer may, a Developer what a Viewer may. Viewers read; Developers push packages, deploy
services and triggers, run executions and manage bots; Owners also manage members.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Iterable, Mapping
from enum import StrEnum

TOKEN_PREFIX = "spl_"  # noqa: S105 - a public prefix, not a secret


class Role(StrEnum):
    OWNER = "owner"
    DEVELOPER = "developer"
    VIEWER = "viewer"


_RANK = {Role.VIEWER: 0, Role.DEVELOPER: 1, Role.OWNER: 2}


def allows(role: Role | None, needed: Role) -> bool:
    """Whether a member with `role` (None: not a member) may do what needs `needed`."""
    return role is not None and _RANK[role] >= _RANK[needed]


def highest(*roles: Role | None) -> Role | None:
    """The highest of the roles (None: no role at all)."""
    held = [r for r in roles if r is not None]
    return max(held, key=_RANK.__getitem__) if held else None


def role_to_hold_bot(bot_roles: Iterable[Role]) -> Role:
    """The role one needs in a bot's project to hold its credentials (its tokens, or a
    service whose code runs as it): at least Developer, and at least the bot's strongest role
    anywhere, so that no one gains a role through a bot."""
    strongest = highest(Role.DEVELOPER, *bot_roles)
    assert strongest is not None
    return strongest


def service_bot_problem(
    project_id: str, bot_roles: Mapping[str, Role], deployer: Role
) -> str | None:
    """Why a bot with `bot_roles` (project -> role) cannot run a service of `project_id`
    deployed by someone with the role `deployer` there; None when it can."""
    here = bot_roles.get(project_id)
    if not allows(here, Role.DEVELOPER):
        return (
            f"the bot is {here or 'not a member'} in the project; "
            "a service's bot must be a developer or owner"
        )
    needed = role_to_hold_bot(bot_roles.values())
    if not allows(deployer, needed):
        return (
            f"the bot is {needed} in a project; running a service as it needs that "
            f"role here (you: {deployer})"
        )
    return None


def leaves_no_owner(owners: Collection[str], member_id: str, role: Role | None) -> bool:
    """Whether giving `member_id` the role `role` (None: removing it) would leave a project
    whose owners are `owners` without one. A project always keeps an owner."""
    return role is not Role.OWNER and set(owners) == {member_id}


def new_token() -> str:
    """A bearer token: 256 random bits, URL-safe, with a prefix that secret scanners know."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)
