"""Pure rules of the query log (Dataiku's "API query logs" dataset): one row per execution of a
service, its time range, and its JSON and CSV forms. Nothing here reads a clock or does I/O.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from spool_common.errors import FieldError, ValidationFailure

COLUMNS = (
    "executionId",
    "functionName",
    "kind",
    "createdAt",
    "finishedAt",
    "latencySeconds",
    "status",
)
DEFAULT_SPAN = timedelta(hours=24)  # `from` when not given: this long before `to`
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000  # page on by `from` for more


class QueryLogFormat(StrEnum):
    JSON = "json"
    CSV = "csv"


@dataclass(frozen=True)
class QueryLogRow:
    execution_id: str
    function_name: str
    kind: str  # lifecycle.ExecutionKind
    created_at: datetime
    finished_at: datetime | None  # None while the execution has not ended
    status: str

    @property
    def latency_seconds(self) -> float | None:
        """Create -> end (clamped at 0 against clock skew); None while it has not ended."""
        if self.finished_at is None:
            return None
        return round(max(0.0, (self.finished_at - self.created_at).total_seconds()), 6)


def time_range(
    start: datetime | None, end: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """[from, to) of a request: `to` defaults to now, `from` to DEFAULT_SPAN before `to`; a
    time without a zone is UTC. Raises ValidationFailure naming `from` if it is not before
    `to`."""
    upper = _utc(end) if end is not None else now
    lower = _utc(start) if start is not None else upper - DEFAULT_SPAN
    if lower >= upper:
        raise ValidationFailure(
            FieldError("from", f"must be before 'to': {lower.isoformat()} >= {upper.isoformat()}")
        )
    return lower, upper


def open_range(
    start: datetime | None, end: datetime | None
) -> tuple[datetime | None, datetime | None]:
    """[from, to) where either end may be open; times without a zone are UTC. Raises
    ValidationFailure naming `from` if both are given and `from` is not before `to`."""
    lower = _utc(start) if start is not None else None
    upper = _utc(end) if end is not None else None
    if lower is not None and upper is not None and lower >= upper:
        raise ValidationFailure(
            FieldError("from", f"must be before 'to': {lower.isoformat()} >= {upper.isoformat()}")
        )
    return lower, upper


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def as_record(row: QueryLogRow) -> dict[str, Any]:
    """One row as JSON: COLUMNS as keys, times in ISO 8601 (UTC as `Z`)."""
    values = (
        row.execution_id,
        row.function_name,
        row.kind,
        _iso(row.created_at),
        _iso(row.finished_at) if row.finished_at else None,
        row.latency_seconds,
        row.status,
    )
    return dict(zip(COLUMNS, values, strict=True))


def _iso(moment: datetime) -> str:
    """ISO 8601 as the rest of the API writes it (UTC as `Z`)."""
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def as_csv(rows: Iterable[QueryLogRow]) -> str:
    """A header row (COLUMNS), then one line per row; an empty cell for a missing value."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        record = as_record(row)
        writer.writerow("" if record[c] is None else record[c] for c in COLUMNS)
    return out.getvalue()
