"""Table tests for MLRun-style time strings (state thresholds)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spool_common.durations import (
    MLRUN_STATE_NAMES,
    STATE_THRESHOLD_DEFAULTS,
    parse_duration,
)
from spool_common.errors import ValidationFailure

FIELD = "runtime.stateThresholds.running"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("1h", 3600.0, id="hour"),
        pytest.param("90s", 90.0, id="seconds"),
        pytest.param("30 minutes 5h 1day", 1800.0 + 5 * 3600 + 86400, id="mlrun-doc-example"),
        pytest.param("1 minute and 30s", 90.0, id="and-between-pairs"),
        pytest.param("1 min", 60.0, id="mlrun-set-state-thresholds-example"),
        pytest.param("2 weeks", 14 * 86400.0, id="weeks"),
        pytest.param("1.5h", 5400.0, id="decimal"),
        pytest.param(".5m", 30.0, id="leading-dot"),
        pytest.param("1h30m", 5400.0, id="pairs-without-space"),
        pytest.param("1h, 30m", 5400.0, id="comma"),
        pytest.param("1 hour, and 2 secs", 3602.0, id="comma-and"),
        pytest.param("1HOUR 2Sec", 3602.0, id="case-insensitive"),
        pytest.param("  24h  ", 86400.0, id="outer-whitespace"),
        pytest.param("3 days", 3 * 86400.0, id="days"),
        pytest.param("1w 1d 1hr 1m 1s", 694861.0, id="every-unit"),
        pytest.param("2 hrs 3 mins", 7380.0, id="short-plurals"),
        pytest.param("0s", 0.0, id="zero"),
    ],
)
def test_parses_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text, field=FIELD) == pytest.approx(seconds)


@pytest.mark.parametrize("text", [-1, "-1", " -1 "], ids=["int", "string", "padded"])
def test_minus_one_means_no_limit(text: str | int) -> None:
    assert parse_duration(text, field=FIELD) is None


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        pytest.param("", "must not be empty", id="empty"),
        pytest.param("   ", "must not be empty", id="blank"),
        pytest.param("90", '"90" in "90" has no unit', id="bare-number-string"),
        pytest.param(90, '"90s"', id="bare-number-int"),
        pytest.param(0, '"0s"', id="zero-int"),
        pytest.param(-5, "negative (-5)", id="negative-int"),
        pytest.param("-5m", '"-5" in "-5m" is negative', id="negative-string"),
        pytest.param("-1h", '"-1" in "-1h" is negative', id="minus-one-with-unit"),
        pytest.param("1h -1", '"-1" in "1h -1" is negative', id="minus-one-in-pairs"),
        pytest.param("2 fortnights", 'unknown unit "fortnights"', id="unknown-unit"),
        pytest.param("5ms", 'unknown unit "ms"', id="milliseconds"),
        pytest.param("1h 30", '"30" in "1h 30" has no unit', id="trailing-bare-number"),
        pytest.param("1 and 2h", '"1" in "1 and 2h" has no unit', id="bare-number-before-and"),
        pytest.param("abc", 'cannot read "abc"', id="garbage"),
        pytest.param("1h and30s", 'cannot read "and30s"', id="glued-and"),
        pytest.param("1h; 2m", 'cannot read ";"', id="semicolon"),
        pytest.param("1.5.2h", '"1.5.2" in "1.5.2h" is not a number', id="two-dots"),
        pytest.param("and", '"and" holds no time', id="only-and"),
        pytest.param(", ,", '", ," holds no time', id="only-commas"),
        pytest.param("9" * 400 + "w", "too long", id="overflow"),
    ],
)
def test_rejects_with_the_bad_part_quoted(text: str | int, quoted: str) -> None:
    with pytest.raises(ValidationFailure) as caught:
        parse_duration(text, field=FIELD)
    [error] = caught.value.errors
    assert error.field == FIELD
    assert quoted in error.reason


@pytest.mark.parametrize("value", [True, None, 1.5, ["1h"]], ids=["bool", "none", "float", "list"])
def test_rejects_values_that_are_not_strings_or_ints(value: object) -> None:
    with pytest.raises(ValidationFailure, match=r"runtime\.stateThresholds\.running: must be"):
        parse_duration(value, field=FIELD)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "seconds"),
    [
        pytest.param("pendingScheduled", 3600.0, id="pending-scheduled"),
        pytest.param("pendingNotScheduled", None, id="pending-not-scheduled"),
        pytest.param("imagePullBackoff", 3600.0, id="image-pull-backoff"),
        pytest.param("running", 86400.0, id="running"),
    ],
)
def test_state_threshold_defaults_match_mlrun(state: str, seconds: float | None) -> None:
    assert parse_duration(STATE_THRESHOLD_DEFAULTS[state], field=state) == seconds


def test_every_mlrun_state_name_maps_to_a_default() -> None:
    assert sorted(MLRUN_STATE_NAMES) == [
        "image_pull_backoff",
        "pending_not_scheduled",
        "pending_scheduled",
        "running",
    ]
    assert set(MLRUN_STATE_NAMES.values()) == set(STATE_THRESHOLD_DEFAULTS)


_UNIT_SECONDS = {"s": 1, "sec": 1, "minutes": 60, "m": 60, "hr": 3600, "day": 86400, "w": 604800}


@given(
    pairs=st.lists(
        st.tuples(st.integers(0, 10_000), st.sampled_from(sorted(_UNIT_SECONDS))), min_size=1
    ),
    separator=st.sampled_from([" ", ", ", " and ", ""]),
)
def test_sum_of_pairs(pairs: list[tuple[int, str]], separator: str) -> None:
    text = separator.join(f"{value} {unit}" for value, unit in pairs)
    expected = sum(value * _UNIT_SECONDS[unit] for value, unit in pairs)
    assert parse_duration(text, field=FIELD) == expected
