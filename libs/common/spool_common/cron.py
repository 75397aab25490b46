"""Cron triggers: parse `spec.cron`, list its ticks, and decide which tick is due now.

Library: cronsim, not croniter. cronsim follows Debian's Vixie cron exactly, down to AND-ing
day-of-month and day-of-week when either starts with `*` (`0 0 */2 * mon` is odd-numbered
Mondays; croniter ORs them), and rejects what Vixie rejects (a reversed range `5-1`, `@daily`, a
seventh field), all of which croniter accepts. It is small, typed (`py.typed`), has no
dependencies and is the evaluator of healthchecks.io, while croniter needs python-dateutil,
ships no type hints and was declared abandoned by its maintainer in 2025 before pallets-eco
took it over.

Pure: no clock, no I/O; the engine passes `now` in. Every datetime is timezone-aware and every
result is in UTC (`datetime.UTC`); a naive datetime is refused with `ValueError`
(`assume_utc` is for the edge, where a wire `startAt` may have no offset). Schedules run in
UTC, so daylight saving time never adds, skips or repeats a tick.

Syntax: 5 fields, `minute hour day-of-month month day-of-week`, each `*`, a number, a list
`1,15`, a range `1-5` (low to high) or a step `*/15`, `10-50/20`; month names `jan`-`dec` and
day names `sun`-`sat` in any case; day-of-week 0 and 7 are Sunday. cronsim's extensions are kept:
`L` (last day of the month), `LW` (last weekday of the month), `5L` (last Friday), `mon#1`
(first Monday). Refused: seconds or years (6 or 7 fields), `@reboot`/`@daily` shortcuts, and
expressions that never match a date.

Misfire policy (`due_tick`): at each wakeup at most ONE tick fires, the latest scheduled tick
at or before `now`, and only if all of these hold:
- it is later than the trigger's watermark: the last tick that fired, or the time the trigger
  was activated when that is later (or when it never fired), so no tick fires twice and a new
  trigger waits for its first tick (SDK-T: `* * * * *` gives 0 executions at t=0);
- it lies in the window `start_at <= tick <= end_at` (both inclusive, either may be None);
- it is at most `grace` seconds old (`now - tick <= grace`).
Ticks missed while the engine was down are skipped, never caught up: after three hours away an
every-minute trigger fires once, for the latest tick, if that is within grace; an hourly
trigger that woke more than `grace` after its tick fires nothing, and its next tick fires on
time. The engine then sleeps until `next_wakeup`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from cronsim import CronSim, CronSimError

from spool_common.errors import ValidationFailure

DEFAULT_GRACE: Final = 60.0
MAX_TICKS: Final = 10_000

_MAX_LENGTH: Final = 200
_FIELDS: Final = ("minute", "hour", "day-of-month", "month", "day-of-week")
_LAYOUT: Final = "minute hour day-of-month month day-of-week"
_EXAMPLES: Final = 'such as "*/15 * * * *" or "0 5 * * mon-fri"'
_ALLOWED: Final = {
    "minute": "0-59",
    "hour": "0-23",
    "day-of-month": "1-31 (or L for the last day)",
    "month": "1-12 or jan-dec",
    "day-of-week": "0-7 (0 and 7 are Sunday) or sun-sat",
}
_FORMS: Final = (
    'written as "*", a number, a list "1,15", a range "1-5" (low to high) or a step "*/15"'
)
_SHORTCUTS: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# Where the "does it ever run" check starts; any fixed instant does (cron repeats within 28 years).
_REFERENCE: Final = datetime(2000, 1, 1, tzinfo=UTC)
_SECOND: Final = timedelta(seconds=1)
_MICROSECOND: Final = timedelta(microseconds=1)


@dataclass(frozen=True)
class CronSchedule:
    """A valid 5-field cron expression, fields separated by single spaces. Build with
    `parse_cron`; constructing one directly with a bad expression raises `ValueError`."""

    expression: str

    def __post_init__(self) -> None:
        problem = _problem(self.expression)
        if problem is not None:
            raise ValueError(problem)

    def next_after(self, t: datetime) -> datetime:
        """The first tick strictly after `t`, in UTC."""
        start = _utc(t, "t")
        try:
            return next(CronSim(self.expression, start))
        except StopIteration:
            raise ValueError(f'"{self.expression}" has no tick within 50 years after {t}') from None

    def latest_at_or_before(self, t: datetime) -> datetime | None:
        """The last tick at or before `t`, in UTC; None if there is none in the 50 years before."""
        # Ticks fall on whole minutes, so flooring to the second loses none. cronsim's reverse
        # iterator yields the last tick strictly before its start: start one second later.
        start = _utc(t, "t").replace(microsecond=0) + _SECOND
        return next(CronSim(self.expression, start, reverse=True), None)


def parse_cron(expr: str, *, field: str = "spec.cron") -> CronSchedule:
    """`expr` as a schedule; `ValidationFailure` on `field` saying what is wrong and how to write
    it instead (empty, not 5 fields, a shortcut, a bad or out-of-range field, never runs)."""
    problem = _problem(expr)
    if problem is not None:
        raise ValidationFailure.of(field, problem)
    return CronSchedule(" ".join(expr.split()))


def ticks_between(
    schedule: CronSchedule, after: datetime, until: datetime, *, limit: int = MAX_TICKS
) -> list[datetime]:
    """The ticks `t` with `after < t <= until`, in order; `ValueError` if there are more than
    `limit` (a guard against listing a year of every-minute ticks by mistake)."""
    end = _utc(until, "until")
    ticks: list[datetime] = []
    for tick in CronSim(schedule.expression, _utc(after, "after")):
        if tick > end:
            break
        if len(ticks) == limit:
            raise ValueError(f'"{schedule.expression}" has more than {limit} ticks up to {end}')
        ticks.append(tick)
    return ticks


def due_tick(
    schedule: CronSchedule,
    *,
    last_fired: datetime | None,
    now: datetime,
    start_at: datetime | None,
    end_at: datetime | None,
    grace: float = DEFAULT_GRACE,
    activated_at: datetime | None = None,
) -> datetime | None:
    """The tick to fire now, or None; see the misfire policy in the module docstring.

    `last_fired` is the tick that fired last (not when it was sent); `activated_at` is when the
    trigger was created or last re-activated, None if unknown. Record the returned tick as the
    new `last_fired` before (or atomically with) sending its execution.
    """
    if not (math.isfinite(grace) and grace >= 0):
        raise ValueError(f"grace must be a finite number of seconds >= 0, not {grace}")
    current = _utc(now, "now")
    start, end = _optional_utc(start_at, "start_at"), _optional_utc(end_at, "end_at")
    fired, activated = (
        _optional_utc(last_fired, "last_fired"),
        _optional_utc(activated_at, "activated_at"),
    )
    tick = schedule.latest_at_or_before(current if end is None else min(current, end))
    if tick is None:
        return None
    watermarks = [t for t in (fired, activated) if t is not None]
    if watermarks and tick <= max(watermarks):
        return None
    if start is not None and tick < start:
        return None
    if (current - tick).total_seconds() > grace:
        return None
    return tick


def next_wakeup(
    schedule: CronSchedule, *, now: datetime, start_at: datetime | None, end_at: datetime | None
) -> datetime | None:
    """When the engine should next look at this trigger: its first tick after `now` that is at
    or after `start_at` and at or before `end_at`; None when there is none (`end_at` passed)."""
    current = _utc(now, "now")
    start, end = _optional_utc(start_at, "start_at"), _optional_utc(end_at, "end_at")
    if end is not None and end <= current:
        return None
    # A tick exactly at start_at counts, so look from just before it.
    after = current if start is None else max(current, start - _MICROSECOND)
    try:
        tick = schedule.next_after(after)
    except ValueError:
        return None
    if end is not None and tick > end:
        return None
    return tick


def assume_utc(value: datetime) -> datetime:
    """`value` in UTC, reading a naive datetime as UTC (for wire values such as Dataloop's
    `"startAt": "2024-05-01T00:00:00"`, which carry no offset)."""
    if value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _utc(value: datetime, name: str) -> datetime:
    if value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), not naive {value.isoformat()}")
    return value.astimezone(UTC)


def _optional_utc(value: datetime | None, name: str) -> datetime | None:
    return None if value is None else _utc(value, name)


def _problem(expr: object) -> str | None:
    """What is wrong with `expr` as a cron expression, for the person who wrote it; None if
    nothing is."""
    if not isinstance(expr, str):
        return f"must be a string holding a cron expression {_EXAMPLES}"
    text = expr.strip()
    if not text:
        return f"must not be empty; write 5 fields ({_LAYOUT}) {_EXAMPLES}"
    if len(text) > _MAX_LENGTH:
        return f"is {len(text)} characters long; a cron expression has at most {_MAX_LENGTH}"
    if text.startswith("@"):
        return _shortcut_problem(text)
    parts = text.split()
    if len(parts) != len(_FIELDS):
        return (
            f'"{text}" has {len(parts)} fields; write exactly 5 ({_LAYOUT}); '
            "seconds and years are not supported"
        )
    try:
        simulation = CronSim(" ".join(parts), _REFERENCE)
    except CronSimError as e:
        return _field_problem(parts, str(e))
    if next(simulation, None) is None:
        return (
            f'"{text}" never runs: no date matches its day-of-month, month and day-of-week together'
        )
    return None


def _shortcut_problem(text: str) -> str:
    replacement = _SHORTCUTS.get(text.lower())
    if replacement is not None:
        return f'shortcuts such as "{text}" are not supported; write "{replacement}" instead'
    if text.lower() == "@reboot":
        return f'"@reboot" has no meaning for a trigger; write 5 fields ({_LAYOUT}) {_EXAMPLES}'
    return f'"{text}" is not a cron expression; write 5 fields ({_LAYOUT}) {_EXAMPLES}'


def _field_problem(parts: list[str], message: str) -> str:
    """A reason naming the field cronsim refused (its messages read "Bad <field>")."""
    name = message.removeprefix("Bad ")
    if name not in _FIELDS:
        return f'"{" ".join(parts)}" is not a valid cron expression ({message})'
    value = parts[_FIELDS.index(name)]
    if name == "day-of-month" and _valid_in_any_month(parts):
        return f'day-of-month "{value}" never occurs in month "{parts[3]}", so this would never run'
    return f'{name} "{value}" is not valid: use {_ALLOWED[name]}, {_FORMS}'


def _valid_in_any_month(parts: list[str]) -> bool:
    try:
        CronSim(" ".join([*parts[:3], "*", parts[4]]), _REFERENCE)
    except CronSimError:
        return False
    return True
