"""Pure rules for triggers: the request's shape and Dataloop's create defaults, which actions
each resource has, which function input receives the entity, the checks against the function a
trigger runs, and updates as JSON merge patches. No I/O, no clock.

Resource -> actions (../shared/reference/dataloop-faas.md §4.1). The source table stops before
Assignment's row; Assignment takes the same actions as Task (Created, Updated, Deleted,
statusChanged), as both have a status that moves through a workflow. Model is not in the
table; it takes Created, Updated, Deleted like the other plain entities.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from pydantic import Field, ValidationError, field_validator

from spool_common.cron import assume_utc, parse_cron
from spool_common.dql import DqlError, compile_filter
from spool_common.errors import FieldError, ValidationFailure, from_pydantic, raise_if_any
from spool_common.models import (
    CronTriggerSpec,
    EventTriggerSpec,
    FunctionIO,
    PackageFunction,
    PackageInputType,
    PackageModule,
    Trigger,
    TriggerAction,
    TriggerResource,
    TriggerType,
    WireModel,
)
from spool_gateway.deployment_rules import merge_patch
from spool_gateway.inputs import validate_input

_R, _A, _T = TriggerResource, TriggerAction, PackageInputType
_PLAIN = (_A.CREATED, _A.UPDATED, _A.DELETED)
RESOURCE_ACTIONS: dict[TriggerResource, tuple[TriggerAction, ...]] = {
    _R.ITEM: (*_PLAIN, _A.CLONE),
    _R.DATASET: _PLAIN,
    _R.ANNOTATION: _PLAIN,
    _R.ITEM_STATUS: (_A.UPDATED, _A.TASK_ASSIGNED),
    _R.TASK: (*_PLAIN, _A.STATUS_CHANGED),
    _R.ASSIGNMENT: (*_PLAIN, _A.STATUS_CHANGED),
    _R.MODEL: _PLAIN,
}
# The function input type that receives the entity of an event on each resource.
ENTITY_TYPES: dict[TriggerResource, PackageInputType] = {
    _R.ITEM: _T.ITEM,
    _R.DATASET: _T.DATASET,
    _R.ANNOTATION: _T.ANNOTATION,
    _R.ITEM_STATUS: _T.ITEM,
    _R.TASK: _T.TASK,
    _R.ASSIGNMENT: _T.ASSIGNMENT,
    _R.MODEL: _T.MODEL,
}
EVENT_ONLY = ("filter", "resource", "actions", "executionMode", "execution_mode")
MAX_FILTER_BYTES = 64 * 1024
# Fields of a Trigger the server owns: an update may repeat them; these may not change.
FIXED = ("id", "projectId", "type")
READ_ONLY = frozenset(
    {*FIXED, "creator", "createdAt", "updatedAt", "updatedBy", "url", "scope", "global"}
)


def action_problem(resource: TriggerResource, action: TriggerAction) -> str | None:
    """None if `resource` has `action`, else why not."""
    allowed = RESOURCE_ACTIONS[resource]
    if action in allowed:
        return None
    names = ", ".join(a.value for a in allowed)
    return f"{resource.value} has no action '{action.value}' (its actions: {names})"


def entity_input(function: PackageFunction, resource: TriggerResource) -> FunctionIO | None:
    """The function's first input of the resource's entity type: it receives the entity."""
    kind = ENTITY_TYPES[resource]
    return next((io for io in function.input if io.type is kind), None)


class _Body(WireModel):
    name: str | None = None
    project_id: str = Field(min_length=1)
    type: TriggerType = TriggerType.EVENT
    active: bool = True
    spec: dict[str, Any]

    @field_validator("name")
    @classmethod
    def _name(cls, name: str | None) -> str | None:
        if name is not None and not valid_name(name):
            raise ValueError(
                "must be 1-128 characters without control characters, "
                "and not start or end with a space"
            )
        return name


def valid_name(name: str) -> bool:
    printable = all(ch.isprintable() for ch in name)
    return 0 < len(name) <= 128 and printable and name == name.strip()


@dataclass(frozen=True)
class TriggerDraft:
    """A trigger request, read and defaulted; not yet checked against its function."""

    name: str | None
    project_id: str
    type: TriggerType
    active: bool
    spec: EventTriggerSpec | CronTriggerSpec


def read_trigger(body: object, where: str = "") -> TriggerDraft:
    """The request with Dataloop's create defaults applied, or a ValidationFailure. `where`
    prefixes every field (`package.json.services[0].triggers[1].`)."""
    if not isinstance(body, dict):
        raise ValidationFailure.of(where.rstrip(".") or "body", "must be a trigger object")
    try:
        top = _Body.model_validate(body)
    except ValidationError as e:
        raise from_pydantic(e, where.rstrip(".")) from e
    spec = _read_spec(top.type, top.spec, f"{where}spec")
    return TriggerDraft(top.name, top.project_id, top.type, top.active, spec)


def _read_spec(
    kind: TriggerType, raw: dict[str, Any], at: str
) -> EventTriggerSpec | CronTriggerSpec:
    given = {k: v for k, v in raw.items() if v is not None}
    operation = given.get("operation")
    errors = []
    if not isinstance(operation, dict):
        errors.append(FieldError(f"{at}.operation", "must be an object with serviceId"))
    elif operation.get("type", "function") != "function":
        reason = "must be 'function' (webhook, rabbitmq and pipeline operations are not served)"
        errors.append(FieldError(f"{at}.operation.type", reason))
    if kind is TriggerType.CRON:
        reason = "is not allowed in a Cron trigger (only Event triggers have it)"
        errors += [FieldError(f"{at}.{key}", reason) for key in EVENT_ONLY if key in given]
    raise_if_any(errors)
    try:
        if kind is TriggerType.CRON:
            return _utc_window(CronTriggerSpec.model_validate(given))
        if isinstance(given.get("actions"), str):
            given["actions"] = [given["actions"]]
        if given.get("actions") == []:
            del given["actions"]  # dtlpy: an empty list means the default, [Created]
        spec = EventTriggerSpec.model_validate(given)
    except ValidationError as e:
        raise from_pydantic(e, at) from e
    return spec.model_copy(update={"actions": list(dict.fromkeys(spec.actions))})


def _utc_window(spec: CronTriggerSpec) -> CronTriggerSpec:
    """startAt and endAt in UTC; one without an offset is UTC."""
    start = assume_utc(spec.start_at) if spec.start_at else None
    end = assume_utc(spec.end_at) if spec.end_at else None
    return spec.model_copy(update={"start_at": start, "end_at": end})


def check_trigger(draft: TriggerDraft, module: PackageModule, where: str = "") -> None:
    """The function exists in `module` and the spec suits it; every problem at once."""
    spec = draft.spec
    name = spec.operation.function_name
    function = module.function(name)
    if function is None:
        names = ", ".join(f.name for f in module.functions) or "none"
        raise ValidationFailure.of(
            f"{where}spec.operation.functionName",
            f"no function '{name}' in module '{module.name}' (functions: {names})",
        )
    if isinstance(spec, EventTriggerSpec):
        raise_if_any(_event_problems(spec, function, f"{where}spec"))
    else:
        raise_if_any(_cron_problems(spec, function, f"{where}spec"))


def _event_problems(spec: EventTriggerSpec, function: PackageFunction, at: str) -> list[FieldError]:
    errors = []
    for i, action in enumerate(spec.actions):
        if (problem := action_problem(spec.resource, action)) is not None:
            errors.append(FieldError(f"{at}.actions[{i}]", problem))
    receiver = entity_input(function, spec.resource)
    given = dict(spec.input)
    if receiver is None:
        kind = ENTITY_TYPES[spec.resource].value
        inputs = ", ".join(f"{io.name}: {io.type.value}" for io in function.input) or "none"
        reason = (
            f"function '{function.name}' has no input of type {kind} to receive the "
            f"{spec.resource.value} that fires it (its inputs: {inputs})"
        )
        errors.append(FieldError(f"{at}.resource", reason))  # the inputs cannot be judged
    elif receiver.name in given:
        reason = f"is filled with the {spec.resource.value} that fires the trigger; leave it out"
        errors.append(FieldError(f"{at}.input.{receiver.name}", reason))
    else:
        given[receiver.name] = "entity-id"  # what a fire puts there: checked like one
        errors += _input_problems(function, given, f"{at}.input")
    errors += _filter_problems(spec, f"{at}.filter")
    return errors


def _filter_problems(spec: EventTriggerSpec, at: str) -> list[FieldError]:
    size = len(orjson.dumps(spec.filter))
    if size > MAX_FILTER_BYTES:
        return [FieldError(at, f"is {size} bytes of JSON; the limit is {MAX_FILTER_BYTES}")]
    try:
        compile_filter(spec.filter, spec.resource, where=at)
    except DqlError as e:
        return [FieldError(e.path, e.reason)]
    return []


def _cron_problems(spec: CronTriggerSpec, function: PackageFunction, at: str) -> list[FieldError]:
    errors: list[FieldError] = []
    try:
        parse_cron(spec.cron, field=f"{at}.cron")  # what the trigger engine will run
    except ValidationFailure as e:
        errors += e.errors
    if spec.start_at and spec.end_at and spec.start_at > spec.end_at:
        reason = f"is before startAt ({spec.start_at.isoformat()})"
        errors.append(FieldError(f"{at}.endAt", reason))
    return errors + _input_problems(function, spec.input, f"{at}.input")


def _input_problems(function: PackageFunction, given: dict[str, Any], at: str) -> list[FieldError]:
    try:
        validate_input(function, given, field=at)
    except ValidationFailure as e:
        return list(e.errors)
    return []


def build_trigger(
    draft: TriggerDraft,
    *,
    name: str,
    trigger_id: str,
    who: str,
    now: datetime,
    previous: Trigger | None,
) -> Trigger:
    """The Trigger a checked draft stores; an update keeps its creator and creation time."""
    return Trigger(
        id=trigger_id,
        name=name,
        project_id=draft.project_id,
        type=draft.type,
        active=draft.active,
        spec=draft.spec,
        creator=previous.creator if previous else who,
        created_at=previous.created_at if previous else now,
        updated_at=now,
        updated_by=who,
    )


def patched_body(current: Trigger, patch: dict[str, Any]) -> dict[str, Any]:
    """An update is a JSON merge patch over the stored trigger (null removes a field, which
    then takes its default), except that `spec.filter` and `spec.input` are replaced whole: a
    filter is one expression. id, projectId and type cannot change; the other fields the
    server owns (createdAt, creator...) may be sent back as read and are ignored."""
    wire = current.to_wire()
    for key in FIXED:
        if key in patch and patch[key] != wire[key]:
            raise ValidationFailure.of(key, "cannot be changed by an update")
    changes = {k: v for k, v in patch.items() if k not in READ_ONLY}
    merged: dict[str, Any] = merge_patch(wire, changes)
    spec_patch = changes.get("spec")
    if isinstance(spec_patch, dict) and isinstance(merged.get("spec"), dict):
        for key in ("filter", "input"):
            if spec_patch.get(key) is not None:
                merged["spec"][key] = spec_patch[key]
    return merged
