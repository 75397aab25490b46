"""What user code sees inside a call, and what the agent gets back, with a real runner child:
entity inputs, per-call logs, the output limit, terminate in thread mode."""

from __future__ import annotations

import asyncio
import os
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from spool_agent.protocol import DONE_LINE, LogLine, LogStream
from spool_agent.runner_client import Runner

pytestmark = pytest.mark.integration

StartRunner = Callable[..., Awaitable[Runner]]
MIB = 1024 * 1024
LIMIT_MESSAGE = (
    "The function execution was successful, but the output couldn't be saved because it was "
    "larger than the maximum size allowed of 4.0MB"
)


class Logs:
    """Collects log and progress callbacks; `progressed` is set by each progress update."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[LogLine]]] = []
        self.progressed = asyncio.Event()

    def on_log(self, call_id: str, lines: list[LogLine]) -> None:
        self.batches.append((call_id, lines))

    def on_progress(self, call_id: str, percent: int, message: str | None) -> None:
        self.progressed.set()

    def of(self, call_id: str) -> list[tuple[LogStream, str]]:
        batches = [lines for cid, lines in self.batches if cid == call_id]
        return [(line.stream, line.line) for lines in batches for line in lines]

    def text(self, call_id: str) -> list[str]:
        return [line for _, line in self.of(call_id)]


@pytest.fixture
def logs() -> Logs:
    return Logs()


@pytest.fixture
async def start(tmp_path: Path, logs: Logs) -> AsyncIterator[StartRunner]:
    runners: list[Runner] = []

    async def _start(source: str, **overrides: Any) -> Runner:
        codebase = tmp_path / "code"
        codebase.mkdir(exist_ok=True)
        (codebase / "main.py").write_text(textwrap.dedent(source))
        options: dict[str, Any] = {
            "codebase": codebase,
            "entry_point": "main.py",
            "class_name": "ServiceRunner",
            "init_params": {},
            "concurrency": 1,
            "env": {"PATH": os.environ.get("PATH", "")},
            "log_file": tmp_path / "runner.log",
            "init_timeout": 30.0,
            "on_log": logs.on_log,
            "on_progress": logs.on_progress,
        }
        runner = await Runner.start(**(options | overrides))
        runners.append(runner)
        return runner

    yield _start
    for runner in runners:
        runner.kill()
        await runner.wait()


# --- entity inputs ------------------------------------------------------------------------

ENTITIES = """
    class ServiceRunner:
        def run(self, item, items, dataset, config):
            return {
                "item": [type(item).__name__, item.type, item.id, item.dataset_id, item.name],
                "repr": repr(item),
                "items": [[type(i).__name__, i.type, i.item_id] for i in items],
                "dataset": [dataset.type, dataset.id],
                "config": [type(config).__name__, config],
                "returned": [item, items[0]],
            }
"""
ITEM = {"id": "i1", "item_id": "i1", "dataset_id": "d1", "name": "cat.jpg"}
INPUT: dict[str, object] = {
    "item": ITEM,
    "items": [{"id": "i2", "item_id": "i2"}, {"id": "i3", "item_id": "i3"}],
    "dataset": {"id": "d1", "dataset_id": "d1"},
    "config": {"item_id": "looks like an entity but is Json"},
}
TYPES = {"item": "Item", "items": "Item[]", "dataset": "Dataset", "config": "Json"}


async def test_entity_inputs_arrive_as_entities_with_their_fields(start: StartRunner) -> None:
    runner = await start(ENTITIES)
    result = await runner.call("c1", "run", INPUT, {}, types=TYPES)
    assert result.error is None
    assert result.output == {
        "item": ["Item", "Item", "i1", "d1", "cat.jpg"],  # spool.Item, an Entity
        "repr": "Item(id='i1', item_id='i1', dataset_id='d1', name='cat.jpg')",
        "items": [["Item", "Item", "i2"], ["Item", "Item", "i3"]],
        "dataset": ["Dataset", "d1"],
        "config": ["dict", {"item_id": "looks like an entity but is Json"}],
        "returned": [ITEM, {"id": "i2", "item_id": "i2"}],  # entities come back as their JSON
    }


async def test_without_types_inputs_stay_as_sent(start: StartRunner) -> None:
    runner = await start("""
        class ServiceRunner:
            def run(self, item):
                return type(item).__name__
    """)
    assert (await runner.call("c1", "run", {"item": ITEM}, {})).output == "dict"


# --- per-call logs ------------------------------------------------------------------------

LOGGING = """
    import logging, sys, threading
    print("printed in init")
    both_running = threading.Barrier(2, timeout=10)
    class ServiceRunner:
        def run(self, name):
            print(f"out {name}")
            both_running.wait()
            print(f"err {name}", file=sys.stderr)
            logging.getLogger("user").warning("log %s", name)
            helper = threading.Thread(target=print, args=(f"helper thread {name}",))
            helper.start()
            helper.join()
            print(f"tail {name}", end="")
            return name
