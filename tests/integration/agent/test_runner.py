"""The runner child and its asyncio client, with real child processes (no broker needed)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import uvloop

from spool_agent.protocol import DONE_LINE, Call, FrameDecoder, LogLine, encode_frame
from spool_agent.runner_client import CallResult, Runner, RunnerCrashed, RunnerInitError

pytestmark = pytest.mark.integration

ENV = {"PATH": os.environ.get("PATH", ""), "SPOOL_GIVEN": "given"}
StartRunner = Callable[..., Awaitable[Runner]]


def write_code(root: Path, source: str) -> Path:
    codebase = root / "code"
    codebase.mkdir(exist_ok=True)
    (codebase / "main.py").write_text(textwrap.dedent(source))
    return codebase


async def start_runner(root: Path, source: str, **overrides: Any) -> Runner:
    options: dict[str, Any] = {
        "codebase": write_code(root, source),
        "entry_point": "main.py",
        "class_name": "ServiceRunner",
        "init_params": {},
        "concurrency": 1,
        "env": ENV,
        "log_file": root / "logs" / "runner.log",
        "init_timeout": 30.0,
    }
    return await Runner.start(**(options | overrides))


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[StartRunner]:
    runners: list[Runner] = []

    async def _start(source: str, **overrides: Any) -> Runner:
        runner = await start_runner(tmp_path, source, **overrides)
        runners.append(runner)
        return runner

    yield _start
    for runner in runners:
        runner.kill()
        await runner.wait()


def log_text(tmp_path: Path) -> str:
    return (tmp_path / "logs" / "runner.log").read_text()


class ProgressLog:
    """Collects progress callbacks; `started` is set by the first one."""

    def __init__(self) -> None:
        self.updates: list[tuple[str, int, str | None]] = []
        self.started = asyncio.Event()

    def __call__(self, call_id: str, percent: int, message: str | None) -> None:
        self.updates.append((call_id, percent, message))
        self.started.set()


class LogCollector:
    """Collects log callbacks: every call's lines, in order."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[LogLine]]] = []

    def __call__(self, call_id: str, lines: list[LogLine]) -> None:
        self.batches.append((call_id, lines))

    def lines(self, call_id: str) -> list[str]:
        return [line.line for cid, batch in self.batches if cid == call_id for line in batch]


# Calls `progress.update(1)` once it is running, then sleeps for `seconds`.
SLEEPER = """
    import os, time
    class ServiceRunner:
        def run(self, progress, seconds):
            progress.update(progress=1)
            time.sleep(seconds)
            return "finished"
        def exit_now(self, code):
            os._exit(code)
"""


async def test_a_call_returns_its_output(start: StartRunner) -> None:
    runner = await start("""
        class ServiceRunner:
            def run(self, a, b):
                return {"sum": a + b, "items": [a, b, None]}
    """)
    result = await runner.call("c1", "run", {"a": 2, "b": 3}, {})
    assert result.ok, result.error
    assert result.output == {"sum": 5, "items": [2, 3, None]}
    assert result.error is None
    assert result.duration >= 0


async def test_init_params_reach_init_which_runs_once(start: StartRunner) -> None:
    runner = await start(
        """
        INITS = 0
        class ServiceRunner:
            def __init__(self, greeting, times):
                global INITS
                INITS += 1
                self.greeting, self.times, self.calls = greeting, times, 0
            def run(self):
                self.calls += 1
                return [self.greeting * self.times, INITS, self.calls]
        """,
        init_params={"greeting": "hi", "times": 2},
    )
    outputs = [(await runner.call(f"c{i}", "run", {}, {})).output for i in range(3)]
    assert outputs == [["hihi", 1, 1], ["hihi", 1, 2], ["hihi", 1, 3]]


async def test_concurrency_runs_that_many_calls_at_once_and_no_more(start: StartRunner) -> None:
    # Each call waits at a two-party barrier: with fewer than two threads it breaks.
    runner = await start(
        """
        import threading, time
        barrier = threading.Barrier(2, timeout=10)
        lock = threading.Lock()
        state = {"active": 0, "peak": 0}
        class ServiceRunner:
            def run(self):
                with lock:
                    state["active"] += 1
                    state["peak"] = max(state["peak"], state["active"])
                barrier.wait()
                time.sleep(0.3)
                with lock:
                    state["active"] -= 1
                return state["peak"]
        """,
        concurrency=2,
    )
    results = await asyncio.gather(*(runner.call(f"c{i}", "run", {}, {}) for i in range(4)))
    assert [r.error for r in results] == [None] * 4
    assert max(r.output for r in results) == 2  # type: ignore[type-var]


