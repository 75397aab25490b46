"""Batched reports are applied in rounds that keep each execution's own order."""

from datetime import UTC, datetime

from spool_common.messages import AnyReport, ExecutionFinished, ExecutionLogs, ExecutionProgress
from spool_common.models import ExecutionStatus
from spool_gateway.handlers import in_rounds

AT = datetime(2026, 11, 22, tzinfo=UTC)


def _logs(execution_id: str) -> ExecutionLogs:
    return ExecutionLogs(
        execution_id=execution_id, attempt=1, replica_id="r", service_id="s", lines=[]
    )


def _progress(execution_id: str) -> ExecutionProgress:
    return ExecutionProgress(
        execution_id=execution_id, attempt=1, replica_id="r", percent_complete=50, at=AT
    )


def _finished(execution_id: str) -> ExecutionFinished:
    return ExecutionFinished(
        execution_id=execution_id,
        attempt=1,
        replica_id="r",
        status=ExecutionStatus.SUCCESS,
        started_at=AT,
        finished_at=AT,
    )


def _names(rounds: list[list[AnyReport]]) -> list[list[str]]:
    return [[f"{r.type.rsplit('.', 1)[1]} {r.execution_id}" for r in round_] for round_ in rounds]


def test_each_round_holds_an_execution_once_and_its_reports_stay_in_order() -> None:
    reports: list[AnyReport] = [
        _progress("b"),
        _logs("a"),
        _logs("b"),
        _finished("a"),
        _logs("c"),
        _finished("b"),
        _finished("c"),
    ]
    assert _names(in_rounds(reports)) == [
        ["progress b", "logs a", "logs c"],
        ["logs b", "finished a", "finished c"],
        ["finished b"],
    ]


def test_no_reports_no_rounds() -> None:
    assert in_rounds([]) == []
