"""The agent's handle on its runner child, so user code never runs in the agent's event loop.

`Runner.start` spawns `python -m spool_agent.runner` with two private pipes (frames: see
`spool_agent.protocol`) and the environment it is given, as is: nothing of the agent's leaks in.

Stopping one call. `terminate` asks the runner: a queued call is dropped (`CallTerminated`); in
thread mode a running one gets InterruptedError in its thread (honoured at its next bytecode,
so not inside a blocking C call) and ends `Terminated`, "termination signal"; in process mode
its process group is SIGKILLed and it ends `Terminated`, "killed". `kill_call` is that process
mode kill, for timeouts. A thread that does not stop cannot be killed: `kill` the whole runner
(every pending call raises RunnerCrashed at once) and start a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from spool_agent import protocol
from spool_agent.protocol import ErrorInfo, InitStage, Kind, LogLine, error_info
from spool_agent.runner_spawn import connect_pipes, kill_group, kill_pgid, spawn
from spool_agent.sandbox import RunnerSandbox
from spool_common.logging import get_logger

log = get_logger(__name__)

ProgressCallback = Callable[[str, int, str | None], None]
LogCallback = Callable[[str, list[LogLine]], None]  # (call id, a batch of its lines)
_EOF_GRACE = 1.0  # after the child exits, how long its last frames may take to arrive


class RunnerInitError(Exception):
    """The runner never became ready; `.error` says why ({type, message, traceback}) and
    `.stage` where: loading the codebase or running the class's `__init__`."""

    def __init__(self, error: ErrorInfo, stage: InitStage = InitStage.INIT) -> None:
        super().__init__(f"{error['type']}: {error['message']}")
        self.error = error
        self.stage = stage


class RunnerCrashed(Exception):
    """The runner is gone (crashed, killed or stopping), so the call has no result."""


@dataclass(frozen=True)
class CallResult:
    ok: bool
    output: object
    error: ErrorInfo | None
    duration: float


