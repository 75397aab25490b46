"""Admission rules: the per-project token bucket and the per-service queue cap."""

from __future__ import annotations

import pytest

from spool_gateway.http_errors import ApiError
from spool_gateway.quota_rules import Bucket, Gauge, must_count, queue_full, take
from spool_gateway.quotas import Quotas, Refused
from spool_gateway.settings import GatewaySettings

TAKE = [
    # bucket, n, now, rate, burst -> tokens left, retry_after
    ("full-bucket", None, 1, 0.0, 10.0, 5, 4.0, None),
    ("takes-all", None, 5, 0.0, 10.0, 5, 0.0, None),
    ("empty-waits", Bucket(0.0, 0.0), 1, 0.0, 10.0, 5, 0.0, 1),
    ("refills", Bucket(0.0, 0.0), 1, 0.1, 10.0, 5, 0.0, None),
    ("refill-caps-at-burst", Bucket(0.0, 0.0), 1, 100.0, 10.0, 5, 4.0, None),
    ("batch-waits-whole-seconds", Bucket(0.0, 0.0), 5, 0.0, 2.0, 5, 0.0, 3),
    ("partial-batch-takes-none", Bucket(3.0, 0.0), 5, 0.0, 1.0, 5, 3.0, 2),
    ("clock-going-back-adds-nothing", Bucket(1.0, 10.0), 2, 5.0, 10.0, 5, 1.0, 1),
]


@pytest.mark.parametrize(
    ("bucket", "n", "now", "rate", "burst", "left", "retry"),
    [t[1:] for t in TAKE],
    ids=[t[0] for t in TAKE],
)
def test_take(
    bucket: Bucket | None,
    n: int,
    now: float,
    rate: float,
    burst: int,
    left: float,
    retry: int | None,
) -> None:
    taken = take(bucket, n, now, rate, burst)
    assert taken.bucket.tokens == pytest.approx(left)
    assert taken.retry_after == retry


@pytest.mark.parametrize(
    ("gauge", "n", "now", "expected"),
    [
        (None, 1, 0.0, True),
        (Gauge(10, 0.0), 1, 0.5, False),
        (Gauge(10, 0.0), 1, 1.0, True),  # too old
        (Gauge(49, 0.0), 2, 0.5, True),  # past half the cap of 100
        (Gauge(48, 0.0), 2, 0.5, False),
    ],
)
def test_must_count(gauge: Gauge | None, n: int, now: float, expected: bool) -> None:
    assert must_count(gauge, n, cap=100, now=now, max_age=1.0) is expected


@pytest.mark.parametrize(
    ("waiting", "n", "full"), [(0, 100, False), (99, 1, False), (100, 1, True), (0, 101, True)]
)
def test_queue_full(waiting: int, n: int, full: bool) -> None:
    assert queue_full(waiting, n, cap=100) is full


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def quotas(clock: FakeClock, waiting: dict[str, int], **settings: float) -> Quotas:
    async def count(service_id: str, limit: int) -> int:
        return min(waiting.get(service_id, 0), limit)

    return Quotas(GatewaySettings.model_validate(settings), count, clock)


def test_rate_limit_refuses_with_retry_after_and_names_the_project() -> None:
    clock = FakeClock()
    q = quotas(clock, {}, execution_rate=1, execution_burst=2)
    q.take("p1", 2)
    with pytest.raises(Refused) as caught:
        q.take("p1", 1)
    assert (caught.value.status, caught.value.retry_after) == (429, 1)
    assert "p1" in caught.value.message
    assert caught.value.details[0].field == "projectId"
    q.take("p2", 2)  # another project has a bucket of its own
    clock.now = 1.0
    q.take("p1", 1)


def test_a_batch_larger_than_the_burst_is_400_not_429() -> None:
    q = quotas(FakeClock(), {}, execution_rate=1, execution_burst=2)
    with pytest.raises(ApiError) as caught:
        q.take("p1", 3)
    assert not isinstance(caught.value, Refused)
    assert caught.value.status == 400


def test_rate_zero_is_no_limit() -> None:
    q = quotas(FakeClock(), {}, execution_rate=0, execution_burst=1)
    for _ in range(100):
        q.take("p1", 1)


async def test_queue_cap_refuses_with_503_and_reads_the_ledger_near_the_cap() -> None:
    clock = FakeClock()
    waiting = {"s1": 3}
    q = quotas(clock, waiting, max_waiting_executions=5)
    await q.admit("s1", 2)
    waiting["s1"] += 2  # as the ledger records them
    with pytest.raises(Refused) as caught:
        await q.admit("s1", 1)
    assert caught.value.status == 503
    assert caught.value.retry_after >= 1
    assert caught.value.details[0].field == "serviceId"
    waiting["s1"] = 0  # the queue drained
    await q.admit("s1", 5)


async def test_far_from_the_cap_admitted_ones_are_counted_locally() -> None:
    clock = FakeClock()
    reads: list[str] = []

    async def count(service_id: str, limit: int) -> int:
        reads.append(service_id)
        return 0

    settings = GatewaySettings.model_validate({"max_waiting_executions": 100})
    q = Quotas(settings, count, clock)
    for _ in range(10):
        await q.admit("s1", 4)  # 40 waiting, below half the cap: one read
    assert reads == ["s1"]
    await q.admit("s1", 20)  # past half the cap: read again
    clock.now = 5.0
    await q.admit("s1", 1)  # and whenever the last read is old
    assert reads == ["s1"] * 3
