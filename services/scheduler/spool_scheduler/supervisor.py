"""The process driver's replica supervisor: each agent replica is an OS process leading its
own process group.

Each replica owns `state_dir/replicas/<replica_id>/`: its working directory, `agent.log`
(stdout and stderr, appended) and `pid` ("<pid> <starttime>", starttime being field 22 of
/proc/<pid>/stat). The pid file lives while the replica runs; `reap_orphans` uses what is left
of them to clean up after a scheduler that died. No decisions here: the planner decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import resource
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import structlog

from spool_scheduler.driver import (
    ReplicaObservation,
    ReplicaPhase,
    ReplicaSpec,
    ReplicaStartError,
    ResourceLimits,
)

KILL_MARGIN = 2.0  # seconds past drain_time before a draining replica is SIGKILLed
_POLL_INTERVAL = 0.05
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded in the parent: never dlopen after fork
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

log = structlog.get_logger()


@dataclass
class _Replica:
    spec: ReplicaSpec
    process: asyncio.subprocess.Process
    started_at: float
    pid_file: Path
    phase: ReplicaPhase = ReplicaPhase.RUNNING
    exit_code: int | None = None
    exited_at: float | None = None
    watcher: asyncio.Task[None] = field(init=False)
    stopper: asyncio.Task[None] | None = None

    def observation(self) -> ReplicaObservation:
        return ReplicaObservation(
            replica_id=self.spec.replica_id,
            service_id=self.spec.service_id,
            revision=self.spec.revision,
            phase=self.phase,
            pid=self.process.pid,
            started_at=self.started_at,
            exit_code=self.exit_code,
            exited_at=self.exited_at,
        )


class ProcessSupervisor:
    """A ReplicaSupervisor running agents as local processes (layout: the module docstring).

    `command[0]` should be an absolute path: it is looked up on the replica's own PATH.
    """

    def __init__(self, *, command: Sequence[str], state_dir: Path) -> None:
        if not command:
            raise ValueError("command must name the agent executable")
        self._command = tuple(command)
        self._state_dir = state_dir
        self._replicas: dict[str, _Replica] = {}
        self._closed = False

    async def start(self, spec: ReplicaSpec) -> None:
        if self._closed:
            raise RuntimeError("process driver is closed")
        previous = self._replicas.get(spec.replica_id)
        if previous is not None and previous.phase is not ReplicaPhase.EXITED:
            raise ValueError(f"replica {spec.replica_id!r} is already {previous.phase}")
        workdir = _replica_dir(self._state_dir, spec.replica_id)
        process = await self._spawn(spec, workdir)
        replica = _Replica(spec, process, time.monotonic(), workdir / "pid")
        _write_pid_file(replica.pid_file, process.pid)
        replica.watcher = asyncio.create_task(self._watch(replica))
        self._replicas[spec.replica_id] = replica
        log.info("replica_started", **_keys(spec), pid=process.pid)

    async def stop(self, replica_id: str, *, force: bool = False) -> None:
        replica = self._replicas.get(replica_id)
        if replica is None:
            raise KeyError(f"unknown replica {replica_id!r}")
        if replica.phase is ReplicaPhase.EXITED:
            return
        if force:
            log.info("replica_killed", **_keys(replica.spec))
            _signal_group(replica.process.pid, signal.SIGKILL)
            if replica.stopper is not None:
                replica.stopper.cancel()
        elif replica.phase is ReplicaPhase.RUNNING:
            log.info("replica_draining", **_keys(replica.spec))
            replica.stopper = asyncio.create_task(self._drain(replica))
        replica.phase = ReplicaPhase.STOPPING

    def workdir(self, replica_id: str) -> Path:
        """The replica's own directory (its cwd: logs, `ops.port`, the extracted code)."""
        return self._state_dir / "replicas" / replica_id

    def observe(self) -> list[ReplicaObservation]:
        return [replica.observation() for replica in self._replicas.values()]

    def forget(self, replica_id: str) -> None:
        replica = self._replicas.get(replica_id)
        if replica is None:
            return
        if replica.phase is not ReplicaPhase.EXITED:
            raise ValueError(f"replica {replica_id!r} is {replica.phase}, not exited")
        del self._replicas[replica_id]

    async def close(self, *, grace: bool = True) -> None:
        self._closed = True
        for replica_id in list(self._replicas):
            await self.stop(replica_id, force=not grace)
        tasks = [r.watcher for r in self._replicas.values()]
        tasks += [r.stopper for r in self._replicas.values() if r.stopper is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _spawn(self, spec: ReplicaSpec, workdir: Path) -> asyncio.subprocess.Process:
        try:
            with _open_log(workdir) as log_file:
                return await asyncio.create_subprocess_exec(
                    *self._command,
                    cwd=workdir,
                    env=dict(spec.env),
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_child_setup(spec.limits),
                )
        except (OSError, ValueError, subprocess.SubprocessError) as e:
            raise ReplicaStartError(f"cannot start replica {spec.replica_id!r}: {e}") from e

    async def _watch(self, replica: _Replica) -> None:
        code = await replica.process.wait()
        replica.phase, replica.exit_code = ReplicaPhase.EXITED, code
        replica.exited_at = time.monotonic()
        # Whatever the agent left in its group (a runner child) must not outlive it. A group id
        # is not recycled while any member lives, and we signal right after the reap.
        _signal_group(replica.process.pid, signal.SIGKILL)
        replica.pid_file.unlink(missing_ok=True)
        log.info("replica_exited", **_keys(replica.spec), exit_code=code)

    async def _drain(self, replica: _Replica) -> None:
        # SIGTERM to the agent alone, as Kubernetes signals only PID 1: the agent drains its
        # runner child itself. The whole group is SIGKILLed if the drain overruns.
        with contextlib.suppress(ProcessLookupError):
            os.kill(replica.process.pid, signal.SIGTERM)
        timeout = replica.spec.drain_time + KILL_MARGIN
        done, _ = await asyncio.wait({replica.watcher}, timeout=timeout)
        if not done:
            log.warning("replica_drain_timed_out", **_keys(replica.spec), timeout=timeout)
            _signal_group(replica.process.pid, signal.SIGKILL)


def _child_setup(limits: ResourceLimits | None) -> Callable[[], None]:
    """Build the `preexec_fn` that applies rlimits and PR_SET_PDEATHSIG in the child.

    Running Python between fork and exec is unsafe when another thread holds a lock the child
    needs. It is acceptable here: the scheduler starts processes only from its one asyncio
    thread; the only other threads (asyncio's child watchers on the stock loop; uvloop has
    none) sit in waitpid() holding nothing; libc is loaded and the values are computed before
    the fork; and exec follows at once. PDEATHSIG fires when the *thread* that forked dies,
    i.e. the event-loop thread, which lives as long as the scheduler; the agent then gets
    SIGTERM and drains as on a graceful stop.
    """
    rlimits = _rlimits(limits)
    parent = os.getpid()
    zero = ctypes.c_ulong(0)
    prctl_args = (ctypes.c_int(_PR_SET_PDEATHSIG), ctypes.c_ulong(signal.SIGTERM), zero, zero, zero)

    def setup() -> None:
        for which, value in rlimits:
            resource.setrlimit(which, (value, value))
        if _LIBC.prctl(*prctl_args) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:  # the scheduler died before the prctl took effect
            os._exit(1)

    return setup


def _rlimits(limits: ResourceLimits | None) -> list[tuple[int, int]]:
    if limits is None:
        return []
    wanted = [
        (resource.RLIMIT_AS, limits.memory_bytes),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_NPROC, limits.processes),
    ]
    return [(which, value) for which, value in wanted if value is not None]


