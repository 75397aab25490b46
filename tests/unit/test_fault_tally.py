"""The fault line's `duplicated` rule (tests/support/faults.py): what counts as a function
run twice."""

from __future__ import annotations

import pytest
from support.faults import tally
from support.ledger import Interval

KEY = "k"


def _execution(successes: int) -> dict[str, object]:
    log = [{"status": "created"}] + [{"status": "success"}] * successes
    return {
        "input": {"exec_key": KEY},
        "latestStatus": {"status": "success"},
        "attempts": 2,
        "maxAttempts": 3,
        "statusLog": log,
    }


KILLED = {101: 5.0}  # pid 101 was killed, seen dead at 5.0


@pytest.mark.parametrize(
    ("runs", "successes", "died", "duplicated"),
    [
        pytest.param(
            [Interval(KEY, 101, 0.0, None), Interval(KEY, 202, 4.0, 6.0)],
            1,
            KILLED,
            0,
            id="killed-unfinished-then-rerun",
        ),
        pytest.param(
            [Interval(KEY, 101, 0.0, 2.0), Interval(KEY, 202, 4.0, 6.0)],
            1,
            KILLED,
            0,
            id="completed-in-a-killed-process-unheard-of",
        ),
        pytest.param(
            [Interval(KEY, 101, 0.0, 2.0), Interval(KEY, 202, 4.0, 6.0)],
            2,
            KILLED,
            1,
            id="completed-and-recorded-then-run-again",
        ),
        pytest.param(
            [Interval(KEY, 101, 0.0, 2.0), Interval(KEY, 202, 4.0, 6.0)],
            1,
            {},
            1,
            id="completed-in-a-live-process-then-run-again",
        ),
        pytest.param(
            [Interval(KEY, 101, 0.0, 5.0), Interval(KEY, 202, 4.0, 6.0)],
            1,
            KILLED,
            1,
            id="overlapping-runs",
        ),
    ],
)
def test_a_run_counts_as_duplicated_only_when_the_platform_could_have_known(
    runs: list[Interval], successes: int, died: dict[int, float], duplicated: int
) -> None:
    line = tally("T", [_execution(successes)], {KEY: runs}, died=died)
    assert line.duplicated == duplicated
