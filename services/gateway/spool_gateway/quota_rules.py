"""Admission rules for new executions, pure: a token bucket per project (the rate limit) and
a cap on the executions waiting in a service's queue. Times are monotonic seconds, passed in.

- The bucket holds at most `burst` tokens and refills at `rate` per second; creating n
  executions takes n tokens at once or none (a batch is admitted whole or refused whole).
- Refused for the rate: `Retry-After` is the whole seconds until n tokens are there (≥ 1).
- The queue cap counts executions created or rerun but not yet claimed; it is checked against
  a count read from the ledger, re-read at least every `max_age` seconds and on every request
  once the queue is past half the cap (below that, the local estimate is exact enough).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Bucket:
    tokens: float
    at: float  # when `tokens` was true


@dataclass(frozen=True)
class Taken:
    """The bucket after a request: `retry_after` is None if the request was admitted."""

    bucket: Bucket
    retry_after: int | None


def take(bucket: Bucket | None, n: int, now: float, rate: float, burst: int) -> Taken:
    """Take `n` tokens from `bucket` (None: a full one), refilled up to `now`."""
    if bucket is None:
        tokens = float(burst)
    else:
        elapsed = max(0.0, now - bucket.at)
        tokens = min(float(burst), bucket.tokens + elapsed * rate)
    if tokens >= n:
        return Taken(Bucket(tokens - n, now), None)
    wait = (n - tokens) / rate
    return Taken(Bucket(tokens, now), max(1, math.ceil(wait)))


@dataclass(frozen=True)
class Gauge:
    """What this process believes a service's queue holds, and when it last counted."""

    waiting: int
    counted_at: float


def must_count(gauge: Gauge | None, n: int, cap: int, now: float, max_age: float) -> bool:
    """Whether to read the queue's length from the ledger before admitting `n` more."""
    if gauge is None or now - gauge.counted_at >= max_age:
        return True
    return gauge.waiting + n > cap // 2


def queue_full(waiting: int, n: int, cap: int) -> bool:
    """Admitting `n` more would put more than `cap` executions in the queue."""
    return waiting + n > cap