def _keys(spec: ReplicaSpec) -> dict[str, object]:
    return {"replica_id": spec.replica_id, "service_id": spec.service_id, "revision": spec.revision}


def _replica_dir(state_dir: Path, replica_id: str) -> Path:
    if not _SAFE_ID.fullmatch(replica_id):
        raise ValueError(f"replica_id {replica_id!r} must match {_SAFE_ID.pattern}")
    path = state_dir / "replicas" / replica_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def _open_log(workdir: Path) -> BinaryIO:
    return (workdir / "agent.log").open("ab")


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


@dataclass(frozen=True)
class _ProcStat:
    state: str
    pgrp: int
    start_time: int


def _proc_stat(pid: int) -> _ProcStat | None:
    """Fields 3, 5 and 22 of /proc/<pid>/stat, or None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces
    return _ProcStat(state=fields[0], pgrp=int(fields[2]), start_time=int(fields[19]))


def _write_pid_file(path: Path, pid: int) -> None:
    stat = _proc_stat(pid)
    if stat is None:  # already gone: nothing could be orphaned
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{pid} {stat.start_time}\n")
    tmp.replace(path)


def _read_pid_file(path: Path) -> tuple[int, int] | None:
    try:
        pid, start_time = path.read_text().split()
        return int(pid), int(start_time)
    except (OSError, ValueError):
        return None


def _is_same(record: tuple[int, int], *, running: bool) -> bool:
    """Is the recorded group leader still there (alive, not a zombie, when `running`)?"""
    pid, start_time = record
    stat = _proc_stat(pid)
    if stat is None or stat.start_time != start_time or stat.pgrp != pid:
        return False
    return not running or stat.state not in ("Z", "X")


def reap_orphans(state_dir: Path, *, grace: float = 5.0) -> list[int]:
    """Stop agents a previous scheduler left behind; return the pids that were found alive.

    Every `replicas/*/pid` whose process still exists with the recorded start time (so a
    recycled pid is never signalled) gets SIGTERM to its group, then SIGKILL after `grace`
    seconds if it is still there. All pid files are removed. Blocking (it polls /proc, since
    orphans are not our children): call it once at start, before starting any replica.
    """
    pid_files = sorted((state_dir / "replicas").glob("*/pid"))
    records = [record for record in map(_read_pid_file, pid_files) if record is not None]
    alive = [record for record in records if _is_same(record, running=True)]
    for pid, _ in alive:
        log.warning("orphan_terminating", pid=pid)
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_is_same(r, running=True) for r in alive):
        time.sleep(_POLL_INTERVAL)
    for record in alive:
        if _is_same(record, running=False):  # a zombie leader still pins the group id
            _signal_group(record[0], signal.SIGKILL)
    for path in pid_files:
        path.unlink(missing_ok=True)
    return [pid for pid, _ in alive]
