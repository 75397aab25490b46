"""The private pipe protocol between the agent and its runner child. Pure: bytes in, values out.

A frame is a 4-byte big-endian length followed by that many bytes of orjson. Every frame body
is a JSON object with a `kind`. The parent sends `call`, `terminate` and `shutdown`; the child
sends `ready`, `init_failed`, `progress`, `log`, `started` and `result`.

A call's `log` frames each carry a batch of its lines, `{stream, line, at}` (`at`: seconds since
the epoch), all before its `result`; the last line is `DONE_LINE`. `started` (process mode)
gives the pid of the call's process, which leads its own process group.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple, TypedDict

import orjson

MAX_FRAME_SIZE = 64 * 1024 * 1024
_HEADER = struct.Struct(">I")
_DUMP_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
DEFAULT_MAX_OUTPUT_BYTES = 4 * 1024 * 1024
DONE_LINE = "[Done] Executing function."  # dtlpy stops tailing an execution's log at this line


class FrameError(ValueError):
    """The byte stream is not a valid frame sequence. Fatal for the pipe."""


class FrameTooLarge(FrameError):
    """A frame body is longer than the cap."""


class Kind(StrEnum):
    CALL = "call"
    TERMINATE = "terminate"
    SHUTDOWN = "shutdown"
    READY = "ready"
    INIT_FAILED = "init_failed"
    PROGRESS = "progress"
    LOG = "log"
    STARTED = "started"
    RESULT = "result"


class ErrorType(StrEnum):
    """The `type` of errors the runner makes itself (a user exception keeps its class name)."""

    TERMINATED = "Terminated"  # terminate: "termination signal" (thread) or "killed" (process)
    CALL_TERMINATED = "CallTerminated"  # terminated while still queued: it never ran
    PROCESS_DIED = "ProcessDied"  # process mode: the child died without a result
    OUTPUT_TOO_LARGE = "OutputTooLarge"
    OUTPUT_NOT_SERIALIZABLE = "OutputNotSerializable"


class LogStream(StrEnum):
    STDOUT = "stdout"
    STDERR = "stderr"
    LOG = "log"  # the `logging` module


_STREAMS = frozenset(s.value for s in LogStream)


class LogLine(NamedTuple):
    """One line a call wrote, without its newline; `at` is when it began (UTC)."""

    stream: LogStream
    line: str
    at: datetime


class ErrorInfo(TypedDict):
    type: str
    message: str
    traceback: str


class CallContext(TypedDict, total=False):
    """What a call's `context` dict may carry; every key is optional."""

    execution_id: str
    service_id: str
    trigger_id: str | None
    event: dict[str, Any] | None


def dump_json(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """A value as JSON, as frames encode it; `default` may turn what orjson cannot serialise
    into what it can. TypeError if it cannot be."""
    return orjson.dumps(value, default=default, option=_DUMP_OPTIONS)


def raw_json(body: bytes) -> Any:
    """JSON already serialised, for a frame to embed as it is (the value of a message field)."""
    return orjson.Fragment(body)


def encode_frame(obj: dict[str, Any], max_size: int = MAX_FRAME_SIZE) -> bytes:
    """Serialise one frame. TypeError if not serialisable; FrameTooLarge over the cap."""
    body = dump_json(obj)
    if len(body) > max_size:
        raise FrameTooLarge(f"frame of {len(body)} bytes exceeds the {max_size}-byte cap")
    return _HEADER.pack(len(body)) + body


class FrameDecoder:
    """Incremental decoder: feed it bytes as they arrive, get whole frames back."""

    def __init__(self, max_size: int = MAX_FRAME_SIZE) -> None:
        self._buffer = bytearray()
        self._max_size = max_size

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self._buffer += data
        frames: list[dict[str, Any]] = []
        while len(self._buffer) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._buffer)
            if size > self._max_size:
                raise FrameTooLarge(f"frame of {size} bytes exceeds the {self._max_size}-byte cap")
            end = _HEADER.size + size
            if len(self._buffer) < end:
                break
            body = bytes(self._buffer[_HEADER.size : end])
            del self._buffer[:end]
            frames.append(_decode_body(body))
        return frames

    @property
    def pending(self) -> int:
        """Bytes buffered that do not yet make a whole frame."""
        return len(self._buffer)


