"""A trace-driven simulation of one scaled service, deciding through the real `decide`.

Pure and deterministic: the trace is data, arrivals are spread evenly (fractional rates carry
over), and nothing reads a clock. The model, one tick of `dt` seconds at a time:

* arrivals join a FIFO queue; each ready replica runs up to `concurrency` executions at once;
* an execution takes `concurrency / per_replica_rate` seconds times the trace's slowdown at its
  start, so one replica finishes `per_replica_rate` executions a second at full load;
* its latency is the time from arrival to completion;
* every polling interval the autoscaler observes the queue, the executions in flight, the
  arrivals (as requests) and the latencies since the last poll, and calls `decide`;
* a new replica is ready `startup_delay` seconds after it was asked for; a removed replica
  takes no new work and finishes what it runs (starting replicas are removed first).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from spool_autoscaler import rules
from spool_autoscaler.rules import (
    DEFAULT_LATENCY,
    Decision,
    LatencyPolicy,
    Observation,
    Scaler,
    ScalerState,
    decide,
)


@dataclass(frozen=True)
class Phase:
    """`seconds` of `arrivals` executions a second, each taking `slowdown` times as long."""

    name: str
    seconds: float
    arrivals: float
    slowdown: float = 1.0


@dataclass(frozen=True)
class Step:
    t: float
    queued: int
    in_flight: int
    desired: int
    ready: int
    p75: float | None  # over the latency policy's window, None without completions in it
    rule: str | None = None  # set on the steps where the replicas changed
    reason: str | None = None


def phase_at(trace: Sequence[Phase], t: float) -> Phase:
    start = 0.0
    for phase in trace:
        if t < start + phase.seconds:
            return phase
        start += phase.seconds
    return trace[-1]


@dataclass
class _Service:
    """The mutable world of one simulation run; only `simulate` sees it."""

    concurrency: int
    duration: float
    startup_delay: float
    desired: int
    ready: int
    starting: list[float] = field(default_factory=list)  # when each starting replica is ready
    queue: deque[tuple[float, int]] = field(default_factory=deque)  # (arrival time, count)
    running: list[tuple[float, float, int]] = field(default_factory=list)  # (end, arrival, n)
    carry: float = 0.0
    requests: int = 0
    samples: list[float] = field(default_factory=list)  # latencies since the last poll
    recent: deque[tuple[float, float, int]] = field(default_factory=deque)  # (end, latency, n)

    @property
    def queued(self) -> int:
        return sum(n for _, n in self.queue)

    @property
    def in_flight(self) -> int:
        return sum(n for _, _, n in self.running)

    def arrive(self, t: float, rate: float, dt: float) -> None:
        self.carry += rate * dt
        count = math.floor(self.carry)
        self.carry -= count
        if count:
            self.queue.append((t, count))
            self.requests += count

    def tick(self, t: float, slowdown: float) -> None:
        self.ready += sum(1 for at in self.starting if at <= t)
        self.starting = [at for at in self.starting if at > t]
        for end, arrival, n in [r for r in self.running if r[0] <= t]:
            latency = round(end - arrival, 6)  # no float noise in reasons and plots
            self.samples.extend([latency] * n)
            self.recent.append((end, latency, n))
        self.running = [r for r in self.running if r[0] > t]
        free = self.ready * self.concurrency - self.in_flight
        while free > 0 and self.queue:
            arrival, waiting = self.queue[0]
            n = min(free, waiting)
            self.running.append((t + self.duration * slowdown, arrival, n))
            free -= n
            if n == waiting:
                self.queue.popleft()
            else:
                self.queue[0] = (arrival, waiting - n)

    def scale(self, t: float, replicas: int) -> None:
        if replicas > self.desired:
            self.starting += [t + self.startup_delay] * (replicas - self.desired)
        fewer = max(self.desired - replicas, 0)
        dropped = min(fewer, len(self.starting))
        self.starting = self.starting[: len(self.starting) - dropped]
        self.ready -= fewer - dropped
        self.desired = replicas

    def p75(self, t: float, window: float) -> float | None:
        while self.recent and self.recent[0][0] <= t - window:
            self.recent.popleft()
        total = sum(n for _, _, n in self.recent)
        rank, seen = math.ceil(0.75 * total), 0
        for latency, n in sorted((s, n) for _, s, n in self.recent):
            seen += n
            if seen >= rank:
                return latency
        return None


def simulate(
    trace: Sequence[Phase],
    scaler: Scaler,
    *,
    per_replica_rate: float,
    concurrency: int = 10,
    polling_interval: float | None = None,
    latency: LatencyPolicy = DEFAULT_LATENCY,
    start_replicas: int = 0,
    dt: float = 1.0,
    startup_delay: float = 10.0,
) -> list[Step]:
    """Run the trace through the model and the autoscaler; one Step per tick."""
    if per_replica_rate <= 0 or dt <= 0 or concurrency < 1 or not trace:
        raise ValueError("simulate needs a trace, per_replica_rate > 0, dt > 0, concurrency >= 1")
    every = max(round((polling_interval or rules.polling_interval(scaler)) / dt), 1)
    duration = concurrency / per_replica_rate
    service = _Service(concurrency, duration, startup_delay, start_replicas, start_replicas)
    state, steps = ScalerState(), []
    for k in range(math.ceil(sum(p.seconds for p in trace) / dt)):
        t = k * dt
        phase = phase_at(trace, t)
        service.arrive(t, phase.arrivals, dt)
        service.tick(t, phase.slowdown)
        decision: Decision | None = None
        if k % every == 0:
            state, decision = _poll(service, state, scaler, t, latency)
        changed = decision if decision is not None and decision.changed else None
        steps.append(
            Step(
                t,
                service.queued,
                service.in_flight,
                service.desired,
                service.ready,
                service.p75(t, latency.window),
                changed.rule if changed else None,
                changed.reason if changed else None,
            )
        )
    return steps


def _poll(
    service: _Service, state: ScalerState, scaler: Scaler, t: float, latency: LatencyPolicy
) -> tuple[ScalerState, Decision]:
    obs = Observation(
        t, service.queued, service.in_flight, service.requests, tuple(service.samples), t
    )
    state, decision = decide(
        state, scaler, current=service.desired, paused=False, obs=obs, now=t, latency=latency
    )
    service.requests, service.samples = 0, []
    service.scale(t, decision.replicas)
    return state, decision
