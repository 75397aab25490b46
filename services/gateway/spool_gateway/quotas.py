"""Admission of new executions: the per-project rate limit (429) and the per-service queue cap
(503), both with `Retry-After`, both decided before anything is written (see quota_rules).

The state lives in this gateway process: with several replicas each admits up to the rate,
and the queue cap may be overshot by the requests in flight at once. The queue is never
trimmed (its arguments have no max-length), so whatever was admitted runs: the API never
answers 2xx for an execution that is later dropped.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from spool_common.errors import FieldError
from spool_gateway.http_errors import ApiError
from spool_gateway.quota_rules import Bucket, Gauge, must_count, queue_full, take
from spool_gateway.settings import GatewaySettings

QUEUE_FULL_RETRY_AFTER = 5  # seconds: about one autoscaler round
COUNT_MAX_AGE = 1.0  # seconds a queue length read from the ledger is trusted


class Refused(ApiError):
    """A request that may succeed later: answered with `Retry-After: <seconds>`."""

    retry_after: int

    def __init__(
        self, status: int, code: str, message: str, field: FieldError, retry_after: int
    ) -> None:
        super().__init__(status, code, message, (field,), retry_after)


class Quotas:
    def __init__(
        self,
        settings: GatewaySettings,
        count_waiting: Callable[[str, int], Awaitable[int]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = settings.execution_rate
        self._burst = settings.execution_burst
        self._cap = settings.max_waiting_executions
        self._count_waiting = count_waiting
        self._clock = clock
        self._buckets: dict[str, Bucket] = {}
        self._gauges: dict[str, Gauge] = {}

    def take(self, project_id: str, n: int) -> None:
        """Take `n` executions from the project's rate limit, or raise (nothing taken)."""
        if self._rate <= 0:
            return
        if n > self._burst:
            raise ApiError(
                400,
                "invalid_request",
                f"{n} executions in one request; project {project_id} may create at most "
                f"{self._burst} at once",
                (FieldError("executions", f"at most {self._burst} per request"),),
            )
        taken = take(self._buckets.get(project_id), n, self._clock(), self._rate, self._burst)
        self._buckets[project_id] = taken.bucket
        if taken.retry_after is not None:
            limit = f"{self._rate:g} executions per second (bursts of {self._burst})"
            raise Refused(
                429,
                "rate_limited",
                f"project {project_id} creates executions faster than its limit of {limit}",
                FieldError("projectId", f"rate limit of {limit} reached"),
                taken.retry_after,
            )

    async def admit(self, service_id: str, n: int) -> None:
        """Room for `n` more executions in the service's queue, or raise."""
        now = self._clock()
        gauge = self._gauges.get(service_id)
        if gauge is None or must_count(gauge, n, self._cap, now, COUNT_MAX_AGE):
            gauge = Gauge(await self._count_waiting(service_id, self._cap + 1), now)
        if queue_full(gauge.waiting, n, self._cap):
            self._gauges[service_id] = gauge
            raise Refused(
                503,
                "queue_full",
                f"service {service_id} has {gauge.waiting} executions waiting; "
                f"the limit is {self._cap}",
                FieldError("serviceId", f"at most {self._cap} executions may wait"),
                QUEUE_FULL_RETRY_AFTER,
            )
        self._gauges[service_id] = Gauge(gauge.waiting + n, gauge.counted_at)
