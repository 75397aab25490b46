"""Projects: the unit of ownership and access. `spool.projects.create("mine")`."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

from spool.client import Bound
from spool.entity import Entity
from spool.errors import BadRequest, Detail, NotFound
from spool.notification import Notification, find_notifications
from spool_common import models
from spool_common.messages import NotificationType

if TYPE_CHECKING:
    from spool.event import Events
    from spool.member import Bots, Members
    from spool.package import Packages
    from spool.secret import Secrets
    from spool.service import Services
    from spool.trigger import Triggers


class Project(models.Project, Entity):
    @property
    def packages(self) -> Packages:
        """This project's packages: `project.packages.push(src_path=...)`."""
        from spool.package import Packages

        return Packages(self.client, project_id=self.id)

    @property
    def services(self) -> Services:
        from spool.service import Services

        return Services(self.client, project_id=self.id)

    @property
    def triggers(self) -> Triggers:
        """The triggers of the project's services; `project.triggers.dry_run(...)`."""
        from spool.trigger import Triggers

        return Triggers(self.client, project_id=self.id)

    @property
    def events(self) -> Events:
        """`project.events.publish(entity={...})` fires the project's Event triggers."""
        from spool.event import Events

        return Events(self.client, project_id=self.id)

    @property
    def secrets(self) -> Secrets:
        from spool.secret import Secrets

        return Secrets(self.client, self.id)

    @property
    def members(self) -> Members:
        from spool.member import Members

        return Members(self.client, self.id)

    @property
    def bots(self) -> Bots:
        from spool.member import Bots

        return Bots(self.client, self.id)

    def notifications(
        self,
        type: NotificationType | str | None = None,
        limit: int = 100,
        offset: int = 0,
        service_id: str | None = None,
    ) -> builtins.list[Notification]:
        """The project's service notifications, newest first (of one type, one service)."""
        return find_notifications(
            self.client,
            "/notifications",
            type,
            limit,
            offset,
            projectId=self.id,
            serviceId=service_id,
        )


def only_one(found: list[Any], kind: str, field: str, name: str, scope: str = "") -> Any:
    """The single match of a lookup by name; NotFound for none, BadRequest for several."""
    if not found:
        raise NotFound(
            f"{kind} '{name}' not found{scope}", details=(Detail(field, f"no such {kind}"),)
        )
    if len(found) > 1:
        raise BadRequest(
            f"{len(found)} {kind}s are named '{name}'; give project_id to choose one",
            details=(Detail("projectId", "required to tell them apart"),),
        )
    return found[0]


def need_one(given: dict[str, str | None]) -> None:
    """`get` takes an id or a name: exactly one of `given`'s keys must be set."""
    if sum(v is not None for v in given.values()) != 1:
        names = " or ".join(f"{k}=" for k in given)
        raise BadRequest(
            f"give exactly one of {names}", details=(Detail(next(iter(given)), "required"),)
        )


class Projects(Bound):
    def create(self, name: str) -> Project:
        return Project.from_json(self.client, self.client.post("/projects", {"name": name}))

    def get(self, project_id: str | None = None, project_name: str | None = None) -> Project:
        need_one({"project_id": project_id, "project_name": project_name})
        if project_id is not None:
            return Project.from_json(self.client, self.client.get(f"/projects/{project_id}"))
        found = self.client.get("/projects", name=project_name)
        return Project.from_json(
            self.client, only_one(found, "project", "projectName", str(project_name))
        )

    def list(self) -> builtins.list[Project]:
        """The projects this token is a member of (every project, for the admin token)."""
        return [Project.from_json(self.client, p) for p in self.client.get("/projects")]
