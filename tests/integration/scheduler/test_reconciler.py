"""The reconcile loop against a scripted driver and the real bus: what it applies, announces,
notifies, deactivates and stops. The driver is a stand-in so the loop's decisions can be
driven exactly; both real drivers have their own tests."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from spool_common.bus.amqp import Bus, Delivery
from spool_common.bus.dispositions import Disposition
from spool_common.bus.topology import Binding, QueueSpec
from spool_common.exit_codes import AgentExit
from spool_common.messages import (
    AnyMessage,
    NotificationType,
    ReplicaChanged,
    ReplicaState,
    ServiceNotification,
)
from spool_common.models import Service
from spool_scheduler.driver import (
    DeploymentSpec,
    Observation,
    ReplicaExit,
    ReplicaStatus,
    ReplicaView,
)
from spool_scheduler.reconciler import Reconciler
from spool_scheduler.settings import SchedulerSettings
from spool_scheduler.store import Desired

pytestmark = pytest.mark.integration


class ScriptedDriver:
    """Records calls; `observe` returns what the test scripted."""

    def __init__(self) -> None:
        self.applied: list[DeploymentSpec] = []
        self.removed: list[tuple[str, bool]] = []
        self.stopped: list[tuple[str, str]] = []
        self.restarted: list[str] = []
        self.replicas: list[ReplicaView] = []
        self.exits: list[ReplicaExit] = []

    async def apply(self, spec: DeploymentSpec) -> None:
        self.applied.append(spec)

    async def remove(self, service_id: str, *, force: bool = False) -> None:
        self.removed.append((service_id, force))

    async def restart_replica(self, replica_id: str) -> bool:
        self.restarted.append(replica_id)
        return any(r.replica_id == replica_id for r in self.replicas)

    async def stop_replica(self, replica_id: str, reason: str) -> None:
        self.stopped.append((replica_id, reason))

    async def observe(self) -> Observation:
        exits, self.exits = self.exits, []
        return Observation(list(self.replicas), exits)

    async def close(self, *, grace: bool = True) -> None:
        return None


def service(**extra: Any) -> Service:
    body = {
        "id": "svc",
        "name": "svc",
        "projectId": "p",
        "packageId": "pkg",
        "packageRevision": "1.0.0",
        **extra,
    }
    return Service.model_validate(body)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _listen(bus: Bus) -> list[AnyMessage]:
    """Everything published as notification.* and replica.* (a queue of the test's own)."""
    got: list[AnyMessage] = []
    events = bus.topology.events
    queue = QueueSpec(
        bus.topology.name("test.listener"),
        (Binding(events, "notification.*"), Binding(events, "replica.*")),
        exclusive=True,
        auto_delete=True,
        durable=False,
    )

    async def handler(delivery: Delivery) -> None:
        if delivery.message is not None:
            got.append(delivery.message)
        await delivery.settle(Disposition.ACK)

    await bus.consume(queue, handler, prefetch=50)
    return got


async def _until(what: str, check: Any, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {timeout} s: {what}")


def _exit(replica_id: str, at: float, code: int = AgentExit.INIT_FAILED) -> ReplicaExit:
    return ReplicaExit(
        replica_id=replica_id,
        service_id="svc",
        revision=1,
        exit_code=code,
        started_at=at - 1,
        at=at,
        expected=False,
        log_tail=("Traceback (most recent call last):", "RuntimeError: no model file"),
    )


async def test_a_scaling_only_change_keeps_the_template_revision_and_pause_removes(
    bus: Bus,
) -> None:
    driver = ScriptedDriver()
    reconciler = Reconciler(driver, bus, SchedulerSettings())
    reconciler.set_service(Desired(service(), 3, False, 3))
    await reconciler.round()
    reconciler.set_service(Desired(service(runtime={"numReplicas": 4}), 4, False, 3))
    await reconciler.round()
    assert [(s.revision, s.replicas) for s in driver.applied] == [(3, 1), (3, 4)]
    reconciler.set_service(Desired(service(active=False), 5, False, 3), force=True)
    await reconciler.round()
    assert driver.removed == [("svc", True)]


async def test_failures_notify_once_per_type_and_a_crash_loop_deactivates(bus: Bus) -> None:
    got = await _listen(bus)
    driver, clock = ScriptedDriver(), Clock()
    settings = SchedulerSettings(crash_loop_restarts=3, crash_loop_window=600)
    reconciler = Reconciler(driver, bus, settings, clock=clock)
    reconciler.set_service(Desired(service(), 1, False, 1))
    await reconciler.round()

    driver.exits = [_exit("r1", clock.now)]
    await reconciler.round()
    clock.now += 5
    driver.exits = [_exit("r2", clock.now)]
    await reconciler.round()
    await _until("a notification", lambda: any(isinstance(m, ServiceNotification) for m in got))
    notes = [m for m in got if isinstance(m, ServiceNotification)]
    assert [n.notification for n in notes] == [NotificationType.INIT_ERROR]
    assert not notes[0].deactivate  # a single init failure keeps the service active

    clock.now += 5
    driver.exits = [_exit("r3", clock.now)]
    await reconciler.round()
    await _until(
        "the deactivation",
        lambda: any(isinstance(m, ServiceNotification) and m.deactivate for m in got),
    )
    forced = [m for m in got if isinstance(m, ServiceNotification) and m.deactivate]
    assert len(forced) == 1
    assert forced[0].notification is NotificationType.FORCED_DEACTIVATION
    assert "Service Init Function Error" in forced[0].message
    assert forced[0].log_tail[-1] == "RuntimeError: no model file"
    failed = [m for m in got if isinstance(m, ReplicaChanged) and m.state is ReplicaState.FAILED]
    assert {m.replica_id for m in failed} == {"r1", "r2", "r3"}


async def test_a_replica_past_its_state_threshold_is_stopped_with_the_reason(bus: Bus) -> None:
    got = await _listen(bus)
    driver, clock = ScriptedDriver(), Clock()
    reconciler = Reconciler(driver, bus, SchedulerSettings(), clock=clock)
    thresholds = {"stateThresholds": {"running": "10s"}}
    reconciler.set_service(Desired(service(runtime=thresholds), 1, False, 1))
    view = ReplicaView("r1", "svc", 1, ReplicaStatus.STARTING, clock.now, clock.now)
    driver.replicas = [view]
    clock.now += 10
    await reconciler.round()
    assert driver.stopped == []  # at the threshold is not over it
    clock.now += 1
    await reconciler.round()
    await reconciler.round()  # stopped once, not every round
    assert len(driver.stopped) == 1
    replica_id, reason = driver.stopped[0]
    assert replica_id == "r1"
    assert "running" in reason
    await _until("the notification", lambda: any(isinstance(m, ServiceNotification) for m in got))
    (note,) = [m for m in got if isinstance(m, ServiceNotification)]
    assert note.notification is NotificationType.STUCK_REPLICA


async def test_scale_decisions_change_the_count_not_the_template(bus: Bus) -> None:
    driver = ScriptedDriver()
    reconciler = Reconciler(driver, bus, SchedulerSettings())
    scaler = {"autoscaler": {"type": "rabbitmq", "minReplicas": 0, "maxReplicas": 4}}
    reconciler.set_service(Desired(service(runtime=scaler), 7, False, 5))
    await reconciler.round()
    assert reconciler.scale("svc", 3)
    assert not reconciler.scale("svc", 3)  # nothing new
    assert not reconciler.scale("unknown", 3)
    await reconciler.round()
    assert reconciler.scale("svc", 9)  # bounded by maxReplicas
    await reconciler.round()
    assert [(s.revision, s.replicas) for s in driver.applied] == [(5, 1), (5, 3), (5, 4)]
    # A later change of the service keeps the autoscaler's count.
    reconciler.set_service(Desired(service(runtime=scaler, executionTimeout=60), 8, False, 8))
    await reconciler.round()
    assert (driver.applied[-1].revision, driver.applied[-1].replicas) == (8, 4)


async def test_a_restart_goes_to_the_driver_only_for_a_replica_of_that_service(bus: Bus) -> None:
    driver, clock = ScriptedDriver(), Clock()
    reconciler = Reconciler(driver, bus, SchedulerSettings(), clock=clock)
    reconciler.set_service(Desired(service(), 1, False, 1))
    driver.replicas = [ReplicaView("r1", "svc", 1, ReplicaStatus.READY, clock.now, clock.now)]
    await reconciler.round()  # now known as a replica of svc

    assert not await reconciler.restart_replica("other-service", "r1")
    assert driver.restarted == []
    assert await reconciler.restart_replica("svc", "r1")
    assert not await reconciler.restart_replica("svc", "gone")
    assert driver.restarted == ["r1", "gone"]
