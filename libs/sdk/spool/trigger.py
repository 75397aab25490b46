"""Triggers: run a service's function when an entity event matches (Event), or on a schedule
(Cron). `service.triggers.create(...)` takes dtlpy's arguments; arguments left out take the
gateway's defaults, which are dtlpy's (resource Item, actions [Created], executionMode Once,
function `run`, name = the service's)."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from spool.client import Bound, Client
from spool.entity import Entity
from spool.errors import BadRequest, Detail, required
from spool.event import event_body, project_of
from spool.filters import Filters
from spool_common import models
from spool_common.models import (
    TriggerAction,
    TriggerExecutionMode,
    TriggerResource,
    TriggerType,
    WireModel,
)

EVENT_ONLY = ("filters", "resource", "actions", "execution_mode")
CRON_ONLY = ("cron", "start_at", "end_at")


def _either(name: str, value: Any, alias: str, other: Any) -> Any:
    if value is not None and other is not None and value != other:
        raise BadRequest(f"give {name} or {alias}, not both", details=(Detail(name, "twice"),))
    return value if value is not None else other


def _time(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def _filter(filters: Filters | Mapping[str, Any]) -> dict[str, Any]:
    return filters.prepare()["filter"] if isinstance(filters, Filters) else dict(filters)


def trigger_spec(kind: TriggerType, operation: dict[str, Any], **given: Any) -> dict[str, Any]:
    """Pure: the trigger's `spec` from the arguments given (None: left to the gateway).
    Arguments of the other kind of trigger are refused, not silently dropped."""
    wrong = EVENT_ONLY if kind is TriggerType.CRON else CRON_ONLY
    misplaced = [k for k in wrong if given.get(k) is not None]
    if misplaced:
        raise BadRequest(
            f"{', '.join(misplaced)}: not used by a {kind.value} trigger",
            details=tuple(Detail(k, f"not used by a {kind.value} trigger") for k in misplaced),
        )
    actions = given.get("actions")
    spec = {
        "operation": operation,
        "input": given.get("inputs"),
        "cron": given.get("cron"),
        "startAt": _time(given.get("start_at")),
        "endAt": _time(given.get("end_at")),
        "resource": given.get("resource"),
        "actions": [actions] if isinstance(actions, str) else actions,
        "executionMode": given.get("execution_mode"),
        "filter": _filter(given["filters"]) if given.get("filters") is not None else None,
    }
    return {k: v for k, v in spec.items() if v is not None}


class Trigger(models.Trigger, Entity):
    @classmethod
    def _merged(cls, path: str) -> bool:
        """The gateway merges `spec` key by key, but replaces `spec.filter` and `spec.input`."""
        return path == "spec"

    def update(self) -> Trigger:
        """Send what changed (`trigger.active = False`, `trigger.spec.filter = {...}`)."""
        return self._refresh(self.client.patch(f"/triggers/{self.id}", self.changes()))

    def delete(self) -> None:
        self.client.delete(f"/triggers/{self.id}")

    def __repr__(self) -> str:
        return (
            f"Trigger(id={self.id!r}, name={self.name!r}, type={self.type.value!r}, "
            f"active={self.active!r})"
        )

    __str__ = __repr__


class TriggerVerdict(WireModel):
    """A dry run's answer for one trigger: whether the event would fire it, and why not."""

    trigger_id: str
    name: str
    fires: bool
    reason: str


class Triggers(Bound):
    """Triggers of every service, of a project's (`project.triggers`) or of one service's
    (`service.triggers`)."""

    def __init__(
        self,
        client: Client | None = None,
        service: models.Service | None = None,
        project_id: str | None = None,
    ):
        super().__init__(client)
        self._service = service
        self._project_id = project_id or (service.project_id if service is not None else None)

    def _target(self, service_id: str | None, project_id: str | None) -> tuple[str, str]:
        if service_id is None and self._service is not None:
            return self._service.id, project_id or self._service.project_id
        if service_id is None:
            raise required("service_id=", "serviceId")
        if project_id is None:
            project_id = str(self.client.get(f"/services/{service_id}")["projectId"])
        return service_id, project_id

    def create(
        self,
        service_id: str | None = None,
        trigger_type: TriggerType | str | None = None,
        name: str | None = None,
        function_name: str = models.DEFAULT_FUNCTION_NAME,
        project_id: str | None = None,
        active: bool = True,
        filters: Filters | Mapping[str, Any] | None = None,
        resource: TriggerResource | str | None = None,
        actions: Sequence[TriggerAction | str] | TriggerAction | str | None = None,
        execution_mode: TriggerExecutionMode | str | None = None,
        start_at: datetime | str | None = None,
        end_at: datetime | str | None = None,
        inputs: Mapping[str, Any] | None = None,
        cron: str | None = None,
        *,
        type: TriggerType | str | None = None,  # an alias of trigger_type
        execution_input: Mapping[str, Any] | None = None,
    ) -> Trigger:
        """An Event trigger (default) or, with `trigger_type=TriggerType.CRON` and `cron`,
        a Cron trigger. `type` and `execution_input` are aliases of `trigger_type` and
        `inputs`."""
        kind = TriggerType(_either("trigger_type", trigger_type, "type", type) or "Event")
        target, project = self._target(service_id, project_id)
        operation = {"type": "function", "serviceId": target, "functionName": function_name}
        spec = trigger_spec(
            kind,
            operation,
            filters=filters,
            resource=resource,
            actions=actions,
            execution_mode=execution_mode,
            start_at=start_at,
            end_at=end_at,
            cron=cron,
            inputs=_either("inputs", inputs, "execution_input", execution_input),
        )
        body = {"name": name, "projectId": project, "type": kind, "active": active, "spec": spec}
        created = self.client.post("/triggers", {k: v for k, v in body.items() if v is not None})
        return Trigger.from_json(self.client, created)

    def get(self, trigger_id: str) -> Trigger:
        return Trigger.from_json(self.client, self.client.get(f"/triggers/{trigger_id}"))

    def list(
        self, project_id: str | None = None, service_id: str | None = None
    ) -> builtins.list[Trigger]:
        if service_id is None and self._service is not None:
            service_id = self._service.id
        project_id = project_id or self._project_id
        found = self.client.get("/triggers", projectId=project_id, serviceId=service_id)
        return [Trigger.from_json(self.client, t) for t in found]

    def dry_run(
        self,
        resource: TriggerResource | str = TriggerResource.ITEM,
        action: TriggerAction | str = TriggerAction.CREATED,
        entity: Mapping[str, Any] | None = None,
        entity_id: str | None = None,
        project_id: str | None = None,
    ) -> builtins.list[TriggerVerdict]:
        """Whether each trigger of the project (every one, also from `service.triggers`)
        would fire on this event, and if not why; nothing is created or run."""
        event = event_body(resource, action, entity, entity_id)
        body = {"projectId": project_of(project_id, None, self._project_id), "event": event}
        found = self.client.post("/triggers/dry-run", body)
        return [TriggerVerdict.model_validate(v) for v in found]
