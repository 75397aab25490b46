"""Entity events: tell the trigger engine that something happened to an item, a dataset...
`spool.events.publish(project=project, entity={"id": "i-1", "dir": "/in"})` fires the
project's matching Event triggers. `project.triggers.dry_run(...)` says which would fire."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from spool.client import Bound, Client
from spool.errors import required
from spool_common.models import TriggerAction, TriggerResource

if TYPE_CHECKING:
    from spool.project import Project


def event_body(
    resource: TriggerResource | str,
    action: TriggerAction | str,
    entity: Mapping[str, Any] | None,
    entity_id: str | None,
) -> dict[str, Any]:
    """Pure: the API's event JSON (`entityId` left out: the gateway takes `entity.id`)."""
    body = {"resource": resource, "action": action, "entity": dict(entity or {})}
    return body | ({"entityId": entity_id} if entity_id is not None else {})


def project_of(project_id: str | None, project: Project | None, bound: str | None) -> str:
    """The project a call is about: `project_id=`, else `project=`, else the bound one."""
    chosen = project_id or (project.id if project is not None else None) or bound
    if chosen is None:
        raise required("project_id= or project=", "projectId")
    return chosen


class Events(Bound):
    """Publishing entity events: `spool.events`, or a project's (`project.events`)."""

    def __init__(self, client: Client | None = None, project_id: str | None = None) -> None:
        super().__init__(client)
        self._project_id = project_id

    def publish(
        self,
        project_id: str | None = None,
        project: Project | None = None,
        resource: TriggerResource | str = TriggerResource.ITEM,
        action: TriggerAction | str = TriggerAction.CREATED,
        entity: Mapping[str, Any] | None = None,
        entity_id: str | None = None,
        *,
        origin_execution_id: str | None = None,
    ) -> str:
        """Publish `resource` `action` on `entity` (its JSON; its id is `entity_id`, else
        `entity["id"]`). Answers the event's id once the gateway accepted it. From inside a
        function, pass the running execution's id as `origin_execution_id`: the trigger
        engine then stops a trigger that keeps firing on its own output."""
        body = event_body(resource, action, entity, entity_id)
        body["projectId"] = project_of(project_id, project, self._project_id)
        if origin_execution_id is not None:
            body["originExecutionId"] = origin_execution_id
        return str(self.client.post("/events", body)["id"])
