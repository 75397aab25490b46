"""Table tests for what the scheduler tells a service's owners about failing replicas: exit
classification, waiting replicas, grouped notifications, crash-loop deactivation and MLRun
state thresholds."""

from __future__ import annotations

import pytest

from spool_common.exit_codes import AgentExit
from spool_common.messages import NotificationType as N
from spool_scheduler.driver import ReplicaExit, ReplicaStatus, ReplicaView
from spool_scheduler.health import (
    CrashLoopPolicy,
    Decision,
    Failure,
    HealthState,
    after_failures,
    classify,
    crash_loop,
    last_error_line,
    stuck,
    waiting_failure,
)

TRACEBACK = (
    "Traceback (most recent call last):",
    '  File "/srv/main.py", line 1, in <module>',
    "    import numpy",
    "ModuleNotFoundError: No module named 'numpy'",
)
PIP = (
    "Collecting foo==9.9",
    "ERROR: Could not find a version that satisfies the requirement foo==9.9",
    "ERROR: No matching distribution found for foo==9.9",
    "[notice] A new release of pip is available: 23.0 -> 24.0",
)
INIT_JSON = (
    '{"event": "init_failed", "type": "ValueError", "message": "bad model path",'
    ' "traceback": "...", "level": "error", "service": "agent"}'
)


def _exit(
    code: int | None,
    *,
    tail: tuple[str, ...] = (),
    reason: str | None = None,
    expected: bool = False,
    was_ready: bool = False,
) -> ReplicaExit:
    return ReplicaExit(
        was_ready=was_ready,
        replica_id="r-7",
        service_id="svc",
        revision=1,
        exit_code=code,
        started_at=0.0,
        at=10.0,
        expected=expected,
        reason=reason,
        log_tail=tail,
    )


# --- classify ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exit",
    [
        pytest.param(_exit(0), id="clean-exit"),
        pytest.param(_exit(AgentExit.INIT_FAILED, expected=True), id="expected-nonzero"),
        pytest.param(_exit(-9, expected=True, tail=("MemoryError",)), id="expected-kill"),
        pytest.param(_exit(0, expected=True), id="expected-clean"),
    ],
)
def test_a_stop_the_driver_asked_for_or_a_clean_exit_is_no_failure(exit: ReplicaExit) -> None:
    assert classify(exit) is None


@pytest.mark.parametrize(
    ("exit", "kind", "title"),
    [
        pytest.param(_exit(3), N.INIT_ERROR, "Service Init Function Error", id="init"),
        pytest.param(_exit(4), N.REQUIREMENTS_ERROR, "Service Requirements Error", id="reqs"),
        pytest.param(_exit(5), N.INTERNAL_ERROR, "Service Internal Error", id="runner-died"),
        pytest.param(_exit(5, tail=("MemoryError",)), N.OOM_KILLED, "OOM Killed", id="runner-oom"),
        pytest.param(_exit(6), N.CODEBASE_ERROR, "Service Codebase Error", id="codebase"),
        pytest.param(
            _exit(7), N.AUTHORIZATION_ERROR, "Service Authorization Error", id="unauthorized"
        ),
        pytest.param(_exit(137, reason="OOMKilled"), N.OOM_KILLED, "OOM Killed", id="k8s-oom"),
        pytest.param(_exit(1, reason="OOMKilled"), N.OOM_KILLED, "OOM Killed", id="oom-any-code"),
        pytest.param(
            _exit(-9, tail=("OSError: [Errno 12] Cannot allocate memory",)),
            N.OOM_KILLED,
            "OOM Killed",
            id="sigkill-enomem",
        ),
        pytest.param(
            _exit(137, tail=("x = [0] * 10**12", "MemoryError")),
            N.OOM_KILLED,
            "OOM Killed",
            id="code137-memoryerror",
        ),
        pytest.param(_exit(-9), N.INTERNAL_ERROR, "Service Internal Error", id="sigkill-plain"),
        pytest.param(_exit(137), N.INTERNAL_ERROR, "Service Internal Error", id="code137-plain"),
        pytest.param(
            _exit(-15, tail=("MemoryError",)),
            N.INTERNAL_ERROR,
            "Service Internal Error",
            id="sigterm-not-oom",
        ),
        pytest.param(_exit(1), N.INTERNAL_ERROR, "Service Internal Error", id="code-1"),
        pytest.param(_exit(None), N.INTERNAL_ERROR, "Service Internal Error", id="unknown"),
        pytest.param(
            _exit(3, tail=("MemoryError: loading the model",)),
            N.INIT_ERROR,
            "Service Init Function Error",
            id="init-stays-init",
        ),
        pytest.param(
            _exit(6, reason="Error"), N.CODEBASE_ERROR, "Service Codebase Error", id="k8s-error"
        ),
    ],
)
def test_classify_maps_exits_to_the_notification_taxonomy(
    exit: ReplicaExit, kind: N, title: str
) -> None:
    failure = classify(exit)
    assert failure is not None
    assert (failure.type, failure.title) == (kind, title)
    assert "r-7" in failure.message


