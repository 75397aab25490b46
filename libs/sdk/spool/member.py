"""A project's members (users and bots, each with one role) and its bots, the non-human
members services run as. `project.members.add(user.id, spool.MemberRole.DEVELOPER)`,
`bot = project.bots.create("reporting")`, `bot.tokens.create(name="ci")`."""

from __future__ import annotations

import builtins
from datetime import datetime
from enum import StrEnum

from spool.client import Bound, Client
from spool.entity import Entity
from spool.user import Tokens
from spool_common.models import WireModel


class MemberRole(StrEnum):
    OWNER = "owner"  # also adds, changes and removes members
    DEVELOPER = "developer"  # also pushes, deploys, runs, and manages secrets and bots
    VIEWER = "viewer"  # reads


class Member(WireModel):
    project_id: str
    member_id: str  # a user's or a bot's id
    member_kind: str  # user | bot
    role: MemberRole
    added_at: datetime


class Members(Bound):
    def __init__(self, client: Client | None, project_id: str) -> None:
        super().__init__(client)
        self._path = f"/projects/{project_id}/members"

    def list(self) -> builtins.list[Member]:
        return [Member.model_validate(m) for m in self.client.get(self._path)]

    def add(self, member_id: str, role: MemberRole | str = MemberRole.DEVELOPER) -> Member:
        """Add a user or a bot (of any project) with `role`; a member already: change it."""
        body = {"memberId": member_id, "role": role}
        return Member.model_validate(self.client.post(self._path, body))

    def update(self, member_id: str, role: MemberRole | str) -> Member:
        path = f"{self._path}/{member_id}"
        return Member.model_validate(self.client.put(path, {"role": role}))

    def remove(self, member_id: str) -> None:
        """409 if the member is the project's last owner."""
        self.client.delete(f"{self._path}/{member_id}")


class Bot(Entity):
    id: str
    project_id: str
    name: str
    created_by: str | None = None
    created_at: datetime

    @property
    def tokens(self) -> Tokens:
        """The bot's tokens: `bot.tokens.create(name="ci")` answers a token, once."""
        return Tokens(self.client, f"/projects/{self.project_id}/bots/{self.id}/tokens")

    def delete(self) -> None:
        """The bot leaves every project; its tokens stop working at once."""
        self.client.delete(f"/projects/{self.project_id}/bots/{self.id}")


class Bots(Bound):
    def __init__(self, client: Client | None, project_id: str) -> None:
        super().__init__(client)
        self._path = f"/projects/{project_id}/bots"

    def create(self, name: str, role: MemberRole | str = MemberRole.DEVELOPER) -> Bot:
        """A bot of the project, and a member of it with `role`."""
        return Bot.from_json(
            self.client, self.client.post(self._path, {"name": name, "role": role})
        )

    def list(self) -> builtins.list[Bot]:
        return [Bot.from_json(self.client, b) for b in self.client.get(self._path)]

    def delete(self, bot_id: str) -> None:
        self.client.delete(f"{self._path}/{bot_id}")
