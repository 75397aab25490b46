"""Table tests for the pure backoff policy."""

from __future__ import annotations

import re

import pytest

from spool_common.backoff import BackoffPolicy

NO_JITTER = BackoffPolicy(jitter=0.0)


@pytest.mark.parametrize(
    ("policy", "failures", "rand", "expected"),
    [
        (BackoffPolicy(), 0, 0.0, 0.0),
        (BackoffPolicy(), 0, 0.99, 0.0),
        (NO_JITTER, 1, 0.3, 1.0),
        (NO_JITTER, 2, 0.3, 2.0),
        (NO_JITTER, 3, 0.3, 4.0),
        (NO_JITTER, 6, 0.3, 32.0),
        (NO_JITTER, 7, 0.3, 60.0),
        (NO_JITTER, 10_000, 0.3, 60.0),
        (BackoffPolicy(initial=0.5, factor=3.0, maximum=10.0, jitter=0.0), 3, 0.0, 4.5),
        (BackoffPolicy(initial=2.0, factor=1.0, maximum=5.0, jitter=0.0), 50, 0.0, 2.0),
        (BackoffPolicy(), 1, 0.0, 0.9),
        (BackoffPolicy(), 1, 0.5, 1.0),
        (BackoffPolicy(), 3, 0.75, 4.2),
        (BackoffPolicy(jitter=0.5), 2, 0.0, 1.0),
        (BackoffPolicy(), 20, 0.0, 54.0),
        (BackoffPolicy(), 20, 0.999, 60.0),
        (BackoffPolicy(initial=3.0, maximum=3.0, jitter=0.0), 9, 0.1, 3.0),
    ],
)
def test_delay(policy: BackoffPolicy, failures: int, rand: float, expected: float) -> None:
    assert policy.delay(failures, rand) == pytest.approx(expected)


@pytest.mark.parametrize("failures", range(1, 40))
@pytest.mark.parametrize("rand", [0.0, 0.25, 0.5, 0.999])
def test_delay_stays_within_jitter_band_and_cap(failures: int, rand: float) -> None:
    policy = BackoffPolicy(initial=0.2, factor=1.7, maximum=30.0, jitter=0.25)
    base = min(30.0, 0.2 * 1.7 ** (failures - 1))
    delay = policy.delay(failures, rand)
    assert base * 0.75 - 1e-9 <= delay <= min(30.0, base * 1.25) + 1e-9


def test_delay_grows_monotonically_without_jitter() -> None:
    delays = [NO_JITTER.delay(n, 0.5) for n in range(0, 12)]
    assert delays == sorted(delays)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial": 0.0}, "initial must be > 0"),
        ({"initial": -1.0}, "initial must be > 0"),
        ({"factor": 0.5}, "factor must be >= 1"),
        ({"maximum": 0.5}, "maximum (0.5) must be >= initial (1.0)"),
        ({"jitter": -0.1}, "jitter must be a fraction in [0, 1]"),
        ({"jitter": 1.5}, "jitter must be a fraction in [0, 1]"),
        ({"maximum": float("inf")}, "maximum must be a finite number"),
        ({"initial": float("nan")}, "initial must be a finite number"),
    ],
)
def test_invalid_policy_is_rejected(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        BackoffPolicy(**kwargs)


@pytest.mark.parametrize(
    ("failures", "rand", "message"),
    [
        (-1, 0.0, "failures must be >= 0"),
        (1, 1.0, r"rand must be in \[0, 1\)"),
        (1, -0.1, r"rand must be in \[0, 1\)"),
    ],
)
def test_invalid_delay_arguments_are_rejected(failures: int, rand: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BackoffPolicy().delay(failures, rand)
