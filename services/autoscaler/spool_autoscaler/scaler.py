"""The autoscaler's loop: the gateway's load samples in, one decision per service per polling
interval through the pure rules, `scale.decided` out when the count changes.

A service at zero replicas is evaluated on the first sample that shows work for it, so it
wakes within one sample interval of the first queued execution. Between evaluations the
requests and latencies of every sample are added up, so a rule sees everything since its last
look. When samples stop coming (the gateway or the bus is down), the rules hold the current
count and say so; they never scale to zero on missing data.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from spool_autoscaler.rules import Decision, LatencyPolicy, Observation, ScalerState, decide
from spool_common.bus.amqp import Bus, BusError
from spool_common.logging import get_logger
from spool_common.messages import LoadSampled, ScaleDecided, ServiceChange, ServiceChanged
from spool_common.models import Service

log = get_logger(__name__)


# A load sample older than this (seconds, by the gateway's clock) is skipped: samples pile up
# in the inbox while the autoscaler is down, and deciding on them would act on the past.
STALE_SAMPLE = 15.0

# Decisions that change nothing by nature: not worth announcing on their own.
_QUIET = frozenset({"hold", "paused"})


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Scaled:
    service: Service
    current: int
    state: ScalerState = field(default_factory=ScalerState)
    queued: int = 0
    running: int = 0
    requests: int = 0
    latencies: list[float] = field(default_factory=list)
    evaluated_at: float | None = None
    announced: bool = False  # the scheduler has heard this process's count at least once


def initial_replicas(service: Service) -> int:
    scaler = service.runtime.autoscaler
    assert scaler is not None
    return min(max(service.runtime.num_replicas, scaler.min_replicas), scaler.max_replicas)


class Autoscaler:
    def __init__(
        self,
        bus: Bus,
        *,
        latency: LatencyPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utcnow,
    ) -> None:
        self.bus = bus
        self.latency = latency or LatencyPolicy()
        self.clock = clock
        self.wall = wall
        self.scaled: dict[str, _Scaled] = {}
        self.sampled_at: float | None = None

    # inputs ----------------------------------------------------------------------------------
    def on_service(self, message: ServiceChanged) -> None:
        service = message.service
        if message.change is ServiceChange.DELETED or service.runtime.autoscaler is None:
            self.scaled.pop(service.id, None)
            return
        known = self.scaled.get(service.id)
        if known is None:
            self.scaled[service.id] = _Scaled(service, initial_replicas(service))
        else:
            known.service = service
            scaler = service.runtime.autoscaler
            known.current = min(max(known.current, scaler.min_replicas), scaler.max_replicas)

    async def on_load(self, sample: LoadSampled) -> None:
        age = (self.wall() - sample.at).total_seconds()
        if age > STALE_SAMPLE:  # piled up while this process was down: old news
            log.info("load_sample_skipped", age=round(age, 1))
            return
        now = self.clock()
        self.sampled_at = now
        for service_id, scaled in self.scaled.items():
            load = sample.services.get(service_id)
            if load is None:
                scaled.queued = scaled.running = 0
                continue
            scaled.queued, scaled.running = load.queued, load.running
            scaled.requests += load.requests
            scaled.latencies.extend(load.latencies)
            del scaled.latencies[:-10_000]  # bounded between two evaluations
        for service_id in list(self.scaled):
            await self._maybe_evaluate(service_id, now)

    # deciding --------------------------------------------------------------------------------
    async def _maybe_evaluate(self, service_id: str, now: float) -> None:
        scaled = self.scaled[service_id]
        scaler = scaled.service.runtime.autoscaler
        if scaler is None:
            return
        interval = float(scaler.polling_interval or 10)
        waking = scaled.current == 0 and scaled.queued + scaled.running > 0
        due = scaled.evaluated_at is None or now - scaled.evaluated_at >= interval
        if due or waking:
            await self.evaluate(service_id, now)

    async def evaluate(self, service_id: str, now: float) -> Decision | None:
        scaled = self.scaled.get(service_id)
        if scaled is None or scaled.service.runtime.autoscaler is None:
            return None
        obs = None
        if self.sampled_at is not None:
            obs = Observation(
                now=now,
                queued=scaled.queued,
                running=scaled.running,
                requests=scaled.requests,
                latencies=tuple(scaled.latencies),
                sampled_at=self.sampled_at,
            )
        scaled.requests, scaled.latencies = 0, []
        scaled.evaluated_at = now
        scaled.state, decision = decide(
            scaled.state,
            scaled.service.runtime.autoscaler,
            current=scaled.current,
            paused=not scaled.service.active,
            obs=obs,
            now=now,
            latency=self.latency,
        )
        announce = decision.changed or (not scaled.announced and decision.rule not in _QUIET)
        if announce and await self._publish(service_id, scaled.current, decision):
            scaled.current, scaled.announced = decision.replicas, True
        return decision

    async def _publish(self, service_id: str, previous: int, decision: Decision) -> bool:
        message = ScaleDecided(
            service_id=service_id,
            replicas=decision.replicas,
            previous=previous,
            rule=decision.rule,
            reason=decision.reason,
            inputs=dict(decision.inputs),
            at=self.wall(),
        )
        log.info(
            "scale_decided",
            service_id=service_id,
            previous=previous,
            replicas=decision.replicas,
            rule=decision.rule,
            reason=decision.reason,
        )
        try:
            await self.bus.publish(self.bus.topology.events, "scale.decided", message)
        except BusError as e:  # decided again at the next polling interval
            log.warning("scale_decision_not_published", service_id=service_id, error=str(e))
            return False
        return True

    async def run(self, stop: asyncio.Event, every: float = 1.0) -> None:
        """Evaluate services whose interval passed even when no sample comes (so a silent
        gateway is noticed and the count held, with a reason)."""
        while not stop.is_set():
            now = self.clock()
            for service_id in list(self.scaled):
                try:
                    await self._maybe_evaluate(service_id, now)
                except Exception:  # one service's failure must not stop the others
                    log.exception("autoscale_failed", service_id=service_id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
