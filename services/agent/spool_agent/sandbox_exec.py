"""The runner's sandbox, applied in its own process before the runner's interpreter starts.

Run as `python -I -m spool_agent.sandbox_exec --plan JSON --workdir DIR [--read DIR]...
--out-fd N -- python -P -m spool_agent.runner ...`: with -I, no PYTHON* variable (the user's
PYTHONPATH) reaches this interpreter, so no user code runs before the uid changes. It carries
out a `SandboxPlan` (see `spool_agent.sandbox`), then execs the command; the pass_fds survive.
If it cannot, it writes an init-failed frame on the runner's out-fd (the agent reports a
`SandboxError`) and exits.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import resource
import signal
import sys
from pathlib import Path
from typing import NoReturn

import orjson

from spool_agent import protocol
from spool_agent.sandbox import SandboxLimits, SandboxPlan, ancestors_of, exposures

EXIT_SANDBOX_FAILED = 6
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 4096, 16384, 1 << 18
PR_SET_NO_NEW_PRIVS = 38
_LIBC = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _unshare(flags: int) -> None:
    _check(_LIBC.unshare(ctypes.c_int(flags)), "unshare")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str) -> None:
    def arg(text: str | None) -> bytes | None:
        return None if text is None else text.encode()

    result = _LIBC.mount(
        arg(source), arg(target), arg(fstype), ctypes.c_ulong(flags), arg(data or None)
    )
    _check(result, f"mount {target}")


def set_limits(limits: SandboxLimits) -> None:
    """soft = hard, so user code cannot raise them back."""
    wanted = (
        (resource.RLIMIT_AS, limits.memory_bytes),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_FSIZE, limits.file_size_bytes),
        (resource.RLIMIT_NPROC, limits.processes),
    )
    for which, value in wanted:
        if value is not None:
            resource.setrlimit(which, (value, value))


def no_new_privs() -> None:
    zero = ctypes.c_ulong(0)
    _check(
        _LIBC.prctl(ctypes.c_int(PR_SET_NO_NEW_PRIVS), ctypes.c_ulong(1), zero, zero, zero),
        "prctl(PR_SET_NO_NEW_PRIVS)",
    )


def _needed(work: Path, reads: list[Path]) -> list[str]:
    """What the runner must reach: this interpreter and everything it imports from, the work
    dir and the extra read-only dirs (installed requirements)."""
    candidates = [sys.base_prefix, sys.prefix, os.path.dirname(os.path.realpath(sys.executable))]
    candidates += [p for p in sys.path if p and os.path.isdir(p)]
    candidates += [str(work), *map(str, reads)]
    return sorted({os.path.realpath(p) for p in candidates})


def _modes(paths: list[str]) -> dict[str, int]:
    modes = {}
    for path in paths:
        with contextlib.suppress(OSError):
            modes[path] = os.stat(path).st_mode
    return modes


def _expose(covers: dict[str, list[str]]) -> None:
    """In the new mount namespace: a tmpfs over each blocking directory, the needed paths
    under it bound back (through fds opened before they were covered)."""
    fds = {p: os.open(p, os.O_PATH | os.O_CLOEXEC) for paths in covers.values() for p in paths}
    _mount(None, "/", None, MS_REC | MS_PRIVATE, "")  # nothing below leaks to the host
    for cover, paths in sorted(covers.items()):
        _mount("tmpfs", cover, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
        for path in paths:
            os.makedirs(path, exist_ok=True)
            _mount(f"/proc/self/fd/{fds[path]}", path, None, MS_BIND | MS_REC, "")
    for fd in fds.values():
        os.close(fd)


def _own(work: Path, reads: list[Path], uid: int) -> None:
    """The work dir becomes the uid's, and only its; the read dirs only enterable by it."""
    for top, dirs, files in os.walk(work):
        for name in [*dirs, *files]:
            os.chown(os.path.join(top, name), uid, uid, follow_symlinks=False)
    for path in (work, *reads):
        os.chown(path, uid, uid)
        os.chmod(path, 0o700)


def _drop(uid: int, work: Path) -> None:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    os.environ["HOME"] = str(work)
    os.environ["TMPDIR"] = str(work)


def apply(plan: SandboxPlan, work: Path, reads: list[Path]) -> None:
    """Everything but the exec; in this order because mounts and namespaces need root, and
    the uid goes last."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, not death; kept across exec
    flags = 0 if plan.network else CLONE_NEWNET
    covers: dict[str, list[str]] = {}
    if plan.uid is not None:
        _own(work, reads, plan.uid)
        needed = _needed(work, reads)
        covers = exposures(needed, _modes(ancestors_of(needed)))
        flags |= CLONE_NEWNS if covers else 0
    elif not plan.network and os.getuid() != 0:
        flags |= CLONE_NEWUSER  # what lets a user without privilege have a network namespace
    if flags:
        _unshare(flags)
    if covers:  # only ever in the new mount namespace
        _expose(covers)
    set_limits(plan.limits)
    os.chdir(work)
    if plan.uid is not None:
        _drop(plan.uid, work)
    no_new_privs()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="spool_agent.sandbox_exec")
    parser.add_argument("--plan", required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--read", type=Path, action="append", default=[])
    parser.add_argument("--out-fd", type=int, required=True)
    parser.add_argument("command", nargs="+")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> NoReturn:
    args = parse_args(argv)
    try:
        plan = SandboxPlan.from_json(orjson.loads(args.plan))
        apply(plan, args.workdir, args.read)
        os.execv(args.command[0], args.command)  # noqa: S606 (the runner, from the agent)
    except Exception as e:  # any failure: the runner never starts, the agent is told why
        message = f"the runner's sandbox could not be set up: {e}"
        frame = protocol.init_failed_frame(protocol.error_info("SandboxError", message))
        with contextlib.suppress(OSError):
            os.write(args.out_fd, protocol.encode_frame(frame))
        print(f"spool sandbox: {message}", file=sys.stderr)
        os._exit(EXIT_SANDBOX_FAILED)


if __name__ == "__main__":
    main()