@pytest.mark.parametrize(
    ("source", "function", "error_type", "message", "in_traceback"),
    [
        (
            "class ServiceRunner:\n    def run(self):\n        raise ValueError('bad input 42')\n",
            "run",
            "ValueError",
            "bad input 42",
            "raise ValueError('bad input 42')",
        ),
        ("class ServiceRunner:\n    pass\n", "missing", "AttributeError", "'missing'", ""),
        ("class ServiceRunner:\n    def run(self, a): ...\n", "run", "TypeError", "'a'", ""),
    ],
    ids=["raises", "no-such-function", "missing-argument"],
)
async def test_a_failing_call_reports_type_message_and_traceback(
    start: StartRunner, source: str, function: str, error_type: str, message: str, in_traceback: str
) -> None:
    runner = await start(source)
    result = await runner.call("c1", function, {}, {})
    assert not result.ok
    assert result.output is None
    assert result.error is not None
    assert result.error["type"] == error_type
    assert message in result.error["message"]
    assert result.error["traceback"].startswith("Traceback (most recent call last)")
    assert in_traceback in result.error["traceback"]


@pytest.mark.parametrize(
    ("source", "class_name", "error_type", "message"),
    [
        (
            "class ServiceRunner:\n  def __init__(self):\n    raise RuntimeError('no model')\n",
            "ServiceRunner",
            "RuntimeError",
            "no model",
        ),
        ("class Other:\n    pass\n", "ServiceRunner", "AttributeError", "'ServiceRunner'"),
        ("class ServiceRunner(:\n", "ServiceRunner", "SyntaxError", ""),
        ("import no_such_module_xyz\n", "ServiceRunner", "ModuleNotFoundError", "no_such_module"),
        ("import sys\nsys.exit(9)\n", "ServiceRunner", "SystemExit", "9"),
    ],
    ids=["init-raises", "no-such-class", "syntax-error", "import-error", "sys-exit"],
)
async def test_init_failure_raises_runner_init_error(
    tmp_path: Path, source: str, class_name: str, error_type: str, message: str
) -> None:
    with pytest.raises(RunnerInitError) as caught:
        await start_runner(tmp_path, source, class_name=class_name)
    assert caught.value.error["type"] == error_type
    assert message in caught.value.error["message"]
    assert "Traceback" in caught.value.error["traceback"]


async def test_a_missing_codebase_is_an_init_error(tmp_path: Path) -> None:
    with pytest.raises(RunnerInitError) as caught:
        await start_runner(tmp_path, "", codebase=tmp_path / "nowhere")
    assert caught.value.error["type"] == "FileNotFoundError"
    assert "nowhere" in caught.value.error["message"]


async def test_init_timeout_raises_and_kills_the_child(tmp_path: Path) -> None:
    source = "import time\nclass ServiceRunner:\n    def __init__(self):\n        time.sleep(60)\n"
    with pytest.raises(RunnerInitError) as caught:
        await start_runner(tmp_path, source, init_timeout=0.5)
    assert caught.value.error["type"] == "InitTimeout"


async def test_init_output_goes_to_the_log_file_and_call_output_to_the_call(
    start: StartRunner, tmp_path: Path
) -> None:
    logs = LogCollector()
    runner = await start(
        """
        import logging, sys
        print("printed in init")
        logging.getLogger("user").warning("logged in init")
        class ServiceRunner:
            def run(self):
                print("\\x00\\x00\\x00\\x05{junk that would break a frame")
                print("to stderr", file=sys.stderr)
                logging.getLogger("user").warning("logged by user")
                return "ok"
        """,
        on_log=logs,
    )
    assert (await runner.call("c1", "run", {}, {})).output == "ok"
    assert (await runner.call("c2", "run", {}, {})).output == "ok"
    expected = [
        "\x00\x00\x00\x05{junk that would break a frame",
        "to stderr",
        "WARNING user: logged by user",
        DONE_LINE,
    ]
    assert logs.lines("c1") == logs.lines("c2") == expected
    log = log_text(tmp_path)
    assert "printed in init" in log
    assert "WARNING user: logged in init" in log
    assert "junk" not in log
    assert "logged by user" not in log


