"""Use cases for triggers: create, update, delete (each one revision and one `trigger.*`
event in the same transaction), the triggers of a deploy from file, and dry runs. Everything
is checked before anything is written."""

from __future__ import annotations

import uuid
from typing import Any

from spool_common.errors import FieldError, ValidationFailure
from spool_common.models import PackageModule, Service, Trigger, TriggerAction, TriggerResource
from spool_gateway.core import Gateway
from spool_gateway.event_rules import dry_run
from spool_gateway.http_errors import ApiError, not_found
from spool_gateway.trigger_rules import (
    TriggerDraft,
    build_trigger,
    check_trigger,
    patched_body,
    read_trigger,
)
from spool_gateway.triggers_store import NameTaken

SERVICE_FIELD = "spec.operation.serviceId"


def _taken(name: str) -> ApiError:
    return ApiError(
        409,
        "conflict",
        f"a trigger named '{name}' exists in this project",
        (FieldError("name", "already taken"),),
    )


def _conflict(trigger_id: str) -> ApiError:
    return ApiError(
        409,
        "conflict",
        f"trigger '{trigger_id}' changed meanwhile; retry",
        (FieldError("triggerId", "updated concurrently"),),
    )


async def module_of(gw: Gateway, service: Service) -> PackageModule:
    """The module the service runs, in the package revision it pins."""
    package = await gw.catalog.package_revision(service.package_id, service.package_revision)
    module = package.module(service.module_name) if package else None
    if module is None:  # a deployed service always has it; its package cannot be deleted
        raise ValidationFailure.of(SERVICE_FIELD, "the service's module cannot be found")
    return module


async def _checked(gw: Gateway, draft: TriggerDraft) -> tuple[TriggerDraft, Service]:
    """The draft checked against the service it targets, in the draft's project."""
    if await gw.catalog.project(draft.project_id) is None:
        raise not_found("project", "projectId", draft.project_id)
    found = await gw.services.get(draft.spec.operation.service_id)
    if found is None or found[0].project_id != draft.project_id:
        raise ValidationFailure.of(SERVICE_FIELD, "no such service in this project")
    service = found[0]
    check_trigger(draft, await module_of(gw, service))
    return draft, service


async def create(gw: Gateway, body: dict[str, Any], who: str) -> Trigger:
    draft, service = await _checked(gw, read_trigger(body))
    trigger = build_trigger(
        draft,
        name=draft.name or service.name,
        trigger_id=uuid.uuid4().hex,
        who=who,
        now=gw.clock(),
        previous=None,
    )
    try:
        written = await gw.triggers.create(trigger, gw.deployments.announce_trigger)
    except NameTaken as e:
        raise _taken(trigger.name) from e
    gw.relay.hand_over(*written)
    return trigger


async def get(gw: Gateway, trigger_id: str) -> tuple[Trigger, int]:
    found = await gw.triggers.get(trigger_id)
    if found is None:
        raise not_found("trigger", "triggerId", trigger_id)
    return found


async def update(gw: Gateway, trigger_id: str, patch: dict[str, Any], who: str) -> Trigger:
    """A JSON merge patch over the trigger (trigger_rules.patched_body), checked as a create."""
    current, revision = await get(gw, trigger_id)
    draft, service = await _checked(gw, read_trigger(patched_body(current, patch)))
    trigger = build_trigger(
        draft,
        name=draft.name or service.name,
        trigger_id=current.id,
        who=who,
        now=gw.clock(),
        previous=current,
    )
    try:
        written = await gw.triggers.update(trigger, revision, gw.deployments.announce_trigger)
    except NameTaken as e:
        raise _taken(trigger.name) from e
    if written is None:
        raise _conflict(trigger_id)
    gw.relay.hand_over(*written)
    return trigger


async def delete(gw: Gateway, trigger_id: str) -> None:
    rows, ids = await gw.triggers.delete(trigger_id, gw.deployments.announce_trigger)
    if not ids:
        raise not_found("trigger", "triggerId", trigger_id)
    gw.relay.hand_over(rows, ids)


# --- deploy from file ------------------------------------------------------------------------


def manifest_drafts(
    raw: object, module: PackageModule, project_id: str, where: str
) -> list[TriggerDraft]:
    """A package.json service's `triggers`, each read and checked against the module the
    service will run (no service id yet: it is set once the service is deployed)."""
    if not isinstance(raw, list):
        raise ValidationFailure.of(where, "must be a list")
    drafts = []
    for j, item in enumerate(raw):
        at = f"{where}[{j}]."
        if not isinstance(item, dict):
            raise ValidationFailure.of(at.rstrip("."), "must be a trigger object")
        spec = item.get("spec") or {}
        if isinstance(spec, dict):  # the service is not deployed yet: its id comes later
            operation = spec.get("operation")
            operation = {**(operation if isinstance(operation, dict) else {})}
            spec = {**spec, "operation": {**operation, "serviceId": "to-be-deployed"}}
        draft = read_trigger({**item, "projectId": project_id, "spec": spec}, at)
        check_trigger(draft, module, at)
        drafts.append(draft)
    return drafts


async def store_for(gw: Gateway, draft: TriggerDraft, service: Service, who: str) -> Trigger:
    """Create or replace (by project and name) a manifest's trigger of `service`."""
    operation = draft.spec.operation.model_copy(update={"service_id": service.id})
    spec = draft.spec.model_copy(update={"operation": operation})
    targeted = TriggerDraft(draft.name, draft.project_id, draft.type, draft.active, spec)
    trigger = build_trigger(
        targeted,
        name=draft.name or service.name,
        trigger_id=uuid.uuid4().hex,
        who=who,
        now=gw.clock(),
        previous=None,
    )
    stored, row, row_id = await gw.triggers.upsert(trigger, gw.deployments.announce_trigger)
    gw.relay.hand_over([row], [row_id])
    return stored


# --- dry run ---------------------------------------------------------------------------------


async def dry_run_all(
    gw: Gateway,
    project_id: str,
    resource: TriggerResource,
    action: TriggerAction,
    entity: dict[str, Any],
) -> list[dict[str, Any]]:
    """Whether each trigger of the project would fire on this event, and why not."""
    verdicts = []
    for trigger in await gw.triggers.find([project_id], None):
        fires, reason = dry_run(trigger, resource, action, entity)
        verdicts.append(
            {"triggerId": trigger.id, "name": trigger.name, "fires": fires, "reason": reason}
        )
    return verdicts