@pytest.mark.parametrize(
    ("exit", "words"),
    [
        pytest.param(_exit(3), ["exited with code 3", "__init__"], id="agent-code"),
        pytest.param(_exit(-9), ["killed by signal 9", "SIGKILL"], id="signal"),
        pytest.param(_exit(143), ["exited with code 143", "signal 15, SIGTERM"], id="code-143"),
        pytest.param(_exit(137, reason="OOMKilled"), ["code 137", "OOMKilled"], id="reason"),
        pytest.param(_exit(None), ["unknown exit code"], id="unknown"),
        pytest.param(_exit(2), ["exited with code 2"], id="plain-code"),
    ],
)
def test_the_message_names_the_exit_code_or_signal(exit: ReplicaExit, words: list[str]) -> None:
    failure = classify(exit)
    assert failure is not None
    assert all(word in failure.message for word in words), failure.message
    assert "None" not in failure.message


@pytest.mark.parametrize(
    ("tail", "line"),
    [
        pytest.param(TRACEBACK, "ModuleNotFoundError: No module named 'numpy'", id="traceback"),
        pytest.param(PIP, "ERROR: No matching distribution found for foo==9.9", id="pip"),
        pytest.param((INIT_JSON,), "ValueError: bad model path", id="agent-json-error"),
        pytest.param(
            ('{"event": "requirements_failed", "error": "pip exited 1", "level": "error"}',),
            "requirements_failed: pip exited 1",
            id="agent-json-event",
        ),
        pytest.param(
            (*TRACEBACK, '{"event": "replica_ready", "level": "info"}'),
            "ModuleNotFoundError: No module named 'numpy'",
            id="json-info-skipped",
        ),
        pytest.param(
            ("requests.exceptions.HTTPError: 401 Unauthorized",),
            "requests.exceptions.HTTPError: 401 Unauthorized",
            id="dotted-exception",
        ),
        pytest.param(("MemoryError",), "MemoryError", id="bare-exception"),
        pytest.param(("Exception: boom",), "Exception: boom", id="exception"),
        pytest.param(
            ("error: subprocess-exited-with-error", "note: This error originates from pip"),
            "error: subprocess-exited-with-error",
            id="pip-lowercase",
        ),
        pytest.param(
            ("ErrorHandler installed", "Traceback (most recent call last):"), None, id="no-error"
        ),
        pytest.param(("{not json", "all good"), None, id="broken-json"),
        pytest.param((), None, id="empty"),
    ],
)
def test_last_error_line(tail: tuple[str, ...], line: str | None) -> None:
    assert last_error_line(tail) == line


def test_the_message_quotes_the_last_error_line_shortened() -> None:
    failure = classify(_exit(6, tail=(*TRACEBACK, "Traceback ...", "ImportError: " + "x" * 900)))
    assert failure is not None
    quoted = failure.message.split("Last error: ", 1)[1]
    assert quoted.startswith("ImportError: xxx")
    assert len(quoted) == 500


def test_without_an_error_line_the_message_quotes_nothing() -> None:
    failure = classify(_exit(4, tail=("Collecting foo",)))
    assert failure is not None
    assert "Last error" not in failure.message


# --- waiting replicas ----------------------------------------------------------------------


def _view(
    status: ReplicaStatus, waiting: str | None = None, since: float = 0.0, rid: str = "r-1"
) -> ReplicaView:
    return ReplicaView(
        replica_id=rid,
        service_id="svc",
        revision=1,
        status=status,
        started_at=0.0,
        since=since,
        waiting=waiting,
    )


