"""Roles are ordered (owner > developer > viewer > not a member); tokens are long and random."""

from __future__ import annotations

import pytest

from spool_gateway.identity import (
    TOKEN_PREFIX,
    Role,
    allows,
    highest,
    leaves_no_owner,
    new_token,
    role_to_hold_bot,
    service_bot_problem,
)

ORDER = [None, Role.VIEWER, Role.DEVELOPER, Role.OWNER]


@pytest.mark.parametrize("held", ORDER)
@pytest.mark.parametrize("needed", ORDER[1:])
def test_a_role_allows_what_it_or_a_lower_role_needs(held: Role | None, needed: Role) -> None:
    assert allows(held, needed) == (ORDER.index(held) >= ORDER.index(needed))


def test_tokens_are_prefixed_random_and_long() -> None:
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    for token in tokens:
        assert token.startswith(TOKEN_PREFIX)
        assert len(token) - len(TOKEN_PREFIX) >= 43  # 32 random bytes, base64url


@pytest.mark.parametrize(
    ("owners", "member", "role", "leaves"),
    [
        (["a"], "a", None, True),  # the last owner leaves
        (["a"], "a", Role.VIEWER, True),  # ... or is demoted
        (["a"], "a", Role.DEVELOPER, True),
        (["a"], "a", Role.OWNER, False),  # stays owner
        (["a", "b"], "a", None, False),  # another owner remains
        (["a", "b"], "a", Role.VIEWER, False),
        (["a"], "b", None, False),  # someone else leaves
        (["a"], "b", Role.VIEWER, False),
        ([], "b", None, False),  # an admin-made project without owners stays so
    ],
)
def test_a_project_always_keeps_an_owner(
    owners: list[str], member: str, role: Role | None, leaves: bool
) -> None:
    assert leaves_no_owner(owners, member, role) is leaves


@pytest.mark.parametrize(
    ("roles", "top"),
    [
        ((), None),
        ((None,), None),
        ((Role.VIEWER, None), Role.VIEWER),
        ((Role.DEVELOPER, Role.VIEWER), Role.DEVELOPER),
        ((Role.VIEWER, Role.OWNER, Role.DEVELOPER), Role.OWNER),
    ],
)
def test_highest_role(roles: tuple[Role | None, ...], top: Role | None) -> None:
    assert highest(*roles) is top


OWN, DEV, VIEW = Role.OWNER, Role.DEVELOPER, Role.VIEWER


@pytest.mark.parametrize(
    ("bot_roles", "needed"),
    [((), DEV), ((VIEW,), DEV), ((DEV, VIEW), DEV), ((VIEW, OWN), OWN), ((OWN,), OWN)],
)
def test_holding_a_bot_needs_developer_and_its_strongest_role(
    bot_roles: tuple[Role, ...], needed: Role
) -> None:
    assert role_to_hold_bot(bot_roles) is needed


@pytest.mark.parametrize(
    ("bot_roles", "deployer", "problem"),
    [
        pytest.param({"p": DEV}, DEV, None, id="developer-bot-developer-deployer"),
        pytest.param({"p": OWN}, OWN, None, id="owner-bot-owner-deployer"),
        pytest.param({"p": DEV, "q": VIEW}, DEV, None, id="viewer-elsewhere-is-fine"),
        pytest.param({"p": VIEW}, OWN, "the bot is viewer in the project", id="viewer-bot"),
        pytest.param({"q": DEV}, OWN, "the bot is not a member in the project", id="not-a-member"),
        pytest.param({"p": OWN}, DEV, "the bot is owner in a project", id="owner-bot"),
        pytest.param({"p": DEV, "q": OWN}, DEV, "(you: developer)", id="owner-elsewhere"),
    ],
)
def test_a_service_bot_is_a_developer_here_and_no_stronger_than_its_deployer(
    bot_roles: dict[str, Role], deployer: Role, problem: str | None
) -> None:
    found = service_bot_problem("p", bot_roles, deployer)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found
