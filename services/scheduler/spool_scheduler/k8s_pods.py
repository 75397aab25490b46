"""What the pods of Spool's Deployments say, read into `ReplicaView`s and `ReplicaExit`s.

Pure: the pods are the API server's JSON (plain dicts), and the caller passes both clocks
(`mono`, the driver's monotonic clock, and `wall`, UTC now, read at the same moment); a pod's
timestamp `t` becomes `mono - (wall - t)`. What was seen at the previous observation (restart
counts, finished pods) is passed in and handed back, so exits are reported once.

- a pod with a `deletionTimestamp` is DRAINING (since the deletion was asked);
- phase Pending is PENDING, `waiting` being the container's waiting reason ("ErrImagePull",
  "ImagePullBackOff", "ContainerCreating", "CreateContainerConfigError") or else the
  PodScheduled condition's reason ("Unschedulable");
- Running and Ready is READY; Running, not Ready is STARTING (a crash-looping container waits
  in "CrashLoopBackOff": that reason is in `waiting` too);
- a container whose restartCount went up exited: its `lastState.terminated` is the exit
  (code, reason such as "OOMKilled", times), never expected;
- a pod that ended (phase Failed or Succeeded, e.g. "Evicted") exits once, not expected;
- a pod that disappeared was deleted (a rollout, a scale-in, a removal): an expected exit.

The first observation only sets the restart-count baseline (the driver may have restarted);
pods first seen later are new, so every restart they show is reported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from spool_scheduler.driver import ReplicaExit, ReplicaStatus, ReplicaView
from spool_scheduler.k8s_manifests import CONTAINER, REVISION_LABEL, SERVICE_ID_LABEL

Json = Mapping[str, Any]

DELETED: Final = "Deleted"  # the reason of an exit whose pod disappeared


@dataclass(frozen=True)
class Seen:
    """One pod as the previous observation left it."""

    service_id: str
    revision: int
    started_at: float
    restarts: int
    ended: bool


@dataclass(frozen=True)
class FoundExit:
    """An exit, and where its log is: the container before the restart (`previous`), the
    pod's current container (an ended pod), or nowhere (`None`: the pod is gone)."""

    exit: ReplicaExit
    previous_log: bool | None


@dataclass(frozen=True)
class PodsRead:
    replicas: list[ReplicaView]
    exits: list[FoundExit]
    seen: dict[str, Seen]


@dataclass(frozen=True)
class _Clock:
    mono: float
    wall: datetime

    def at(self, stamp: Any, default: float | None = None) -> float:
        moment = _time(stamp)
        if moment is None:
            return self.mono if default is None else default
        return self.mono - (self.wall - moment).total_seconds()


def read_pods(
    pods: Sequence[Json], seen: Mapping[str, Seen] | None, *, mono: float, wall: datetime
) -> PodsRead:
    """The live replicas among `pods`, and the exits since `seen` (None: first look)."""
    clock = _Clock(mono, wall)
    replicas: list[ReplicaView] = []
    exits: list[FoundExit] = []
    now_seen: dict[str, Seen] = {}
    for pod in pods:
        view = _view(pod, clock)
        if view is None:
            continue
        before = seen.get(view.replica_id) if seen is not None else None
        baseline = 0 if seen is not None else None
        restarts = _restarts(pod)
        ended = _phase(pod) in ("Failed", "Succeeded")
        now_seen[view.replica_id] = Seen(
            view.service_id, view.revision, view.started_at, restarts, ended
        )
        previous = before.restarts if before is not None else baseline
        if previous is not None and restarts > previous:
            exits.append(FoundExit(_restart_exit(pod, view, clock), previous_log=True))
        if ended and not (before is not None and before.ended):
            exits.append(FoundExit(_ended_exit(pod, view, clock), previous_log=False))
        if not ended:
            replicas.append(view)
    for name, gone in (seen or {}).items():
        if name not in now_seen and not gone.ended:
            exits.append(FoundExit(_deleted_exit(name, gone, clock), previous_log=None))
    return PodsRead(replicas, exits, now_seen)


