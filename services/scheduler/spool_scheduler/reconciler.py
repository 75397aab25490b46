"""The reconcile loop: read the clock, call the pure planner, carry out its plan."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from spool_common.backoff import BackoffPolicy
from spool_common.bus.amqp import Bus, BusError
from spool_common.logging import get_logger
from spool_common.messages import (
    CredentialReply,
    CredentialRequest,
    ReplicaChanged,
    ReplicaState,
)
from spool_common.models import Service
from spool_scheduler.driver import ReplicaSpec, RuntimeDriver
from spool_scheduler.plan import CrashState, Desired, Start, desired_for, exit_state, plan
from spool_scheduler.settings import SchedulerSettings

log = get_logger(__name__)

RESTART_POLICY = BackoffPolicy(initial=1.0, factor=2.0, maximum=60.0, jitter=0.1)
_AGENT_ENV_PASSED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "VIRTUAL_ENV")


class Reconciler:
    def __init__(
        self,
        driver: RuntimeDriver,
        bus: Bus,
        settings: SchedulerSettings,
        *,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.driver = driver
        self.bus = bus
        self.settings = settings
        self.rand = rand
        self.clock = clock
        self.services: dict[str, Service] = {}
        self.desired: dict[str, Desired] = {}
        self.crashes: dict[str, CrashState] = {}
        self.wake = asyncio.Event()

    def set_service(self, service: Service, revision: int, deleted: bool) -> None:
        self.services[service.id] = service
        want = desired_for(service, revision, deleted)
        if want is None:
            self.desired.pop(service.id, None)
        else:
            self.desired[service.id] = want
        self.wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.wake.clear()  # before the round, so a change during it triggers the next
            try:
                await self.round()
            except Exception as e:  # one failed round must not end reconciliation
                log.warning("reconcile_failed", error=str(e))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.settings.reconcile_interval)

    async def round(self) -> None:
        result = plan(
            self.desired,
            self.driver.observe(),
            self.crashes,
            now=self.clock(),
            policy=RESTART_POLICY,
            rand=self.rand(),
        )
        self.crashes = result.crashes
        for gone in result.forgets:
            self.driver.forget(gone.replica_id)
            state, reason = exit_state(gone.exit_code)
            log.info(
                "replica_exited",
                replica_id=gone.replica_id,
                exit_code=gone.exit_code,
                service_id=gone.service_id,
                reason=reason,
            )
            await self._announce(gone.replica_id, gone.service_id, state, reason)
        for stop in result.stops:
            log.info("replica_stopping", replica_id=stop.replica_id, reason=stop.reason)
            await self.driver.stop(stop.replica_id)
        for start in result.starts:
            await self._start(start)

    async def _start(self, start: Start) -> None:
        service = self.services[start.service_id]
        replica_id = f"{service.name}-{uuid.uuid4().hex[:8]}"
        request = CredentialRequest(service_id=service.id, replica_id=replica_id)
        try:
            reply = await self.bus.request(
                self.bus.topology.agent, "credential", request, timeout=5.0
            )
        except BusError as e:
            log.warning("credential_unavailable", service_id=service.id, error=str(e))
            return
        if not isinstance(reply, CredentialReply) or reply.token is None:
            log.warning(
                "credential_refused", service_id=service.id, error=getattr(reply, "error", None)
            )
            return
        spec = ReplicaSpec(
            replica_id=replica_id,
            service_id=service.id,
            revision=start.revision,
            env=self._agent_env(service, replica_id, reply.token),
            drain_time=start.drain_time,
        )
        await self.driver.start(spec)
        await self._announce(replica_id, service.id, ReplicaState.STARTING, None)
        log.info(
            "replica_started", replica_id=replica_id, service_id=service.id, revision=start.revision
        )

    async def _announce(
        self, replica_id: str, service_id: str, state: ReplicaState, reason: str | None
    ) -> None:
        """Tell the platform (the gateway's service status) what happened to a replica."""
        event = ReplicaChanged(
            replica_id=replica_id,
            service_id=service_id,
            state=state,
            reason=reason,
            at=datetime.now(UTC),
        )
        try:
            await self.bus.publish(self.bus.topology.events, f"replica.{state}", event)
        except BusError as e:
            log.warning("replica_event_not_published", replica_id=replica_id, error=str(e))

    def _agent_env(self, service: Service, replica_id: str, token: str) -> dict[str, str]:
        env = {k: os.environ[k] for k in _AGENT_ENV_PASSED if k in os.environ}
        # pip settings the agent uses to install requirements (private index, find-links).
        env.update({k: v for k, v in os.environ.items() if k.startswith("PIP_")})
        env.update(
            {
                "SPOOL_SERVICE_ID": service.id,
                "SPOOL_REPLICA_ID": replica_id,
                "SPOOL_AGENT_TOKEN": token,
                "SPOOL_AMQP_URL": self.settings.amqp_url,
                "SPOOL_GATEWAY_URL": self.settings.gateway_url,
                "SPOOL_BUS_NAMESPACE": self.settings.bus_namespace,
                "SPOOL_LOG_LEVEL": self.settings.log_level,
                "SPOOL_LOG_FORMAT": self.settings.log_format,
                "SPOOL_LEASE_RENEW_INTERVAL": str(self.settings.agent_lease_renew_interval),
            }
        )
        return env
