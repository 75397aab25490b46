"""Pure: what a replica's exit or wait means for its service's owners, when a service is in a
crash loop, and when a replica is stuck (MLRun state thresholds).

No I/O, no clock: times are monotonic seconds passed in. The reconcile loop classifies each
exit and each waiting replica, feeds the failures to `after_failures`, publishes the
notifications it returns and deactivates the service when it says so.

Notifications follow the Dataloop taxonomy ("Service errors"): one notification per failure
type per service per window, a single failure never deactivates a service, and a sustained
crash loop does, with a "Service Forced Deactivation" notification naming the cause.
"""

from __future__ import annotations

import json
import math
import re
import signal
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from spool_common.exit_codes import AgentExit
from spool_common.messages import NotificationType
from spool_scheduler.driver import ReplicaExit, ReplicaStatus, ReplicaView

TITLES: Final[Mapping[NotificationType, str]] = MappingProxyType(
    {
        NotificationType.CODEBASE_ERROR: "Service Codebase Error",
        NotificationType.REQUIREMENTS_ERROR: "Service Requirements Error",
        NotificationType.INIT_ERROR: "Service Init Function Error",
        NotificationType.AUTHORIZATION_ERROR: "Service Authorization Error",
        NotificationType.IMAGE_PULL_ERROR: "Docker Image Pull Error",
        NotificationType.OOM_KILLED: "OOM Killed",
        NotificationType.UNSCHEDULABLE: "Unschedulable",
        NotificationType.STUCK_REPLICA: "Service Stuck Replica",
        NotificationType.INTERNAL_ERROR: "Service Internal Error",
        NotificationType.FORCED_DEACTIVATION: "Service Forced Deactivation",
        NotificationType.TRIGGER_LOOP: "Trigger Loop Stopped",
    }
)


@dataclass(frozen=True)
class Failure:
    type: NotificationType
    title: str
    message: str
    # Counts towards a crash loop. A replica that was serving and then got killed (by a
    # signal, an operator, the OOM killer) is notified but does not make the service's
    # configuration suspect: only failures to start, or crashes of the code, loop.
    counts: bool = True

    @classmethod
    def of(cls, kind: NotificationType, message: str) -> Failure:
        """A failure with the taxonomy's title for `kind`."""
        return cls(kind, TITLES[kind], message)


# --- exits ---------------------------------------------------------------------------------

_AGENT_EXITS: Final[Mapping[int, tuple[NotificationType, str]]] = MappingProxyType(
    {
        AgentExit.INIT_FAILED: (NotificationType.INIT_ERROR, "the service class's __init__ raised"),
        AgentExit.REQUIREMENTS_FAILED: (
            NotificationType.REQUIREMENTS_ERROR,
            "the package's requirements could not be installed",
        ),
        AgentExit.RUNNER_CRASHED: (
            NotificationType.INTERNAL_ERROR,
            "the runner process running user code died",
        ),
        AgentExit.CODEBASE_ERROR: (
            NotificationType.CODEBASE_ERROR,
            "the entry module could not be imported or its class is missing",
        ),
        AgentExit.UNAUTHORIZED: (
            NotificationType.AUTHORIZATION_ERROR,
            "the gateway refused its credential",
        ),
    }
)
_SIGKILL_CODES: Final = frozenset({-signal.SIGKILL, 128 + signal.SIGKILL})
_OOM_WHY: Final = "it ran out of memory; raise its memory limit or use less"
_MAX_LINE: Final = 500  # characters of a log line quoted in a message

# A line that names an error: a Python exception ("ModuleNotFoundError: ...", "a.b.HTTPError:
# ...", a bare "MemoryError"), pip's "ERROR: ..." / "error: ...", or FATAL / CRITICAL.
_ERROR_LINE: Final = re.compile(
    r"^\s*(?:(?:[A-Za-z_]\w*\.)*\w*(?:Error|Exception|Exit|Interrupt)(?::|\s*$)"
    r"|ERROR\b|error:|FATAL\b|CRITICAL\b)"
)
_ERROR_LEVELS: Final = frozenset({"error", "critical", "fatal", "exception"})