async def test_progress_updates_reach_the_callback_before_the_result(start: StartRunner) -> None:
    progress = ProgressLog()
    logs = LogCollector()
    runner = await start(
        """
        class ServiceRunner:
            def run(self, progress):
                progress.logger.warning("progress logger works")
                progress.update(progress=10, message="loading")
                progress.update(progress=90)
                progress.update(progress=250, message="clamped", status="whatever")
                return "done"
        """,
        on_progress=progress,
        on_log=logs,
    )
    assert (await runner.call("c7", "run", {}, {"execution_id": "ex-7"})).output == "done"
    assert progress.updates == [("c7", 10, "loading"), ("c7", 90, None), ("c7", 100, "clamped")]
    assert "WARNING spool.execution.ex-7: progress logger works" in logs.lines("c7")


async def test_context_fields_reach_the_function(start: StartRunner) -> None:
    logs = LogCollector()
    runner = await start(
        """
        import logging
        class ServiceRunner:
            def run(self, x, context):
                context.logger.warning("context logger says %s", x)
                return {
                    "ids": [context.execution_id, context.service_id, context.trigger_id],
                    "event": context.event,
                    "is_logger": isinstance(context.logger, logging.Logger),
                }
        """,
        on_log=logs,
    )
    context: dict[str, object] = {
        "execution_id": "ex-1",
        "service_id": "svc-1",
        "trigger_id": "tr-1",
        "event": {"action": "created", "id": "item-9"},
    }
    result = await runner.call("c1", "run", {"x": "hello"}, context)
    assert result.output == {
        "ids": ["ex-1", "svc-1", "tr-1"],
        "event": {"action": "created", "id": "item-9"},
        "is_logger": True,
    }
    assert "WARNING spool.execution.ex-1: context logger says hello" in logs.lines("c1")


async def test_unserialisable_output_is_an_error_and_the_runner_carries_on(
    start: StartRunner,
) -> None:
    runner = await start("""
        class ServiceRunner:
            def bad(self):
                return {"when": object()}
            def good(self):
                return 1
    """)
    result = await runner.call("c1", "bad", {}, {})
    assert not result.ok
    assert result.error is not None
    assert result.error["type"] == "OutputNotSerializable"
    assert "not JSON-serialisable" in result.error["message"]
    assert (await runner.call("c2", "good", {}, {})).output == 1


async def test_output_over_the_frame_cap_is_an_error(start: StartRunner) -> None:
    runner = await start("""
        class ServiceRunner:
            def run(self):
                return "x" * (64 * 1024 * 1024)
    """)
    result = await runner.call("c1", "run", {}, {})
    assert result.error is not None
    assert result.error["type"] == "OutputTooLarge"
    assert (await runner.call("c2", "run", {}, {})).error is not None  # still serving


async def test_kill_while_a_call_is_pending_raises_runner_crashed(start: StartRunner) -> None:
    progress = ProgressLog()
    runner = await start(SLEEPER, on_progress=progress)
    call = asyncio.create_task(runner.call("c1", "run", {"seconds": 60}, {}))
    await progress.started.wait()
    runner.kill()
    with pytest.raises(RunnerCrashed):
        await call
    assert await runner.wait() == -9
    with pytest.raises(RunnerCrashed):
        await runner.call("c2", "run", {"seconds": 0}, {})


async def test_kill_fails_a_busy_call_at_once(start: StartRunner) -> None:
    # What the agent does at a thread-mode timeout: a pure-Python loop ignores everything else.
    progress = ProgressLog()
    runner = await start(
        """
        class ServiceRunner:
            def spin(self, progress):
                progress.update(progress=1)
                while True:
                    pass
        """,
        concurrency=2,
        on_progress=progress,
    )
    calls = [asyncio.create_task(runner.call(f"c{i}", "spin", {}, {})) for i in range(3)]
    await progress.started.wait()
    loop = asyncio.get_running_loop()
    killed_at = loop.time()
    runner.kill()
    for call in calls:  # two running, one queued in the runner
        with pytest.raises(RunnerCrashed, match="killed"):
            await call
    assert loop.time() - killed_at < 0.5
    assert await asyncio.wait_for(runner.wait(), 5) == -9
    assert not runner.kill_call("c0")  # thread mode never kills one call


