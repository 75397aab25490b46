"""Pure rules for entity events: what an event must carry, the origin chain of an event an
execution caused, whether a trigger would fire on an event (dry run), and the input of the
execution a fire creates. No I/O, no clock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spool_common.dql import DqlError, compile_filter
from spool_common.errors import FieldError, ValidationFailure, raise_if_any
from spool_common.messages import EntityEvent, OriginHop
from spool_common.models import (
    CronTriggerSpec,
    PackageFunction,
    Trigger,
    TriggerAction,
    TriggerResource,
)
from spool_gateway.inputs import as_object
from spool_gateway.trigger_rules import ENTITY_TYPES, action_problem, entity_input

MATCHES = "matches"


@dataclass(frozen=True)
class EntityRef:
    """An event's entity, checked: its id and its fields (which include the id)."""

    entity_id: str
    entity: dict[str, Any]


def checked_entity(
    resource: TriggerResource,
    action: TriggerAction,
    entity: object,
    entity_id: str | None,
    where: str = "",
) -> EntityRef:
    """The resource has the action; the entity is a JSON object of at most MAX_INPUT_BYTES;
    its id is `entityId`, else `entity.id` (both given: they must agree)."""
    errors = []
    if (problem := action_problem(resource, action)) is not None:
        errors.append(FieldError(f"{where}action", problem))
    try:
        fields = dict(as_object(entity, f"{where}entity"))
    except ValidationFailure as e:
        raise ValidationFailure([*errors, *e.errors]) from e
    own = fields.get("id")
    ident = entity_id if entity_id is not None else own
    if entity_id is not None and own is not None and own != entity_id:
        reason = f"is {entity_id!r} but entity.id is {own!r}; they must match"
        errors.append(FieldError(f"{where}entityId", reason))
    elif not isinstance(ident, str) or not ident.strip():
        reason = "is required: give entityId, or an entity with a non-empty string 'id'"
        errors.append(FieldError(f"{where}entityId", reason))
    raise_if_any(errors)
    assert isinstance(ident, str)
    return EntityRef(ident, {**fields, "id": ident})


def next_origin(
    origin: list[OriginHop], execution_id: str, trigger_id: str | None, entity_id: str | None
) -> list[OriginHop]:
    """The origin of an event that execution `execution_id` caused: the chain of the event
    that fired it, plus that execution (with its trigger and the entity it was fired for)."""
    hop = OriginHop(execution_id=execution_id, trigger_id=trigger_id, entity_id=entity_id)
    return [*origin, hop]


def dry_run(
    trigger: Trigger, resource: TriggerResource, action: TriggerAction, entity: dict[str, Any]
) -> tuple[bool, str]:
    """Would `trigger` fire on this event, and if not, why. Once mode is not considered: a
    Once trigger that already fired for this entity would not fire again."""
    spec = trigger.spec
    if not trigger.active:
        return False, "the trigger is inactive"
    if isinstance(spec, CronTriggerSpec):
        return False, "a Cron trigger fires on its schedule, never on events"
    if spec.resource is not resource:
        return False, f"listens to {spec.resource.value} events, not {resource.value}"
    if action not in spec.actions:
        listened = ", ".join(a.value for a in spec.actions)
        return False, f"listens to the actions {listened}, not {action.value}"
    try:
        failed = compile_filter(spec.filter, spec.resource, where="spec.filter").explain(entity)
    except DqlError as e:
        return False, f"its filter does not compile: {e}"
    if failed is not None:
        return False, f"its filter does not match: {failed}"
    return True, MATCHES


def fired_input(
    function: PackageFunction, spec_input: dict[str, Any], event: EntityEvent | None
) -> dict[str, Any] | None:
    """The input of the execution a fire creates: the trigger's `spec.input`, and the event's
    entity in the function's first input of the entity's type, in the form a user's entity
    input takes (its fields, `<type>_id` and `id`). A cron fire passes `spec.input` only.
    None if the function has no such input (it changed since the trigger was created)."""
    if event is None:
        return dict(spec_input)
    receiver = entity_input(function, event.resource)
    if receiver is None:
        return None
    key = f"{ENTITY_TYPES[event.resource].value.lower()}_id"
    entity = {**event.entity, key: event.entity_id, "id": event.entity_id}
    return {**spec_input, receiver.name: entity}