@pytest.mark.parametrize(
    ("view", "kind"),
    [
        pytest.param(_view(ReplicaStatus.PENDING, "ImagePullBackOff"), N.IMAGE_PULL_ERROR),
        pytest.param(_view(ReplicaStatus.PENDING, "ErrImagePull"), N.IMAGE_PULL_ERROR),
        pytest.param(_view(ReplicaStatus.PENDING, "InvalidImageName"), N.IMAGE_PULL_ERROR),
        pytest.param(_view(ReplicaStatus.PENDING, "Unschedulable"), N.UNSCHEDULABLE),
        pytest.param(_view(ReplicaStatus.PENDING, "ContainerCreating"), None),
        pytest.param(_view(ReplicaStatus.PENDING), None),
        pytest.param(_view(ReplicaStatus.STARTING, "ImagePullBackOff"), None),
        pytest.param(_view(ReplicaStatus.READY), None),
        pytest.param(_view(ReplicaStatus.DRAINING, "Unschedulable"), None),
    ],
)
def test_waiting_failure(view: ReplicaView, kind: N | None) -> None:
    failure = waiting_failure(view)
    assert (failure.type if failure else None) == kind
    if failure is not None:
        assert failure.title in ("Docker Image Pull Error", "Unschedulable")
        assert "r-1" in failure.message


# --- crash loop ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failures_at", "now", "policy", "looping"),
    [
        pytest.param([], 0.0, CrashLoopPolicy(), False, id="none"),
        pytest.param([1, 2, 3, 4], 10.0, CrashLoopPolicy(), False, id="four"),
        pytest.param([1, 2, 3, 4, 5], 10.0, CrashLoopPolicy(), True, id="five"),
        pytest.param([0, 2, 3, 4, 5], 600.0, CrashLoopPolicy(), True, id="edge-inside"),
        pytest.param([0, 2, 3, 4, 5], 600.001, CrashLoopPolicy(), False, id="edge-outside"),
        pytest.param([0, 100, 200, 300, 400, 500], 650.0, CrashLoopPolicy(), True, id="slides"),
        pytest.param([1, 2], 3.0, CrashLoopPolicy(restarts=2, window=60), True, id="custom"),
        pytest.param([1, 70], 70.0, CrashLoopPolicy(restarts=2, window=60), False),
        pytest.param([5], 5.0, CrashLoopPolicy(restarts=1, window=1), True, id="one-restart"),
    ],
)
def test_crash_loop(
    failures_at: list[float], now: float, policy: CrashLoopPolicy, looping: bool
) -> None:
    assert crash_loop(failures_at, now, policy) is looping