async def test_a_child_that_dies_fails_its_pending_calls(start: StartRunner) -> None:
    progress = ProgressLog()
    runner = await start(SLEEPER, concurrency=2, on_progress=progress)
    sleeping = asyncio.create_task(runner.call("c1", "run", {"seconds": 60}, {}))
    await progress.started.wait()
    with pytest.raises(RunnerCrashed, match="code 7"):
        await runner.call("c2", "exit_now", {"code": 7}, {})
    with pytest.raises(RunnerCrashed):
        await sleeping
    assert await runner.wait() == 7


async def test_stop_waits_for_a_running_call(start: StartRunner) -> None:
    progress = ProgressLog()
    runner = await start(SLEEPER, on_progress=progress)
    call = asyncio.create_task(runner.call("c1", "run", {"seconds": 0.5}, {}))
    await progress.started.wait()
    await runner.stop(grace=30)
    result = await call
    assert result.output == "finished"
    assert await runner.wait() == 0
    await runner.stop(grace=30)  # idempotent
    with pytest.raises(RunnerCrashed):
        await runner.call("c2", "run", {"seconds": 0}, {})


async def test_stop_kills_a_call_that_outlives_the_grace(start: StartRunner) -> None:
    progress = ProgressLog()
    runner = await start(SLEEPER, on_progress=progress)
    call = asyncio.create_task(runner.call("c1", "run", {"seconds": 60}, {}))
    await progress.started.wait()
    await runner.stop(grace=0.2)
    with pytest.raises(RunnerCrashed):
        await call
    assert await runner.wait() == -9


async def test_terminate_drops_a_call_still_queued(start: StartRunner) -> None:
    progress = ProgressLog()
    runner = await start(SLEEPER, on_progress=progress)
    first = asyncio.create_task(runner.call("c1", "run", {"seconds": 0.5}, {}))
    await progress.started.wait()
    queued = asyncio.create_task(runner.call("c2", "run", {"seconds": 0}, {}))
    await asyncio.sleep(0)  # let the queued call's frame be written first
    runner.terminate("c2")
    dropped = await queued
    assert dropped.error is not None
    assert dropped.error["type"] == "CallTerminated"
    assert (await first).output == "finished"


async def test_the_child_sees_only_the_environment_it_is_given(
    start: StartRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPOOL_AGENT_SECRET", "broker-password")
    runner = await start("""
        import os
        class ServiceRunner:
            def run(self):
                return [os.environ.get("SPOOL_AGENT_SECRET"), os.environ.get("SPOOL_GIVEN")]
    """)
    assert (await runner.call("c1", "run", {}, {})).output == [None, "given"]


def test_the_runner_exits_promptly_when_the_agent_goes_away(tmp_path: Path) -> None:
    codebase = write_code(tmp_path, SLEEPER)
    child_in_r, parent_in_w = os.pipe()
    parent_out_r, child_out_w = os.pipe()
    command = [sys.executable, "-m", "spool_agent.runner", "--codebase", str(codebase)]
    command += ["--in-fd", str(child_in_r), "--out-fd", str(child_out_w)]
    with subprocess.Popen(command, pass_fds=(child_in_r, child_out_w), env=ENV) as child:
        os.close(child_in_r)
        os.close(child_out_w)
        with os.fdopen(parent_out_r, "rb") as out, os.fdopen(parent_in_w, "wb") as into:
            assert FrameDecoder().feed(out.read(4 + 16)) == [{"kind": "ready"}]
            into.write(encode_frame(Call("c1", "run", {"seconds": 60}, {}).to_frame()))
            into.flush()
            out.read(4)  # the call's first progress frame: it is running
        assert child.wait(timeout=10) == 4  # the sleeping call did not hold it


def test_the_client_works_on_uvloop_as_the_agent_runs_it(tmp_path: Path) -> None:
    async def scenario() -> tuple[CallResult, int, list[tuple[str, int, str | None]]]:
        progress = ProgressLog()
        runner = await start_runner(tmp_path, SLEEPER, on_progress=progress)
        result = await runner.call("c1", "run", {"seconds": 0}, {})
        progress.started.clear()
        crashing = asyncio.create_task(runner.call("c2", "run", {"seconds": 60}, {}))
        await progress.started.wait()
        runner.kill()
        with pytest.raises(RunnerCrashed):
            await crashing
        return result, await runner.wait(), progress.updates

    result, code, updates = uvloop.run(scenario())
    assert result.output == "finished"
    assert code == -9
    assert updates == [("c1", 1, None), ("c2", 1, None)]
