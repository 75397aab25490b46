"""Cron triggers: parsing `spec.cron`, the ticks it yields, and the misfire policy.

Everything runs in UTC, so there is no daylight saving time: a table case below checks that a
tick falling in Europe's spring-forward gap (02:30 on 2024-03-31) still fires.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spool_common.cron import (
    CronSchedule,
    assume_utc,
    due_tick,
    next_wakeup,
    parse_cron,
    ticks_between,
)
from spool_common.errors import ValidationFailure


def at(text: str) -> datetime:
    """An ISO time in UTC: `at("2024-05-01T12:00")`."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


EVERY_MINUTE = parse_cron("* * * * *")
HOURLY = parse_cron("0 * * * *")
NOON = at("2024-05-01T12:00")


# --- parse_cron -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "quoted"),
    [
        pytest.param("", "must not be empty", id="empty"),
        pytest.param("   ", "must not be empty", id="blank"),
        pytest.param("@reboot", '"@reboot" has no meaning for a trigger', id="reboot"),
        pytest.param("@daily", 'write "0 0 * * *" instead', id="daily-shortcut"),
        pytest.param("@HOURLY", 'write "0 * * * *" instead', id="hourly-shortcut-upper"),
        pytest.param("@every 5m", "is not a cron expression", id="unknown-shortcut"),
        pytest.param("* * * *", "has 4 fields; write exactly 5", id="four-fields"),
        pytest.param("0 * * * * *", "has 6 fields; write exactly 5", id="seconds-field"),
        pytest.param("0 0 * * * * 2030", "has 7 fields", id="year-field"),
        pytest.param("60 * * * *", 'minute "60" is not valid: use 0-59', id="minute-range"),
        pytest.param("* 24 * * *", 'hour "24" is not valid: use 0-23', id="hour-range"),
        pytest.param("* * 0 * *", 'day-of-month "0" is not valid: use 1-31', id="dom-zero"),
        pytest.param("* * 32 * *", 'day-of-month "32" is not valid', id="dom-32"),
        pytest.param("* * * 13 *", 'month "13" is not valid: use 1-12 or jan-dec', id="month"),
        pytest.param("* * * * 8", 'day-of-week "8" is not valid: use 0-7', id="dow-range"),
        pytest.param("* * * * funday", 'day-of-week "funday"', id="dow-bad-name"),
        pytest.param("* * * mon *", 'month "mon"', id="day-name-as-month"),
        pytest.param("a b c d e", 'minute "a" is not valid', id="garbage"),
        pytest.param("5-1 * * * *", 'minute "5-1"', id="reversed-range"),
        pytest.param("*/0 * * * *", 'minute "*/0"', id="zero-step"),
        pytest.param("1,,2 * * * *", 'minute "1,,2"', id="empty-list-item"),
        pytest.param("-1 * * * *", 'minute "-1"', id="negative"),
        pytest.param("* * * * fri-mon", 'day-of-week "fri-mon"', id="wrapping-day-range"),
        pytest.param("0 0 ? * *", 'day-of-month "?"', id="quartz-question-mark"),
        pytest.param("H * * * *", 'minute "H"', id="jenkins-hash"),
        pytest.param("0 0 30 2 *", 'day-of-month "30" never occurs in month "2"', id="feb-30"),
        pytest.param("0 0 31 4,6 *", 'never occurs in month "4,6"', id="april-june-31"),
        pytest.param("* * */20 * 1L", "never runs", id="dom-and-dow-never-agree"),
        pytest.param("1," * 150 + "2 * * * *", "at most 200", id="too-long"),
    ],
)
def test_rejects_with_the_field_and_a_reason(expr: str, quoted: str) -> None:
    with pytest.raises(ValidationFailure) as caught:
        parse_cron(expr, field="triggers[0].spec.cron")
    (error,) = caught.value.errors
    assert error.field == "triggers[0].spec.cron"
    assert quoted in error.reason
    assert str(caught.value).startswith("triggers[0].spec.cron: ")


@pytest.mark.parametrize("value", [None, 5, ["*"] * 5], ids=["none", "int", "list"])
def test_rejects_a_value_that_is_not_a_string(value: Any) -> None:
    with pytest.raises(ValidationFailure) as caught:
        parse_cron(value)
    (error,) = caught.value.errors
    assert error.field == "spec.cron"
    assert error.reason.startswith("must be a string holding a cron expression")


