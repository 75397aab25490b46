"""Process mode (`run_execution_as_process`): a child forked from the runner per call."""

from __future__ import annotations

import asyncio
import os
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from spool_agent.protocol import DONE_LINE, LogLine
from spool_agent.runner_client import CallResult, Runner, RunnerCrashed

pytestmark = pytest.mark.integration

StartRunner = Callable[..., Awaitable[Runner]]

SOURCE = """
    import os, signal, sys, time
    class ServiceRunner:
        def __init__(self):
            self.model = {"weights": [1, 2, 3], "loaded_in": os.getpid()}
            print("model loaded")
        def run(self):
            print("hello from the child")
            print("and its stderr", file=sys.stderr)
            return {"model": self.model, "pid": os.getpid(), "parent": os.getppid()}
        def grow(self):
            self.model["weights"].append(4)  # in this call's copy only
            return self.model["weights"]
        def window(self, seconds):
            started = time.time()
            time.sleep(seconds)
            return [started, time.time()]
        def hang(self, progress):
            progress.update(progress=1, message=str(os.getpid()))
            time.sleep(60)
        def exit_now(self, code):
            print("leaving")
            os._exit(code)
        def segfault(self):
            os.kill(os.getpid(), signal.SIGSEGV)
        def spawn_and_hang(self, progress):
            grandchild = os.fork()
            if grandchild == 0:
                time.sleep(60)
                os._exit(0)
            progress.update(progress=1, message=str(grandchild))
            time.sleep(60)
"""


class Watch:
    """Collects log lines and progress messages (the pids the calls report)."""

    def __init__(self) -> None:
        self.lines: dict[str, list[str]] = {}
        self.messages: asyncio.Queue[str] = asyncio.Queue()

    def on_log(self, call_id: str, lines: list[LogLine]) -> None:
        self.lines.setdefault(call_id, []).extend(line.line for line in lines)

    def on_progress(self, call_id: str, percent: int, message: str | None) -> None:
        self.messages.put_nowait(message or "")


@pytest.fixture
def watch() -> Watch:
    return Watch()


@pytest.fixture
async def start(tmp_path: Path, watch: Watch) -> AsyncIterator[StartRunner]:
    runners: list[Runner] = []
    codebase = tmp_path / "code"
    codebase.mkdir()
    (codebase / "main.py").write_text(textwrap.dedent(SOURCE))

    async def _start(**overrides: Any) -> Runner:
        options: dict[str, Any] = {
            "codebase": codebase,
            "entry_point": "main.py",
            "class_name": "ServiceRunner",
            "init_params": {},
            "concurrency": 2,
            "env": {"PATH": os.environ.get("PATH", "")},
            "log_file": tmp_path / "runner.log",
            "init_timeout": 30.0,
            "run_execution_as_process": True,
            "on_log": watch.on_log,
            "on_progress": watch.on_progress,
        }
        runner = await Runner.start(**(options | overrides))
        runners.append(runner)
        return runner

    yield _start
    for runner in runners:
        runner.kill()
        await runner.wait()


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper that may never come is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


async def gone(pid: int, within: float = 5.0) -> bool:
    for _ in range(int(within / 0.02)):
        if not alive(pid):
            return True
        await asyncio.sleep(0.02)
    return False


def error_of(result: CallResult) -> tuple[str, str]:
    assert result.error is not None, result
    return result.error["type"], result.error["message"]


async def test_each_call_runs_in_its_own_child_sharing_what_init_loaded(
    start: StartRunner, watch: Watch, tmp_path: Path
) -> None:
    runner = await start()
    first = (await runner.call("c1", "run", {}, {})).output
    second = (await runner.call("c2", "run", {}, {})).output
    assert isinstance(first, dict)
    assert isinstance(second, dict)
    assert first["model"] == {"weights": [1, 2, 3], "loaded_in": runner.pid}
    assert first["parent"] == second["parent"] == runner.pid
    assert len({first["pid"], second["pid"], runner.pid}) == 3
    assert watch.lines["c1"] == ["hello from the child", "and its stderr", DONE_LINE]
    assert "model loaded" in (tmp_path / "runner.log").read_text()
    # a call's changes die with its child: the next call starts from the runner's state
    assert (await runner.call("c3", "grow", {}, {})).output == [1, 2, 3, 4]
    assert (await runner.call("c4", "grow", {}, {})).output == [1, 2, 3, 4]


