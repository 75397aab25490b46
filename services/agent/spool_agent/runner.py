"""The runner child: imports the user's module, builds the class once, runs calls on threads,
or, in process mode, each in a child forked from it (`runner_process`).

Run as `python -m spool_agent.runner --in-fd N --out-fd M --codebase DIR ...`. Frames arrive on
the in-fd and leave on the out-fd, written by one outbox thread (`runner_output`). What user
code prints or logs from a call's thread is sent as that call's log frames; output of
`__init__` and of threads user code starts goes to this process's own stdout/stderr (the
replica's log), never to the protocol pipe. The main thread reads frames; calls run on a pool
of `--concurrency` threads.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import orjson

from spool_agent import protocol, runner_output
from spool_agent.protocol import Call, ErrorType, FrameDecoder, Kind
from spool_agent.runner_calls import describe, error_frame, run_threaded
from spool_agent.runner_output import Outbox
from spool_agent.runner_process import ForkOptions, run_forked
from spool_agent.runner_state import CallState

EXIT_INIT_FAILED = 3
EXIT_PARENT_GONE = 4
EXIT_PROTOCOL_ERROR = 5
_READ_SIZE = 256 * 1024


def load_class(codebase: Path, entry_point: str, class_name: str) -> type:
    """Import the entry file from the codebase and find the service class in it."""
    path = (codebase / entry_point).resolve()
    for folder in dict.fromkeys([str(path.parent), str(codebase)]):
        sys.path.insert(0, folder)  # the codebase ends up first
    os.chdir(codebase)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load entry point {entry_point!r} from {codebase}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise AttributeError(f"entry point {entry_point!r} defines no class {class_name!r}")
    return cls


@dataclass(frozen=True)
class RunOptions:
    concurrency: int
    as_process: bool
    max_output_bytes: int
    protocol_fds: tuple[int, ...]
    call_cpu_seconds: int | None = None


class Dispatcher:
    """Owns the pool; turns parent frames into work. Driven by the main thread."""

    def __init__(self, instance: Any, outbox: Outbox, options: RunOptions) -> None:
        self._instance = instance
        self._outbox = outbox
        self._options = options
        self._fork = ForkOptions(
            options.max_output_bytes,
            options.protocol_fds,
            EXIT_PARENT_GONE,
            os.getpid(),
            options.call_cpu_seconds,
        )
        self._pool = ThreadPoolExecutor(options.concurrency, thread_name_prefix="spool-call")
        self._calls: dict[str, tuple[Future[None], CallState]] = {}
        self._lock = threading.Lock()
        self._closing = False

    def handle(self, frame: dict[str, Any]) -> bool:
        """Act on one frame; False when the parent asks us to shut down (the first time)."""
        kind = frame["kind"]
        if kind == Kind.CALL:
            self._submit(Call.from_frame(frame))
        elif kind == Kind.TERMINATE:
            self._terminate(str(frame.get("id")))
        elif kind == Kind.SHUTDOWN and not self._closing:
            self._closing = True
            return False
        return True

    def drain(self) -> None:
        """Stop accepting and wait for every submitted call to finish."""
        self._pool.shutdown(wait=True)

    def kill_children(self) -> None:
        """SIGKILL the process group of every call running in a child (process mode)."""
        with self._lock:
            states = [state for _, state in self._calls.values()]
        for state in states:
            state.kill_process()

    def _submit(self, call: Call) -> None:
        if self._closing:
            message = "the runner is shutting down: the call never ran"
            self._outbox.finish(
                call.id, error_frame(call.id, ErrorType.CALL_TERMINATED, message, 0)
            )
            return
        state = CallState(call.id, in_thread=not self._options.as_process)
        with self._lock:
            future = self._pool.submit(self._run, call, state)
            self._calls[call.id] = (future, state)
        future.add_done_callback(lambda _: self._forget(call.id, future))

    def _run(self, call: Call, state: CallState) -> None:
        if self._options.as_process:
            run_forked(self._instance, call, self._outbox, state, self._fork)
        else:
            run_threaded(self._instance, call, self._outbox, state, self._options.max_output_bytes)

    def _forget(self, call_id: str, future: Future[None]) -> None:
        with self._lock:
            entry = self._calls.get(call_id)
            if entry is not None and entry[0] is future:
                del self._calls[call_id]

    def _terminate(self, call_id: str) -> None:
        """A queued call is dropped (`CallTerminated`); a running one is terminated: an
        exception in its thread, or SIGKILL to its process group in process mode."""
        with self._lock:
            entry = self._calls.get(call_id)
        if entry is None:
            return
        future, state = entry
        if future.cancel():
            message = "terminated before it started"
            self._outbox.finish(
                call_id, error_frame(call_id, ErrorType.CALL_TERMINATED, message, 0)
            )
        else:
            state.terminate()


def serve(in_fd: int, dispatcher: Dispatcher, outbox: Outbox) -> NoReturn:
    """Read frames until EOF (the parent is gone: exit now). On shutdown, a thread waits for
    the calls to finish and exits 0, while this one still reads: terminate works meanwhile."""
    decoder = FrameDecoder()
    while True:
        data = os.read(in_fd, _READ_SIZE)
        if not data:
            dispatcher.kill_children()
            _exit(EXIT_PARENT_GONE)
        try:
            frames = decoder.feed(data)
        except protocol.FrameError as e:
            print(f"spool runner: protocol error from the agent: {e}", file=sys.stderr)
            _exit(EXIT_PROTOCOL_ERROR)
        for frame in frames:
            try:
                more = dispatcher.handle(frame)
            except (KeyError, TypeError, ValueError) as e:
                print(f"spool runner: malformed frame from the agent: {e!r}", file=sys.stderr)
                _exit(EXIT_PROTOCOL_ERROR)
            if not more:
                drain = threading.Thread(
                    target=_drain_and_exit, args=(dispatcher, outbox), name="spool-drain"
                )
                drain.start()


def _drain_and_exit(dispatcher: Dispatcher, outbox: Outbox) -> NoReturn:
    dispatcher.drain()
    outbox.close()
    _exit(0)


def _exit(code: int) -> NoReturn:
    """Leave without waiting for threads user code may have left running."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="spool_agent.runner")
    parser.add_argument("--in-fd", type=int, required=True)
    parser.add_argument("--out-fd", type=int, required=True)
    parser.add_argument("--codebase", type=Path, required=True)
    parser.add_argument("--entry-point", default="main.py")
    parser.add_argument("--class-name", default="ServiceRunner")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--init-params-json", default="{}")
    parser.add_argument("--process-mode", action="store_true", help="a forked child per call")
    parser.add_argument("--max-output-bytes", type=int, default=protocol.DEFAULT_MAX_OUTPUT_BYTES)
    parser.add_argument("--call-cpu-seconds", type=int, help="RLIMIT_CPU of each call's process")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> NoReturn:
    args = parse_args(argv)
    for fd in (args.in_fd, args.out_fd):
        os.set_inheritable(fd, False)  # user subprocesses must not hold the protocol pipe
    with contextlib.suppress(AttributeError, ValueError):
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    outbox = Outbox(args.out_fd, done_line=True, on_broken=lambda: _exit(EXIT_PARENT_GONE))
    runner_output.install(outbox.start())
    stage = protocol.InitStage.CODEBASE  # importing the entry file, finding the class
    try:
        params = orjson.loads(args.init_params_json)
        cls = load_class(args.codebase, args.entry_point, args.class_name)
        stage = protocol.InitStage.INIT  # the class's __init__
        instance = cls(**params)
    except BaseException as e:  # any failure of user code is reported, with its stage
        outbox.frame(protocol.init_failed_frame(describe(e), stage))
        outbox.close()
        _exit(EXIT_INIT_FAILED)
    outbox.frame(protocol.ready_frame())
    options = RunOptions(
        concurrency=max(1, args.concurrency),
        as_process=args.process_mode,
        max_output_bytes=args.max_output_bytes,
        protocol_fds=(args.in_fd, args.out_fd),
        call_cpu_seconds=args.call_cpu_seconds,
    )
    serve(args.in_fd, Dispatcher(instance, outbox, options), outbox)


if __name__ == "__main__":
    main()
