"""One call as the runner's threads share it: terminated or not, where it runs, and how a
terminate reaches it.

Process mode: terminate SIGKILLs the call's process group (`runner_process`).

Thread mode: terminate sets the call's `terminated` event, which user code sees as
`context.terminated`, `context.raise_if_terminated()` and `progress.update` raising, and raises
`ExecutionTerminated` (an InterruptedError, "Execution received termination signal", as
dtlpy's `kill_event`) in the call's thread with `PyThreadState_SetAsyncExc`.

CPython delivers such an exception at the thread's next check between bytecodes, so a thread
blocked in one C call (`time.sleep(60)`, a socket read, a long numpy operation) sees it only
when that call returns; and a thread may catch it and carry on. The agent therefore gives a
terminated thread a grace period, then restarts the runner: a thread cannot be killed safely.

An exception that lands between a library's `lock.acquire()` and its `try` leaves the lock
held for ever (logging's module lock is the classic case, and every call that logs then
hangs). So it is injected only while the thread runs neither the standard library nor the
runner: a helper thread looks at the call's innermost frame every few milliseconds, right
after taking the GIL, and injects when that frame is user code (the exception then lands in
it, or at the entry of a function it calls, before that function has done anything). A call
that stays in library code is not interrupted; the agent's grace period covers it. The
exception is injected at most once and cleared, under the call's lock, when the call ends, so
it never reaches the thread pool; if it lands in the runner's bookkeeping all the same (a
thread switch between the look and the injection), the call still ends `Terminated`.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from types import FrameType

TERMINATION_MESSAGE = "Execution received termination signal"
_POLL = 0.005  # how often a terminated thread is looked at until it runs user code
_NOT_USER_CODE = frozenset(sys.stdlib_module_names) | {"spool_agent"}
_set_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)
_clear_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)


class ExecutionTerminated(InterruptedError):
    """Raised in a terminated call's thread; `except InterruptedError` catches it, as in dtlpy."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(args or (TERMINATION_MESSAGE,)))


_CURRENT: ContextVar[CallState | None] = ContextVar("spool_current_call", default=None)


def current_call() -> CallState | None:
    """The call whose user code runs on this thread (None outside a call): what dtlpy's
    `kill_event()` (spool.BaseServiceRunner) checks."""
    return _CURRENT.get()


@contextmanager
def running(state: CallState) -> Iterator[None]:
    """Mark `state` as the call running on this thread while user code runs."""
    token = _CURRENT.set(state)
    try:
        yield
    finally:
        _CURRENT.reset(token)


class CallState:
    def __init__(self, call_id: str, *, in_thread: bool) -> None:
        self.call_id = call_id
        self.terminated = threading.Event()
        self._in_thread = in_thread
        self._lock = threading.Lock()
        self._thread: ctypes.c_ulong | None = None
        self._pid: int | None = None
        self._over = False

    def enter_thread(self) -> None:
        """Called by the call's thread before user code runs."""
        with self._lock:
            self._thread = ctypes.c_ulong(threading.get_ident())

    def leave_thread(self) -> None:
        """Called by the call's thread once it has its result: no exception comes after."""
        with self._lock:
            self._over = True
            if self._thread is not None:
                _clear_async_exc(self._thread, None)

    def enter_process(self, pid: int) -> None:
        """The call runs in process group `pid` (process mode); kill it if already terminated."""
        with self._lock:
            self._pid = pid
            if self.terminated.is_set():
                kill_group(pid)

    def reap(self, pid: int) -> int:
        """Wait for the child (which has exited) under the lock, so none signals a reused pid."""
        with self._lock:
            _, status = os.waitpid(pid, 0)
            self._pid, self._over = None, True
        return status

    def terminate(self) -> None:
        with self._lock:
            first = not self.terminated.is_set()
            self.terminated.set()
            if self._over:
                return
            if self._pid is not None:
                kill_group(self._pid)
        if first and self._in_thread:
            interrupt = threading.Thread(target=self._interrupt, name="spool-terminate")
            interrupt.daemon = True
            interrupt.start()

    def kill_process(self) -> None:
        """SIGKILL the call's process group, if it has one (the runner is going away)."""
        with self._lock:
            if self._pid is not None and not self._over:
                kill_group(self._pid)

    def _interrupt(self) -> None:
        """Raise ExecutionTerminated in the call's thread once it runs user code (see above)."""
        while True:
            time.sleep(_POLL)  # and so take the GIL afresh: no switch before the injection
            with self._lock:
                if self._over:
                    return
                thread = self._thread
                if thread is not None and in_user_code(sys._current_frames().get(thread.value)):
                    _set_async_exc(thread, ExecutionTerminated)
                    return


def in_user_code(frame: FrameType | None) -> bool:
    """Whether a thread's innermost frame belongs to neither the standard library nor us."""
    if frame is None:
        return False
    module = str(frame.f_globals.get("__name__", ""))
    return module.partition(".")[0] not in _NOT_USER_CODE


def kill_group(pid: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