"""


async def test_two_concurrent_calls_each_get_their_own_lines(
    start: StartRunner, logs: Logs, tmp_path: Path
) -> None:
    runner = await start(LOGGING, concurrency=2)
    results = await asyncio.gather(
        runner.call("a", "run", {"name": "a"}, {}), runner.call("b", "run", {"name": "b"}, {})
    )
    assert [r.output for r in results] == ["a", "b"]
    for name in "ab":
        assert logs.of(name) == [
            (LogStream.STDOUT, f"out {name}"),
            (LogStream.STDERR, f"err {name}"),
            (LogStream.LOG, f"WARNING user: log {name}"),
            (LogStream.STDOUT, f"tail {name}"),
            (LogStream.LOG, DONE_LINE),
        ]
    replica_log = (tmp_path / "runner.log").read_text()
    assert "printed in init" in replica_log
    assert "helper thread a" in replica_log  # a thread the call starts is not the call
    assert all("printed in init" not in line for _, line in logs.of("a") + logs.of("b"))


async def test_lines_stream_while_the_call_runs_in_batches(start: StartRunner, logs: Logs) -> None:
    runner = await start(
        """
        import threading
        go_on = threading.Event()
        class ServiceRunner:
            def run(self, progress):
                for i in range(120):
                    print(i)
                progress.update(progress=1)
                go_on.wait(10)
                return "done"
            def release(self):
                go_on.set()
    """,
        concurrency=2,
    )
    call = asyncio.create_task(runner.call("c1", "run", {}, {}))
    await logs.progressed.wait()
    for _ in range(100):  # the last 20 lines are sent within ~100 ms, not at the end
        if len(logs.text("c1")) == 120:
            break
        await asyncio.sleep(0.01)
    assert logs.text("c1") == [str(i) for i in range(120)]
    assert not call.done()
    await runner.call("c2", "release", {}, {})
    assert (await call).output == "done"
    sizes = [len(lines) for cid, lines in logs.batches if cid == "c1"]
    assert max(sizes) <= 50
    assert logs.text("c1")[-1] == DONE_LINE


async def test_a_failed_call_ends_its_log_with_the_done_line(
    start: StartRunner, logs: Logs
) -> None:
    runner = await start("""
        class ServiceRunner:
            def run(self):
                print("about to fail")
                raise ValueError("boom")
    """)
    result = await runner.call("c1", "run", {}, {})
    assert result.error is not None
    assert logs.text("c1") == ["about to fail", DONE_LINE]


async def test_a_line_that_is_not_utf8_is_escaped_not_lost(start: StartRunner, logs: Logs) -> None:
    runner = await start("""
        class ServiceRunner:
            def run(self):
                print("lone \\udc80 surrogate")
                print("next")
                return "ok"
    """)
    assert (await runner.call("c1", "run", {}, {})).output == "ok"
    assert logs.text("c1") == ["lone \\udc80 surrogate", "next", DONE_LINE]


# --- output limit -------------------------------------------------------------------------

OUTPUTS = """
    class ServiceRunner:
        def run(self, size):
            return "x" * size  # its JSON is two bytes longer: the quotes
