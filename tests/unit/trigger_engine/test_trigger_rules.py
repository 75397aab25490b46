"""Keys that make fires unique, and the loop rule."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from spool_common.messages import EntityEvent, OriginHop
from spool_common.models import Trigger, TriggerAction, TriggerExecutionMode, TriggerResource
from spool_trigger_engine.rules import MAX_CHAIN, cron_key, event_key, is_loop, loop_depth

AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
TRIGGER = Trigger.model_validate(
    {"id": "t1", "name": "n", "projectId": "p", "spec": {"operation": {"serviceId": "s"}}}
)


def event(event_id: str, entity_id: str = "i1") -> EntityEvent:
    return EntityEvent(
        id=event_id,
        resource=TriggerResource.ITEM,
        action=TriggerAction.UPDATED,
        project_id="p",
        entity_id=entity_id,
        at=AT,
    )


def test_once_is_one_key_per_entity_and_always_one_per_event() -> None:
    once = TriggerExecutionMode.ONCE
    always = TriggerExecutionMode.ALWAYS
    assert event_key(TRIGGER, event("e1"), once) == event_key(TRIGGER, event("e2"), once)
    assert event_key(TRIGGER, event("e1"), once) != event_key(TRIGGER, event("e1", "i2"), once)
    assert event_key(TRIGGER, event("e1"), always) != event_key(TRIGGER, event("e2"), always)
    assert event_key(TRIGGER, event("e1"), always) == event_key(TRIGGER, event("e1"), always)


def test_cron_keys_differ_per_tick() -> None:
    later = AT.replace(minute=1)
    assert cron_key(TRIGGER, AT) != cron_key(TRIGGER, later)
    assert cron_key(TRIGGER, AT) == cron_key(TRIGGER, AT)


def hops(*pairs: tuple[str | None, str | None]) -> list[OriginHop]:
    return [
        OriginHop(execution_id=f"x{i}", trigger_id=t, entity_id=e) for i, (t, e) in enumerate(pairs)
    ]


@pytest.mark.parametrize(
    ("origin", "depth", "loop"),
    [
        pytest.param([], 0, False, id="no-origin"),
        pytest.param(hops(("t1", "i1")), 1, False, id="once-before"),
        pytest.param(hops(*[("t1", "i1")] * 15), 15, False, id="just-under"),
        pytest.param(hops(*[("t1", "i1")] * 16), 16, True, id="at-depth"),
        pytest.param(hops(*[("t1", "i1"), ("t2", "i1")] * 16), 16, True, id="through-another"),
        pytest.param(hops(*[("t1", "i2")] * 40), 0, False, id="other-entity"),
        pytest.param(hops(*[("t2", "i1")] * 40), 0, False, id="other-trigger"),
        pytest.param(hops(*[(None, None)] * 20), 0, False, id="manual-executions"),
    ],
)
def test_loop_rule(origin: list[OriginHop], depth: int, loop: bool) -> None:
    assert loop_depth("t1", "i1", origin) == depth
    assert is_loop("t1", "i1", origin) is loop


def test_a_custom_depth_and_the_chain_cap() -> None:
    assert is_loop("t1", "i1", hops(("t1", "i1"), ("t1", "i1")), max_depth=2)
    long_chain = hops(*[(f"t{n}", f"i{n}") for n in range(MAX_CHAIN)])
    assert is_loop("t1", "i1", long_chain)
    assert not is_loop("t1", "i1", long_chain[:-1])