def _decode_body(body: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise FrameError(f"frame body is not JSON: {e}") from e
    if not isinstance(obj, dict) or not isinstance(obj.get("kind"), str):
        raise FrameError("frame body is not an object with a string 'kind'")
    return obj


# --- messages ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """`types` maps an argument name to its declared input type ("Item", "Item[]", "Json"...);
    arguments it does not name are passed as they are."""

    id: str
    function: str
    kwargs: dict[str, Any]
    context: dict[str, Any]
    types: dict[str, str] = field(default_factory=dict)

    def to_frame(self) -> dict[str, Any]:
        return {
            "kind": Kind.CALL,
            "id": self.id,
            "function": self.function,
            "kwargs": self.kwargs,
            "context": self.context,
            "types": self.types,
        }

    @classmethod
    def from_frame(cls, frame: dict[str, Any]) -> Call:
        types = frame.get("types") or {}
        return cls(
            id=str(frame["id"]),
            function=str(frame["function"]),
            kwargs=dict(frame.get("kwargs") or {}),
            context=dict(frame.get("context") or {}),
            types={str(name): str(kind) for name, kind in types.items()},
        )


@dataclass(frozen=True)
class Result:
    id: str
    ok: bool
    output: Any
    error: ErrorInfo | None
    duration: float

    def to_frame(self) -> dict[str, Any]:
        return {
            "kind": Kind.RESULT,
            "id": self.id,
            "ok": self.ok,
            "output": self.output,
            "error": self.error,
            "duration": self.duration,
        }

    @classmethod
    def from_frame(cls, frame: dict[str, Any]) -> Result:
        error = frame.get("error")
        return cls(
            id=str(frame["id"]),
            ok=bool(frame["ok"]),
            output=frame.get("output"),
            error=error_info(**error) if isinstance(error, dict) else None,
            duration=float(frame.get("duration") or 0.0),
        )


@dataclass(frozen=True)
class Progress:
    id: str
    percent: int
    message: str | None

    def to_frame(self) -> dict[str, Any]:
        return {
            "kind": Kind.PROGRESS,
            "id": self.id,
            "percent": self.percent,
            "message": self.message,
        }

    @classmethod
    def from_frame(cls, frame: dict[str, Any]) -> Progress:
        message = frame.get("message")
        return cls(
            id=str(frame["id"]),
            percent=clamp_percent(frame.get("percent")),
            message=None if message is None else str(message),
        )


def log_frame(call_id: str, lines: Sequence[LogLine]) -> dict[str, Any]:
    batch = [{"stream": s, "line": text, "at": at.timestamp()} for s, text, at in lines]
    return {"kind": Kind.LOG, "id": call_id, "lines": batch}


def log_lines(frame: dict[str, Any]) -> list[LogLine]:
    """The lines of a `log` frame; an unknown stream reads as `log`, a bad time as the epoch."""
    return [_log_line(entry) for entry in frame.get("lines") or [] if isinstance(entry, dict)]


def _log_line(entry: dict[str, Any]) -> LogLine:
    stream = entry.get("stream")
    try:
        when = datetime.fromtimestamp(float(entry.get("at")), UTC)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):
        when = datetime.fromtimestamp(0, UTC)
    kind = LogStream(stream) if stream in _STREAMS else LogStream.LOG
    return LogLine(kind, str(entry.get("line", "")), when)


def started_frame(call_id: str, pid: int) -> dict[str, Any]:
    return {"kind": Kind.STARTED, "id": call_id, "pid": pid}


def output_too_large_message(max_bytes: int) -> str:
    """The message dtlpy's users know, with the limit in MB (4 MiB reads "4.0MB")."""
    megabytes = max_bytes / (1024 * 1024)
    figure = f"{megabytes:.1f}" if round(megabytes, 1) == megabytes else f"{megabytes:.3g}"
    return (
        "The function execution was successful, but the output couldn't be saved because it "
        f"was larger than the maximum size allowed of {figure}MB"
    )


def error_info(type: str = "Error", message: str = "", traceback: str = "", **_: Any) -> ErrorInfo:
    return ErrorInfo(type=str(type), message=str(message), traceback=str(traceback))


def terminate_frame(call_id: str) -> dict[str, Any]:
    return {"kind": Kind.TERMINATE, "id": call_id}


def shutdown_frame() -> dict[str, Any]:
    return {"kind": Kind.SHUTDOWN}


def ready_frame() -> dict[str, Any]:
    return {"kind": Kind.READY}


class InitStage(StrEnum):
    CODEBASE = "codebase"  # importing the entry file or finding the class failed
    INIT = "init"  # the class's __init__ raised


def init_failed_frame(error: ErrorInfo, stage: InitStage = InitStage.INIT) -> dict[str, Any]:
    return {"kind": Kind.INIT_FAILED, "error": error, "stage": stage}


def clamp_percent(value: object) -> int:
    """A progress percentage as an int in 0..100; anything unreadable is 0."""
    try:
        number: int = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return 0
    return max(0, min(100, number))
