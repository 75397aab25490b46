"""Table tests for the query log's pure rules: the time range of a request, one row as JSON and
as CSV, and latency."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta, timezone

import pytest

from spool_common.errors import ValidationFailure
from spool_gateway.query_log import (
    COLUMNS,
    DEFAULT_SPAN,
    QueryLogRow,
    as_csv,
    as_record,
    time_range,
)

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
CET = timezone(timedelta(hours=1))


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        pytest.param(None, None, (NOW - DEFAULT_SPAN, NOW), id="defaults-the-last-day"),
        pytest.param(
            None,
            NOW - timedelta(hours=1),
            (NOW - timedelta(hours=25), NOW - timedelta(hours=1)),
            id="from-defaults-to-a-day-before-to",
        ),
        pytest.param(
            NOW - timedelta(minutes=5), None, (NOW - timedelta(minutes=5), NOW), id="to-is-now"
        ),
        pytest.param(
            datetime(2026, 3, 4, 5, 0),
            datetime(2026, 3, 4, 6, 0),
            (datetime(2026, 3, 4, 5, 0, tzinfo=UTC), datetime(2026, 3, 4, 6, 0, tzinfo=UTC)),
            id="no-zone-is-utc",
        ),
        pytest.param(
            datetime(2026, 3, 4, 6, 0, tzinfo=CET),
            datetime(2026, 3, 4, 5, 30, tzinfo=UTC),
            (datetime(2026, 3, 4, 5, 0, tzinfo=UTC), datetime(2026, 3, 4, 5, 30, tzinfo=UTC)),
            id="zones-compared-as-instants",
        ),
    ],
)
def test_time_range(
    start: datetime | None, end: datetime | None, expected: tuple[datetime, datetime]
) -> None:
    assert time_range(start, end, NOW) == expected


@pytest.mark.parametrize(
    ("start", "end"),
    [
        pytest.param(NOW, NOW, id="empty"),
        pytest.param(NOW + timedelta(seconds=1), NOW, id="reversed"),
        pytest.param(NOW + timedelta(hours=1), None, id="from-after-the-default-to"),
    ],
)
def test_a_range_that_is_not_forward_names_from(start: datetime, end: datetime | None) -> None:
    with pytest.raises(ValidationFailure) as caught:
        time_range(start, end, NOW)
    assert [e.field for e in caught.value.errors] == ["from"]


ENDED = QueryLogRow(
    execution_id="e1",
    function_name="run",
    kind="invoke",
    created_at=NOW,
    finished_at=NOW + timedelta(seconds=1.5),
    status="success",
)
RUNNING = QueryLogRow(
    execution_id="e2",
    function_name="score",
    kind="execution",
    created_at=NOW + timedelta(microseconds=250),
    finished_at=None,
    status="in-progress",
)


@pytest.mark.parametrize(
    ("row", "latency"),
    [
        pytest.param(ENDED, 1.5, id="ended"),
        pytest.param(RUNNING, None, id="running"),
        pytest.param(
            QueryLogRow("e3", "run", "execution", NOW, NOW - timedelta(seconds=1), "failed"),
            0.0,
            id="clock-skew-clamped",
        ),
    ],
)
def test_latency(row: QueryLogRow, latency: float | None) -> None:
    assert row.latency_seconds == latency


def test_a_row_as_json() -> None:
    assert as_record(ENDED) == {
        "executionId": "e1",
        "functionName": "run",
        "kind": "invoke",
        "createdAt": "2026-03-04T05:06:07Z",
        "finishedAt": "2026-03-04T05:06:08.500000Z",
        "latencySeconds": 1.5,
        "status": "success",
    }
    assert as_record(RUNNING)["createdAt"] == "2026-03-04T05:06:07.000250Z"
    assert (as_record(RUNNING)["finishedAt"], as_record(RUNNING)["latencySeconds"]) == (None, None)


def test_rows_as_csv_with_a_header_and_empty_cells_for_missing_values() -> None:
    text = as_csv([ENDED, RUNNING])
    assert text.splitlines() == [
        ",".join(COLUMNS),
        "e1,run,invoke,2026-03-04T05:06:07Z,2026-03-04T05:06:08.500000Z,1.5,success",
        "e2,score,execution,2026-03-04T05:06:07.000250Z,,,in-progress",
    ]
    assert [r["executionId"] for r in csv.DictReader(io.StringIO(text))] == ["e1", "e2"]
    assert as_csv([]) == ",".join(COLUMNS) + "\n"