def _view(pod: Json, clock: _Clock) -> ReplicaView | None:
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    name, service_id = meta.get("name"), labels.get(SERVICE_ID_LABEL)
    revision = _int(labels.get(REVISION_LABEL))
    if not name or not service_id or revision is None:
        return None  # not one of ours (or not yet named)
    started_at = clock.at(meta.get("creationTimestamp"))
    status, since, waiting = _status(pod, clock, started_at)
    return ReplicaView(
        replica_id=name,
        service_id=service_id,
        revision=revision,
        status=status,
        started_at=started_at,
        since=since,
        waiting=waiting,
    )


def _status(pod: Json, clock: _Clock, started_at: float) -> tuple[ReplicaStatus, float, str | None]:
    meta = pod.get("metadata") or {}
    container = _container(pod)
    waiting = ((container.get("state") or {}).get("waiting") or {}).get("reason")
    if meta.get("deletionTimestamp"):
        grace = meta.get("deletionGracePeriodSeconds") or 0
        return ReplicaStatus.DRAINING, clock.at(meta["deletionTimestamp"]) - grace, None
    ready = _condition(pod, "Ready")
    if _phase(pod) == "Pending":
        scheduled = _condition(pod, "PodScheduled")
        if not waiting and scheduled.get("status") == "False":
            waiting = scheduled.get("reason")
        return ReplicaStatus.PENDING, started_at, waiting
    if ready.get("status") == "True":
        return ReplicaStatus.READY, clock.at(ready.get("lastTransitionTime"), started_at), None
    running = ((container.get("state") or {}).get("running") or {}).get("startedAt")
    since = max(
        clock.at(running, started_at), clock.at(ready.get("lastTransitionTime"), started_at)
    )
    return ReplicaStatus.STARTING, since, waiting


def _restart_exit(pod: Json, view: ReplicaView, clock: _Clock) -> ReplicaExit:
    terminated = (_container(pod).get("lastState") or {}).get("terminated") or {}
    return _exit(view, terminated, clock)


def _ended_exit(pod: Json, view: ReplicaView, clock: _Clock) -> ReplicaExit:
    terminated = (_container(pod).get("state") or {}).get("terminated") or {}
    reason = (pod.get("status") or {}).get("reason")  # "Evicted", "Shutdown", ...
    found = _exit(view, terminated, clock)
    return found if reason is None else replace(found, reason=reason)


def _exit(view: ReplicaView, terminated: Json, clock: _Clock) -> ReplicaExit:
    signal = _int(terminated.get("signal"))
    code = -signal if signal else _int(terminated.get("exitCode"))
    return ReplicaExit(
        replica_id=view.replica_id,
        service_id=view.service_id,
        revision=view.revision,
        exit_code=code,
        started_at=clock.at(terminated.get("startedAt"), view.started_at),
        at=clock.at(terminated.get("finishedAt")),
        expected=False,
        reason=terminated.get("reason"),
    )


def _deleted_exit(name: str, gone: Seen, clock: _Clock) -> ReplicaExit:
    return ReplicaExit(
        replica_id=name,
        service_id=gone.service_id,
        revision=gone.revision,
        exit_code=None,
        started_at=gone.started_at,
        at=clock.mono,
        expected=True,
        reason=DELETED,
    )


def _phase(pod: Json) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def _container(pod: Json) -> Json:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    ours = [s for s in statuses if s.get("name") == CONTAINER]
    found: Json = ours[0] if ours else {}
    return found


def _restarts(pod: Json) -> int:
    return _int(_container(pod).get("restartCount")) or 0


def _condition(pod: Json, kind: str) -> Json:
    conditions = (pod.get("status") or {}).get("conditions") or []
    found: Json = next((c for c in conditions if c.get("type") == kind), {})
    return found


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