@pytest.mark.parametrize(
    ("restarts", "window", "named"),
    [
        (0, 600.0, "restarts"),
        (-1, 600.0, "restarts"),
        (5, 0.0, "window"),
        (5, -1.0, "window"),
        (5, float("nan"), "window"),
    ],
)
def test_a_crash_loop_policy_must_be_reachable(restarts: int, window: float, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        CrashLoopPolicy(restarts=restarts, window=window)


INIT = Failure.of(N.INIT_ERROR, "Replica r-1 exited with code 3: __init__ raised.")
OOM = Failure.of(N.OOM_KILLED, "Replica r-2 was killed by signal 9: out of memory.")
PULL = Failure.of(N.IMAGE_PULL_ERROR, "Replica r-3 cannot pull its image.")
POLICY = CrashLoopPolicy(restarts=5, window=600.0)


def _run(
    batches: list[tuple[float, list[tuple[float, Failure]]]], policy: CrashLoopPolicy = POLICY
) -> tuple[HealthState, list[Decision]]:
    state, decisions = HealthState(), []
    for now, failures in batches:
        state, decision = after_failures(state, failures, now, policy)
        decisions.append(decision)
    return state, decisions


def test_a_single_init_failure_notifies_and_keeps_the_service_active() -> None:
    _, [decision] = _run([(10.0, [(10.0, INIT)])])
    assert decision == Decision(notify=(INIT,), deactivate=False)


@pytest.mark.parametrize(
    ("batches", "notified"),
    [
        pytest.param(
            [(3.0, [(1.0, INIT), (2.0, INIT), (3.0, INIT)])], [[N.INIT_ERROR]], id="batch"
        ),
        pytest.param(
            [(1.0, [(1.0, INIT)]), (100.0, [(100.0, INIT)])],
            [[N.INIT_ERROR], []],
            id="same-type-inside-window",
        ),
        pytest.param(
            [(1.0, [(1.0, INIT)]), (601.0, [(601.0, INIT)])],
            [[N.INIT_ERROR], []],
            id="window-edge",
        ),
        pytest.param(
            [(1.0, [(1.0, INIT)]), (601.5, [(601.5, INIT)])],
            [[N.INIT_ERROR], [N.INIT_ERROR]],
            id="after-the-window",
        ),
        pytest.param(
            [(2.0, [(1.0, INIT), (2.0, OOM), (2.0, INIT)])],
            [[N.OOM_KILLED, N.INIT_ERROR]],
            id="one-per-type",
        ),
        pytest.param(
            [(1.0, [(1.0, INIT)]), (50.0, [(50.0, OOM), (50.0, INIT)])],
            [[N.INIT_ERROR], [N.OOM_KILLED]],
            id="new-type-only",
        ),
        pytest.param([(t, [(t, PULL)]) for t in range(10)], [[N.IMAGE_PULL_ERROR]] + [[]] * 9),
        pytest.param([(5.0, [])], [[]], id="nothing"),
    ],
)
def test_notifications_are_grouped_by_type_per_window(
    batches: list[tuple[float, list[tuple[float, Failure]]]], notified: list[list[N]]
) -> None:
    _, decisions = _run(batches)
    assert [[f.type for f in d.notify] for d in decisions] == notified
    assert not any(d.deactivate for d in decisions)


def test_the_latest_failure_of_a_type_is_the_one_notified() -> None:
    later = Failure.of(N.INIT_ERROR, "Replica r-9 exited with code 3: second.")
    _, [decision] = _run([(2.0, [(1.0, INIT), (2.0, later)])])
    assert decision.notify == (later,)


def test_a_sustained_crash_loop_deactivates_with_a_notification_naming_the_cause() -> None:
    batches = [(t, [(t, OOM if t in (20.0, 40.0) else INIT)]) for t in (10.0, 20.0, 30.0, 40.0)]
    state, decisions = _run([*batches, (50.0, [(50.0, INIT)])])
    assert not any(d.deactivate for d in decisions[:-1])
    last = decisions[-1]
    assert last.deactivate
    [forced] = last.notify
    assert (forced.type, forced.title) == (N.FORCED_DEACTIVATION, "Service Forced Deactivation")
    for words in ("5 times", "600 s", "Service Init Function Error (3 times)"):
        assert words in forced.message, forced.message
    assert state == HealthState()


def test_a_crash_loop_in_one_batch_notifies_the_types_and_the_deactivation() -> None:
    _, [decision] = _run([(5.0, [(float(t), OOM) for t in range(5)])])
    assert decision.deactivate
    assert [f.type for f in decision.notify] == [N.OOM_KILLED, N.FORCED_DEACTIVATION]
    assert "OOM Killed (5 times)" in decision.notify[-1].message


def test_on_a_tie_the_cause_is_the_type_that_failed_last() -> None:
    failures = [(1.0, INIT), (2.0, OOM), (3.0, OOM), (4.0, INIT)]
    policy = CrashLoopPolicy(restarts=4, window=60)
    _, [decision] = _run([(4.0, failures)], policy)
    assert "Service Init Function Error (2 times)" in decision.notify[-1].message
    assert "60 s" in decision.notify[-1].message


def test_after_a_deactivation_the_state_starts_clean() -> None:
    loop = [(float(t), [(float(t), INIT)]) for t in range(5)]
    state, decisions = _run([*loop, (10.0, [(10.0, INIT)])])
    assert decisions[4].deactivate
    # Reactivated: the next failure is notified again and alone does not deactivate.
    assert decisions[5] == Decision(notify=(INIT,), deactivate=False)
    assert len(state.failures) == 1


def test_failures_spread_wider_than_the_window_never_deactivate() -> None:
    state, decisions = _run([(t * 200.0, [(t * 200.0, INIT)]) for t in range(20)])
    assert not any(d.deactivate for d in decisions)
    assert (
        len(state.failures) == 4
    )  # only those inside the window are kept (0, 200, 400, 600 s ago)


def test_waiting_failures_are_notified_but_never_counted_as_restarts() -> None:
    state, decisions = _run([(float(t), [(float(t), PULL)] * 3) for t in range(50)])
    assert not any(d.deactivate for d in decisions)
    assert state.failures == ()


def test_stuck_replicas_that_were_stopped_count_as_restarts() -> None:
    stuck_failure = Failure.of(N.STUCK_REPLICA, "replica r-1 pending for 3601 s")
    _, decisions = _run([(float(t), [(float(t), stuck_failure)]) for t in range(5)])
    assert decisions[-1].deactivate
    assert "Service Stuck Replica (5 times)" in decisions[-1].notify[-1].message


def test_old_entries_are_dropped_even_without_new_failures() -> None:
    state, _ = _run([(1.0, [(1.0, INIT), (1.0, OOM)]), (700.0, [])])
    assert state == HealthState()


# --- stuck replicas ------------------------------------------------------------------------

THRESHOLDS: dict[str, float | None] = {
    "pendingScheduled": 3600.0,
    "pendingNotScheduled": 300.0,
    "imagePullBackoff": 90.0,
    "running": 86400.0,
}


@pytest.mark.parametrize(
    ("view", "now", "text"),
    [
        pytest.param(
            _view(ReplicaStatus.PENDING, "Unschedulable"),
            300.4,
            "replica r-1 pending (Unschedulable) for 301 s, "
            "over the pendingNotScheduled threshold of 300 s",
            id="not-scheduled",
        ),
        pytest.param(
            _view(ReplicaStatus.PENDING, "Unschedulable"), 300.0, None, id="exactly-at-threshold"
        ),
        pytest.param(
            _view(ReplicaStatus.PENDING, "ImagePullBackOff", since=10.0),
            101.0,
            "replica r-1 pending (ImagePullBackOff) for 91 s, "
            "over the imagePullBackoff threshold of 90 s",
            id="image-pull",
        ),
        pytest.param(
            _view(ReplicaStatus.PENDING, "ErrImagePull"), 90.0, None, id="image-pull-at-edge"
        ),
        pytest.param(
            _view(ReplicaStatus.PENDING, "ContainerCreating"),
            3601.0,
            "replica r-1 pending for 3601 s, over the pendingScheduled threshold of 3600 s",
            id="scheduled",
        ),
        pytest.param(_view(ReplicaStatus.PENDING), 3599.0, None, id="scheduled-in-time"),
        pytest.param(
            _view(ReplicaStatus.STARTING, since=100.0),
            86500.5,
            "replica r-1 running but not ready for 86401 s, over the running threshold of 86400 s",
            id="never-ready",
        ),
        pytest.param(_view(ReplicaStatus.READY), 1e9, None, id="ready"),
        pytest.param(_view(ReplicaStatus.DRAINING), 1e9, None, id="draining"),
    ],
)
def test_stuck(view: ReplicaView, now: float, text: str | None) -> None:
    assert stuck(view, THRESHOLDS, now) == text


@pytest.mark.parametrize(
    "thresholds",
    [
        pytest.param({**THRESHOLDS, "pendingNotScheduled": None}, id="infinite"),
        pytest.param({k: v for k, v in THRESHOLDS.items() if k != "pendingNotScheduled"}),
    ],
)
def test_an_infinite_or_missing_threshold_never_fires(thresholds: dict[str, float | None]) -> None:
    assert stuck(_view(ReplicaStatus.PENDING, "Unschedulable"), thresholds, 1e12) is None


def test_a_fractional_threshold_is_shown_as_such() -> None:
    text = stuck(_view(ReplicaStatus.STARTING), {"running": 1.5}, 2.0)
    assert text == "replica r-1 running but not ready for 2 s, over the running threshold of 1.5 s"


@pytest.mark.parametrize(
    ("exit", "counts"),
    [
        pytest.param(_exit(-9, was_ready=True), False, id="serving-then-killed"),
        pytest.param(_exit(137, was_ready=True), False, id="serving-then-137"),
        pytest.param(_exit(-9), True, id="killed-before-ready"),
        pytest.param(_exit(AgentExit.RUNNER_CRASHED, was_ready=True), True, id="code-crashed"),
        pytest.param(_exit(AgentExit.INIT_FAILED), True, id="init-failed"),
    ],
)
def test_only_failures_to_start_or_crashes_of_the_code_count_towards_a_loop(
    exit: ReplicaExit, counts: bool
) -> None:
    failure = classify(exit)
    assert failure is not None
    assert failure.counts is counts


def test_killing_serving_replicas_notifies_but_never_deactivates() -> None:
    policy = CrashLoopPolicy(restarts=3, window=600.0)
    state = HealthState()
    for n in range(6):
        failure = classify(_exit(-9, was_ready=True))
        assert failure is not None
        state, decision = after_failures(state, [(float(n), failure)], float(n), policy)
        assert not decision.deactivate
