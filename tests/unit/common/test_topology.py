"""The bus topology as data: names, queue settings, and where each published key ends up.

Routing is checked with a tiny model of RabbitMQ's matching (direct: equal keys; fanout: every
key; topic: `*` is exactly one word, `#` zero or more), against the queues that
docs/architecture.md promises. A key that routes nowhere makes a mandatory publish fail.
"""

from __future__ import annotations

from itertools import product

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spool_common.bus.topology import (
    SERVICE_QUEUE_DELIVERY_LIMIT,
    ExchangeKind,
    QueueSpec,
    Topology,
    event_routing_key,
)
from spool_common.messages import ReplicaState, ServiceChange
from spool_common.models import TriggerAction, TriggerResource

SERVICES = ("svc-1", "svc-2")
REPLICAS = ("r-1", "r-2")


def _topic(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_topic(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return head in ("*", words[0]) and _topic(rest, words[1:])


def key_matches(kind: ExchangeKind, binding_key: str, routing_key: str) -> bool:
    if kind is ExchangeKind.FANOUT:
        return True
    if kind is ExchangeKind.DIRECT:
        return binding_key == routing_key
    return _topic(binding_key.split("."), routing_key.split("."))


def all_queues(t: Topology) -> list[QueueSpec]:
    return [
        *t.static_queues(),
        *(t.service_queue(s) for s in SERVICES),
        *(t.control_queue(r) for r in REPLICAS),
    ]


def route(t: Topology, exchange: str, routing_key: str) -> set[str]:
    """The queues a publish to `exchange` with `routing_key` reaches."""
    kind = {e.name: e.kind for e in t.exchanges()}[exchange]
    return {
        q.name
        for q in all_queues(t)
        for b in q.bindings
        if b.exchange == exchange and key_matches(kind, b.routing_key, routing_key)
    }


@pytest.mark.parametrize(
    ("kind", "binding", "key", "matches"),
    [
        pytest.param(ExchangeKind.DIRECT, "claim", "claim", True, id="direct-equal"),
        pytest.param(ExchangeKind.DIRECT, "claim", "claims", False, id="direct-differs"),
        pytest.param(ExchangeKind.FANOUT, "", "anything", True, id="fanout"),
        pytest.param(ExchangeKind.TOPIC, "service.*", "service.created", True, id="star-one"),
        pytest.param(ExchangeKind.TOPIC, "service.*", "service", False, id="star-not-zero"),
        pytest.param(ExchangeKind.TOPIC, "service.*", "service.a.b", False, id="star-not-two"),
        pytest.param(ExchangeKind.TOPIC, "entity.#", "entity", True, id="hash-zero"),
        pytest.param(ExchangeKind.TOPIC, "entity.#", "entity.Item.Created", True, id="hash-two"),
        pytest.param(ExchangeKind.TOPIC, "entity.#", "entityx.Item", False, id="hash-prefix"),
        pytest.param(ExchangeKind.TOPIC, "a.#.z", "a.b.c.z", True, id="hash-middle"),
        pytest.param(ExchangeKind.TOPIC, "scale.decided", "scale.decided", True, id="literal"),
    ],
)
def test_the_matcher_follows_rabbitmq(
    kind: ExchangeKind, binding: str, key: str, matches: bool
) -> None:
    assert key_matches(kind, binding, key) is matches


# --- names ---------------------------------------------------------------------------------


def all_names(t: Topology) -> set[str]:
    names = {e.name for e in t.exchanges()}
    for q in all_queues(t):
        names.add(q.name)
        names.update(b.exchange for b in q.bindings)
        names.update(str(v) for k, v in q.arguments.items() if k == "x-dead-letter-exchange")
    return names


@pytest.mark.parametrize("namespace", ["spool", "t0123456789", "staging-2"])
def test_every_name_carries_the_namespace(namespace: str) -> None:
    names = all_names(Topology(namespace))
    assert len(names) == 5 + 11 + len(SERVICES) + len(REPLICAS)
    assert all(n.startswith(f"{namespace}.") for n in names), sorted(names)


# Namespaces are single words; a dotted one ("spool.service") could meet another's queue names.
namespaces = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12)


@settings(max_examples=50, deadline=None)
@given(a=namespaces, b=namespaces)
def test_two_namespaces_share_no_names(a: str, b: str) -> None:
    if a != b:
        assert all_names(Topology(a)).isdisjoint(all_names(Topology(b)))


def test_default_names_are_the_documented_ones() -> None:
    t = Topology()
    assert {(e.name, e.kind) for e in t.exchanges()} == {
        ("spool.executions", ExchangeKind.DIRECT),
        ("spool.events", ExchangeKind.TOPIC),
        ("spool.agent", ExchangeKind.DIRECT),
        ("spool.control", ExchangeKind.DIRECT),
        ("spool.dead", ExchangeKind.FANOUT),
    }
    assert t.service_queue("svc-1").name == "spool.service.svc-1"
    assert t.control_queue("r-1").name == "spool.replica.r-1"


# --- queues --------------------------------------------------------------------------------


@pytest.mark.parametrize("service_id", ["svc-1", "0b7c6f1e"])
def test_service_queues_are_quorum_and_dead_letter_to_dead(service_id: str) -> None:
    t = Topology("t1")
    q = t.service_queue(service_id)
    assert q.arguments == {
        "x-queue-type": "quorum",
        "x-delivery-limit": SERVICE_QUEUE_DELIVERY_LIMIT,
        "x-dead-letter-exchange": "t1.dead",
    }
    assert SERVICE_QUEUE_DELIVERY_LIMIT == 10  # as docs/architecture.md states
    assert (q.durable, q.exclusive, q.auto_delete) == (True, False, False)
    # Whatever RabbitMQ dead-letters, with whatever key, reaches the gateway.
    assert route(t, t.dead, service_id) == {"t1.gateway.dead"}


def test_static_queues_survive_restarts() -> None:
    for q in Topology().static_queues():
        assert (q.durable, q.exclusive, q.auto_delete) == (True, False, False), q.name


def test_control_queues_belong_to_one_connection() -> None:
    q = Topology().control_queue("r-1")
    assert (q.durable, q.exclusive, q.auto_delete) == (False, True, True)


def test_every_queue_is_bound_to_a_declared_exchange() -> None:
    t = Topology("t1")
    declared = {e.name for e in t.exchanges()}
    for q in all_queues(t):
        assert q.bindings, f"{q.name} has no binding"
        for b in q.bindings:
            assert b.exchange in declared, (q.name, b.exchange)


def test_queue_names_are_unique() -> None:
    names = [q.name for q in all_queues(Topology())]
    assert len(names) == len(set(names))


# --- routing -------------------------------------------------------------------------------

CLAIMS = "spool.gateway.claims"
SCHEDULER = "spool.scheduler.inbox"
REPLICAS_TO_GATEWAY = "spool.gateway.replicas"
AUTOSCALER = "spool.autoscaler.inbox"
TRIGGERS = "spool.trigger-engine.inbox"


@pytest.mark.parametrize(
    ("exchange", "key", "queues"),
    [
        pytest.param("executions", "svc-1", {"spool.service.svc-1"}, id="execution-to-service"),
        pytest.param("executions", "svc-3", set(), id="unknown-service-routes-nowhere"),
        pytest.param("agent", "claim", {CLAIMS}, id="claim"),
        pytest.param("agent", "credential", {"spool.gateway.credentials"}, id="credential"),
        pytest.param("agent", "report", {"spool.gateway.reports"}, id="report"),
        pytest.param("agent", "svc-1", set(), id="agent-is-not-executions"),
        pytest.param("events", "service.created", {SCHEDULER, AUTOSCALER, TRIGGERS}, id="svc"),
        pytest.param("events", "entity.Item.Created", {TRIGGERS}, id="entity"),
        pytest.param("events", "replica.ready", {SCHEDULER, REPLICAS_TO_GATEWAY}, id="replica"),
        pytest.param(
            "events", "scale.decided", {SCHEDULER, "spool.gateway.scaling"}, id="scale-decided"
        ),
        pytest.param("events", "load.sampled", {AUTOSCALER}, id="load-sampled"),
        pytest.param("control", "r-2", {"spool.replica.r-2"}, id="control-to-one-replica"),
        pytest.param("dead", "anything", {"spool.gateway.dead"}, id="dead-letters"),
    ],
)
def test_routing_keys_reach_the_documented_queues(
    exchange: str, key: str, queues: set[str]
) -> None:
    t = Topology()
    assert route(t, t.name(exchange), key) == queues


@pytest.mark.parametrize("change", list(ServiceChange), ids=str)
def test_every_service_change_reaches_every_inbox(change: ServiceChange) -> None:
    t = Topology()
    assert route(t, t.events, f"service.{change}") == {SCHEDULER, AUTOSCALER, TRIGGERS}


@pytest.mark.parametrize("state", list(ReplicaState), ids=str)
def test_every_replica_state_reaches_the_scheduler_and_the_gateway(state: ReplicaState) -> None:
    t = Topology()
    assert route(t, t.events, f"replica.{state}") == {SCHEDULER, REPLICAS_TO_GATEWAY}


def test_every_entity_event_reaches_the_trigger_engine() -> None:
    t = Topology()
    for resource, action in product(TriggerResource, TriggerAction):
        key = event_routing_key("entity", resource, action)
        assert route(t, t.events, key) == {TRIGGERS}, key


def test_event_routing_key_joins_words_with_dots() -> None:
    assert event_routing_key("entity", "Item", "Created") == "entity.Item.Created"
