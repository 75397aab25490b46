"""Starting and stopping the runner child's process: the agent side's only os-level code."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import resource
import signal
import sys
from pathlib import Path

from spool_agent.sandbox import Host, RunnerSandbox

_PR_SET_DUMPABLE = 4


async def spawn(
    args: list[str],
    *,
    env: dict[str, str],
    log_file: Path | None,
    sandbox: RunnerSandbox | None = None,
) -> tuple[asyncio.subprocess.Process, int, int]:
    """Start the child with its two pipe ends; returns it and the parent's two ends. With a
    sandbox, `spool_agent.sandbox_exec` confines the child first, then execs the runner."""
    log_fd = _open_log(log_file)
    child_in_r, parent_in_w = os.pipe()
    parent_out_r, child_out_w = os.pipe()
    command = [
        *(sys.executable, "-P", "-m", "spool_agent.runner"),  # -P: no cwd on sys.path
        *("--in-fd", str(child_in_r), "--out-fd", str(child_out_w), *args),
    ]
    if sandbox is not None:
        wrapper = [sys.executable, "-I", "-m", "spool_agent.sandbox_exec"]
        command = [*wrapper, *sandbox.wrapper_args(child_out_w), "--", *command]
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            pass_fds=(child_in_r, child_out_w),
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            start_new_session=True,
        )
    except BaseException:
        os.close(parent_in_w)
        os.close(parent_out_r)
        raise
    finally:
        for fd in (child_in_r, child_out_w, log_fd):
            if fd is not None:
                os.close(fd)
    return process, parent_in_w, parent_out_r


def kill_group(process: asyncio.subprocess.Process) -> None:
    """SIGKILL the child's process group (it leads its own session), unless already reaped."""
    if process.returncode is None:
        kill_pgid(process.pid)


def kill_pgid(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _open_log(log_file: Path | None) -> int | None:
    if log_file is None:
        return None
    log_file.parent.mkdir(parents=True, exist_ok=True)
    return os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


async def connect_pipes(
    in_w: int, out_r: int, reader: asyncio.Protocol
) -> tuple[asyncio.WriteTransport, asyncio.ReadTransport]:
    loop = asyncio.get_running_loop()
    in_pipe, out_pipe = os.fdopen(in_w, "wb", buffering=0), os.fdopen(out_r, "rb", buffering=0)
    writer: asyncio.WriteTransport | None = None
    try:
        writer, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, in_pipe)
        read, _ = await loop.connect_read_pipe(lambda: reader, out_pipe)
    except BaseException:
        if writer is None:
            in_pipe.close()
        else:
            writer.abort()
        out_pipe.close()
        raise
    return writer, read


def make_undumpable() -> None:
    """PR_SET_DUMPABLE 0 for the agent: /proc/<agent>/environ and friends become root's, and
    nothing without CAP_SYS_PTRACE may ptrace it, even under the agent's own uid."""
    if sys.platform != "linux":
        return
    zero = ctypes.c_ulong(0)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(ctypes.c_int(_PR_SET_DUMPABLE), zero, zero, zero, zero) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def host() -> Host:
    """What this agent may grant its runner: its uid, its hard limits, the machine's cores."""
    which = {
        "memory_bytes": resource.RLIMIT_AS,
        "open_files": resource.RLIMIT_NOFILE,
        "file_size_bytes": resource.RLIMIT_FSIZE,
        "call_cpu_seconds": resource.RLIMIT_CPU,
    }
    hard = {name: resource.getrlimit(limit)[1] for name, limit in which.items()}
    return Host(os.getuid(), hard, os.cpu_count() or 1)
