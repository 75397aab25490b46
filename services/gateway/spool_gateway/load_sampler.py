"""The load sampler: every `load_sample_interval` one `LoadSampled` on the events exchange
(`load.sampled`) with every service's queued, running, requests and latencies since the
previous sample, for the autoscaler; and the queue gauges of /metrics.

A sample is not worth redelivering (the next one follows), so it is published once, with a
confirm, after the window was recorded; a failed publish is logged and that window is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from functools import partial

from spool_common import metrics
from spool_common.bus.amqp import BusError
from spool_common.bus.topology import RoutingKey
from spool_common.logging import get_logger
from spool_common.messages import LoadSampled
from spool_common.store.pg import TRANSIENT_ERRORS
from spool_gateway.core import Gateway
from spool_gateway.load_rules import build_sample, gauges, sample_window
from spool_gateway.load_store import LoadStore

log = get_logger(__name__)


class LoadSampler:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.store = LoadStore(gateway.ledger.pool)
        self._gauged: frozenset[str] = frozenset()  # services with a nonzero gauge

    async def sample(self) -> LoadSampled | None:
        """One round: the gauges always; the sample (published, and returned) when this
        process took the next window, None otherwise."""
        settings = self.gateway.settings
        plan = partial(
            sample_window, interval=settings.load_sample_interval, lag=settings.load_sample_lag
        )
        reading = await self.store.read(plan)
        for service_id, (queued, running) in gauges(reading.open_counts, self._gauged).items():
            metrics.set_queue(service_id, depth=queued, in_flight=running)
        self._gauged = frozenset(reading.open_counts)
        if reading.window is None:
            return None
        sample = build_sample(reading.window, reading.loads, reading.previously_loaded)
        bus = self.gateway.bus
        try:
            await bus.publish(
                bus.topology.events, RoutingKey.LOAD_SAMPLED, sample, persistent=False
            )
        except BusError as e:
            log.warning("load_sample_not_published", error=str(e), at=sample.at.isoformat())
        return sample

    async def run(self, stop: asyncio.Event) -> None:
        """Sample every `load_sample_interval` until `stop`; a failed round is logged and the
        next one covers its window too (up to load_rules.MAX_INTERVALS)."""
        while not stop.is_set():
            try:
                await self.sample()
            except TRANSIENT_ERRORS as e:
                log.warning("load_sample_failed", error=str(e))
            except Exception:  # the loop must outlive a failed round, as the reaper does
                log.exception("load_sample_crashed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.gateway.settings.load_sample_interval)
