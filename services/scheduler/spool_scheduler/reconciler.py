"""The reconcile loop: desired state in, `RuntimeDriver` calls out, health watched.

Each round applies what changed to the driver, reads what runs, tells the platform about
replicas that came and went, turns failures into notifications (deactivating a service stuck
in a crash loop) and stops replicas stuck past their state thresholds. Whichever driver runs
(process or kubernetes), this loop is the same; the decisions are pure (`plan`, `health`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from spool_common import metrics
from spool_common.bus.amqp import Bus, BusError
from spool_common.logging import get_logger
from spool_common.messages import (
    NotificationType,
    ReplicaChanged,
    ReplicaState,
    ServiceNotification,
)
from spool_common.models import Service
from spool_common.replicas import desired_replicas
from spool_scheduler.driver import (
    DeploymentSpec,
    Observation,
    ReplicaExit,
    ReplicaStatus,
    ReplicaView,
    RuntimeDriver,
)
from spool_scheduler.health import (
    CrashLoopPolicy,
    Failure,
    HealthState,
    after_failures,
    classify,
    stuck,
    waiting_failure,
)
from spool_scheduler.plan import exit_state
from spool_scheduler.settings import SchedulerSettings
from spool_scheduler.store import Desired

log = get_logger(__name__)


@dataclass(frozen=True)
class _Change:
    spec: DeploymentSpec | None  # None: remove
    service_id: str
    force: bool


class Reconciler:
    def __init__(
        self,
        driver: RuntimeDriver,
        bus: Bus,
        settings: SchedulerSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.driver = driver
        self.bus = bus
        self.settings = settings
        self.clock = clock
        self.policy = CrashLoopPolicy(settings.crash_loop_restarts, settings.crash_loop_window)
        self.services: dict[str, Service] = {}
        self.desired: dict[str, int] = {}  # replicas wanted per active service
        self.scaled: dict[str, int] = {}  # the autoscaler's latest count per scaled service
        self.templates: dict[str, int] = {}  # template revision per service
        self.health: dict[str, HealthState] = {}
        self._changes: dict[str, _Change] = {}
        self._known: dict[str, str] = {}  # live replica id -> service id
        self._exported: dict[str, tuple[int, int, int, int]] = {}  # service -> gauges set
        self._stuck: set[str] = set()  # replicas already stopped for a threshold
        self.wake = asyncio.Event()

    def set_service(self, desired: Desired, *, force: bool = False) -> None:
        service, deleted = desired.service, desired.deleted
        self.services[service.id] = service
        self.templates[service.id] = desired.template_revision
        if service.runtime.autoscaler is None or deleted:
            self.scaled.pop(service.id, None)
        replicas = desired_replicas(service, deleted, self.scaled.get(service.id))
        if replicas is None:
            self.desired.pop(service.id, None)
            self._changes[service.id] = _Change(None, service.id, force)
        else:
            self.desired[service.id] = replicas
            spec = DeploymentSpec(service, desired.template_revision, replicas, force)
            self._changes[service.id] = _Change(spec, service.id, force)
        if deleted:
            self.health.pop(service.id, None)
            self.services.pop(service.id, None)
            self._exported.pop(service.id, None)
            metrics.forget_service(service.id)
        self.wake.set()

    def scale(self, service_id: str, replicas: int) -> bool:
        """Apply an autoscaler decision: same template, another count (within the service's
        bounds). Ignored for a service that is unknown, paused or not autoscaled."""
        service = self.services.get(service_id)
        if service is None or service.runtime.autoscaler is None:
            return False
        self.scaled[service_id] = replicas
        wanted = desired_replicas(service, False, replicas)
        if wanted is None or wanted == self.desired.get(service_id):
            return False
        self.desired[service_id] = wanted
        spec = DeploymentSpec(service, self.templates[service_id], wanted)
        self._changes[service_id] = _Change(spec, service_id, False)
        self.wake.set()
        return True

    async def restart_replica(self, service_id: str, replica_id: str) -> bool:
        """A user's restart: drained and replaced by the driver; its exit is expected, so it
        is no failure and counts toward no crash loop. False: not a live replica of the
        service (gone meanwhile, or already stopping)."""
        if self._known.get(replica_id, service_id) != service_id:
            return False
        restarted = await self.driver.restart_replica(replica_id)
        self.wake.set()
        return restarted

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.wake.clear()  # before the round, so a change during it triggers the next
            try:
                await self.round()
            except Exception:  # one failed round must not end reconciliation
                log.exception("reconcile_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.settings.reconcile_interval)

    async def round(self) -> None:
        await self._apply_changes()
        seen = await self.driver.observe()
        await self._announce_replicas(seen)
        await self._check_exits(seen.exits)
        await self._check_stuck(seen.replicas)
        self._export(seen.replicas)

    async def _apply_changes(self) -> None:
        changes, self._changes = self._changes, {}
        for change in changes.values():
            try:
                if change.spec is None:
                    await self.driver.remove(change.service_id, force=change.force)
                else:
                    await self.driver.apply(change.spec)
            except Exception:
                self._changes.setdefault(change.service_id, change)  # retried next round
                raise

    # replicas coming and going -----------------------------------------------------------
    async def _announce_replicas(self, seen: Observation) -> None:
        for view in seen.replicas:
            if view.replica_id not in self._known:
                self._known[view.replica_id] = view.service_id
                log.info(
                    "replica_started",
                    replica_id=view.replica_id,
                    service_id=view.service_id,
                    revision=view.revision,
                )
                # Dated by its start, so it never overwrites what the agent said since.
                started = datetime.now(UTC) - timedelta(seconds=self.clock() - view.started_at)
                await self._announce(
                    view.replica_id,
                    view.service_id,
                    ReplicaState.STARTING,
                    None,
                    at=started,
                    revision=view.revision,
                )
        for gone in seen.exits:
            self._known.pop(gone.replica_id, None)
            self._stuck.discard(gone.replica_id)
            state, reason = exit_state(gone.exit_code)
            if gone.expected:
                state = ReplicaState.STOPPED
            log.info(
                "replica_exited",
                replica_id=gone.replica_id,
                service_id=gone.service_id,
                exit_code=gone.exit_code,
                expected=gone.expected,
                reason=reason,
            )
            await self._announce(gone.replica_id, gone.service_id, state, reason)

    # health --------------------------------------------------------------------------------
    async def _check_exits(self, exits: list[ReplicaExit]) -> None:
        by_service: dict[str, list[tuple[float, Failure]]] = {}
        last_exit: dict[str, ReplicaExit] = {}
        for gone in exits:
            failure = classify(gone)
            if failure is not None:
                by_service.setdefault(gone.service_id, []).append((gone.at, failure))
                last_exit[gone.service_id] = gone
                metrics.replica_restarted(gone.service_id, failure.type)
        for service_id, failures in by_service.items():
            await self._judge(service_id, failures, last_exit.get(service_id))

    async def _check_stuck(self, replicas: list[ReplicaView]) -> None:
        now = self.clock()
        waiting: dict[str, list[tuple[float, Failure]]] = {}
        for view in replicas:
            service = self.services.get(view.service_id)
            if service is None or view.replica_id in self._stuck:
                continue
            failure = waiting_failure(view)  # Kubernetes: image pull, unschedulable
            if failure is not None:
                waiting.setdefault(view.service_id, []).append((now, failure))
            text = stuck(view, service.runtime.state_thresholds.seconds(), now)
            if text is not None:
                self._stuck.add(view.replica_id)
                await self.driver.stop_replica(view.replica_id, text)
                failure = Failure.of(NotificationType.STUCK_REPLICA, text)
                waiting.setdefault(view.service_id, []).append((now, failure))
        for service_id, failures in waiting.items():
            await self._judge(service_id, failures, None)

    async def _judge(
        self, service_id: str, failures: list[tuple[float, Failure]], source: ReplicaExit | None
    ) -> None:
        """Notify once per failure type per window; deactivate after a sustained crash loop."""
        state, decision = after_failures(
            self.health.get(service_id, HealthState()), failures, self.clock(), self.policy
        )
        self.health[service_id] = state
        for failure in decision.notify:
            deactivate = (
                decision.deactivate and failure.type is NotificationType.FORCED_DEACTIVATION
            )
            await self._notify(service_id, failure, source, deactivate=deactivate)

    async def _notify(
        self,
        service_id: str,
        failure: Failure,
        source: ReplicaExit | None,
        *,
        deactivate: bool = False,
    ) -> None:
        notification = ServiceNotification(
            notification_id=uuid.uuid4().hex,
            service_id=service_id,
            notification=failure.type,
            title=failure.title,
            message=failure.message,
            replica_id=source.replica_id if source is not None else None,
            log_tail=list(source.log_tail) if source is not None else [],
            deactivate=deactivate,
            at=datetime.now(UTC),
        )
        log.warning(
            "service_notification",
            service_id=service_id,
            notification=failure.type,
            deactivate=deactivate,
            message=failure.message,
        )
        try:
            await self.bus.publish(self.bus.topology.events, "notification.service", notification)
        except BusError as e:
            log.warning("notification_not_published", service_id=service_id, error=str(e))

    def _export(self, replicas: list[ReplicaView]) -> None:
        counts: dict[str, Counter[ReplicaStatus]] = {}
        for view in replicas:
            counts.setdefault(view.service_id, Counter())[view.status] += 1
        for service_id in self.services:
            mine = counts.get(service_id, Counter())
            gauges = (
                self.desired.get(service_id, 0),
                mine[ReplicaStatus.PENDING] + mine[ReplicaStatus.STARTING],
                mine[ReplicaStatus.READY],
                mine[ReplicaStatus.DRAINING],
            )
            # Only what changed: with a thousand services, setting every gauge every round
            # was most of the scheduler's CPU.
            if self._exported.get(service_id) != gauges:
                self._exported[service_id] = gauges
                desired, starting, ready, draining = gauges
                metrics.set_replicas(
                    service_id, desired=desired, starting=starting, ready=ready, draining=draining
                )

    async def _announce(
        self,
        replica_id: str,
        service_id: str,
        state: ReplicaState,
        reason: str | None,
        *,
        at: datetime | None = None,
        revision: int | None = None,
    ) -> None:
        """Tell the platform (the gateway's service status) what happened to a replica."""
        event = ReplicaChanged(
            replica_id=replica_id,
            service_id=service_id,
            state=state,
            reason=reason,
            at=at or datetime.now(UTC),
            revision=revision,
        )
        try:
            await self.bus.publish(self.bus.topology.events, f"replica.{state}", event)
        except BusError as e:
            log.warning("replica_event_not_published", replica_id=replica_id, error=str(e))
