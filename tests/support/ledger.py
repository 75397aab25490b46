"""Ground truth for the reliability tests: what user code really did, against what the API says.

The user function of `LEDGER_PACKAGE` appends one JSON line per event (`start`, `end`) to a file
named in its input, opened O_APPEND (one `write` per line, so concurrent writers never tear a
line). It does not know its execution id: the test passes a key of its own (`exec_key`) and
keeps the key -> execution id map. The checks are pure functions of the ledger, the API's
execution documents and what the test observed of processes; they return the problems found,
so a test can report every violation at once. `/proc` helpers stand in for psutil.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from spool_common.models import TERMINAL_STATUSES, ExecutionStatus

LEDGER_MAIN = b"""
import json, os, time


class ServiceRunner:
    def run(self, ledger, exec_key, seconds):
        def note(event, at):
            line = {"key": exec_key, "pid": os.getpid(), "event": event, "t": at}
            fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (json.dumps(line) + "\\n").encode())
            finally:
                os.close(fd)

        started = time.time()
        note("start", started)
        time.sleep(seconds)
        note("end", time.time())
        return {"key": exec_key, "pid": os.getpid(), "started": started}
"""

LEDGER_PACKAGE: dict[str, bytes] = {
    "main.py": LEDGER_MAIN,
    "package.json": orjson.dumps(
        {
            "name": "ledger",
            "modules": [
                {
                    "name": "default_module",
                    "functions": [
                        {
                            "name": "run",
                            "input": [
                                {"name": "ledger", "type": "String"},
                                {"name": "exec_key", "type": "String"},
                                {"name": "seconds", "type": "Float"},
                            ],
                        }
                    ],
                }
            ],
        }
    ),
}

TERMINAL = frozenset(s.value for s in TERMINAL_STATUSES)
CREATED = ExecutionStatus.CREATED.value
IN_PROGRESS = ExecutionStatus.IN_PROGRESS.value
RERUN = ExecutionStatus.RERUN.value
SUCCESS = ExecutionStatus.SUCCESS.value
FAILED = ExecutionStatus.FAILED.value

# I4: the allowed status graph. A queued execution (created, rerun) can only be claimed or
# failed by the gateway (dead-lettered, attempts exhausted); a running one can report progress
# (in-progress again, same attempt), be requeued by the reaper (rerun), or end.
NEXT: Mapping[str | None, frozenset[str]] = {
    None: frozenset({CREATED}),
    CREATED: frozenset({IN_PROGRESS, FAILED}),
    RERUN: frozenset({IN_PROGRESS, FAILED}),
    IN_PROGRESS: frozenset({IN_PROGRESS, RERUN}) | TERMINAL,
}


@dataclass(frozen=True)
class Event:
    key: str
    pid: int
    event: str  # "start" | "end"
    t: float  # time.time() in the user process


@dataclass(frozen=True)
class Interval:
    """One run of the user function; `end` is None when the process died first."""

    key: str
    pid: int
    start: float
    end: float | None


@contextlib.contextmanager
def ledger_directory() -> Iterator[Path]:
    """A directory for ledgers. User code runs under a uid of its own (the sandbox), which
    cannot enter pytest's private temp directories: a sticky world-writable directory under
    /tmp instead, like /tmp itself; removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="spool-ledgers-", dir="/tmp"))
    path.chmod(0o1777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def ledger_input(path: Path, key: str, seconds: float) -> dict[str, Any]:
    """The input of one run. The ledger is created here, writable by all: user code runs
    under a uid per replica (the sandbox), and every replica appends to the same file."""
    if not path.exists():
        path.touch()
        path.chmod(0o666)
    return {"ledger": str(path), "exec_key": key, "seconds": seconds}


def read_events(path: Path) -> list[Event]:
    if not path.exists():
        return []
    events = []
    for line in path.read_bytes().splitlines():
        raw = orjson.loads(line)
        events.append(Event(str(raw["key"]), int(raw["pid"]), str(raw["event"]), float(raw["t"])))
    return events


def intervals(events: Iterable[Event]) -> dict[str, list[Interval]]:
    """Runs per key, by start time. An end closes the oldest open start of its key and pid."""
    open_starts: dict[tuple[str, int], list[float]] = defaultdict(list)
    runs: dict[str, list[Interval]] = defaultdict(list)
    for e in sorted(events, key=lambda e: e.t):
        if e.event == "start":
            open_starts[(e.key, e.pid)].append(e.t)
        elif open_starts[(e.key, e.pid)]:
            start = open_starts[(e.key, e.pid)].pop(0)
            runs[e.key].append(Interval(e.key, e.pid, start, e.t))
    for (key, pid), starts in open_starts.items():
        runs[key] += [Interval(key, pid, s, None) for s in starts]
    return {key: sorted(found, key=lambda i: i.start) for key, found in runs.items()}


# --- invariants: each returns the problems it found -------------------------------------------


def status_log_problems(execution: Mapping[str, Any]) -> list[str]:
    """I4: the log follows NEXT, nothing follows a terminal status, attempts never decrease,
    every claim is the previous attempt + 1, and `attempts` counts the claims."""
    problems: list[str] = []
    previous: str | None = None
    attempt = 0
    for i, entry in enumerate(execution["statusLog"]):
        status, number = entry["status"], entry.get("attempt")
        if status not in NEXT.get(previous, frozenset()):
            problems.append(f"#{i}: {previous} -> {status} is not allowed")
        claim = status == IN_PROGRESS and previous != IN_PROGRESS
        expected = attempt + 1 if claim else attempt
        if number is not None and number != expected:
            problems.append(f"#{i}: {status} carries attempt {number}, expected {expected}")
        attempt = expected
        previous = status
    if execution["latestStatus"]["status"] != previous:
        problems.append(f"latestStatus {execution['latestStatus']['status']} != last {previous}")
    if execution["attempts"] != attempt:
        problems.append(f"attempts={execution['attempts']} but the log shows {attempt} claims")
    return problems


def attempt_problems(execution: Mapping[str, Any], runs: list[Interval]) -> list[str]:
    """I2: starts <= attempts <= maxAttempts. The at-least-once window is one-sided: the claim
    is recorded before the function starts, so an agent killed between the two leaves an
    attempt without a start (counted apart as `attempts_never_started`), never the reverse."""
    attempts, limit = execution["attempts"], execution["maxAttempts"]
    problems = []
    if len(runs) > limit:
        problems.append(f"{len(runs)} starts in the ledger > maxAttempts {limit}")
    if attempts > limit:
        problems.append(f"attempts {attempts} > maxAttempts {limit}")
    if attempts < len(runs):
        problems.append(f"attempts {attempts} < {len(runs)} starts in the ledger")
    return problems


def overlap_problems(runs: list[Interval], died: Mapping[int, float]) -> list[str]:
    """I3: runs of one execution never overlap. A run without an end lasted at most until its
    process was seen dead (`died`); if it was never seen dead it may still be running."""
    problems = []
    for before, after in itertools.pairwise(runs):
        end = before.end if before.end is not None else died.get(before.pid, math.inf)
        if after.start < end:
            problems.append(
                f"run in pid {after.pid} started at {after.start:.3f} while the run in pid "
                f"{before.pid} from {before.start:.3f} had not ended ({end:.3f})"
            )
    return problems


def agreement_problems(execution: Mapping[str, Any], runs: list[Interval]) -> list[str]:
    """I5: a success is the last run in the ledger, which ended, in the process and with the
    start time the function returned."""
    if execution["latestStatus"]["status"] != SUCCESS:
        return []
    output = execution.get("output") or {}
    if not runs:
        return ["success without any start in the ledger"]
    last = runs[-1]
    if last.end is None:
        return [f"success, but the last run (pid {last.pid}) has no end event"]
    if output.get("pid") != last.pid or not math.isclose(
        float(output.get("started", -1)), last.start, abs_tol=1e-6
    ):
        return [f"success output {output} is not the last run in the ledger {last}"]
    return []


def execution_problems(
    execution: Mapping[str, Any], runs: list[Interval], died: Mapping[int, float]
) -> list[str]:
    """I1-I5 for one execution (I1: it is terminal)."""
    problems = []
    if execution["latestStatus"]["status"] not in TERMINAL:
        problems.append(f"not terminal: {execution['latestStatus']['status']}")
    problems += status_log_problems(execution)
    problems += attempt_problems(execution, runs)
    problems += overlap_problems(runs, died)
    problems += agreement_problems(execution, runs)
    return [f"{execution['id']}: {p}" for p in problems]


def statuses(execution: Mapping[str, Any]) -> list[str]:
    return [str(e["status"]) for e in execution["statusLog"]]


def claimed_by(execution: Mapping[str, Any]) -> list[str]:
    """The replica of every claim, in order."""
    log = execution["statusLog"]
    return [
        str(e.get("replicaId"))
        for prev, e in zip([None, *log], log, strict=False)
        if e["status"] == IN_PROGRESS and (prev is None or prev["status"] != IN_PROGRESS)
    ]


# --- processes, from /proc (psutil is not installed) ------------------------------------------


@dataclass(frozen=True)
class ProcStat:
    state: str
    ppid: int
    pgrp: int


def proc_stat(pid: int) -> ProcStat | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces
    return ProcStat(state=fields[0], ppid=int(fields[1]), pgrp=int(fields[2]))


def is_alive(pid: int) -> bool:
    """Exists and is not a zombie (nobody may reap re-parented processes in a container)."""
    stat = proc_stat(pid)
    return stat is not None and stat.state not in ("Z", "X")


def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def children(pid: int) -> list[int]:
    return [p for p in all_pids() if (s := proc_stat(p)) is not None and s.ppid == pid]


def processes_under(directory: Path) -> list[int]:
    """Live processes whose working directory is `directory` or below it."""
    found = []
    root = str(directory.resolve())
    for pid in all_pids():
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if (cwd == root or cwd.startswith(root + os.sep)) and is_alive(pid):
            found.append(pid)
    return found


def live_agents(state_dir: Path, service_name: str) -> dict[str, int]:
    """Replica id -> agent pid, for the service's replicas whose agent is alive."""
    agents = {}
    for pid_file in (state_dir / "replicas").glob(f"{service_name}-*/pid"):
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if is_alive(pid):
            agents[pid_file.parent.name] = pid
    return agents