class _PipeReader(asyncio.Protocol):
    """Turns bytes from the child's out-pipe into frames for the runner."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self._decoder = protocol.FrameDecoder()
        self._broken = False

    def data_received(self, data: bytes) -> None:
        if self._broken:
            return  # the runner is being killed
        try:
            for frame in self._decoder.feed(data):
                self._runner._handle(frame)
        except (KeyError, TypeError, ValueError) as e:  # a FrameError is a ValueError
            self._broken = True
            self._runner._on_protocol_error(e)

    def connection_lost(self, exc: Exception | None) -> None:
        self._runner._eof.set()


class Runner:
    """One runner child process. Build it with `await Runner.start(...)`."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        on_progress: ProgressCallback | None,
        on_log: LogCallback | None = None,
        as_process: bool = False,
    ) -> None:
        self._process = process
        self._on_progress = on_progress
        self._on_log = on_log
        self._as_process = as_process
        self._pending: dict[str, asyncio.Future[CallResult]] = {}
        self._children: dict[str, int] = {}  # process mode: call id -> its process group
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._eof = asyncio.Event()
        self._reader: asyncio.ReadTransport | None = None
        self._writer: asyncio.WriteTransport | None = None
        self._exit_task: asyncio.Task[int] | None = None
        self._closed_reason: str | None = None
        self._stopping = False

    @classmethod
    async def start(
        cls,
        *,
        codebase: Path,
        entry_point: str,
        class_name: str,
        init_params: dict[str, object],
        concurrency: int,
        env: dict[str, str],
        log_file: Path | None = None,
        on_progress: ProgressCallback | None = None,
        init_timeout: float = 600.0,
        run_execution_as_process: bool = False,
        max_output_bytes: int = protocol.DEFAULT_MAX_OUTPUT_BYTES,
        on_log: LogCallback | None = None,
        sandbox: RunnerSandbox | None = None,
    ) -> Runner:
        """Spawn the child and wait until it has built the class; RunnerInitError if it can't.

        `on_log(call_id, lines)` gets what each call prints and logs, in batches, all before
        its result; without it those lines are dropped. `__init__`'s output goes to `log_file`.
        With `sandbox`, the child is confined first (`spool_agent.sandbox_exec`); if it cannot
        be, RunnerInitError with type `SandboxError`.
        """
        cpu = sandbox.plan.limits.call_cpu_seconds if sandbox is not None else None
        args = [
            *("--codebase", str(codebase), "--entry-point", entry_point),
            *("--class-name", class_name, "--concurrency", str(concurrency)),
            *("--init-params-json", orjson.dumps(init_params).decode()),
            *("--max-output-bytes", str(max_output_bytes)),
            *(["--process-mode"] if run_execution_as_process else []),
            *(["--call-cpu-seconds", str(cpu)] if cpu is not None else []),
        ]
        process, in_w, out_r = await spawn(args, env=env, log_file=log_file, sandbox=sandbox)
        runner = cls(process, on_progress, on_log, run_execution_as_process)
        try:
            runner._connect(*await connect_pipes(in_w, out_r, _PipeReader(runner)))
        except BaseException:
            kill_group(process)
            await process.wait()
            raise
        await runner._await_ready(init_timeout)
        log.info("runner_ready", pid=process.pid, codebase=str(codebase))
        return runner

    @property
    def pid(self) -> int:
        return self._process.pid

    async def call(
        self,
        call_id: str,
        function: str,
        kwargs: dict[str, object],
        context: dict[str, object],
        *,
        types: dict[str, str] | None = None,
    ) -> CallResult:
        """Run one function call in the child; RunnerCrashed if the child dies meanwhile.
        `types` (argument name -> declared type, e.g. "Item[]") makes entity-typed arguments
        arrive as `Entity` objects."""
        if self._closed_reason is not None:
            raise RunnerCrashed(self._closed_reason)
        if call_id in self._pending:
            raise ValueError(f"call {call_id!r} is already pending")
        future: asyncio.Future[CallResult] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        try:
            call = protocol.Call(call_id, function, dict(kwargs), dict(context), dict(types or {}))
            self._write(call.to_frame())
            return await future
        finally:
            self._pending.pop(call_id, None)
            self._children.pop(call_id, None)

    def terminate(self, call_id: str) -> None:
        """Stop one call (see the module's docstring); its `call` returns how it ended."""
        with contextlib.suppress(RunnerCrashed):
            self._write(protocol.terminate_frame(call_id))

    def kill_call(self, call_id: str) -> bool:
        """Process mode: SIGKILL the call's process group (a call still queued is dropped)
        and return True: its `call` soon returns `Terminated` ("killed"), or `CallTerminated`
        if it had not started. Works while stopping too. False, doing nothing, in thread mode,
        for a call not pending here, or once the runner is gone: only `kill` stops a thread."""
        future = self._pending.get(call_id)
        if not self._as_process or future is None or future.done():
            return False
        try:
            self._write(protocol.terminate_frame(call_id))
        except RunnerCrashed:
            return False
        return True

    async def stop(self, grace: float) -> None:
        """Ask the child to finish running calls and exit; SIGKILL it after `grace` seconds."""
        if not self._stopping:
            self._stopping = True
            self._closed_reason = self._closed_reason or "the runner is stopping"
            with contextlib.suppress(RunnerCrashed):
                self._write(protocol.shutdown_frame())
        try:
            await asyncio.wait_for(self.wait(), grace)
        except TimeoutError:
            log.warning("runner_stop_timeout", pid=self.pid, grace=grace)
            self.kill()
            await self.wait()

    def kill(self) -> None:
        """SIGKILL the child and everything it started (calls' processes too); every pending
        call raises RunnerCrashed now, without waiting for the child to go."""
        self._closed_reason = self._closed_reason or "the runner was killed"
        self._fail_pending(self._closed_reason)
        for pgid in self._children.values():
            kill_pgid(pgid)
        self._children.clear()
        kill_group(self._process)

    async def wait(self) -> int:
        """The child's exit code (negative: killed by that signal)."""
        assert self._exit_task is not None
        return await asyncio.shield(self._exit_task)

    async def _await_ready(self, limit: float) -> None:
        try:
            await asyncio.wait_for(self._ready, limit)
        except BaseException as e:
            self.kill()
            await self.wait()
            if isinstance(e, TimeoutError):
                message = f"the runner was not ready after {limit:g} s"
                raise RunnerInitError(error_info("InitTimeout", message)) from None
            raise

    def _connect(self, writer: asyncio.WriteTransport, reader: asyncio.ReadTransport) -> None:
        self._writer, self._reader = writer, reader
        self._exit_task = asyncio.create_task(self._watch_exit())

    async def _watch_exit(self) -> int:
        code = await self._process.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._eof.wait(), _EOF_GRACE)  # its last frames first
        if self._reader is not None:
            self._reader.close()
        if self._writer is not None and not self._writer.is_closing():
            self._writer.abort()  # nobody reads it any more: drop what is buffered
        reason = f"the runner exited with code {code}"
        self._closed_reason = self._closed_reason or reason
        self._fail_pending(self._closed_reason)
        if not self._ready.done():
            error = error_info("RunnerExited", f"{reason} before it was ready")
            self._ready.set_exception(RunnerInitError(error))
        log.info("runner_exited", pid=self._process.pid, code=code)
        return code

    def _fail_pending(self, reason: str) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(RunnerCrashed(reason))

    def _write(self, frame: dict[str, Any]) -> None:
        data = protocol.encode_frame(frame)  # TypeError / FrameTooLarge reach the caller
        if self._writer is None or self._writer.is_closing():
            raise RunnerCrashed(self._closed_reason or "the runner's pipe is closed")
        self._writer.write(data)

    def _handle(self, frame: dict[str, Any]) -> None:
        kind = frame["kind"]
        if kind == Kind.RESULT:
            self._settle(protocol.Result.from_frame(frame))
        elif kind == Kind.LOG:
            self._report(self._on_log, str(frame["id"]), protocol.log_lines(frame))
        elif kind == Kind.PROGRESS:
            p = protocol.Progress.from_frame(frame)
            self._report(self._on_progress, p.id, p.percent, p.message)
        elif kind == Kind.STARTED and str(frame["id"]) in self._pending:
            self._children[str(frame["id"])] = int(frame["pid"])
        elif kind == Kind.READY and not self._ready.done():
            self._ready.set_result(None)
        elif kind == Kind.INIT_FAILED and not self._ready.done():
            error = error_info(**frame.get("error") or {})
            try:
                stage = InitStage(frame.get("stage", InitStage.INIT))
            except ValueError:
                stage = InitStage.INIT
            self._ready.set_exception(RunnerInitError(error, stage))

    def _settle(self, r: protocol.Result) -> None:
        self._children.pop(r.id, None)
        future = self._pending.get(r.id)
        if future is not None and not future.done():
            future.set_result(CallResult(r.ok, r.output, r.error, r.duration))

    def _report(self, callback: Callable[..., None] | None, call_id: str, *args: Any) -> None:
        if callback is None:
            return
        try:
            callback(call_id, *args)
        except Exception:
            log.exception("runner_callback_failed", call_id=call_id)

    def _on_protocol_error(self, error: Exception) -> None:
        log.error("runner_protocol_error", pid=self._process.pid, error=repr(error))
        self.kill()
