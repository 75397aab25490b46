"""Pure rules of the trigger engine: which key makes a fire unique, and when an event is part
of a loop that must stop."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from spool_common.messages import EntityEvent, OriginHop
from spool_common.models import Trigger, TriggerExecutionMode

MAX_LOOP_DEPTH = 16  # times one trigger may fire again for the same entity along one chain
MAX_CHAIN = 256  # longest origin chain accepted at all, whatever the triggers in it


def event_key(trigger: Trigger, event: EntityEvent, mode: TriggerExecutionMode) -> str:
    """The gateway creates at most one execution per key. Once: one per (trigger, entity),
    whatever the action and however often the event is delivered; Always: one per event."""
    if mode is TriggerExecutionMode.ONCE:
        return f"{trigger.id}:entity:{event.entity_id}"
    return f"{trigger.id}:event:{event.id}"


def cron_key(trigger: Trigger, tick: datetime) -> str:
    """One execution per (trigger, scheduled time), however many engines fire it."""
    return f"{trigger.id}:cron:{tick.isoformat()}"


def loop_depth(trigger_id: str, entity_id: str, origin: Sequence[OriginHop]) -> int:
    """How many times this trigger already fired for this entity along the event's chain."""
    return sum(1 for hop in origin if hop.trigger_id == trigger_id and hop.entity_id == entity_id)


def is_loop(
    trigger_id: str,
    entity_id: str,
    origin: Sequence[OriginHop],
    *,
    max_depth: int = MAX_LOOP_DEPTH,
) -> bool:
    """An event caused, directly or through other executions, by this same trigger on this
    same entity `max_depth` times already does not fire it again; nor does any event whose
    chain is longer than MAX_CHAIN (a loop through ever new entities)."""
    return loop_depth(trigger_id, entity_id, origin) >= max_depth or len(origin) >= MAX_CHAIN