"""


@pytest.mark.parametrize(
    ("size", "error"),
    [(4 * MIB - 2, None), (4 * MIB - 1, LIMIT_MESSAGE)],
    ids=["exactly-4MiB", "one-byte-over"],
)
async def test_output_over_the_limit_fails_with_dtlpys_message(
    start: StartRunner, size: int, error: str | None
) -> None:
    runner = await start(OUTPUTS)
    result = await runner.call("c1", "run", {"size": size}, {})
    if error is None:
        assert result.ok
        assert isinstance(result.output, str)
        assert len(result.output) == size
    else:
        assert not result.ok
        assert result.error == {"type": "OutputTooLarge", "message": error, "traceback": ""}


async def test_the_output_limit_is_a_runner_argument(start: StartRunner) -> None:
    runner = await start(OUTPUTS, max_output_bytes=MIB)
    result = await runner.call("c1", "run", {"size": MIB}, {})
    assert result.error is not None
    assert result.error["message"].endswith("maximum size allowed of 1.0MB")


# --- terminate, thread mode ---------------------------------------------------------------

BUSY = """
    import time
    class ServiceRunner:
        def spin(self, progress):
            progress.update(progress=1)
            while True:
                pass
        def cooperative(self, progress, context):
            progress.update(progress=1)
            try:
                while True:
                    pass
            except InterruptedError as e:
                print(f"thread got: {e}")
            print(f"terminated: {context.terminated}")
            try:
                progress.update(progress=50)
            except InterruptedError as e:
                print(f"update raised: {e}")
            context.raise_if_terminated()
            return "not reached"
        def nap(self, progress):
            progress.update(progress=1)
            time.sleep(1)
            return "woke up"
        def hello(self):
            return "hello"
"""


async def test_terminate_interrupts_a_busy_python_loop(start: StartRunner, logs: Logs) -> None:
    runner = await start(BUSY)
    call = asyncio.create_task(runner.call("c1", "spin", {}, {}))
    await logs.progressed.wait()
    runner.terminate("c1")
    result = await asyncio.wait_for(call, 5)
    assert result.error is not None
    assert result.error["type"] == "Terminated"
    assert "termination signal" in result.error["message"]
    assert "while True" in result.error["traceback"]  # where it was interrupted
    assert logs.text("c1") == [DONE_LINE]
    # the only pool thread survived and serves the next call
    assert (await runner.call("c2", "hello", {}, {})).output == "hello"


async def test_terminated_code_sees_the_flag_and_progress_update_raises(
    start: StartRunner, logs: Logs
) -> None:
    runner = await start(BUSY)
    call = asyncio.create_task(runner.call("c1", "cooperative", {}, {}))
    await logs.progressed.wait()
    runner.terminate("c1")
    result = await asyncio.wait_for(call, 5)
    assert result.error is not None
    assert result.error["type"] == "Terminated"
    assert logs.text("c1") == [
        "thread got: Execution received termination signal",
        "terminated: True",
        "update raised: Execution received termination signal",
        DONE_LINE,
    ]


async def test_a_blocking_c_call_is_interrupted_only_when_it_returns(
    start: StartRunner, logs: Logs
) -> None:
    runner = await start(BUSY)
    loop = asyncio.get_running_loop()
    call = asyncio.create_task(runner.call("c1", "nap", {}, {}))
    await logs.progressed.wait()
    terminated_at = loop.time()
    runner.terminate("c1")
    result = await asyncio.wait_for(call, 5)
    assert result.error is not None
    assert result.error["type"] == "Terminated"
    assert loop.time() - terminated_at > 0.5  # time.sleep(1) ran to its end first


async def test_terminate_still_works_while_the_runner_drains(
    start: StartRunner, logs: Logs
) -> None:
    runner = await start(BUSY)
    call = asyncio.create_task(runner.call("c1", "spin", {}, {}))
    await logs.progressed.wait()
    stopping = asyncio.create_task(runner.stop(grace=30))
    await asyncio.sleep(0.05)  # the shutdown frame is out: the runner is draining
    runner.terminate("c1")
    result = await asyncio.wait_for(call, 5)
    assert result.error is not None
    assert result.error["type"] == "Terminated"
    await asyncio.wait_for(stopping, 5)
    assert await runner.wait() == 0


async def test_terminating_calls_that_log_never_wedges_the_runner(start: StartRunner) -> None:
    # An exception landing just after logging took its module lock would leave it held, and
    # every later call that logs would hang: the runner must not inject it there.
    runner = await start(
        """
        import logging, time
        class ServiceRunner:
            def run(self, seconds):
                end = time.perf_counter() + seconds
                while time.perf_counter() < end:
                    logging.getLogger("busy").debug("tick")
                    print("tick")
                return "done"
        """,
        concurrency=3,
    )

    async def terminated_soon(i: int) -> None:
        call = asyncio.create_task(runner.call(f"c{i}", "run", {"seconds": 0.01}, {}))
        await asyncio.sleep((i % 12) / 1000)
        runner.terminate(f"c{i}")
        await asyncio.wait_for(call, 5)

    for batch in range(10):
        await asyncio.gather(*(terminated_soon(batch * 6 + k) for k in range(6)))
    final = await asyncio.wait_for(runner.call("last", "run", {"seconds": 0.01}, {}), 5)
    assert final.output == "done"
