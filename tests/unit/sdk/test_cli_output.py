"""What the `spool` command prints for people: tables, ages and durations, the progress of
an execution (as lines, and as a live bar), and the wait behind `exec --wait`. No server."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from spool import Execution, ScalingDecision, Service, ServiceStatus, Trigger
from spool.cli_format import (
    age,
    autoscaler_line,
    duration,
    execution_line,
    executions_table,
    scaling_table,
    status_text,
    table,
    triggers_table,
)
from spool.cli_progress import BarDisplay, LineDisplay, entry_line, latest, wait
from spool_common.models import StatusEntry

NOW = datetime(2025, 1, 2, 12, 0, 0, tzinfo=UTC)
EID = "e" * 32
SID = "5" * 32


def _entry(status: str, percent: int | None = None, message: str | None = None) -> dict[str, Any]:
    return {
        "status": status,
        "timestamp": NOW.isoformat(),
        "percentComplete": percent,
        "message": message,
    }


def _execution(*log: dict[str, Any], **fields: Any) -> Execution:
    body = {
        "id": EID,
        "projectId": "p" * 32,
        "serviceId": SID,
        "serviceName": "long-job",
        "statusLog": list(log),
        "latestStatus": log[-1],
        "createdAt": (NOW - timedelta(seconds=90)).isoformat(),
        "updatedAt": NOW.isoformat(),
        **fields,
    }
    return Execution.model_validate(body)


# A run of long-job with 4 steps, as successive snapshots of its status log.
RUN = [
    [_entry("created")],
    [_entry("created"), _entry("in-progress")],
    [_entry("created"), _entry("in-progress"), _entry("in-progress", 25, "step 1 of 4")],
    [
        _entry("created"),
        _entry("in-progress"),
        _entry("in-progress", 25, "step 1 of 4"),
        _entry("in-progress", 50, "step 2 of 4"),
        _entry("in-progress", 75, "step 3 of 4"),
    ],
    [
        _entry("created"),
        _entry("in-progress"),
        _entry("in-progress", 25, "step 1 of 4"),
        _entry("in-progress", 50, "step 2 of 4"),
        _entry("in-progress", 75, "step 3 of 4"),
        _entry("success", 100),
    ],
]


@pytest.mark.parametrize(
    ("headers", "rows", "expected"),
    [
        (["A", "BB"], [], "A  BB"),
        (["ID", "NAME"], [["1", "alpha"], ["22", "b"]], "ID  NAME\n1   alpha\n22  b"),
        # the last column is not padded; a long cell widens its column, never truncated
        (["X", "Y"], [["long-value", ""]], "X           Y\nlong-value"),
    ],
)
def test_table_aligns_columns(headers: list[str], rows: list[list[str]], expected: str) -> None:
    assert table(headers, rows) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0s"),
        (59, "59s"),
        (60, "1m"),
        (3599, "59m"),
        (7200, "2h"),
        (86400 * 3, "3d"),
        (-5, "0s"),
    ],
)
def test_age(seconds: int, expected: str) -> None:
    assert age(NOW - timedelta(seconds=seconds), NOW) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(None, "-"), (0.015, "15ms"), (1.25, "1.2s"), (59.9, "59.9s"), (125, "2m05s")],
)
def test_duration(seconds: float | None, expected: str) -> None:
    assert duration(seconds) == expected


def test_executions_table() -> None:
    done = _execution(*RUN[-1], duration=1.5, attempts=1)
    waiting = _execution(_entry("created"), id="f" * 32, functionName="other")
    lines = executions_table([done, waiting], NOW).splitlines()
    assert lines[0].split() == [
        "ID", "SERVICE", "FUNCTION", "STATUS", "PROGRESS", "ATTEMPTS", "AGE", "DURATION"
    ]  # fmt: skip
    assert lines[1].split() == [EID, "long-job", "run", "success", "100%", "1", "1m", "1.5s"]
    assert lines[2].split() == ["f" * 32, "long-job", "other", "created", "-", "0", "1m", "-"]


def test_execution_line_says_why_it_failed() -> None:
    failed = _entry("failed", None, "boom")
    failed["error"] = {"type": "ValueError", "message": "kaboom"}
    assert execution_line(_execution(failed, duration=0.2)) == (
        f"execution {EID} failed in 200ms: ValueError: kaboom"
    )
    assert execution_line(_execution(_entry("in-progress"))) == f"execution {EID} in-progress"


def _trigger(spec: dict[str, Any], kind: str) -> Trigger:
    operation = {"serviceId": SID, "functionName": "tick"}
    body = {"id": "t" * 32, "name": "t1", "projectId": "p" * 32, "type": kind}
    return Trigger.model_validate({**body, "spec": {**spec, "operation": operation}})


def test_triggers_table_shows_when_each_fires() -> None:
    cron = _trigger({"cron": "*/5 * * * *"}, "Cron")
    event = _trigger(
        {"resource": "Item", "actions": ["Created"], "filter": {"dir": "/in"}}, "Event"
    )
    lines = triggers_table([cron, event], {SID: "ticker"}).splitlines()
    assert lines[1].endswith("Cron   yes     ticker   tick      cron */5 * * * *")
    assert lines[2].endswith('Item Created (Once) {"dir":"/in"}')


def _service(runtime: dict[str, Any]) -> Service:
    body = {"id": SID, "name": "s", "projectId": "p", "packageId": "k", "packageRevision": "1"}
    return Service.model_validate({**body, "runtime": runtime})


def test_scaling_explains_the_autoscaler() -> None:
    scaled = _service({"autoscaler": {"type": "rabbitmq", "minReplicas": 0, "maxReplicas": 3}})
    assert autoscaler_line(scaled).startswith("autoscaler rabbitmq: 0..3 replicas, ")
    assert "queueLength 1000" in autoscaler_line(scaled)
    fixed = _service({"numReplicas": 2})
    assert autoscaler_line(fixed) == "no autoscaler: runtime.numReplicas keeps 2 replica(s)"
    decisions = [
        ScalingDecision.model_validate(
            {"at": NOW - timedelta(seconds=s), "from": f, "to": t, "rule": r, "reason": why}
        )
        for s, f, t, r, why in [
            (5, 1, 3, "queue", "25 waiting or running, queueLength 10: 3 replicas"),
            (300, None, 1, "bounds", "kept at minReplicas 1"),
        ]
    ]
    lines = scaling_table(decisions, NOW).splitlines()
    assert lines[0].split() == ["AGE", "FROM", "TO", "RULE", "REASON"]
    assert lines[1] == "5s   1     3   queue   25 waiting or running, queueLength 10: 3 replicas"
    assert lines[2] == "5m   -     1   bounds  kept at minReplicas 1"


def _status(replicas: int, desired: int) -> ServiceStatus:
    ready = [
        {"replicaId": f"r{i}", "state": "ready", "updatedAt": (NOW - timedelta(seconds=9))}
        for i in range(replicas)
    ]
    body = {"status": "Active", "revision": 2, "desiredReplicas": desired, "runtimeStatus": ready}
    return ServiceStatus.model_validate(body)


def test_status_shows_the_replicas_and_who_wants_how_many() -> None:
    fixed = status_text(_service({"numReplicas": 2}), _status(2, 2), None, NOW).splitlines()
    assert fixed[:6] == [
        f"service   s ({SID})",
        "project   p",
        "status    Active",
        "revision  2",
        "package   k 1",
        "replicas  2 running, 2 desired",
    ]
    assert fixed[7:] == [
        "REPLICA  STATE  REASON  SINCE",
        "r0       ready  -       9s",
        "r1       ready  -       9s",
    ]
    scaled = _service({"autoscaler": {"type": "rps", "minReplicas": 1, "maxReplicas": 4}})
    text = status_text(scaled, _status(3, 1), 3, NOW)
    assert "replicas  3 running, 3 wanted by the autoscaler (1..4; `spool scale` says why)" in text


def test_progress_lines_show_every_update_once() -> None:
    out = io.StringIO()
    display = LineDisplay(out)
    for snapshot in RUN:
        display.show(_execution(*snapshot))
    display.close()
    assert out.getvalue().splitlines() == [
        "  created",
        "  in-progress",
        "  in-progress    25%  step 1 of 4",
        "  in-progress    50%  step 2 of 4",
        "  in-progress    75%  step 3 of 4",
        "  success       100%",
    ]


def test_progress_lines_of_a_rerun_skip_its_history() -> None:
    out = io.StringIO()
    display = LineDisplay(out, skip=len(RUN[-1]))
    display.show(_execution(*RUN[-1], _entry("rerun", None, "Execution rerun by a user")))
    assert out.getvalue().splitlines() == ["  rerun               Execution rerun by a user"]


@pytest.mark.parametrize(
    ("snapshot", "expected"),
    [
        (RUN[0], (None, "queued")),
        (RUN[1], (None, "in-progress")),
        (RUN[3], (75, "step 3 of 4")),
        (RUN[4], (100, "success")),
    ],
)
def test_the_bar_shows_the_latest_progress(
    snapshot: list[dict[str, Any]], expected: tuple[int | None, str]
) -> None:
    assert latest(_execution(*snapshot)) == expected


def test_the_bar_renders_on_a_terminal() -> None:
    out = io.StringIO()
    bar = BarDisplay(out, force_terminal=True)
    for snapshot in RUN[:4]:
        bar.show(_execution(*snapshot))
    bar.close()
    screen = out.getvalue()
    assert "75%" in screen
    assert "step 3 of 4" in screen
    assert "\x1b[" in screen  # redrawn in place, with the terminal's control sequences


def test_entry_line_without_progress() -> None:
    entry = StatusEntry.model_validate(_entry("failed", None, "boom"))
    assert entry_line(entry) == "  failed              boom"


class _Scripted:
    """Stands in for an Execution: each wait() moves to the next snapshot, and a fake clock
    advances by the time asked for (so the test never sleeps)."""

    def __init__(self, snapshots: list[Execution], clock: list[float]) -> None:
        self._snapshots = snapshots
        self._clock = clock
        self.current = snapshots[0]
        self.waits: list[float] = []

    @property
    def id(self) -> str:
        return self.current.id

    @property
    def status(self) -> Any:
        return self.current.status

    def wait(self, timeout: float) -> None:
        self.waits.append(timeout)
        self._clock[0] += timeout
        index = self._snapshots.index(self.current)
        self.current = self._snapshots[min(index + 1, len(self._snapshots) - 1)]
        if not self.current.status.is_terminal:
            raise TimeoutError("still running")


class _Seen:
    def __init__(self, execution: _Scripted) -> None:
        self.execution = execution
        self.shown: list[str] = []

    def show(self, _: Execution) -> None:
        self.shown.append(self.execution.status.value)

    def close(self) -> None:
        pass


def test_wait_shows_each_snapshot_until_the_end() -> None:
    clock = [0.0]
    scripted = _Scripted([_execution(*s) for s in RUN], clock)
    seen = _Seen(scripted)
    wait(cast(Execution, scripted), None, seen, clock=lambda: clock[0])
    assert seen.shown == ["created", "in-progress", "in-progress", "in-progress", "success"]
    assert scripted.waits == [1.0] * 4


def test_wait_gives_up_after_the_timeout() -> None:
    clock = [0.0]
    scripted = _Scripted([_execution(*s) for s in RUN], clock)
    with pytest.raises(TimeoutError, match=rf"{EID} did not finish within 2.5 s"):
        wait(cast(Execution, scripted), 2.5, _Seen(scripted), clock=lambda: clock[0])
    assert scripted.waits == [1.0, 1.0, 0.5]  # never past the caller's timeout