@pytest.mark.parametrize(
    ("expr", "normalized"),
    [
        pytest.param("*/15 * * * *", "*/15 * * * *", id="as-is"),
        pytest.param("  0   5 *\t* MON-fri ", "0 5 * * MON-fri", id="whitespace"),
        pytest.param("0 0 L * *", "0 0 L * *", id="last-day"),
        pytest.param("0 0 * * mon#1", "0 0 * * mon#1", id="nth-weekday"),
    ],
)
def test_accepts_and_normalizes_spacing(expr: str, normalized: str) -> None:
    assert parse_cron(expr).expression == normalized


def test_building_a_schedule_directly_checks_it_too() -> None:
    with pytest.raises(ValueError, match='minute "61"'):
        CronSchedule("61 * * * *")


# --- next_after -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        pytest.param("* * * * *", "2024-01-01T00:00", "2024-01-01T00:01", id="every-minute"),
        pytest.param("* * * * *", "2024-01-01T00:00:30.5", "2024-01-01T00:01", id="mid-minute"),
        pytest.param("* * * * *", "2024-12-31T23:59", "2025-01-01T00:00", id="new-year"),
        pytest.param("*/15 * * * *", "2024-01-01T00:14:59", "2024-01-01T00:15", id="step"),
        pytest.param("*/15 * * * *", "2024-01-01T00:15", "2024-01-01T00:30", id="step-on-tick"),
        pytest.param("*/15 * * * *", "2024-01-01T00:45", "2024-01-01T01:00", id="step-wraps"),
        pytest.param("5/20 * * * *", "2024-01-01T00:25", "2024-01-01T00:45", id="start-step"),
        pytest.param("0 9-17 * * *", "2024-01-01T17:00", "2024-01-02T09:00", id="hour-range"),
        pytest.param("0 0 1,15 * *", "2024-01-01T00:00", "2024-01-15T00:00", id="dom-list"),
        pytest.param(
            "30 4 * * mon-fri", "2024-01-05T05:00", "2024-01-08T04:30", id="weekdays-skip-weekend"
        ),
        pytest.param("0 0 * * SUN", "2024-01-01T00:00", "2024-01-07T00:00", id="sunday-name"),
        pytest.param("0 0 * * 0", "2024-01-01T00:00", "2024-01-07T00:00", id="sunday-0"),
        pytest.param("0 0 * * 7", "2024-01-01T00:00", "2024-01-07T00:00", id="sunday-7"),
        pytest.param("0 0 * jan,Jul *", "2024-02-01T00:00", "2024-07-01T00:00", id="month-names"),
        pytest.param("0 0 31 * *", "2024-04-01T00:00", "2024-05-31T00:00", id="skips-30-day"),
        pytest.param("0 0 L * *", "2024-02-01T00:00", "2024-02-29T00:00", id="last-day-leap"),
        pytest.param("0 0 L * *", "2023-02-01T00:00", "2023-02-28T00:00", id="last-day-common"),
        pytest.param("0 0 29 2 *", "2024-03-01T00:00", "2028-02-29T00:00", id="feb-29"),
        pytest.param("0 0 29 2 *", "2096-03-01T00:00", "2104-02-29T00:00", id="no-feb-29-2100"),
        pytest.param("59 23 31 12 *", "2024-12-31T23:59", "2025-12-31T23:59", id="yearly-edge"),
        # Vixie: both day fields restricted, so either matches (OR): Thursday the 1st.
        pytest.param("0 0 1 * mon", "2024-01-29T00:00", "2024-02-01T00:00", id="dom-or-dow"),
        pytest.param("0 0 13 * fri", "2024-01-01T00:00", "2024-01-05T00:00", id="friday-or-13"),
        # Vixie: a day field starting with `*` makes it AND: odd days that are Mondays.
        pytest.param("0 0 */2 * mon", "2024-01-01T00:00", "2024-01-15T00:00", id="star-step-and"),
        pytest.param("0 12 * * mon#1", "2024-01-02T00:00", "2024-02-05T12:00", id="first-monday"),
        pytest.param("30 2 * * *", "2024-03-31T00:00", "2024-03-31T02:30", id="utc-has-no-dst"),
    ],
)
def test_next_after(expr: str, after: str, expected: str) -> None:
    assert parse_cron(expr).next_after(at(after)) == at(expected)


