"""Process mode (`runExecutionAsProcess`): each call runs in a child forked from the runner after
`__init__`. Fork is copy-on-write, so what `__init__` loaded (a model) is shared, not reloaded.

The pool thread that will wait for the child forks it, holding no lock of the runner's. The
child leads a process group of its own, runs the call with an outbox of its own writing to a
pipe, and leaves with `os._exit`. The waiting thread relays the child's progress and log frames
as they come, and its result once it has reaped the child; a child that dies without a result
(a segfault, `os._exit`, SIGKILL) gives `ProcessDied` with its exit status. Terminate SIGKILLs
the child's process group, so whatever the call started dies with it: `Terminated`, "killed".

Fork in a process with threads copies only the forking thread; a lock another thread held at
that instant stays held in the child for ever (the runner's outbox queue, the real stdout's
buffer, a lock inside some library). That is acceptable here because the child does one thing,
run the user's method and write frames to a pipe, and touches none of the runner's machinery: it
builds a fresh outbox and call state, its calling thread's output is routed to that outbox,
and it exits with `os._exit` (no atexit hooks, no flushing of inherited buffers). CPython
resets the GIL, the import lock and `logging`'s locks in the child. What is left is user
state: a library that runs threads of its own since `__init__` (some BLAS or CUDA set-ups)
may not survive a fork, and such services should use thread mode. The child is SIGKILLed if
the runner thread that forked it ends, i.e. if the runner dies (PR_SET_PDEATHSIG, Linux).
Lines a child printed in the last ~100 ms before it died abruptly (`os._exit`, a signal) may
be lost, as they would be from Python's own buffered stdout.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import select
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any, NoReturn

from spool_agent import protocol
from spool_agent.protocol import Call, ErrorType, FrameDecoder, Kind
from spool_agent.runner_calls import error_frame, execute, failure_frame
from spool_agent.runner_output import ROUTING, Outbox
from spool_agent.runner_state import CallState, kill_group

KILLED_MESSAGE = "Execution was killed: it received a termination signal"
EXIT_CHILD_FAILED = 70
_READ_SIZE = 256 * 1024
_PR_SET_PDEATHSIG = 1
_CPU_KILL_AFTER = 5  # seconds of CPU between SIGXCPU and SIGKILL
# Resolved now, in the parent: the child must not go through the dynamic loader's locks.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


@dataclass(frozen=True)
class ForkOptions:
    max_output_bytes: int
    close_in_child: tuple[int, ...]  # the runner's protocol fds
    exit_parent_gone: int
    runner_pid: int
    cpu_seconds: int | None = None  # RLIMIT_CPU of the call's process (counted from its fork)


def run_forked(
    instance: Any, call: Call, outbox: Outbox, state: CallState, options: ForkOptions
) -> None:
    """A pool thread's whole job for one call in process mode. Never raises."""
    started = time.monotonic()
    try:
        result, status = _fork_and_wait(instance, call, outbox, state, options)
    except Exception as e:  # no pipe, no fork, or a bug: the call could not run
        result, status = failure_frame(call.id, e, state, time.monotonic() - started), None
    if result is None:
        result = _death_frame(call.id, state, status, time.monotonic() - started)
    outbox.finish(call.id, result)


def _fork_and_wait(
    instance: Any, call: Call, outbox: Outbox, state: CallState, options: ForkOptions
) -> tuple[bytes | None, int]:
    """Fork the child, relay its frames until it has exited; its result and wait status."""
    read_fd, write_fd = os.pipe()
    try:
        pid = os.fork()
    except BaseException:
        os.close(read_fd)
        os.close(write_fd)
        raise
    if pid == 0:
        os.close(read_fd)
        _child(instance, call, write_fd, options)
    os.close(write_fd)
    with contextlib.suppress(OSError):  # the child does the same; whichever comes first
        os.setpgid(pid, pid)
    outbox.frame(protocol.started_frame(call.id, pid))
    state.enter_process(pid)
    relay = _Relay(outbox)
    try:
        relay.run(pid, read_fd)
    except BaseException:
        kill_group(pid)
        raise
    finally:
        os.close(read_fd)
        status = state.reap(pid)
    return relay.result, status


def _child(instance: Any, call: Call, write_fd: int, options: ForkOptions) -> NoReturn:
    code = 0
    try:
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != options.runner_pid:  # the runner died before prctl took effect
            os._exit(options.exit_parent_gone)
        if options.cpu_seconds is not None:  # SIGXCPU at the limit, SIGKILL a little later
            limit = options.cpu_seconds
            resource.setrlimit(resource.RLIMIT_CPU, (limit, limit + _CPU_KILL_AFTER))
        for fd in options.close_in_child:
            with contextlib.suppress(OSError):
                os.close(fd)
        outbox = Outbox(
            write_fd, done_line=False, on_broken=lambda: os._exit(options.exit_parent_gone)
        ).start()
        ROUTING.outbox = outbox
        state = CallState(call.id, in_thread=False)  # the parent's may be locked for ever
        outbox.finish(call.id, execute(instance, call, outbox, state, options.max_output_bytes))
        outbox.close()
    except BaseException:  # nothing may unwind into the runner's copy of the stack
        code = EXIT_CHILD_FAILED
    os._exit(code)


class _Relay:
    """Forwards a child's frames to the runner's outbox, keeping its result for the end."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self._decoder = FrameDecoder()
        self._broken = False
        self.result: bytes | None = None

    def run(self, pid: int, read_fd: int) -> None:
        """Relay until the child has exited, then what it wrote before it went."""
        exited = os.pidfd_open(pid)  # readable once the child has exited
        try:
            poller = select.poll()
            poller.register(read_fd, select.POLLIN)
            poller.register(exited, select.POLLIN)
            while exited not in (events := dict(poller.poll())):
                if read_fd in events and not self._feed(os.read(read_fd, _READ_SIZE)):
                    poller.unregister(read_fd)  # EOF: only the exit is left to wait for
        finally:
            os.close(exited)
        os.set_blocking(read_fd, False)
        with contextlib.suppress(BlockingIOError):
            while self._feed(os.read(read_fd, _READ_SIZE)):
                pass

    def _feed(self, data: bytes) -> bool:
        if not data:
            return False
        if self._broken:
            return True
        try:
            frames = self._decoder.feed(data)
        except protocol.FrameError:
            self._broken = True  # nothing more from this child can be trusted
            return True
        for frame in frames:
            encoded = protocol.encode_frame(frame)
            if frame["kind"] == Kind.RESULT:
                self.result = encoded
            else:
                self._outbox.send_bytes(encoded)
        return True


def _death_frame(call_id: str, state: CallState, status: int | None, duration: float) -> bytes:
    if state.terminated.is_set():
        return error_frame(call_id, ErrorType.TERMINATED, KILLED_MESSAGE, duration)
    return error_frame(call_id, ErrorType.PROCESS_DIED, death_message(status), duration)


def death_message(status: int | None) -> str:
    """Why a child ended without a result, from its wait status."""
    if status is None:
        return "The execution's process could not be waited for"
    code = os.waitstatus_to_exitcode(status)
    if code >= 0:
        return f"The execution's process exited without a result (exit status {code})"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"The execution's process died without a result: {name} (exit status {code})"
