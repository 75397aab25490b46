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