def test_next_after_answers_in_utc_whatever_the_offset_given() -> None:
    plus_two = datetime(2024, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    tick = HOURLY.next_after(plus_two)
    assert tick == at("2024-01-01T01:00")
    assert tick.tzinfo is UTC


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        EVERY_MINUTE.next_after(datetime(2024, 1, 1))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(datetime(2024, 5, 1), NOON.replace(hour=0), id="naive-is-utc"),
        pytest.param(
            datetime(2024, 5, 1, 2, tzinfo=timezone(timedelta(hours=2))),
            NOON.replace(hour=0),
            id="offset-converted",
        ),
    ],
)
def test_assume_utc(value: datetime, expected: datetime) -> None:
    assert assume_utc(value) == expected
    assert assume_utc(value).tzinfo is UTC


# --- ticks_between ----------------------------------------------------------------------------


def test_ticks_between_excludes_after_and_includes_until() -> None:
    ticks = ticks_between(
        parse_cron("*/15 * * * *"), at("2024-01-01T00:00"), at("2024-01-01T01:00")
    )
    assert ticks == [at(f"2024-01-01T00:{m}") for m in ("15", "30", "45")] + [
        at("2024-01-01T01:00")
    ]


def test_ticks_between_is_empty_when_until_is_not_later() -> None:
    assert ticks_between(EVERY_MINUTE, NOON, NOON) == []
    assert ticks_between(EVERY_MINUTE, NOON, NOON - timedelta(hours=1)) == []


def test_ticks_between_is_bounded() -> None:
    day = timedelta(days=1)
    assert len(ticks_between(EVERY_MINUTE, NOON, NOON + day)) == 1440
    with pytest.raises(ValueError, match="more than 10000 ticks"):
        ticks_between(EVERY_MINUTE, NOON, NOON + 7 * day)
    with pytest.raises(ValueError, match="more than 10 ticks"):
        ticks_between(EVERY_MINUTE, NOON, NOON + day, limit=10)


# --- due_tick ---------------------------------------------------------------------------------

NEVER = None


@pytest.mark.parametrize(
    ("schedule", "last_fired", "activated_at", "now", "window", "expected"),
    [
        pytest.param(
            EVERY_MINUTE, NEVER, "11:59:30", "12:00:05", (None, None), "12:00", id="first-tick"
        ),
        pytest.param(
            EVERY_MINUTE, NEVER, "12:00:30", "12:00:31", (None, None), None, id="just-created"
        ),
        pytest.param(EVERY_MINUTE, NEVER, None, "12:00:40", (None, None), "12:00", id="no-marks"),
        pytest.param(
            EVERY_MINUTE, "12:00", None, "12:00:40", (None, None), None, id="fired-last-tick"
        ),
        pytest.param(EVERY_MINUTE, "12:00", None, "12:01", (None, None), "12:01", id="on-tick"),
        pytest.param(
            EVERY_MINUTE, "09:00", None, "12:00:20", (None, None), "12:00", id="down-3h-latest"
        ),
        pytest.param(HOURLY, "09:00", None, "12:00:59", (None, None), "12:00", id="down-in-grace"),
        pytest.param(HOURLY, "09:00", None, "12:02", (None, None), None, id="down-past-grace"),
        pytest.param(HOURLY, "11:00", None, "12:01", (None, None), "12:00", id="grace-inclusive"),
        pytest.param(
            HOURLY, "11:00", None, "12:00:10", ("13:00", None), None, id="before-start-at"
        ),
        pytest.param(HOURLY, NEVER, None, "12:00:10", ("12:00", None), "12:00", id="at-start"),
        pytest.param(HOURLY, "10:00", None, "12:00:10", (None, "11:30"), None, id="after-end"),
        pytest.param(HOURLY, "11:00", None, "12:00:10", (None, "12:00"), "12:00", id="at-end"),
        pytest.param(
            HOURLY, "11:00", None, "12:00:45", (None, "12:00:30"), "12:00", id="ended-since"
        ),
        pytest.param(HOURLY, "11:00", "12:00:05", "12:00:10", (None, None), None, id="reactivated"),
        pytest.param(HOURLY, "12:00", None, "11:00:10", (None, None), None, id="clock-went-back"),
    ],
)
def test_due_tick(
    schedule: CronSchedule,
    last_fired: str | None,
    activated_at: str | None,
    now: str,
    window: tuple[str | None, str | None],
    expected: str | None,
) -> None:
    def on_the_day(clock: str | None) -> datetime | None:
        return None if clock is None else at(f"2024-05-01T{clock}")

    tick = due_tick(
        schedule,
        last_fired=on_the_day(last_fired),
        now=at(f"2024-05-01T{now}"),
        start_at=on_the_day(window[0]),
        end_at=on_the_day(window[1]),
        activated_at=on_the_day(activated_at),
    )
    assert tick == on_the_day(expected)


