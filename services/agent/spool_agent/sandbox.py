"""Pure: how little user code gets on the process driver (reliability.md §5.3, T26).

The agent decides a `SandboxPlan` from the service, its own settings and what it may do (is it
root, what are its hard limits); `spool_agent.sandbox_exec` carries it out in the runner child
before the runner's interpreter starts. Nothing here reads the clock or the system.

- Limits (rlimits, soft = hard): address space from the service's memory limit (else its pod
  type), open files, file size, and processes. RLIMIT_NPROC counts every process of a user and
  is not enforced for uid 0, so it is set only when user code runs under a uid of its own.
  RLIMIT_CPU counts a process's whole life: the long-lived runner is not limited (in thread
  mode the execution timeout bounds a call), each call's process in process mode is.
- Identity: as root, the runner runs as a uid of its own replica (no passwd entry needed), in
  no supplementary group, with `PR_SET_NO_NEW_PRIVS`; its work dir (the codebase) is chowned
  to it. Paths it must read behind a directory others cannot enter (an interpreter under
  /root, a state dir in a private tmp) are re-exposed in a private mount namespace: a tmpfs
  over the blocking directory, with just the needed paths bound back.
- Network: kept unless `runner_network` is false: then a new, empty network namespace.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from spool_common.instances import instance
from spool_common.models import Service

RLIM_INFINITY = -1  # resource.RLIM_INFINITY on Linux
CPU_MARGIN = 10  # seconds of CPU a call's process may use past timeout x cores


@dataclass(frozen=True)
class SandboxSettings:
    """The agent settings this module reads (see `AgentSettings`)."""

    user: bool = True  # as root, run user code under a uid of its own
    uid_base: int = 1_000_000_000
    uid_count: int = 1_000_000
    max_open_files: int = 1024
    max_file_bytes: int = 2 * 1024**3
    max_processes: int = 256
    network: bool = True


@dataclass(frozen=True)
class Host:
    """What the agent may do: its uid, its hard limits (RLIM_INFINITY = none), the cores."""

    uid: int
    hard_limits: Mapping[str, int] = field(default_factory=dict)
    cpu_count: int = 1


@dataclass(frozen=True)
class SandboxLimits:
    memory_bytes: int | None = None
    open_files: int | None = None
    file_size_bytes: int | None = None
    processes: int | None = None  # only with a uid of its own
    call_cpu_seconds: int | None = None  # each call's process, in process mode


@dataclass(frozen=True)
class SandboxPlan:
    limits: SandboxLimits
    uid: int | None  # None: keep the agent's
    network: bool = True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SandboxPlan:
        return cls(SandboxLimits(**data["limits"]), data["uid"], bool(data["network"]))


def sandbox_uid(replica_id: str, base: int, count: int) -> int:
    """A stable uid for the replica in [base, base + count): replicas do not share one (but
    for a rare hash collision), so one replica's processes count nothing against another."""
    return base + zlib.crc32(replica_id.encode()) % count


def _clamp(value: int | None, hard: int | None) -> int | None:
    if value is None or hard is None or hard == RLIM_INFINITY:
        return value
    return min(value, hard)


def memory_limit(service: Service) -> int:
    """The service's memory limit, else its pod type's memory (as the scheduler limits the
    agent)."""
    resources = service.runtime.resources
    memory = resources.limits.memory_bytes() if resources is not None else None
    if memory is None:
        memory = instance(service.runtime.pod_type, field="runtime.podType").memory_bytes
    return memory


def plan_for(
    service: Service, replica_id: str, settings: SandboxSettings, host: Host
) -> SandboxPlan:
    root = host.uid == 0
    uid = sandbox_uid(replica_id, settings.uid_base, settings.uid_count)
    own_uid = root and settings.user
    processes = max(settings.max_processes, service.runtime.concurrency + 64)
    cpu = None
    if service.run_execution_as_process:
        cpu = math.ceil(service.execution_timeout * max(1, host.cpu_count)) + CPU_MARGIN
    hard = {} if root else host.hard_limits
    limits = SandboxLimits(
        memory_bytes=_clamp(memory_limit(service), hard.get("memory_bytes")),
        open_files=_clamp(settings.max_open_files, hard.get("open_files")),
        file_size_bytes=_clamp(settings.max_file_bytes, hard.get("file_size_bytes")),
        processes=processes if own_uid else None,
        call_cpu_seconds=_clamp(cpu, hard.get("call_cpu_seconds")),
    )
    return SandboxPlan(limits, uid if own_uid else None, settings.network)


def exposures(needed: Sequence[str], modes: Mapping[str, int]) -> dict[str, list[str]]:
    """Which directories to cover with a tmpfs, and which needed paths to bind back under
    each, so that a uid that owns none of them can reach every needed path.

    `needed` are absolute, resolved paths; `modes` gives the mode of each of their ancestors
    (missing: assume enterable). A directory blocks when others may not enter it (no o+x);
    only the topmost blocking ancestor of a path needs a cover. Paths inside another needed
    path are reached through it."""
    kept = sorted(set(needed))
    kept = [p for p in kept if not any(_inside(p, q) for q in kept if q != p)]
    covers: dict[str, list[str]] = {}
    for path in kept:
        for ancestor in _ancestors(path):
            if not modes.get(ancestor, 0o755) & 0o001:
                covers.setdefault(ancestor, []).append(path)
                break
    return covers


def ancestors_of(paths: Sequence[str]) -> list[str]:
    """Every proper ancestor of the paths (but /), topmost first: what to stat for
    `exposures`."""
    return sorted({a for p in paths for a in _ancestors(p)}, key=lambda a: (a.count("/"), a))


def _ancestors(path: str) -> list[str]:
    parts = path.strip("/").split("/")
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]


def _inside(path: str, other: str) -> bool:
    return path.startswith(other.rstrip("/") + "/")


@dataclass(frozen=True)
class RunnerSandbox:
    """A plan and where it applies: the runner's work dir (made its own) and the dirs it
    only reads (installed requirements)."""

    plan: SandboxPlan
    workdir: str
    reads: tuple[str, ...] = ()

    def wrapper_args(self, out_fd: int) -> list[str]:
        """`spool_agent.sandbox_exec`'s arguments before the `--` and the runner's command."""
        reads = [a for path in self.reads for a in ("--read", path)]
        plan = json.dumps(self.plan.to_json(), separators=(",", ":"))
        return ["--plan", plan, "--workdir", self.workdir, *reads, "--out-fd", str(out_fd)]
