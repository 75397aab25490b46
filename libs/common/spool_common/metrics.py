"""The Prometheus metrics Spool processes export (default registry, served on `/metrics`).

Label values are bounded: a service id, or a value of one of our enums (execution status,
notification type, replica count kind), or a process name. Never an execution, replica or
trigger id: every label set is a time series kept for ever by Prometheus. When a service is
deleted, `forget_service` drops its series so the gauges stop reporting stale values.

Which process sets what: the gateway counts execution statuses and latency and sets queue
depth and in-flight (its load sampler); the scheduler sets replica counts and counts
restarts; every process counts its bus reconnects.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from enum import StrEnum
from typing import Final

from prometheus_client import Counter, Gauge, Histogram

from spool_common.messages import NotificationType
from spool_common.models import ExecutionStatus

# From 5 ms (a warm no-op function) to 1 h (the default executionTimeout); longer runs land in
# the +Inf bucket.
LATENCY_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
)  # fmt: skip


class ReplicaCount(StrEnum):
    """The `state` label of `spool_replicas`."""

    DESIRED = "desired"
    STARTING = "starting"  # pending or not ready yet
    READY = "ready"
    DRAINING = "draining"


EXECUTIONS: Final = Counter(
    "spool_executions",
    "Execution status changes recorded, by the status reached.",
    ["service_id", "status"],
)
EXECUTION_LATENCY: Final = Histogram(
    "spool_execution_latency_seconds",
    "Seconds from an execution's creation to its terminal status.",
    ["service_id"],
    buckets=LATENCY_BUCKETS,
)
QUEUE_DEPTH: Final = Gauge(
    "spool_queue_depth", "Executions waiting in a service's queue.", ["service_id"]
)
IN_FLIGHT: Final = Gauge(
    "spool_executions_in_flight",
    "Executions delivered to a service's replicas and not yet acknowledged.",
    ["service_id"],
)
REPLICAS: Final = Gauge(
    "spool_replicas",
    "Replicas of a service: desired, starting, ready and draining.",
    ["service_id", "state"],
)
REPLICA_RESTARTS: Final = Counter(
    "spool_replica_restarts",
    "Replicas that failed and were replaced, by notification type.",
    ["service_id", "reason"],
)
BUS_RECONNECTS: Final = Counter(
    "spool_bus_reconnects", "Times the process reconnected to RabbitMQ.", ["process"]
)


def execution_changed(
    service_id: str, status: ExecutionStatus, created_at: datetime, at: datetime
) -> None:
    """Count a recorded status change; a terminal one also observes create→end latency
    (clamped at 0 against clock skew)."""
    EXECUTIONS.labels(service_id, status.value).inc()
    if status.is_terminal:
        seconds = max(0.0, (at - created_at).total_seconds())
        EXECUTION_LATENCY.labels(service_id).observe(seconds)


def set_queue(service_id: str, *, depth: int, in_flight: int) -> None:
    QUEUE_DEPTH.labels(service_id).set(depth)
    IN_FLIGHT.labels(service_id).set(in_flight)


def set_replicas(
    service_id: str, *, desired: int, ready: int, draining: int, starting: int = 0
) -> None:
    for state, value in (
        (ReplicaCount.DESIRED, desired),
        (ReplicaCount.STARTING, starting),
        (ReplicaCount.READY, ready),
        (ReplicaCount.DRAINING, draining),
    ):
        REPLICAS.labels(service_id, state.value).set(value)


def replica_restarted(service_id: str, reason: NotificationType) -> None:
    REPLICA_RESTARTS.labels(service_id, reason.value).inc()


def bus_reconnected(process: str) -> None:
    BUS_RECONNECTS.labels(process).inc()


def forget_service(service_id: str) -> None:
    """Drop every series of a deleted service (works on prometheus-client before
    `remove_by_labels`: the other label values are our enums)."""
    for single in (EXECUTION_LATENCY, QUEUE_DEPTH, IN_FLIGHT):
        with contextlib.suppress(KeyError):  # older clients raise for a series never set
            single.remove(service_id)
    paired: tuple[tuple[Counter | Gauge, type[StrEnum]], ...] = (
        (EXECUTIONS, ExecutionStatus),
        (REPLICAS, ReplicaCount),
        (REPLICA_RESTARTS, NotificationType),
    )
    for metric, values in paired:
        for value in values:
            with contextlib.suppress(KeyError):
                metric.remove(service_id, value.value)
