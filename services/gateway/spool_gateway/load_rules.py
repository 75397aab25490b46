"""Pure rules of the load sampler: which window the next sample covers, what it says about
each service, and which Prometheus gauges to set. Nothing here reads a clock or does I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from spool_common.messages import LoadSampled, ServiceLoad

# At most this many latencies per service in one sample (the newest ended ones).
LATENCY_CAP = 1000
# After a pause (a restart, a broker outage) a sample covers at most this many intervals: the
# autoscaler wants the load now, not an average over the downtime.
MAX_INTERVALS = 5


@dataclass(frozen=True)
class Window:
    """A sample covers executions created or ended in (lower, upper]."""

    lower: datetime
    upper: datetime

    @property
    def seconds(self) -> float:
        return (self.upper - self.lower).total_seconds()


@dataclass(frozen=True)
class Load:
    """One service's load as read from the store."""

    queued: int = 0
    running: int = 0
    requests: int = 0
    latencies: tuple[float, ...] = ()


def sample_window(
    last: datetime | None, now: datetime, *, interval: float, lag: float
) -> Window | None:
    """The window the next sample covers, or None if it is too soon for one (a window shorter
    than half an interval: another gateway has just sampled, or the clock went back).

    It ends `lag` seconds before `now`, so a row whose transaction commits up to `lag` after
    its timestamp is still seen; it starts where the previous one ended (`last`), but covers at
    most MAX_INTERVALS intervals, and one interval when there was no previous sample."""
    upper = now - timedelta(seconds=lag)
    span = timedelta(seconds=interval)
    lower = upper - span if last is None else max(last, upper - MAX_INTERVALS * span)
    if upper - lower < span / 2:
        return None
    return Window(lower, upper)


def build_sample(
    window: Window, loads: Mapping[str, Load], previously_loaded: Collection[str]
) -> LoadSampled:
    """One message for every service with load in the window, plus every service that had
    load in the previous sample and has none now, with zeros (so the drop is seen)."""
    services = {
        service_id: ServiceLoad(
            queued=load.queued,
            running=load.running,
            requests=load.requests,
            latencies=list(load.latencies[:LATENCY_CAP]),
        )
        for service_id, load in loads.items()
        if has_load(load)
    }
    for service_id in previously_loaded:
        services.setdefault(service_id, ServiceLoad(queued=0, running=0))
    return LoadSampled(at=window.upper, interval=window.seconds, services=services)


def has_load(load: Load) -> bool:
    return bool(load.queued or load.running or load.requests or load.latencies)


def gauges(
    open_counts: Mapping[str, tuple[int, int]], previously_set: Collection[str]
) -> dict[str, tuple[int, int]]:
    """(queue depth, in flight) to set per service: the open counts, and zeros for services
    whose gauges were set before and have nothing open now."""
    values = {service_id: (0, 0) for service_id in previously_set}
    values.update(open_counts)
    return values
