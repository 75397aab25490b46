"""Reading the pods of Spool's Deployments (the API server's JSON) into replica views and exits:
statuses, waiting reasons, the driver's monotonic times, and each exit reported once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from spool_scheduler.driver import ReplicaStatus
from spool_scheduler.k8s_pods import DELETED, PodsRead, Seen, read_pods

WALL = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
MONO = 10_000.0

Doc = dict[str, Any]


def _stamp(seconds_ago: float) -> str:
    return (WALL - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pod(
    name: str = "spool-hello-abc-1",
    *,
    phase: str = "Running",
    created: float = 300,
    ready: bool | None = None,
    ready_since: float = 100,
    state: Doc | None = None,
    last_state: Doc | None = None,
    restarts: int = 0,
    conditions: list[Doc] | None = None,
    deleting: tuple[float, int] | None = None,
    reason: str | None = None,
    revision: str = "3",
) -> Doc:
    meta: Doc = {
        "name": name,
        "namespace": "spool",
        "creationTimestamp": _stamp(created),
        "labels": {
            "app.kubernetes.io/managed-by": "spool-scheduler",
            "spool.dev/service-id": "svc1",
            "spool.dev/revision": revision,
        },
    }
    if deleting is not None:
        meta["deletionTimestamp"] = _stamp(-deleting[0])  # in the future
        meta["deletionGracePeriodSeconds"] = deleting[1]
    found_conditions = list(conditions or [])
    if ready is not None:
        found_conditions.append(
            {"type": "Ready", "status": str(ready), "lastTransitionTime": _stamp(ready_since)}
        )
    container = {
        "name": "agent",
        "restartCount": restarts,
        "state": state or {"running": {"startedAt": _stamp(200)}},
        "lastState": last_state or {},
    }
    status: Doc = {"phase": phase, "conditions": found_conditions, "containerStatuses": [container]}
    if reason is not None:
        status["reason"] = reason
    return {"metadata": meta, "status": status}


def _read(pods: list[Doc], seen: dict[str, Seen] | None = None) -> PodsRead:
    return read_pods(pods, seen, mono=MONO, wall=WALL)


WAITING_PULL = {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling"}}
UNSCHEDULABLE = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}


@pytest.mark.parametrize(
    ("pod", "status", "since_ago", "waiting"),
    [
        (_pod(phase="Pending", state={"waiting": {"reason": "ContainerCreating"}}),
         ReplicaStatus.PENDING, 300, "ContainerCreating"),
        (_pod(phase="Pending", state=WAITING_PULL), ReplicaStatus.PENDING, 300, "ImagePullBackOff"),
        (_pod(phase="Pending", state={"waiting": {"reason": "ErrImagePull"}}),
         ReplicaStatus.PENDING, 300, "ErrImagePull"),
        (_pod(phase="Pending", state={"waiting": {}}, conditions=[UNSCHEDULABLE]),
         ReplicaStatus.PENDING, 300, "Unschedulable"),
        (_pod(phase="Pending", state={"waiting": {}}), ReplicaStatus.PENDING, 300, None),
        (_pod(ready=False, ready_since=250), ReplicaStatus.STARTING, 200, None),
        (_pod(ready=False, ready_since=50), ReplicaStatus.STARTING, 50, None),
        (_pod(), ReplicaStatus.STARTING, 200, None),
        (_pod(ready=False, state={"waiting": {"reason": "CrashLoopBackOff"}}, ready_since=250),
         ReplicaStatus.STARTING, 250, "CrashLoopBackOff"),
        (_pod(ready=True, ready_since=100), ReplicaStatus.READY, 100, None),
        (_pod(ready=True, deleting=(20, 30)), ReplicaStatus.DRAINING, 10, None),
        (_pod(phase="Pending", deleting=(0, 0)), ReplicaStatus.DRAINING, 0, None),
    ],
)  # fmt: skip
def test_pod_status(pod: Doc, status: ReplicaStatus, since_ago: float, waiting: str | None) -> None:
    (view,) = _read([pod]).replicas
    assert view.status is status
    assert view.since == pytest.approx(MONO - since_ago)
    assert view.waiting == waiting
    assert view.started_at == pytest.approx(MONO - 300)
    assert (view.replica_id, view.service_id, view.revision) == ("spool-hello-abc-1", "svc1", 3)


@pytest.mark.parametrize(
    "labels",
    [{}, {"spool.dev/service-id": "svc1"}, {"spool.dev/revision": "1"},
     {"spool.dev/service-id": "svc1", "spool.dev/revision": "x"}],
)  # fmt: skip
def test_pods_that_are_not_ours_are_skipped(labels: Doc) -> None:
    pod = _pod()
    pod["metadata"]["labels"] = labels
    assert _read([pod]).replicas == []


OOM = {
    "terminated": {
        "exitCode": 137,
        "reason": "OOMKilled",
        "startedAt": _stamp(120),
        "finishedAt": _stamp(60),
    }
}


def test_a_restart_is_an_exit_with_the_terminated_state() -> None:
    first = _read([_pod(ready=True)], {})
    assert first.exits == []
    again = _read([_pod(ready=False, restarts=1, last_state=OOM)], first.seen)
    (found,) = again.exits
    assert found.previous_log is True
    exit_ = found.exit
    assert exit_.replica_id == "spool-hello-abc-1"
    assert (exit_.exit_code, exit_.reason, exit_.expected) == (137, "OOMKilled", False)
    assert exit_.started_at == pytest.approx(MONO - 120)
    assert exit_.at == pytest.approx(MONO - 60)
    assert [v.status for v in again.replicas] == [ReplicaStatus.STARTING]
    # Seen again with the same count: reported once.
    assert _read([_pod(restarts=1, last_state=OOM)], again.seen).exits == []


def test_a_signal_is_a_negative_exit_code() -> None:
    killed = {"terminated": {"exitCode": 137, "signal": 9, "reason": "Error"}}
    seen = _read([_pod()], {}).seen
    (found,) = _read([_pod(restarts=1, last_state=killed)], seen).exits
    assert found.exit.exit_code == -9
    assert found.exit.at == MONO  # no finishedAt: now


def test_the_first_look_only_sets_the_baseline_but_new_pods_count_from_zero() -> None:
    restarted = _pod(restarts=4, last_state=OOM)
    assert _read([restarted], None).exits == []  # the driver (re)started: old news
    (found,) = _read([restarted], {}).exits  # a pod first seen later is new
    assert found.exit.reason == "OOMKilled"


def test_a_deleted_pod_is_an_expected_exit_once() -> None:
    seen = _read([_pod(ready=True, deleting=(5, 30))], {}).seen
    gone = _read([], seen)
    (found,) = gone.exits
    assert found.previous_log is None
    assert (found.exit.expected, found.exit.reason, found.exit.exit_code) == (True, DELETED, None)
    assert found.exit.at == MONO
    assert found.exit.started_at == pytest.approx(MONO - 300)
    assert _read([], gone.seen).exits == []


def test_an_evicted_pod_exits_once_and_is_no_longer_live() -> None:
    evicted = _pod(
        phase="Failed",
        reason="Evicted",
        state={"terminated": {"exitCode": 137, "reason": "Error", "finishedAt": _stamp(5)}},
    )
    first = _read([evicted], {})
    assert first.replicas == []
    (found,) = first.exits
    assert (found.exit.reason, found.exit.exit_code, found.exit.expected) == ("Evicted", 137, False)
    assert found.previous_log is False
    assert _read([evicted], first.seen).exits == []
    assert _read([], first.seen).exits == []  # and not again when it is cleaned up


def test_timestamps_that_cannot_be_read_fall_back_to_now() -> None:
    pod = _pod(ready=True)
    pod["metadata"]["creationTimestamp"] = "yesterday"
    pod["status"]["conditions"][0]["lastTransitionTime"] = "2025-03-01T11:00:00"  # no zone
    (view,) = _read([pod]).replicas
    assert view.started_at == MONO
    assert view.since == MONO
