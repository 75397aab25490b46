"""Table tests for the load sampler's rules: the window of the next sample, what the sample says
about each service (a service that went idle is sent once with zeros), and the gauges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from spool_common.messages import ServiceLoad
from spool_gateway.load_rules import (
    LATENCY_CAP,
    Load,
    Window,
    build_sample,
    gauges,
    has_load,
    sample_window,
)

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("last", "lag", "expected"),
    [
        pytest.param(None, 1.0, Window(ago(3), ago(1)), id="first-sample-covers-one-interval"),
        pytest.param(ago(3), 1.0, Window(ago(3), ago(1)), id="from-the-previous-sample"),
        pytest.param(ago(2), 0.0, Window(ago(2), NOW), id="no-lag"),
        pytest.param(ago(1.9), 1.0, None, id="too-soon-another-gateway-sampled"),
        pytest.param(ago(2.0), 1.0, Window(ago(2.0), ago(1)), id="half-an-interval-is-enough"),
        pytest.param(ago(3600), 1.0, Window(ago(11), ago(1)), id="after-downtime-at-most-5"),
        pytest.param(NOW + timedelta(seconds=5), 1.0, None, id="clock-went-back"),
    ],
)
def test_sample_window(last: datetime | None, lag: float, expected: Window | None) -> None:
    assert sample_window(last, NOW, interval=2.0, lag=lag) == expected


def test_a_window_knows_its_length() -> None:
    assert Window(ago(2.5), NOW).seconds == 2.5


WINDOW = Window(ago(2), NOW)


@pytest.mark.parametrize(
    ("loads", "previously_loaded", "expected"),
    [
        pytest.param({}, set(), {}, id="nothing"),
        pytest.param(
            {"a": Load(queued=2, running=1, requests=3, latencies=(0.5,))},
            set(),
            {"a": ServiceLoad(queued=2, running=1, requests=3, latencies=[0.5])},
            id="a-service-with-load",
        ),
        pytest.param(
            {"a": Load(queued=1)},
            {"a", "b"},
            {"a": ServiceLoad(queued=1, running=0), "b": ServiceLoad(queued=0, running=0)},
            id="idle-since-the-previous-sample-sent-with-zeros",
        ),
        pytest.param({"a": Load()}, set(), {}, id="a-service-without-load-is-not-sent"),
        pytest.param(
            {"a": Load(latencies=(1.0,))},
            set(),
            {"a": ServiceLoad(queued=0, running=0, latencies=[1.0])},
            id="only-ended-executions",
        ),
    ],
)
def test_build_sample(
    loads: dict[str, Load], previously_loaded: set[str], expected: dict[str, ServiceLoad]
) -> None:
    sample = build_sample(WINDOW, loads, previously_loaded)
    assert sample.services == expected
    assert (sample.at, sample.interval) == (NOW, 2.0)


def test_a_sample_holds_at_most_the_cap_of_latencies_per_service() -> None:
    load = Load(requests=1, latencies=tuple(float(i) for i in range(LATENCY_CAP + 5)))
    sample = build_sample(WINDOW, {"a": load}, ())
    assert sample.services["a"].latencies == [float(i) for i in range(LATENCY_CAP)]


@pytest.mark.parametrize(
    ("load", "expected"),
    [
        (Load(), False),
        (Load(queued=1), True),
        (Load(running=1), True),
        (Load(requests=1), True),
        (Load(latencies=(0.0,)), True),
    ],
)
def test_has_load(load: Load, expected: bool) -> None:
    assert has_load(load) is expected


@pytest.mark.parametrize(
    ("open_counts", "previously_set", "expected"),
    [
        pytest.param({}, set(), {}, id="nothing"),
        pytest.param({"a": (2, 1)}, set(), {"a": (2, 1)}, id="open-counts"),
        pytest.param({"a": (2, 1)}, {"a", "b"}, {"a": (2, 1), "b": (0, 0)}, id="b-emptied"),
    ],
)
def test_gauges(
    open_counts: dict[str, tuple[int, int]],
    previously_set: set[str],
    expected: dict[str, tuple[int, int]],
) -> None:
    assert gauges(open_counts, previously_set) == expected
