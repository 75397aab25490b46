"""Where the runner's output goes: one thread writes every frame, and what user code prints or
logs is routed by the thread that wrote it.

The outbox is the only writer of the protocol fd. Everyone else hands it work with one
`SimpleQueue.put`, a single C call: an exception raised asynchronously in a call's thread (see
`runner_calls`) can land before or after it, never inside, so it can neither leave half a frame
on the pipe nor a lock held. The outbox thread batches each call's lines (`runner_logs`) and,
when the call finishes, writes its last lines, `DONE_LINE` (in the runner, not in a process
mode child, whose runner adds it) and then its result.

`install` puts a stand-in on `sys.stdout` and `sys.stderr` and a handler on the root logger.
A thread bound to a call (`bind`) has its writes and records sent as that call's log; any other
thread (the main thread while `__init__` runs, threads user code starts) writes to the real
stream, which is the replica's log. Writes to the file descriptors themselves (a subprocess,
`os.write(1, ...)`, `sys.stdout.buffer`) bypass this and reach the replica's log too.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO, cast

from spool_agent import protocol
from spool_agent.protocol import DONE_LINE, LogLine, LogStream
from spool_agent.runner_logs import MAX_LINES, LogBatcher

_CALL_FORMAT = "%(levelname)s %(name)s: %(message)s"
_REPLICA_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_route = threading.local()


def bind(call_id: str | None) -> None:
    """Route what this thread prints and logs to `call_id`'s log (None: the real streams)."""
    _route.call_id = call_id


def current_call() -> str | None:
    call_id: str | None = getattr(_route, "call_id", None)
    return call_id


@dataclass(frozen=True)
class _Fragment:
    call_id: str
    stream: LogStream
    text: str
    at: float


@dataclass(frozen=True)
class _Frame:
    data: bytes


@dataclass(frozen=True)
class _Finish:
    call_id: str
    result: bytes


class _Stop:
    pass


_Item = _Fragment | _Frame | _Finish | _Stop


class Outbox:
    """Writes frames to `fd` on a thread of its own; `on_broken` runs if the reader is gone."""

    def __init__(self, fd: int, *, done_line: bool, on_broken: Callable[[], None]) -> None:
        self._fd = fd
        self._done_line = done_line
        self._on_broken = on_broken
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="spool-outbox", daemon=True)

    def start(self) -> Outbox:
        self._thread.start()
        return self

    def frame(self, frame: dict[str, Any]) -> None:
        self._queue.put(_Frame(protocol.encode_frame(frame)))

    def send_bytes(self, data: bytes) -> None:
        self._queue.put(_Frame(data))

    def write(self, call_id: str, stream: LogStream, text: str) -> None:
        self._queue.put(_Fragment(call_id, stream, text, time.time()))

    def finish(self, call_id: str, result: bytes) -> None:
        """The call's remaining lines, then `result` (an encoded result frame)."""
        self._queue.put(_Finish(call_id, result))

    def close(self) -> None:
        """Write everything queued so far, then stop the thread."""
        self._queue.put(_Stop())
        self._thread.join()

    def _run(self) -> None:
        batcher = LogBatcher()
        while True:
            item = self._next(batcher.next_due())
            if isinstance(item, _Stop):
                return
            try:
                self._handle(item, batcher)
            except Exception:  # a bug here must not silence the runner for good
                traceback.print_exc(file=sys.__stderr__)

    def _handle(self, item: _Item | None, batcher: LogBatcher) -> None:
        if isinstance(item, _Fragment):
            for call_id, lines in batcher.write(item.call_id, item.stream, item.text, item.at):
                self._write_lines(call_id, lines)
        elif isinstance(item, _Frame):
            self._write(item.data)
        elif isinstance(item, _Finish):
            self._finish(item, batcher.close(item.call_id))
        for call_id, lines in batcher.due(time.time()):
            self._write_lines(call_id, lines)

    def _next(self, due: float | None) -> _Item | None:
        try:
            if due is None:
                return self._queue.get()
            return self._queue.get(timeout=max(0.0, due - time.time()))
        except queue.Empty:
            return None

    def _finish(self, item: _Finish, lines: list[LogLine]) -> None:
        if self._done_line:
            lines.append(LogLine(LogStream.LOG, DONE_LINE, datetime.now(UTC)))
        try:
            for start in range(0, len(lines), MAX_LINES):
                self._write_lines(item.call_id, lines[start : start + MAX_LINES])
        finally:
            self._write(item.result)  # whatever happened to its lines, the call ends

    def _write_lines(self, call_id: str, lines: list[LogLine]) -> None:
        try:
            data = protocol.encode_frame(protocol.log_frame(call_id, lines))
        except TypeError:  # a lone surrogate ("\udc80") is not UTF-8: escape what is not
            lines = [line._replace(line=_utf8(line.line)) for line in lines]
            data = protocol.encode_frame(protocol.log_frame(call_id, lines))
        self._write(data)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            self._on_broken()


def _utf8(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class _Routing:
    outbox: Outbox | None = None


ROUTING = _Routing()  # the outbox call output goes to; a process mode child sets its own


class RoutedStream:
    """Stands in for sys.stdout or sys.stderr (see the module's docstring)."""

    def __init__(self, real: TextIO, stream: LogStream) -> None:
        self.real = real
        self._stream = stream

    def write(self, text: str) -> int:
        call_id, outbox = current_call(), ROUTING.outbox
        if call_id is None or outbox is None:
            return self.real.write(text)
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        outbox.write(call_id, self._stream, text)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if current_call() is None:
            self.real.flush()

    def isatty(self) -> bool:
        return current_call() is None and self.real.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class RoutedLogHandler(logging.Handler):
    """The root logger's handler: a call's records go to its log, others to `fallback`.

    It has no lock (`emit` only puts on the outbox's queue or writes to a stream that locks
    itself), so an asynchronous exception cannot leave one held."""

    def __init__(self, fallback: TextIO) -> None:
        super().__init__()
        self._fallback = fallback
        self._call_formatter = logging.Formatter(_CALL_FORMAT)
        self.setFormatter(logging.Formatter(_REPLICA_FORMAT))

    def createLock(self) -> None:
        self.lock = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            call_id, outbox = current_call(), ROUTING.outbox
            if call_id is not None and outbox is not None:
                outbox.write(call_id, LogStream.LOG, self._call_formatter.format(record) + "\n")
            else:
                self._fallback.write(self.format(record) + "\n")
                self._fallback.flush()
        except Exception:
            self.handleError(record)


def install(outbox: Outbox) -> None:
    """Route call output to `outbox` from now on (see the module's docstring)."""
    ROUTING.outbox = outbox
    real_stderr = sys.stderr
    sys.stdout = cast(TextIO, RoutedStream(sys.stdout, LogStream.STDOUT))
    sys.stderr = cast(TextIO, RoutedStream(real_stderr, LogStream.STDERR))
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(RoutedLogHandler(real_stderr))
    root.setLevel(logging.INFO)