def classify(exit: ReplicaExit) -> Failure | None:
    """What an exit means: None for a stop the driver asked for or a clean exit (code 0)."""
    if exit.expected or exit.exit_code == 0:
        return None
    kind, why = _cause(exit)
    message = f"Replica {exit.replica_id} {_how(exit)}: {why}."
    line = last_error_line(exit.log_tail)
    if line is not None:
        message += f" Last error: {line}"
    killed = exit.exit_code is not None and (exit.exit_code < 0 or exit.exit_code > 128)
    counts = not (exit.was_ready and killed)
    return Failure(kind, TITLES[kind], message, counts)


def _cause(exit: ReplicaExit) -> tuple[NotificationType, str]:
    out_of_memory = _mentions_memory(exit.log_tail)
    if exit.reason == "OOMKilled" or (out_of_memory and exit.exit_code in _SIGKILL_CODES):
        return NotificationType.OOM_KILLED, _OOM_WHY
    known = _AGENT_EXITS.get(exit.exit_code) if exit.exit_code is not None else None
    if known is None:
        return NotificationType.INTERNAL_ERROR, "it ended unexpectedly"
    if known[0] is NotificationType.INTERNAL_ERROR and out_of_memory:
        return NotificationType.OOM_KILLED, _OOM_WHY
    return known


def _how(exit: ReplicaExit) -> str:
    code = exit.exit_code
    notes = [exit.reason] if exit.reason else []
    if code is None:
        how = "exited with an unknown exit code"
    elif code < 0:
        how = f"was killed by signal {-code}"
        notes.insert(0, _signal_name(-code))
    else:
        how = f"exited with code {code}"
        if 128 < code <= 128 + 64:  # a container's status when a signal (code - 128) killed it
            notes.insert(0, f"signal {code - 128}, {_signal_name(code - 128)}")
    return f"{how} ({'; '.join(notes)})" if notes else how


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"


def _mentions_memory(lines: Sequence[str]) -> bool:
    return any("MemoryError" in ln or "cannot allocate memory" in ln.lower() for ln in lines)


def last_error_line(lines: Sequence[str]) -> str | None:
    """The last line that names an error, shortened; a JSON log line at level error counts
    (rendered as "type: message", or its event and error)."""
    for raw in reversed(lines):
        line = _json_error(raw) or (raw.strip() if _ERROR_LINE.match(raw) else None)
        if line:
            return line if len(line) <= _MAX_LINE else line[: _MAX_LINE - 1] + "…"
    return None


