"""Users and API tokens. The admin creates users (`spool.users.create("ada")` answers the
user's first token, shown once); a user manages their own tokens (`spool.users.tokens`), a
project's Developers its bots' (`bot.tokens`). A token is shown only when it is created:
the API keeps a hash, and lists answer `TokenInfo`, never the token."""

from __future__ import annotations

import builtins
from datetime import datetime

from spool.client import Bound, Client
from spool_common.models import WireModel


class User(WireModel):
    id: str
    name: str
    created_at: datetime


class TokenInfo(WireModel):
    """A token as its owner sees it: never the token itself."""

    id: str
    name: str | None = None
    kind: str  # user | bot
    subject: str  # the user's or bot's id
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


class NewToken(WireModel):
    """A token just created: `token` (spl_...) appears here, once, and nowhere else."""

    token: str
    info: TokenInfo

    def __repr__(self) -> str:
        return f"NewToken(info={self.info!r})"  # the token stays out of logs and tracebacks

    __str__ = __repr__


class NewUser(WireModel):
    user: User
    token: NewToken


class Tokens(Bound):
    """The tokens of the caller (`spool.users.tokens`) or of a bot (`bot.tokens`)."""

    def __init__(self, client: Client | None = None, path: str = "/users/me/tokens") -> None:
        super().__init__(client)
        self._path = path

    def create(self, name: str | None = None, expires_in: int | None = None) -> NewToken:
        """A new token; `expires_in` seconds (60 s to 366 days; None: never expires)."""
        body = {"name": name, "expiresIn": expires_in}
        created = self.client.post(self._path, {k: v for k, v in body.items() if v is not None})
        return NewToken.model_validate(created)

    def list(self) -> builtins.list[TokenInfo]:
        return [TokenInfo.model_validate(t) for t in self.client.get(self._path)]

    def revoke(self, token_id: str) -> None:
        """The token stops working at once (on other gateways within a few seconds)."""
        self.client.delete(f"{self._path}/{token_id}")


class Users(Bound):
    def me(self) -> User:
        """The user the token belongs to (403 for a bot's or the admin token)."""
        return User.model_validate(self.client.get("/users/me"))

    def create(self, name: str) -> NewUser:
        """A new user and their first token (admin token only)."""
        return NewUser.model_validate(self.client.post("/users", {"name": name}))

    def list(self) -> builtins.list[User]:
        """Every user (admin token only)."""
        return [User.model_validate(u) for u in self.client.get("/users")]

    @property
    def tokens(self) -> Tokens:
        """The caller's own tokens (a user's token only)."""
        return Tokens(self._fixed, "/users/me/tokens")