async def test_concurrency_bounds_the_children_running_at_once(start: StartRunner) -> None:
    runner = await start(concurrency=2)
    results = await asyncio.gather(
        *(runner.call(f"c{i}", "window", {"seconds": 0.4}, {}) for i in range(4))
    )
    windows: list[list[float]] = [r.output for r in results]  # type: ignore[misc]
    edges = sorted([(s, 1) for s, _ in windows] + [(e, -1) for _, e in windows])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    assert peak == 2


async def test_terminate_kills_the_child(start: StartRunner, watch: Watch) -> None:
    runner = await start()
    call = asyncio.create_task(runner.call("c1", "hang", {}, {}))
    child = int(await watch.messages.get())
    runner.terminate("c1")
    result = await asyncio.wait_for(call, 5)
    assert error_of(result)[0] == "Terminated"
    assert "killed" in error_of(result)[1]
    assert await gone(child)
    assert watch.lines["c1"] == [DONE_LINE]
    assert (await runner.call("c2", "run", {}, {})).ok  # the runner carries on


async def test_a_grandchild_the_call_forked_is_killed_with_it(
    start: StartRunner, watch: Watch
) -> None:
    runner = await start()
    call = asyncio.create_task(runner.call("c1", "spawn_and_hang", {}, {}))
    grandchild = int(await watch.messages.get())
    assert alive(grandchild)
    runner.terminate("c1")
    assert error_of(await asyncio.wait_for(call, 5))[0] == "Terminated"
    assert await gone(grandchild)


@pytest.mark.parametrize(
    ("function", "kwargs", "message"),
    [
        ("exit_now", {"code": 3}, "exit status 3"),
        ("exit_now", {"code": 0}, "exit status 0"),
        ("segfault", {}, "SIGSEGV (exit status -11)"),
    ],
)
async def test_a_child_that_dies_without_a_result_is_process_died(
    start: StartRunner, watch: Watch, function: str, kwargs: dict[str, object], message: str
) -> None:
    runner = await start()
    result = await runner.call("c1", function, kwargs, {})
    kind, text = error_of(result)
    assert kind == "ProcessDied"
    assert message in text
    assert watch.lines["c1"][-1] == DONE_LINE
    assert (await runner.call("c2", "run", {}, {})).ok


async def test_kill_call_kills_only_that_call(start: StartRunner, watch: Watch) -> None:
    runner = await start(concurrency=2)
    hanging = asyncio.create_task(runner.call("c1", "hang", {}, {}))
    child = int(await watch.messages.get())
    other = asyncio.create_task(runner.call("c2", "window", {"seconds": 0.3}, {}))
    assert runner.kill_call("c1")
    assert not runner.kill_call("no-such-call")
    assert error_of(await asyncio.wait_for(hanging, 5))[0] == "Terminated"
    assert (await other).ok
    assert await gone(child)
    assert not runner.kill_call("c1")  # over


async def test_kill_call_works_while_the_runner_drains(start: StartRunner, watch: Watch) -> None:
    runner = await start()
    call = asyncio.create_task(runner.call("c1", "hang", {}, {}))
    await watch.messages.get()
    stopping = asyncio.create_task(runner.stop(grace=30))
    await asyncio.sleep(0.05)  # the shutdown frame is out: no new calls
    assert runner.kill_call("c1")
    assert error_of(await asyncio.wait_for(call, 5))[0] == "Terminated"
    await asyncio.wait_for(stopping, 5)
    assert await runner.wait() == 0  # drained, not killed


async def test_kill_takes_the_children_and_their_children_along(
    start: StartRunner, watch: Watch
) -> None:
    runner = await start()
    call = asyncio.create_task(runner.call("c1", "spawn_and_hang", {}, {}))
    grandchild = int(await watch.messages.get())
    runner.kill()
    assert not runner.kill_call("c1")
    with pytest.raises(RunnerCrashed):
        await asyncio.wait_for(call, 1)
    assert await runner.wait() == -9
    assert await gone(grandchild)