def test_a_long_grace_still_fires_one_tick_not_a_backlog() -> None:
    down_since = at("2024-05-01T09:00")
    kwargs: dict[str, Any] = {"start_at": None, "end_at": None, "grace": 86400.0}
    first = due_tick(EVERY_MINUTE, last_fired=down_since, now=NOON + timedelta(seconds=5), **kwargs)
    assert first == NOON
    again = due_tick(EVERY_MINUTE, last_fired=first, now=NOON + timedelta(seconds=6), **kwargs)
    assert again is None


@pytest.mark.parametrize(("grace", "late", "fires"), [(0.0, 0, True), (0.0, 1, False)])
def test_zero_grace_fires_only_exactly_on_the_tick(grace: float, late: int, fires: bool) -> None:
    now = NOON + timedelta(seconds=late)
    tick = due_tick(EVERY_MINUTE, last_fired=None, now=now, start_at=None, end_at=None, grace=grace)
    assert tick == (NOON if fires else None)


@pytest.mark.parametrize("grace", [-1.0, float("nan"), float("inf")])
def test_grace_must_be_a_finite_non_negative_number(grace: float) -> None:
    with pytest.raises(ValueError, match="grace"):
        due_tick(EVERY_MINUTE, last_fired=None, now=NOON, start_at=None, end_at=None, grace=grace)


def test_sdk_every_minute_trigger_fires_zero_then_one_then_two() -> None:
    """SDK-T: `* * * * *` gives 0 executions at t=0, 1 after about 63 s, 2 after about 126 s."""
    created = at("2024-05-01T12:00:00.500")
    fired: list[datetime] = []
    for seconds in (0, 63, 126):
        tick = due_tick(
            EVERY_MINUTE,
            last_fired=fired[-1] if fired else None,
            now=created + timedelta(seconds=seconds),
            start_at=None,
            end_at=None,
            activated_at=created,
        )
        if tick is not None:
            fired.append(tick)
        assert len(fired) == seconds // 63
    assert fired == [at("2024-05-01T12:01"), at("2024-05-01T12:02")]


# --- next_wakeup ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "window", "expected"),
    [
        pytest.param("12:00", (None, None), "13:00", id="next-tick"),
        pytest.param("12:30", (None, None), "13:00", id="between-ticks"),
        pytest.param("12:30", ("15:00", None), "15:00", id="waits-for-start-on-a-tick"),
        pytest.param("12:30", ("15:00:01", None), "16:00", id="waits-for-start-between"),
        pytest.param("12:30", (None, "13:00"), "13:00", id="last-tick-at-end"),
        pytest.param("12:30", (None, "12:59"), None, id="no-tick-before-end"),
        pytest.param("12:30", (None, "12:30"), None, id="end-is-now"),
        pytest.param("12:30", (None, "11:00"), None, id="ended"),
    ],
)
def test_next_wakeup(now: str, window: tuple[str | None, str | None], expected: str | None) -> None:
    def on_the_day(clock: str | None) -> datetime | None:
        return None if clock is None else at(f"2024-05-01T{clock}")

    wakeup = next_wakeup(
        HOURLY,
        now=at(f"2024-05-01T{now}"),
        start_at=on_the_day(window[0]),
        end_at=on_the_day(window[1]),
    )
    assert wakeup == on_the_day(expected)


def test_after_downtime_past_grace_the_next_tick_fires_on_time() -> None:
    now = at("2024-05-01T12:02")
    last = at("2024-05-01T09:00")
    assert due_tick(HOURLY, last_fired=last, now=now, start_at=None, end_at=None) is None
    wakeup = next_wakeup(HOURLY, now=now, start_at=None, end_at=None)
    assert wakeup == at("2024-05-01T13:00")
    assert due_tick(HOURLY, last_fired=last, now=wakeup, start_at=None, end_at=None) == wakeup


# --- properties -------------------------------------------------------------------------------


def _field(low: int, high: int) -> st.SearchStrategy[str]:
    number = st.integers(low, high)
    return st.one_of(
        st.just("*"),
        number.map(str),
        st.tuples(number, number).map(lambda ab: f"{min(ab)}-{max(ab)}"),
        st.integers(1, high).map(lambda step: f"*/{step}"),
        st.lists(number, min_size=1, max_size=4).map(lambda xs: ",".join(map(str, xs))),
    )


