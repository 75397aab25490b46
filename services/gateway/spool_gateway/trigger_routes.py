"""HTTP routes for triggers (Dataloop's JSON: create with its defaults, get, merge-patch update,
delete, list, dry run) and for entity events (`POST /events`), which the trigger engine
matches against the triggers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response
from pydantic import Field

from spool_common.errors import FieldError, ValidationFailure
from spool_common.models import Trigger, TriggerAction, TriggerResource, WireModel
from spool_gateway import trigger_ops
from spool_gateway.access import authorize, projects_visible, service_of, trigger_of
from spool_gateway.api import GatewayDep, PrincipalDep
from spool_gateway.event_ops import EventRequest, publish_event
from spool_gateway.event_rules import checked_entity
from spool_gateway.identity import Role

router = APIRouter(tags=["triggers"])

EVENT_TRIGGER = {
    "name": "on-image",
    "projectId": "P",
    "type": "Event",
    "active": True,
    "spec": {
        "resource": "Item",
        "actions": ["Created"],
        "executionMode": "Once",
        "filter": {"$and": [{"metadata.system.mimetype": "image/*"}]},
        "input": {},
        "operation": {"type": "function", "serviceId": "S", "functionName": "run"},
    },
}
CRON_TRIGGER = {
    "name": "nightly",
    "projectId": "P",
    "type": "Cron",
    "spec": {
        "cron": "0 5 * * *",
        "startAt": "2024-05-01T00:00:00Z",
        "endAt": None,
        "input": {"config": {"k": 1}},
        "operation": {"type": "function", "serviceId": "S", "functionName": "run"},
    },
}
TriggerBody = Annotated[dict[str, Any], Body(examples=[EVENT_TRIGGER, CRON_TRIGGER])]


class EventIn(WireModel):
    resource: TriggerResource
    action: TriggerAction
    entity_id: str | None = Field(default=None, description="default: entity.id")
    entity: dict[str, Any] = Field(default_factory=dict, description="the entity's JSON")


class EventPublish(EventIn):
    project_id: str
    user_id: str | None = None
    origin_execution_id: str | None = Field(
        default=None,
        description="the execution whose code caused this event: the event's origin chain "
        "extends that execution's (the trigger engine stops loops with it)",
    )


class DryRun(WireModel):
    project_id: str
    event: EventIn


class Verdict(WireModel):
    trigger_id: str
    name: str
    fires: bool
    reason: str


@router.post("/triggers", status_code=201)
async def create_trigger(body: TriggerBody, gw: GatewayDep, who: PrincipalDep) -> Trigger:
    """Create a trigger. Defaults: type Event, active, spec.operation.functionName `run`,
    resource Item, actions [Created] (also for an empty list), executionMode Once, filter {},
    input {}, name = the service's name, projectId = the service's project. 409 if the project
    has a trigger of that name. Needs the Developer role in the project."""
    if isinstance(project_id := body.get("projectId"), str):
        await authorize(gw, who, project_id, Role.DEVELOPER)
    elif project_id is None and isinstance(service_id := _target(body), str):
        service, _ = await service_of(gw, who, service_id, Role.DEVELOPER)
        body = {**body, "projectId": service.project_id}
    return await trigger_ops.create(gw, body, who.subject)


def _target(body: dict[str, Any]) -> object:
    """spec.operation.serviceId of a trigger body, if it has that shape."""
    spec = body.get("spec")
    operation = spec.get("operation") if isinstance(spec, dict) else None
    return operation.get("serviceId") if isinstance(operation, dict) else None


@router.get("/triggers")
async def list_triggers(
    gw: GatewayDep,
    who: PrincipalDep,
    project_id: Annotated[str | None, Query(alias="projectId")] = None,
    service_id: Annotated[str | None, Query(alias="serviceId")] = None,
) -> list[Trigger]:
    """The triggers of the projects the caller is a member of (a deleted service's: none)."""
    return await gw.triggers.find(await projects_visible(gw, who, project_id), service_id)


@router.post("/triggers/dry-run")
async def dry_run(body: DryRun, gw: GatewayDep, who: PrincipalDep) -> list[Verdict]:
    """Whether each trigger of the project would fire on this event, and if not, why
    (inactive, Cron, another resource or action, the filter clause that fails). Nothing is
    published or created; Once mode is not considered."""
    await authorize(gw, who, body.project_id, Role.VIEWER)
    event = body.event
    entity = checked_entity(event.resource, event.action, event.entity, event.entity_id, "event.")
    verdicts = await trigger_ops.dry_run_all(
        gw, body.project_id, event.resource, event.action, entity.entity
    )
    return [Verdict.model_validate(v) for v in verdicts]


@router.get("/triggers/{trigger_id}")
async def get_trigger(trigger_id: str, gw: GatewayDep, who: PrincipalDep) -> Trigger:
    return (await trigger_of(gw, who, trigger_id))[0]


@router.patch("/triggers/{trigger_id}")
async def update_trigger(
    trigger_id: str, body: dict[str, Any], gw: GatewayDep, who: PrincipalDep
) -> Trigger:
    """JSON merge patch (null removes a field, which takes its default again); spec.filter and
    spec.input are replaced whole. Checked as a create; dtlpy's whole Trigger JSON is accepted
    (id, projectId and type may not change)."""
    await trigger_of(gw, who, trigger_id, Role.DEVELOPER)
    return await trigger_ops.update(gw, trigger_id, body, who.subject)


@router.delete("/triggers/{trigger_id}", status_code=204, response_class=Response)
async def delete_trigger(trigger_id: str, gw: GatewayDep, who: PrincipalDep) -> Response:
    await trigger_of(gw, who, trigger_id, Role.DEVELOPER)
    await trigger_ops.delete(gw, trigger_id)
    return Response(status_code=204)


@router.post("/events", status_code=202)
async def post_event(body: EventPublish, gw: GatewayDep, who: PrincipalDep) -> dict[str, str]:
    """Something happened to an entity: published as `entity.<Resource>.<Action>` for the
    trigger engine. Accepted (202) means it will be published. Needs the Developer role in
    the project; `userId` is the caller's own unless the admin names another user."""
    entity = checked_entity(body.resource, body.action, body.entity, body.entity_id)
    if not who.is_admin and body.user_id not in (None, who.subject):
        raise ValidationFailure(
            FieldError("userId", "only the admin publishes events on another user's behalf")
        )
    await authorize(gw, who, body.project_id, Role.DEVELOPER)
    request = EventRequest(
        body.resource,
        body.action,
        body.project_id,
        entity,
        body.user_id if who.is_admin else who.subject,
        body.origin_execution_id,
    )
    event = await publish_event(gw, request)
    return {"id": event.id}
