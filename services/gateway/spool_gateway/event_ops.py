"""Use cases for entity events: accept one (POST /events) into the outbox with the origin chain
of the execution that caused it, and create the execution a trigger's fire asks for, at most
once per fire key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spool_common.bus.dispositions import Outcome
from spool_common.errors import ValidationFailure
from spool_common.logging import get_logger
from spool_common.messages import EntityEvent, OriginHop, TriggerFired, encode
from spool_common.models import TriggerAction, TriggerResource
from spool_gateway.core import Gateway, new_id
from spool_gateway.event_rules import EntityRef, fired_input, next_origin
from spool_gateway.ledger import Cause
from spool_gateway.outbox import OutboxRow

log = get_logger(__name__)


@dataclass(frozen=True)
class EventRequest:
    """A checked POST /events body (the entity through event_rules.checked_entity)."""

    resource: TriggerResource
    action: TriggerAction
    project_id: str
    entity: EntityRef
    user_id: str | None
    origin_execution_id: str | None


async def origin_chain(gw: Gateway, project_id: str, execution_id: str | None) -> list[OriginHop]:
    """The origin of an event the execution caused: the chain of the event that fired it
    plus the execution itself. Empty without an execution (a person or an outside system)."""
    if execution_id is None:
        return []
    found = await gw.control.origin_of(execution_id)
    if found is None or found.project_id != project_id:
        raise ValidationFailure.of("originExecutionId", "no such execution in this project")
    chain = [OriginHop.model_validate(hop) for hop in found.origin]
    return next_origin(chain, execution_id, found.trigger_id, found.entity_id)


async def publish_event(gw: Gateway, request: EventRequest) -> EntityEvent:
    """Record the event in the outbox: once accepted it reaches the trigger engine."""
    event = EntityEvent(
        id=new_id(),
        resource=request.resource,
        action=request.action,
        project_id=request.project_id,
        entity_id=request.entity.entity_id,
        entity=request.entity.entity,
        user_id=request.user_id,
        origin=await origin_chain(gw, request.project_id, request.origin_execution_id),
        at=gw.clock(),
    )
    key = f"entity.{event.resource.value}.{event.action.value}"
    row = OutboxRow(gw.bus.topology.events, key, encode(event))
    await gw.relay.enqueue([row])
    return event


async def fire(gw: Gateway, fired: TriggerFired) -> Outcome:
    """Create the execution a trigger fired, once per key. A fire whose service or function
    is gone (the trigger was valid when created) is logged and dropped."""
    context: dict[str, Any] = {"trigger_id": fired.trigger_id, "key": fired.key}
    found = await gw.services.get(fired.service_id)
    if found is None or found[0].project_id != fired.project_id:
        log.warning("trigger_fired_for_unknown_service", service_id=fired.service_id, **context)
        return Outcome.HANDLED
    service = found[0]
    package = await gw.catalog.package_revision(service.package_id, service.package_revision)
    module = package.module(service.module_name) if package else None
    function = module.function(fired.function_name) if module else None
    raw = fired_input(function, fired.input, fired.event) if function else None
    if function is None or raw is None:
        log.warning("trigger_fired_for_unknown_function", function=fired.function_name, **context)
        return Outcome.HANDLED
    event = fired.event.to_wire() if fired.event else None
    origin = [hop.to_wire() for hop in fired.event.origin] if fired.event else []
    cause = Cause(fired.key, origin, event)
    try:
        created = await gw.fire_execution(
            service, fired.function_name, raw, fired.trigger_id, cause
        )
    except ValidationFailure as e:
        log.warning("trigger_fired_with_invalid_input", error=str(e), **context)
        return Outcome.HANDLED
    if created is None:
        log.info("trigger_fire_duplicate", **context)
        return Outcome.DUPLICATE
    log.info("trigger_fire_recorded", execution_id=created.id, **context)
    return Outcome.HANDLED
