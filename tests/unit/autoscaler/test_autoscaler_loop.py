"""The autoscaler's loop with the pure rules and a recording bus: what it announces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from spool_autoscaler.scaler import STALE_SAMPLE, Autoscaler
from spool_common.bus.amqp import Bus
from spool_common.bus.topology import Topology
from spool_common.messages import (
    LoadSampled,
    Message,
    ScaleDecided,
    ServiceChange,
    ServiceChanged,
    ServiceLoad,
)
from spool_common.models import Service

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class RecordingBus:
    def __init__(self) -> None:
        self.topology = Topology("t")
        self.sent: list[Message] = []

    async def publish(self, exchange: str, routing_key: str, message: Message, **_: Any) -> None:
        self.sent.append(message)


class Clocks:
    def __init__(self) -> None:
        self.mono = 100.0
        self.wall = T0

    def tick(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += timedelta(seconds=seconds)


def scaler_and_bus() -> tuple[Autoscaler, RecordingBus, Clocks]:
    bus, clocks = RecordingBus(), Clocks()
    scaler = Autoscaler(cast(Bus, bus), clock=lambda: clocks.mono, wall=lambda: clocks.wall)
    service = Service.model_validate(
        {
            "id": "s",
            "name": "s",
            "projectId": "p",
            "packageId": "k",
            "packageRevision": "1.0.0",
            "runtime": {
                "numReplicas": 1,
                "autoscaler": {
                    "type": "rabbitmq",
                    "minReplicas": 1,
                    "maxReplicas": 5,
                    "queueLength": 2,
                    "pollingInterval": 5,
                },
            },
        }
    )
    scaler.on_service(ServiceChanged(change=ServiceChange.CREATED, service=service, revision=1))
    return scaler, bus, clocks


def sample(at: datetime, queued: int) -> LoadSampled:
    return LoadSampled(at=at, interval=2.0, services={"s": ServiceLoad(queued=queued, running=0)})


async def test_a_backlog_is_announced_with_its_rule_and_numbers() -> None:
    scaler, bus, clocks = scaler_and_bus()
    await scaler.on_load(sample(clocks.wall, queued=7))
    (decision,) = [m for m in bus.sent if isinstance(m, ScaleDecided)]
    assert (decision.previous, decision.replicas) == (1, 4)
    assert decision.inputs["queued"] == 7


async def test_samples_that_piled_up_while_it_was_down_are_skipped() -> None:
    scaler, bus, clocks = scaler_and_bus()
    old = clocks.wall - timedelta(seconds=STALE_SAMPLE + 1)
    await scaler.on_load(sample(old, queued=50))
    assert bus.sent == []
    clocks.tick(1)
    await scaler.on_load(sample(clocks.wall, queued=3))
    (decision,) = [m for m in bus.sent if isinstance(m, ScaleDecided)]
    assert decision.replicas == 2  # decided on the fresh sample only
