"""The 5-point progress rule: an update is recorded only if it rises by 5 or reaches 100."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spool_agent.progress import should_record


@pytest.mark.parametrize(
    ("last", "percent", "recorded"),
    [
        pytest.param(None, 0, False, id="first-zero"),
        pytest.param(None, 4, False, id="first-below-5"),
        pytest.param(None, 5, True, id="first-at-5"),
        pytest.param(4, 7, False, id="4-then-7-dropped"),
        pytest.param(4, 8, False, id="4-then-8-dropped"),
        pytest.param(4, 9, True, id="4-then-9-shown"),
        pytest.param(50, 55, True, id="exactly-5-more"),
        pytest.param(50, 50, False, id="same-again"),
        pytest.param(50, 40, False, id="going-down"),
        pytest.param(None, 100, True, id="100-first"),
        pytest.param(99, 100, True, id="100-after-99"),
        pytest.param(97, 99, False, id="99-after-97"),
        pytest.param(100, 100, False, id="100-only-once"),
    ],
)
def test_should_record(last: int | None, percent: int, recorded: bool) -> None:
    assert should_record(last, percent) is recorded


def recorded(updates: list[int]) -> list[int]:
    """What the gateway sees from a run that reports `updates` in order."""
    last: int | None = None
    kept = []
    for percent in updates:
        if should_record(last, percent):
            kept.append(percent)
            last = percent
    return kept


@pytest.mark.parametrize(
    ("updates", "expected"),
    [
        pytest.param([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [5, 10], id="every-point"),
        pytest.param(list(range(0, 101)), list(range(5, 101, 5)), id="zero-to-hundred"),
        pytest.param([10, 12, 14, 16, 100, 100, 100], [10, 16, 100], id="100-repeated"),
        pytest.param([30, 20, 34, 35], [30, 35], id="dips-do-not-reset"),
    ],
)
def test_a_run_of_updates(updates: list[int], expected: list[int]) -> None:
    assert recorded(updates) == expected


@given(st.lists(st.integers(min_value=0, max_value=100)))
def test_recorded_updates_rise_by_5_and_100_is_kept_once(updates: list[int]) -> None:
    kept = recorded(updates)
    steps = [b - a for a, b in zip([0, *kept], kept, strict=False) if b != 100]
    assert all(step >= 5 for step in steps)
    assert kept.count(100) == (1 if 100 in updates else 0)
