"""LocalServiceRunner: every example run in-process as a replica would run it, and the edges
of the contract (init params, progress, context, entity inputs, errors, the debugger)."""

from __future__ import annotations

import io
import os
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from spool.local import LocalServiceRunner, OutputError, ProgressUpdate, read_package
from spool.runner import TERMINATION_MESSAGE, Dataset, Item
from spool_common.errors import ValidationFailure

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
IMAGE = {
    "id": "i-1",
    "name": "cat.jpg",
    "dir": "/incoming",
    "metadata": {"system": {"mimetype": "image/jpeg", "size": 2048}},
}


class Clock:
    """time.sleep, faked: records each nap; `on_sleep` may act (stop the call, terminate)."""

    def __init__(self) -> None:
        self.naps: list[float] = []
        self.on_sleep: Any = None

    def sleep(self, seconds: float) -> None:
        self.naps.append(seconds)
        if self.on_sleep is not None:
            self.on_sleep(seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(time, "sleep", fake.sleep)
    return fake


def _package(root: Path, main: str, manifest: dict[str, Any] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "main.py").write_text(textwrap.dedent(main))
    if manifest is not None:
        (root / "package.json").write_bytes(orjson.dumps(manifest))
    return root


def _manifest(functions: list[dict[str, Any]], **module: Any) -> dict[str, Any]:
    return {"name": "t", "modules": [{"name": "default_module", "functions": functions, **module}]}


# --- the examples ------------------------------------------------------------------------


def test_hello_greets() -> None:
    assert LocalServiceRunner(EXAMPLES / "hello").run("run", {"name": "world"}) == "hello world"


def test_image_pipeline_gets_the_item_reports_progress_and_sees_its_trigger(clock: Clock) -> None:
    runner = LocalServiceRunner(EXAMPLES / "image-pipeline")
    event = {"resource": "Item", "action": "Created", "entity": IMAGE}
    output = runner.run("describe", {"item": IMAGE}, trigger_id="t-1", event=event)
    assert output == {
        "itemId": "i-1",
        "name": "cat.jpg",
        "mimetype": "image/jpeg",
        "size": 2048,
        "steps": ["read", "thumbnail", "classify", "write back"],
        "triggerId": "t-1",
        "action": "Created",
    }
    assert [(u.progress, u.message) for u in runner.progress_updates] == [
        (0, "started on cat.jpg"),
        (25, "read"),
        (50, "thumbnail"),
        (75, "classify"),
        (100, "write back"),
    ]
    assert [u.recorded for u in runner.progress_updates] == [False, True, True, True, True]
    assert clock.naps == [0.2] * 4


def test_cron_job_builds_its_instance_once_and_counts_ticks() -> None:
    runner = LocalServiceRunner(EXAMPLES / "cron-job")
    first = runner.run("tick", {"config": {"report": "heartbeat"}}, trigger_id="cron-1")
    second = runner.run("tick", {"config": {"report": "heartbeat"}})
    assert (first["tick"], first["report"], first["triggerId"]) == (1, "heartbeat", "cron-1")
    assert (second["tick"], second["triggerId"]) == (2, None)


@pytest.fixture
def checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    monkeypatch.setenv("CHECKPOINT_DIR", str(folder))
    return folder


def test_long_job_runs_its_steps_with_progress(clock: Clock, checkpoints: Path) -> None:
    runner = LocalServiceRunner(EXAMPLES / "long-job")
    output = runner.run("run", {"steps": 4, "step_seconds": 0.1})
    assert output == {"steps": 4, "attempt": 1, "resumedAfterStep": 0}
    assert [u.progress for u in runner.progress_updates] == [25, 50, 75, 100]
    assert list(checkpoints.iterdir()) == []  # removed once done


class Stopped(BaseException):
    """What the platform's timeout does to a stalled attempt (it kills the runner)."""


def test_long_job_resumes_from_its_checkpoint_after_a_stalled_attempt(
    clock: Clock, checkpoints: Path
) -> None:
    def stop_the_stall(seconds: float) -> None:
        if seconds > 60:
            raise Stopped

    clock.on_sleep = stop_the_stall
    inputs = {"steps": 6, "step_seconds": 0.1, "stall_first_attempt": True}
    with pytest.raises(Stopped):
        LocalServiceRunner(EXAMPLES / "long-job").run("run", inputs, execution_id="e-1")
    retry = LocalServiceRunner(EXAMPLES / "long-job")  # a fresh runner, as after the reset
    assert retry.run("run", inputs, execution_id="e-1", attempt=2) == {
        "steps": 6,
        "attempt": 2,
        "resumedAfterStep": 3,
    }
    assert [u.progress for u in retry.progress_updates] == [50, 66, 83, 100]


def test_long_job_fails_at_the_step_asked_with_its_own_exception(
    clock: Clock, checkpoints: Path
) -> None:
    runner = LocalServiceRunner(EXAMPLES / "long-job")
    with pytest.raises(RuntimeError, match="step 3 of 10 failed on purpose") as failure:
        runner.run("run", {"fail_at_step": 3, "step_seconds": 0.1})
    assert failure.traceback[-1].path == EXAMPLES / "long-job" / "main.py"
    assert [u.progress for u in runner.progress_updates] == [10, 20]


def test_long_job_stops_once_terminated(clock: Clock, checkpoints: Path) -> None:
    runner = LocalServiceRunner(EXAMPLES / "long-job")
    clock.on_sleep = lambda _: runner.terminate() if len(clock.naps) == 2 else None
    with pytest.raises(InterruptedError, match=TERMINATION_MESSAGE):
        runner.run("run", {"steps": 5, "step_seconds": 0.1})
    assert [u.progress for u in runner.progress_updates] == [20]  # step 2's update raised


@pytest.fixture
def vader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A stand-in for the vaderSentiment package, which the platform installs from
    requirements.txt (unit tests do not reach PyPI; tests/e2e/test_examples.py uses the real
    one)."""
    package = tmp_path / "site" / "vaderSentiment"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "vaderSentiment.py").write_text(
        textwrap.dedent("""
        class SentimentIntensityAnalyzer:
            def polarity_scores(self, text):
                score = 0.6 if "great" in text else -0.6 if "awful" in text else 0.1
                return {"compound": score}
        """)
    )
    monkeypatch.syspath_prepend(str(package.parent))
    yield
    for name in [n for n in sys.modules if n.startswith("vaderSentiment")]:
        del sys.modules[name]


def test_model_service_loads_its_model_once_with_its_init_params(
    vader: None, capsys: pytest.CaptureFixture[str]
) -> None:
    runner = LocalServiceRunner(EXAMPLES / "model-service", init_params={"threshold": 0.3})
    answers = [runner.run("predict", {"text": t}) for t in ("great", "awful", "fine")]
    assert [a["sentiment"] for a in answers] == ["positive", "negative", "neutral"]
    assert [(a["inits"], a["calls"], a["threshold"]) for a in answers] == [
        (1, 1, 0.3),
        (1, 2, 0.3),
        (1, 3, 0.3),
    ]
    assert len({a["instance"] for a in answers}) == 1
    assert capsys.readouterr().out.count("model loaded") == 1


def test_model_service_init_params_are_checked_and_defaulted(vader: None) -> None:
    with pytest.raises(ValidationFailure, match=r"initParams\.threshold"):
        LocalServiceRunner(EXAMPLES / "model-service", init_params={"threshold": "high"})
    with pytest.raises(ValidationFailure, match=r"initParams\.size"):
        LocalServiceRunner(EXAMPLES / "model-service", init_params={"size": 3})
    default = LocalServiceRunner(EXAMPLES / "model-service")
    assert default.run("predict", {"text": "fine"})["threshold"] == 0.05  # __init__'s default


# --- edges of the contract ---------------------------------------------------------------

ECHO = """
    import os
    import time

    import spool

    class ServiceRunner(spool.BaseServiceRunner):
        def __init__(self, greeting="hi"):
            self.greeting = greeting
            self.cwd = os.getcwd()

        def items(self, item, items, dataset, config):
            return {"item": [type(item).__name__, isinstance(item, spool.Item), item.id],
                    "items": [i.id for i in items], "dataset": dataset, "config": config,
                    "itemId": item.item_id}

        def plain(self, name):
            return f"{self.greeting} {name}"

        def both(self, name, progress, context):
            progress.update(progress=3, message="a small step")
            progress.update(progress=7)
            progress.update(progress=250)
            return {"execution": context.execution_id, "service": context.service_id,
                    "trigger": context.trigger_id, "event": context.event,
                    "terminated": context.terminated, "cwd": self.cwd}

        def entity_back(self, item):
            return {"same": item}

        def not_json(self):
            return object()

        def boom(self, name):
            raise KeyError(name)

        def patient(self):
            for _ in range(3):
                self.kill_event()
                time.sleep(1)
            return "finished"
"""

ECHO_FUNCTIONS: list[dict[str, Any]] = [
    {
        "name": "items",
        "input": [
            {"name": "item", "type": "Item"},
            {"name": "items", "type": "Item[]"},
            {"name": "dataset", "type": "Dataset"},
            {"name": "config", "type": "Json"},
        ],
    },
    {"name": "plain", "input": [{"name": "name", "type": "String"}]},
    {"name": "both", "input": [{"name": "name", "type": "String"}]},
    {"name": "entity_back", "input": [{"name": "item", "type": "Item"}]},
    {"name": "not_json"},
    {"name": "boom", "input": [{"name": "name", "type": "String"}]},
    {"name": "patient"},
]


@pytest.fixture
def echo(tmp_path: Path) -> Path:
    init = [{"name": "greeting", "type": "String"}]
    return _package(tmp_path / "echo", ECHO, _manifest(ECHO_FUNCTIONS, initInputs=init))


def test_entity_inputs_arrive_as_sdk_entities_and_json_as_is(echo: Path) -> None:
    inputs = {
        "item": {"item_id": "i-1", "dataset_id": "d-1"},
        "items": ["i-2", {"id": "i-3"}],
        "dataset": "d-1",
        "config": {"id": "not an entity"},
    }
    output = LocalServiceRunner(echo).run("items", inputs)
    assert output["item"] == ["Item", True, "i-1"]
    assert output["items"] == ["i-2", "i-3"]
    assert isinstance(output["dataset"], Dataset)
    assert output["dataset"].id == "d-1"
    assert output["config"] == {"id": "not an entity"}
    assert output["itemId"] == "i-1"


def test_progress_and_context_are_given_to_a_function_that_names_them(echo: Path) -> None:
    runner = LocalServiceRunner(echo)
    event = {"resource": "Item", "action": "Created"}
    output = runner.run("both", {"name": "x"}, execution_id="e-9", trigger_id="t-9", event=event)
    assert output == {
        "execution": "e-9",
        "service": "local",
        "trigger": "t-9",
        "event": event,
        "terminated": False,
        "cwd": str(echo),  # __init__ ran in the codebase folder, as on a replica
    }
    assert runner.progress_updates == [
        ProgressUpdate(3, "a small step", recorded=False),
        ProgressUpdate(7, None, recorded=True),
        ProgressUpdate(100, None, recorded=True),  # clamped
    ]
    assert os.getcwd() != str(echo)  # and the current folder is back


def test_init_params_reach_init_once(echo: Path) -> None:
    runner = LocalServiceRunner(echo, init_params={"greeting": "hello"})
    assert runner.run("plain", {"name": "a"}) == "hello a"
    first = runner.instance
    assert runner.run("plain", {"name": "b"}) == "hello b"
    assert runner.instance is first


def test_the_output_is_what_the_platform_stores(echo: Path) -> None:
    runner = LocalServiceRunner(echo)
    returned = runner.run("entity_back", {"item": "i-1"})
    assert isinstance(returned["same"], Item)
    assert runner.output == {"same": {"id": "i-1", "item_id": "i-1"}}
    with pytest.raises(OutputError, match="not JSON-serialisable"):
        runner.run("not_json")


def test_kill_event_raises_once_the_local_call_is_terminated(echo: Path, clock: Clock) -> None:
    runner = LocalServiceRunner(echo)
    clock.on_sleep = lambda _: runner.terminate()  # as if a user terminated it meanwhile
    with pytest.raises(InterruptedError, match=TERMINATION_MESSAGE) as stopped:
        runner.run("patient")
    assert stopped.traceback[-1].name == "kill_event"
    assert clock.naps == [1]
    clock.on_sleep = None
    assert runner.run("patient") == "finished"  # the next call starts afresh


def test_exceptions_propagate_unchanged(echo: Path) -> None:
    with pytest.raises(KeyError, match="lost"):
        LocalServiceRunner(echo).run("boom", {"name": "lost"})


@pytest.mark.parametrize(
    ("function", "inputs", "field"),
    [
        ("nope", {}, "functionName"),
        ("plain", {"name": "a", "extra": 1}, "input.extra"),
        ("plain", {"name": 3}, "input.name"),
        ("items", {"item": 5, "items": [], "dataset": "d", "config": 1}, "input.item"),
    ],
)
def test_bad_calls_are_refused_as_the_gateway_refuses_them(
    echo: Path, function: str, inputs: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationFailure) as failure:
        LocalServiceRunner(echo).run(function, inputs)
    assert failure.value.errors[0].field == field


def test_a_package_without_package_json_has_its_modules_found_in_the_sources(
    tmp_path: Path,
) -> None:
    root = _package(
        tmp_path / "bare", "class ServiceRunner:\n    def run(self):\n        return 1\n"
    )
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "junk.py").write_text("this is not python")
    package = read_package(root)
    assert [f.name for f in package.modules[0].functions] == ["run"]
    assert LocalServiceRunner(root).run() == 1


def test_a_package_the_platform_would_refuse_is_refused(tmp_path: Path) -> None:
    manifest = _manifest([{"name": "missing"}])
    root = _package(tmp_path / "bad", "class ServiceRunner:\n    pass\n", manifest)
    with pytest.raises(ValidationFailure, match="missing"):
        LocalServiceRunner(root)


def test_a_custom_debugger_runs_the_function_with_its_arguments(echo: Path) -> None:
    seen: list[tuple[str, list[str]]] = []

    def debugger(function: Any, kwargs: dict[str, Any]) -> Any:
        seen.append((function.__name__, sorted(kwargs)))
        return function(**kwargs)

    output = LocalServiceRunner(echo).run("both", {"name": "x"}, debugger=debugger)
    assert output["terminated"] is False
    assert seen == [("both", ["context", "name", "progress"])]


def test_the_pdb_debugger_stops_in_the_function(
    echo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PYTHONBREAKPOINT", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO("p name * 2\ncontinue\n"))
    assert LocalServiceRunner(echo).run("plain", {"name": "ab"}, debugger=True) == "hi ab"
    shown = capsys.readouterr().out
    assert "main.py" in shown
    assert "'abab'" in shown  # pdb evaluated `name * 2` inside plain()


def test_pythonbreakpoint_0_runs_without_a_debugger(
    echo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONBREAKPOINT", "0")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # a debugger would have nothing to read
    with pytest.raises(KeyError, match="x"):
        LocalServiceRunner(echo).run("boom", {"name": "x"}, debugger=True)