# Day-of-month up to 28 so every generated expression runs in every month.
schedules = st.tuples(_field(0, 59), _field(0, 23), _field(1, 28), _field(1, 12), _field(0, 7)).map(
    lambda fields: parse_cron(" ".join(fields))
)
frequent = st.sampled_from(["* * * * *", "*/5 * * * *", "0,30 * * * *", "0 * * * *"]).map(
    parse_cron
)
times = st.datetimes(
    min_value=datetime(1990, 1, 1),  # hypothesis takes naive bounds
    max_value=datetime(2090, 1, 1),
    timezones=st.just(UTC),
)
offsets = st.integers(0, 3 * 3600).map(lambda s: timedelta(seconds=s))
graces = st.floats(0, 7200)


@given(schedules, times)
def test_next_after_is_the_very_next_tick(schedule: CronSchedule, t: datetime) -> None:
    tick = schedule.next_after(t)
    assert tick > t
    assert tick.second == 0
    assert tick.microsecond == 0
    assert schedule.latest_at_or_before(tick) == tick
    # Nothing in between: the last tick before this one is not after t.
    previous = schedule.latest_at_or_before(tick - timedelta(microseconds=1))
    assert previous is None or previous <= t


@given(frequent, times, offsets)
def test_ticks_are_strictly_increasing(
    schedule: CronSchedule, t: datetime, span: timedelta
) -> None:
    ticks = ticks_between(schedule, t, t + span)
    assert all(a < b for a, b in itertools.pairwise(ticks))
    assert all(t < tick <= t + span for tick in ticks)
    if ticks:
        assert ticks[0] == schedule.next_after(t)


@given(
    st.one_of(frequent, schedules),
    times,
    st.one_of(st.none(), offsets),
    st.one_of(st.none(), offsets),
    st.one_of(st.none(), offsets),
    graces,
)
def test_due_tick_is_never_in_the_future_nor_already_fired(
    schedule: CronSchedule,
    now: datetime,
    since_fired: timedelta | None,
    since_start: timedelta | None,
    since_end: timedelta | None,
    grace: float,
) -> None:
    last_fired = None if since_fired is None else now - since_fired
    start_at = None if since_start is None else now - since_start
    end_at = None if since_end is None else now - since_end + timedelta(hours=1)
    tick = due_tick(
        schedule, last_fired=last_fired, now=now, start_at=start_at, end_at=end_at, grace=grace
    )
    if tick is None:
        return
    assert tick <= now
    assert (now - tick).total_seconds() <= grace
    assert last_fired is None or tick > last_fired
    assert start_at is None or tick >= start_at
    assert end_at is None or tick <= end_at


@given(frequent, times, st.lists(st.integers(-3600, 4 * 3600), min_size=1, max_size=40), graces)
def test_any_wakeups_fire_each_tick_at_most_once(
    schedule: CronSchedule, activated: datetime, wakeups: list[int], grace: float
) -> None:
    """Wakeups at arbitrary times, in any order (a clock that jumps back included)."""
    last_fired: datetime | None = None
    fired: list[datetime] = []
    for offset in wakeups:
        now = activated + timedelta(seconds=offset)
        tick = due_tick(
            schedule,
            last_fired=last_fired,
            now=now,
            start_at=None,
            end_at=None,
            grace=grace,
            activated_at=activated,
        )
        if tick is not None:
            assert tick > activated
            fired.append(tick)
            last_fired = tick
    assert len(fired) == len(set(fired))
    assert fired == sorted(fired)


@given(frequent, times, st.lists(st.integers(0, 59), min_size=1, max_size=30))
def test_an_engine_that_wakes_on_time_fires_every_tick_once(
    schedule: CronSchedule, activated: datetime, lateness: list[int]
) -> None:
    """Sleeping until `next_wakeup` and waking up to 59 s late never misses a tick."""
    now, last_fired = activated, None
    fired: list[datetime] = []
    for late in lateness:
        wakeup = next_wakeup(schedule, now=now, start_at=None, end_at=None)
        assert wakeup is not None
        now = wakeup + timedelta(seconds=late)
        tick = due_tick(
            schedule,
            last_fired=last_fired,
            now=now,
            start_at=None,
            end_at=None,
            activated_at=activated,
        )
        assert tick == wakeup
        fired.append(tick)
        last_fired = tick
    assert fired == ticks_between(schedule, activated, fired[-1])
