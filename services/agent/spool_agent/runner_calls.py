"""Running one call in the runner: arguments in, an encoded result frame out.

User code gets its arguments (entity-typed ones as `Entity`), and `progress` and `context` if
its signature names them; both see whether the call was terminated (`runner_state`). The
return value is stored as JSON (entities as theirs) up to `max_output_bytes`.
"""

from __future__ import annotations

import inspect
import logging
import time
import traceback
from typing import Any

from spool_agent import protocol
from spool_agent.entities import convert_inputs, to_jsonable
from spool_agent.protocol import Call, ErrorInfo, ErrorType, Progress, Result
from spool_agent.runner_output import Outbox, bind
from spool_agent.runner_state import (
    TERMINATION_MESSAGE,
    CallState,
    ExecutionTerminated,
    running,
)

_EXECUTION_LOGGER = logging.getLogger("spool.execution")


class ProgressReporter:
    """The `progress` argument user functions may ask for; `.logger` as in Dataloop's."""

    def __init__(self, outbox: Outbox, state: CallState, logger: logging.Logger) -> None:
        self._outbox = outbox
        self._state = state
        self.logger = logger

    def update(
        self,
        status: object = None,
        progress: int = 0,
        message: str | None = None,
        output: object = None,
        duration: object = None,
        action: object = None,
    ) -> None:
        """dtlpy's signature, so code written for it works: `update(progress=40, message=...)`.
        Only progress and message are recorded. Raises InterruptedError once terminated."""
        if self._state.terminated.is_set():
            raise ExecutionTerminated()
        percent = protocol.clamp_percent(progress)
        text = None if message is None else str(message)
        self._outbox.frame(Progress(self._state.call_id, percent, text).to_frame())


class CallContextView:
    """The `context` argument user functions may ask for."""

    def __init__(self, context: dict[str, Any], state: CallState, logger: logging.Logger) -> None:
        self.execution_id: str | None = context.get("execution_id")
        self.attempt: int | None = context.get("attempt")  # 1 on the first, 2 on a rerun...
        self.service_id: str | None = context.get("service_id")
        self.service_name: str | None = context.get("service_name")
        self.project_id: str | None = context.get("project_id")
        self.replica_id: str | None = context.get("replica_id")
        self.trigger_id: str | None = context.get("trigger_id")
        event = context.get("event")
        self.event: dict[str, Any] | None = event if isinstance(event, dict) else None
        self.logger = logger
        self._state = state

    @property
    def terminated(self) -> bool:
        """True once the execution was asked to terminate; long loops should check it."""
        return self._state.terminated.is_set()

    def raise_if_terminated(self) -> None:
        """Raise InterruptedError("Execution received termination signal") if terminated."""
        if self.terminated:
            raise ExecutionTerminated()


def call_logger(context: dict[str, Any]) -> logging.Logger:
    """A logger named after the execution. Not registered with logging's manager (which keeps
    every logger forever), so one per call does not leak; it propagates to `spool.execution`."""
    logger = logging.Logger(f"spool.execution.{context.get('execution_id')}")
    logger.parent = _EXECUTION_LOGGER
    return logger


def describe(exc: BaseException) -> ErrorInfo:
    try:
        message = str(exc)
    except Exception:  # a user exception whose __str__ itself fails
        message = f"<{type(exc).__name__}: str() failed>"
    text = "".join(traceback.format_exception(exc))
    return protocol.error_info(type(exc).__name__, message, text)


def invoke(instance: Any, call: Call, outbox: Outbox, state: CallState) -> Any:
    method = getattr(instance, call.function, None)
    if call.function.startswith("_") or not callable(method):
        raise AttributeError(f"the service has no function {call.function!r}")
    kwargs = convert_inputs(call.kwargs, call.types)
    wanted = _parameter_names(method)
    logger = call_logger(call.context)
    if "progress" in wanted and "progress" not in kwargs:
        kwargs["progress"] = ProgressReporter(outbox, state, logger)
    if "context" in wanted and "context" not in kwargs:
        kwargs["context"] = CallContextView(call.context, state, logger)
    with running(state):
        return method(**kwargs)


def _parameter_names(method: Any) -> set[str]:
    try:
        return set(inspect.signature(method).parameters)
    except (TypeError, ValueError):
        return set()


def encode_result(call_id: str, output: Any, duration: float, max_output_bytes: int) -> bytes:
    """The result frame for a return value, or an error frame if it cannot be stored."""
    try:
        body = protocol.dump_json(output, default=to_jsonable)
    except TypeError as e:
        message = f"the function's return value is not JSON-serialisable: {e}"
        return error_frame(call_id, ErrorType.OUTPUT_NOT_SERIALIZABLE, message, duration)
    if len(body) > max_output_bytes:
        message = protocol.output_too_large_message(max_output_bytes)
        return error_frame(call_id, ErrorType.OUTPUT_TOO_LARGE, message, duration)
    try:
        output_json = protocol.raw_json(body)
        return protocol.encode_frame(Result(call_id, True, output_json, None, duration).to_frame())
    except protocol.FrameTooLarge as e:
        message = f"the function's return value is too large: {e}"
        return error_frame(call_id, ErrorType.OUTPUT_TOO_LARGE, message, duration)


def error_frame(call_id: str, kind: str, message: str, duration: float, tb: str = "") -> bytes:
    error = protocol.error_info(kind, message, tb)
    return protocol.encode_frame(Result(call_id, False, None, error, duration).to_frame())


def failure_frame(call_id: str, exc: BaseException, state: CallState, duration: float) -> bytes:
    """The result of a call that raised: `Terminated` if it was terminated meanwhile."""
    error = describe(exc)
    if state.terminated.is_set():
        kind, message = ErrorType.TERMINATED, TERMINATION_MESSAGE
        return error_frame(call_id, kind, message, duration, error["traceback"])
    return protocol.encode_frame(Result(call_id, False, None, error, duration).to_frame())


def execute(
    instance: Any, call: Call, outbox: Outbox, state: CallState, max_output_bytes: int
) -> bytes:
    """Run the call on this thread, its output routed to its log; its result frame."""
    state.enter_thread()
    bind(call.id)
    started = time.monotonic()
    try:
        if state.terminated.is_set():  # before enter_thread, when nothing could be injected
            raise ExecutionTerminated()
        output = invoke(instance, call, outbox, state)
    except BaseException as e:  # every failure of user code is reported
        return failure_frame(call.id, e, state, time.monotonic() - started)
    duration = time.monotonic() - started
    if state.terminated.is_set():
        return error_frame(call.id, ErrorType.TERMINATED, TERMINATION_MESSAGE, duration)
    return encode_result(call.id, output, duration, max_output_bytes)


def run_threaded(
    instance: Any, call: Call, outbox: Outbox, state: CallState, max_output_bytes: int
) -> None:
    """A pool thread's whole job for one call. Never raises, whatever terminate throws in: the
    one injected exception may land anywhere in here, and the loop absorbs it."""
    result: bytes | None = None
    while True:
        try:
            if result is None:
                result = execute(instance, call, outbox, state, max_output_bytes)
            state.leave_thread()
            break
        except BaseException as e:  # terminate's exception, landing in the runner's code
            if result is None:
                result = failure_frame(call.id, e, state, 0.0)
    bind(None)
    outbox.finish(call.id, result)
