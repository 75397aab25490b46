"""The bus topology as data: exchanges, queues, bindings, dead-lettering.

Every name carries the namespace (default `spool`) so tests and several installations can
share one broker. `apply_topology` in `spool_common.bus.amqp` is the only code that declares
anything; every process applies the whole static topology when it connects, so no message
published before a consumer first starts is lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

# Deliveries of one execution message before RabbitMQ dead-letters it. Agents ack right after
# the gateway records the claim, so redeliveries only come from crashes before that point
# (reference/reliability.md §0.6); the number of attempts is bounded separately, in PostgreSQL.
SERVICE_QUEUE_DELIVERY_LIMIT = 10


class ExchangeKind(StrEnum):
    DIRECT = "direct"
    TOPIC = "topic"
    FANOUT = "fanout"


@dataclass(frozen=True)
class ExchangeSpec:
    name: str
    kind: ExchangeKind


@dataclass(frozen=True)
class Binding:
    exchange: str
    routing_key: str


@dataclass(frozen=True)
class QueueSpec:
    name: str
    bindings: tuple[Binding, ...] = ()
    arguments: dict[str, str | int] = field(default_factory=dict)
    durable: bool = True
    exclusive: bool = False
    auto_delete: bool = False


class RoutingKey(StrEnum):
    CLAIM = "claim"
    CREDENTIAL = "credential"
    REPORT = "report"
    SERVICE_ALL = "service.*"
    SERVICE_REPLICA_RESTART = "service.replica-restart"
    SCALE_DECIDED = "scale.decided"
    ENTITY_ALL = "entity.#"
    REPLICA_ALL = "replica.*"
    NOTIFICATION_ALL = "notification.*"
    NOTIFICATION_SERVICE = "notification.service"
    TRIGGER_ALL = "trigger.*"
    LOAD_SAMPLED = "load.sampled"
    TRIGGER_FIRED = "trigger.fired"


@dataclass(frozen=True)
class Topology:
    namespace: str = "spool"

    def name(self, suffix: str) -> str:
        return f"{self.namespace}.{suffix}"

    # exchanges -------------------------------------------------------------------------
    @property
    def executions(self) -> str:
        """direct; routing key = service id; one quorum queue per service."""
        return self.name("executions")

    @property
    def events(self) -> str:
        """topic; lifecycle and entity events (service.*, execution.status.*, entity.#...)."""
        return self.name("events")

    @property
    def agent(self) -> str:
        """direct; agent -> gateway traffic: claim, report (status, progress, leases)."""
        return self.name("agent")

    @property
    def control(self) -> str:
        """direct; routing key = replica id; commands to one agent."""
        return self.name("control")

    @property
    def dead(self) -> str:
        """fanout; where RabbitMQ dead-letters poison and over-delivered messages."""
        return self.name("dead")

    def exchanges(self) -> tuple[ExchangeSpec, ...]:
        return (
            ExchangeSpec(self.executions, ExchangeKind.DIRECT),
            ExchangeSpec(self.events, ExchangeKind.TOPIC),
            ExchangeSpec(self.agent, ExchangeKind.DIRECT),
            ExchangeSpec(self.control, ExchangeKind.DIRECT),
            ExchangeSpec(self.dead, ExchangeKind.FANOUT),
        )

    # static queues ---------------------------------------------------------------------
    @property
    def gateway_claims(self) -> QueueSpec:
        return QueueSpec(self.name("gateway.claims"), (Binding(self.agent, RoutingKey.CLAIM),))

    @property
    def gateway_credentials(self) -> QueueSpec:
        return QueueSpec(
            self.name("gateway.credentials"), (Binding(self.agent, RoutingKey.CREDENTIAL),)
        )

    @property
    def gateway_reports(self) -> QueueSpec:
        return QueueSpec(self.name("gateway.reports"), (Binding(self.agent, RoutingKey.REPORT),))

    @property
    def gateway_dead(self) -> QueueSpec:
        return QueueSpec(self.name("gateway.dead"), (Binding(self.dead, ""),))

    @property
    def gateway_replicas(self) -> QueueSpec:
        """Replica lifecycle, for service status (`GET /services/{id}/status`)."""
        return QueueSpec(
            self.name("gateway.replicas"), (Binding(self.events, RoutingKey.REPLICA_ALL),)
        )

    @property
    def gateway_notifications(self) -> QueueSpec:
        """Service notifications (crash loops, stuck replicas), stored and listed per project."""
        return QueueSpec(
            self.name("gateway.notifications"),
            (Binding(self.events, RoutingKey.NOTIFICATION_ALL),),
        )

    @property
    def gateway_scaling(self) -> QueueSpec:
        """Scale decisions, recorded for `GET /services/{id}/scaling`."""
        return QueueSpec(
            self.name("gateway.scaling"), (Binding(self.events, RoutingKey.SCALE_DECIDED),)
        )

    @property
    def gateway_fired(self) -> QueueSpec:
        """Executions the trigger engine asks for (TriggerFired), created once per key."""
        return QueueSpec(
            self.name("gateway.fired"), (Binding(self.agent, RoutingKey.TRIGGER_FIRED),)
        )

    @property
    def scheduler_inbox(self) -> QueueSpec:
        return QueueSpec(
            self.name("scheduler.inbox"),
            (
                Binding(self.events, RoutingKey.SERVICE_ALL),
                Binding(self.events, RoutingKey.SCALE_DECIDED),
                Binding(self.events, RoutingKey.REPLICA_ALL),
            ),
        )

    @property
    def autoscaler_inbox(self) -> QueueSpec:
        return QueueSpec(
            self.name("autoscaler.inbox"),
            (
                Binding(self.events, RoutingKey.SERVICE_ALL),
                Binding(self.events, RoutingKey.LOAD_SAMPLED),
            ),
        )

    @property
    def trigger_engine_inbox(self) -> QueueSpec:
        return QueueSpec(
            self.name("trigger-engine.inbox"),
            (
                Binding(self.events, RoutingKey.ENTITY_ALL),
                Binding(self.events, RoutingKey.SERVICE_ALL),
                Binding(self.events, RoutingKey.TRIGGER_ALL),
            ),
        )

    def static_queues(self) -> tuple[QueueSpec, ...]:
        return (
            self.gateway_claims,
            self.gateway_credentials,
            self.gateway_reports,
            self.gateway_dead,
            self.gateway_replicas,
            self.gateway_notifications,
            self.gateway_fired,
            self.gateway_scaling,
            self.scheduler_inbox,
            self.autoscaler_inbox,
            self.trigger_engine_inbox,
        )

    # per-service and per-replica queues -----------------------------------------------
    def service_queue(self, service_id: str) -> QueueSpec:
        return QueueSpec(
            self.name(f"service.{service_id}"),
            (Binding(self.executions, service_id),),
            arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": SERVICE_QUEUE_DELIVERY_LIMIT,
                "x-dead-letter-exchange": self.dead,
            },
        )

    def control_queue(self, replica_id: str) -> QueueSpec:
        """Exclusive to one agent connection; also receives its request/reply answers."""
        return QueueSpec(
            self.name(f"replica.{replica_id}"),
            (Binding(self.control, replica_id),),
            durable=False,
            exclusive=True,
            auto_delete=True,
        )

    def trigger_updates(self, instance: str) -> QueueSpec:
        """Exclusive to one trigger-engine process: every trigger change, so each replica's
        in-memory index stays current (the durable inbox delivers each change to one replica
        only, which records it)."""
        return QueueSpec(
            self.name(f"trigger-engine.updates.{instance}"),
            (Binding(self.events, RoutingKey.TRIGGER_ALL),),
            durable=False,
            exclusive=True,
            auto_delete=True,
        )


def event_routing_key(*parts: str) -> str:
    return ".".join(parts)