def _json_error(line: str) -> str | None:
    if not line.lstrip().startswith("{"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or str(record.get("level", "")).lower() not in _ERROR_LEVELS:
        return None
    if record.get("type") and record.get("message"):
        return f"{record['type']}: {record['message']}"
    detail = record.get("error") or record.get("message")
    event = str(record.get("event", "error"))
    return f"{event}: {detail}" if detail else event


# --- waiting replicas ----------------------------------------------------------------------

IMAGE_PULL_REASONS: Final = frozenset(
    {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull"}
)
UNSCHEDULABLE_REASON: Final = "Unschedulable"


def waiting_failure(view: ReplicaView) -> Failure | None:
    """A PENDING replica that cannot start: its image cannot be pulled, or no node fits it."""
    if view.status is not ReplicaStatus.PENDING:
        return None
    if view.waiting in IMAGE_PULL_REASONS:
        return Failure.of(
            NotificationType.IMAGE_PULL_ERROR,
            f"Replica {view.replica_id} cannot pull its image ({view.waiting}): check the "
            "image name and the registry's credentials.",
        )
    if view.waiting == UNSCHEDULABLE_REASON:
        return Failure.of(
            NotificationType.UNSCHEDULABLE,
            f"Replica {view.replica_id} cannot be scheduled: no node has the resources, node "
            "selector or tolerations it asks for.",
        )
    return None


# --- crash loop ----------------------------------------------------------------------------

# States observed again on every tick, not events: they are notified (grouped) but never
# counted towards a crash loop. The imagePullBackoff and pendingNotScheduled thresholds bound
# them instead (a stuck replica that is stopped counts, as STUCK_REPLICA).
_NOT_COUNTED: Final = frozenset(
    {
        NotificationType.IMAGE_PULL_ERROR,
        NotificationType.UNSCHEDULABLE,
        NotificationType.FORCED_DEACTIVATION,
    }
)


@dataclass(frozen=True)
class CrashLoopPolicy:
    """A service is in a crash loop after `restarts` failures within `window` seconds."""

    restarts: int = 5
    window: float = 600.0

    def __post_init__(self) -> None:
        if self.restarts < 1:
            raise ValueError(f"restarts must be >= 1, got {self.restarts}")
        if not self.window > 0:
            raise ValueError(f"window must be > 0 seconds, got {self.window}")


def _inside(at: float, now: float, window: float) -> bool:
    """`at` is within the last `window` seconds; a failure exactly `window` ago still is."""
    return now - at <= window


def crash_loop(failures_at: Sequence[float], now: float, policy: CrashLoopPolicy) -> bool:
    return sum(_inside(at, now, policy.window) for at in failures_at) >= policy.restarts


@dataclass(frozen=True)
class HealthState:
    """One service's recent counted failures and when each type was last notified; only
    entries inside the window are kept."""

    failures: tuple[tuple[float, NotificationType], ...] = ()
    notified: tuple[tuple[NotificationType, float], ...] = ()


@dataclass(frozen=True)
class Decision:
    notify: tuple[Failure, ...] = ()
    deactivate: bool = False


def after_failures(
    state: HealthState, failures: list[tuple[float, Failure]], now: float, policy: CrashLoopPolicy
) -> tuple[HealthState, Decision]:
    """Group new failures by type (one notification per type per window) and deactivate the
    service after a sustained crash loop; the state then starts clean."""
    window = policy.window
    notified = {t: at for t, at in state.notified if _inside(at, now, window)}
    latest: dict[NotificationType, Failure] = {}
    for _, failure in failures:
        latest.pop(failure.type, None)  # keep the most recent, in order of last occurrence
        latest[failure.type] = failure
    notify = tuple(f for t, f in latest.items() if t not in notified)
    notified.update((f.type, now) for f in notify)
    counted = tuple(
        (at, t)
        for at, t in (*state.failures, *((at, f.type) for at, f in failures if f.counts))
        if t not in _NOT_COUNTED and _inside(at, now, window)
    )
    if not crash_loop([at for at, _ in counted], now, policy):
        return HealthState(counted, tuple(notified.items())), Decision(notify)
    return HealthState(), Decision((*notify, _deactivation(counted, policy)), deactivate=True)


def _deactivation(
    counted: Sequence[tuple[float, NotificationType]], policy: CrashLoopPolicy
) -> Failure:
    counts = Counter(t for _, t in counted)
    # The most frequent type; on a tie, the one that failed most recently.
    order = {t: i for i, (_, t) in enumerate(sorted(counted, key=lambda p: p[0]))}
    cause = max(counts, key=lambda t: (counts[t], order[t]))
    return Failure.of(
        NotificationType.FORCED_DEACTIVATION,
        f"The service was deactivated: its replicas failed {len(counted)} times in the last "
        f"{_seconds(policy.window)} s, most often with {TITLES[cause]} ({counts[cause]} times). "
        "Fix the cause, then activate the service again.",
    )


# --- stuck replicas (MLRun "preventing stuck pods") -----------------------------------------


def stuck(view: ReplicaView, thresholds: Mapping[str, float | None], now: float) -> str | None:
    """A status text when a replica has stayed in its state longer than its threshold.

    PENDING: Unschedulable -> pendingNotScheduled, an image pull reason -> imagePullBackoff,
    otherwise pendingScheduled. STARTING -> `running`: MLRun applies it to a job pod that runs;
    a service replica runs for ever once READY, so Spool applies it to a replica that runs but
    never becomes ready (requirements, `__init__`). READY and DRAINING are never stuck here
    (drainTime bounds draining). A None or missing threshold means no limit; a replica exactly
    at its threshold is not yet over it.
    """
    key, state = _threshold_key(view)
    if key is None:
        return None
    limit = thresholds.get(key)
    elapsed = now - view.since
    if limit is None or elapsed <= limit:
        return None
    return (
        f"replica {view.replica_id} {state} for {math.ceil(elapsed)} s, "
        f"over the {key} threshold of {_seconds(limit)} s"
    )


def _threshold_key(view: ReplicaView) -> tuple[str | None, str]:
    if view.status is ReplicaStatus.STARTING:
        return "running", "running but not ready"
    if view.status is not ReplicaStatus.PENDING:
        return None, ""
    if view.waiting == UNSCHEDULABLE_REASON:
        return "pendingNotScheduled", "pending (Unschedulable)"
    if view.waiting in IMAGE_PULL_REASONS:
        return "imagePullBackoff", f"pending ({view.waiting})"
    return "pendingScheduled", "pending"


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"
