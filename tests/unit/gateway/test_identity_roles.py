"""Roles are ordered (owner > developer > viewer > not a member); tokens are long and random."""

from __future__ import annotations

import pytest

from spool_gateway.identity import TOKEN_PREFIX, Role, allows, new_token

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
