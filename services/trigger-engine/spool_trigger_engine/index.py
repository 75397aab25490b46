"""Pure: the triggers an event may fire, found without looking at every trigger.

Triggers are bucketed by (project, resource, action). Inside a bucket, a trigger whose filter
pins a field to an exact value at the top level (`{"datasetId": "d-1"}`, `{"dir": "/dogs"}`) is
filed under that (field, value), so an event only meets the triggers filed under its own values
plus those with no such pin. Fields an item defaults when missing (`hidden`, `type`) are never
the pin: the event may not carry them. A `None` pin also matches a missing field, so it is
never chosen either.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from spool_common.dql import (
    ITEM_ENTITY_DEFAULTS,
    MISSING,
    Matcher,
    compile_filter,
    field_value,
)
from spool_common.models import (
    EventTriggerSpec,
    Trigger,
    TriggerAction,
    TriggerResource,
)

# Fields items default when missing (an item event without `hidden` reads as not hidden), so
# a trigger is never filed under them: the event's own value may be absent.
_DEFAULTED = frozenset(ITEM_ENTITY_DEFAULTS)

Key = tuple[str, TriggerResource, TriggerAction]


@dataclass(frozen=True)
class Compiled:
    trigger: Trigger
    spec: EventTriggerSpec
    matcher: Matcher


@dataclass
class _Bucket:
    pinned: dict[tuple[str, Any], dict[str, Compiled]] = field(default_factory=dict)
    fields: dict[str, int] = field(default_factory=dict)  # pinned field -> triggers using it
    rest: dict[str, Compiled] = field(default_factory=dict)

    def add(self, compiled: Compiled, pin: tuple[str, Any] | None) -> None:
        if pin is None:
            self.rest[compiled.trigger.id] = compiled
            return
        self.pinned.setdefault(pin, {})[compiled.trigger.id] = compiled
        self.fields[pin[0]] = self.fields.get(pin[0], 0) + 1

    def remove(self, trigger_id: str, pin: tuple[str, Any] | None) -> None:
        if pin is None:
            self.rest.pop(trigger_id, None)
            return
        filed = self.pinned.get(pin)
        if filed is not None and filed.pop(trigger_id, None) is not None:
            if not filed:
                del self.pinned[pin]
            self.fields[pin[0]] -= 1
            if not self.fields[pin[0]]:
                del self.fields[pin[0]]

    def candidates(self, entity: Mapping[str, Any]) -> Iterator[Compiled]:
        yield from self.rest.values()
        seen: set[str] = set()
        for name in self.fields:
            value = field_value(entity, name)
            # An equality on a list field holds when an element equals the value (DQL).
            values = value if isinstance(value, list) else [value]
            for one in values:
                if one is MISSING or not _hashable(one):
                    continue
                for trigger_id, compiled in self.pinned.get((name, one), {}).items():
                    if trigger_id not in seen:
                        seen.add(trigger_id)
                        yield compiled

    def __len__(self) -> int:
        return len(self.rest) + sum(len(f) for f in self.pinned.values())


def _hashable(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def _pin(matcher: Matcher) -> tuple[str, Any] | None:
    """The exact (field, value) to file a trigger under, preferring uncommon fields."""
    usable = [
        (name, value)
        for name, value in sorted(matcher.equalities.items())
        if _hashable(value)
        and value is not None
        and not isinstance(value, bool)
        and name not in _DEFAULTED
    ]
    return usable[0] if usable else None


def compile_trigger(trigger: Trigger) -> Compiled | None:
    """None for a trigger that never fires on events (cron)."""
    spec = trigger.spec
    if not isinstance(spec, EventTriggerSpec):
        return None
    return Compiled(trigger, spec, compile_filter(spec.filter, spec.resource))


class TriggerIndex:
    def __init__(self) -> None:
        self._buckets: dict[Key, _Bucket] = {}
        self._filed: dict[str, tuple[list[Key], tuple[str, Any] | None]] = {}

    def put(self, trigger: Trigger) -> None:
        """Add or replace a trigger; an inactive or cron trigger is only removed."""
        self.remove(trigger.id)
        compiled = compile_trigger(trigger) if trigger.active else None
        if compiled is None:
            return
        pin = _pin(compiled.matcher)
        keys = [
            (trigger.project_id, compiled.spec.resource, action)
            for action in dict.fromkeys(compiled.spec.actions)
        ]
        for key in keys:
            self._buckets.setdefault(key, _Bucket()).add(compiled, pin)
        self._filed[trigger.id] = (keys, pin)

    def remove(self, trigger_id: str) -> None:
        filed = self._filed.pop(trigger_id, None)
        if filed is None:
            return
        keys, pin = filed
        for key in keys:
            bucket = self._buckets[key]
            bucket.remove(trigger_id, pin)
            if not len(bucket):
                del self._buckets[key]

    def matching(
        self,
        project_id: str,
        resource: TriggerResource,
        action: TriggerAction,
        entity: Mapping[str, Any],
    ) -> list[Compiled]:
        bucket = self._buckets.get((project_id, resource, action))
        if bucket is None:
            return []
        return [c for c in bucket.candidates(entity) if c.matcher.matches(entity)]

    def __len__(self) -> int:
        return len(self._filed)

    def load(self, triggers: Iterable[Trigger]) -> None:
        for trigger in triggers:
            self.put(trigger)
