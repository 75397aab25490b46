"""MLRun-style time strings ("30 minutes 5h 1day", "1 minute and 30s", "-1") as seconds.

Pure: no clock, no I/O. Used for run state thresholds ("Preventing stuck pods" in MLRun's
"Configuring runs and functions"): once a run has stayed in a state longer than its threshold,
it is aborted. `-1` means no limit and parses to `None`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from spool_common.errors import ValidationFailure

_MINUTE: Final = 60.0
_HOUR: Final = 60 * _MINUTE
_DAY: Final = 24 * _HOUR
_WEEK: Final = 7 * _DAY

_UNITS: Final[Mapping[str, float]] = MappingProxyType(
    {
        **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1.0),
        **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), _MINUTE),
        **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), _HOUR),
        **dict.fromkeys(("d", "day", "days"), _DAY),
        **dict.fromkeys(("w", "week", "weeks"), _WEEK),
    }
)

# One token at a time: a number with its unit, a separator (space, comma, the word "and"),
# or a run of anything else, which is reported as is.
_TOKEN: Final = re.compile(
    r"(?P<number>-?[0-9.]+)[ \t]*(?P<unit>(?!and\b)[a-z]+)?"
    r"|(?P<separator>\s+|,|\band\b)"
    r"|(?P<other>[^\s,]+)",
    re.IGNORECASE,
)
_NUMBER: Final = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")

_INFINITE: Final = "-1"
_EXAMPLES: Final = 'such as "90s", "1h", "30 minutes 5h 1day" or "1 minute and 30s"'
_UNIT_HINT: Final = "use s, m, h, d or w (or sec, min, hour, day, week)"

# Spool's JSON uses camelCase; MLRun's `set_state_thresholds` uses snake_case. Same states,
# same defaults (MLRun: "The four states and their default thresholds").
MLRUN_STATE_NAMES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "pending_scheduled": "pendingScheduled",
        "pending_not_scheduled": "pendingNotScheduled",
        "image_pull_backoff": "imagePullBackoff",
        "running": "running",
    }
)

STATE_THRESHOLD_DEFAULTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        # MLRun `pending_scheduled`: scheduled on a node but still pending, holding resources.
        "pendingScheduled": "1h",
        # MLRun `pending_not_scheduled`: waiting for resources; may wait forever.
        "pendingNotScheduled": _INFINITE,
        # MLRun `image_pull_backoff`: the container image cannot be pulled.
        "imagePullBackoff": "1h",
        # MLRun `running`: the run itself.
        "running": "24h",
    }
)


def parse_duration(text: str | int, *, field: str) -> float | None:
    """Seconds in `text`, a sum of value-unit pairs; `None` for `-1` (no limit).

    Raises `ValidationFailure` on `field` for an empty, negative, unitless or unreadable value.
    """
    if isinstance(text, bool) or not isinstance(text, int | str):
        raise _fail(field, f"must be a time string {_EXAMPLES}, or -1 for no limit")
    if isinstance(text, int):
        return _from_int(text, field=field)
    stripped = text.strip()
    if not stripped:
        raise _fail(field, f"must not be empty; write a time {_EXAMPLES}, or -1 for no limit")
    if stripped == _INFINITE:
        return None
    return _from_pairs(stripped, field=field)


def _from_int(value: int, *, field: str) -> float | None:
    if value == -1:
        return None
    if value < 0:
        raise _fail(field, f"must not be negative ({value}); use -1 for no limit")
    raise _fail(field, f'{value} has no unit; write it with one, such as "{value}s"')


def _from_pairs(text: str, *, field: str) -> float:
    total = 0.0
    pairs = 0
    for match in _TOKEN.finditer(text):
        if match["separator"] is not None:
            continue
        if match["other"] is not None:
            raise _fail(
                field, f'cannot read "{match["other"]}" in "{text}"; write a time {_EXAMPLES}'
            )
        total += _pair_seconds(match["number"], match["unit"], text=text, field=field)
        pairs += 1
    if pairs == 0:
        raise _fail(field, f'"{text}" holds no time; write one {_EXAMPLES}')
    if not math.isfinite(total):
        raise _fail(field, f'"{text}" is too long a time')
    return total


def _pair_seconds(number: str, unit: str | None, *, text: str, field: str) -> float:
    if _NUMBER.fullmatch(number) is None:
        raise _fail(field, f'"{number}" in "{text}" is not a number')
    if number.startswith("-"):
        raise _fail(field, f'"{number}" in "{text}" is negative; use -1 alone for no limit')
    if unit is None:
        raise _fail(field, f'"{number}" in "{text}" has no unit; {_UNIT_HINT}')
    scale = _UNITS.get(unit.lower())
    if scale is None:
        raise _fail(field, f'unknown unit "{unit}" in "{text}"; {_UNIT_HINT}')
    return float(number) * scale


def _fail(field: str, reason: str) -> ValidationFailure:
    return ValidationFailure.of(field, reason)
