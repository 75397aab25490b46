"""The user-code side of the SDK against what the agent really passes: its `progress` and
`context` objects satisfy `spool.Progress` and `spool.Context`, its entities are instances of
`spool.Item`..., and `kill_event()` raises in a call the agent has terminated."""

from __future__ import annotations

import logging
from typing import Any, cast

import pytest

from spool.runner import (
    TERMINATION_MESSAGE,
    BaseServiceRunner,
    Context,
    Dataset,
    Entity,
    Item,
    Model,
    Progress,
)
from spool_agent import protocol
from spool_agent.entities import EntityType, convert_inputs
from spool_agent.runner_calls import CallContextView, ProgressReporter, execute
from spool_agent.runner_output import Outbox, bind
from spool_agent.runner_state import CallState


class _Frames:
    """Takes the frames `progress.update` sends, in place of the runner's outbox."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    def frame(self, frame: dict[str, Any]) -> None:
        self.frames.append(frame)


def _state() -> CallState:
    return CallState("c1", in_thread=False)


def test_the_agents_progress_is_a_spool_progress() -> None:
    frames = _Frames()
    logger = logging.getLogger("test")
    progress: Progress = ProgressReporter(cast(Outbox, frames), _state(), logger)  # mypy checks
    assert isinstance(progress, Progress)
    progress.update(status="inProgress", progress=40, message="m", output=None, duration=1.0)
    assert [(f["percent"], f["message"]) for f in frames.frames] == [(40, "m")]
    assert progress.logger is logger


def test_the_agents_context_is_a_spool_context() -> None:
    fields = {"execution_id": "e1", "service_id": "s1", "trigger_id": "t1", "event": {"a": 1}}
    state = _state()
    context: Context = CallContextView(fields, state, logging.getLogger("test"))  # mypy checks
    assert isinstance(context, Context)
    assert (context.execution_id, context.service_id, context.trigger_id) == ("e1", "s1", "t1")
    assert context.event == {"a": 1}
    assert context.terminated is False
    state.terminate()
    assert context.terminated is True
    with pytest.raises(InterruptedError, match=TERMINATION_MESSAGE):
        context.raise_if_terminated()


@pytest.mark.parametrize(
    ("declared", "value", "cls"),
    [
        ("Item", {"id": "i1", "name": "cat.jpg"}, Item),
        ("Item", "i1", Item),
        ("Dataset", {"dataset_id": "d1"}, Dataset),
        ("Model", "m1", Model),
    ],
)
def test_the_agents_entities_are_instances_of_the_sdk_classes(
    declared: str, value: object, cls: type[Entity]
) -> None:
    converted = convert_inputs({"x": value}, {"x": declared})["x"]
    assert type(converted) is cls
    assert isinstance(converted, Entity)
    assert not isinstance(converted, Dataset if cls is not Dataset else Item)


def test_every_entity_type_has_its_class() -> None:
    for kind in EntityType:
        entity = Entity(kind, {"id": "x"})
        assert type(entity).__name__ == kind.value
        assert type(entity)({"id": "x"}) == entity  # Item({...}) is Entity("Item", {...})


def test_a_class_refuses_another_type() -> None:
    with pytest.raises(TypeError, match="cannot hold a Dataset"):
        Item("Dataset", {"id": "d1"})
    with pytest.raises(TypeError, match="typed class"):
        Entity({"id": "x"})


class _Job(BaseServiceRunner):
    def __init__(self, state: CallState) -> None:
        self.state = state
        self.steps = 0

    def run(self) -> int:
        for _ in range(3):
            self.kill_event()
            self.steps += 1
            if self.steps == 2:
                self.state.terminate()  # what a user's terminate does, mid-call
        return self.steps


def test_kill_event_raises_in_a_call_the_agent_terminated() -> None:
    state = _state()
    job = _Job(state)
    call = protocol.Call("c1", "run", {}, {})
    try:
        frame = execute(job, call, cast(Outbox, _Frames()), state, 1024)
    finally:
        bind(None)
    [result] = protocol.FrameDecoder().feed(frame)
    assert job.steps == 2  # stopped at the first kill_event after the terminate
    assert result["ok"] is False
    assert result["error"]["type"] == protocol.ErrorType.TERMINATED
    assert "kill_event" in result["error"]["traceback"]


class _Quiet(BaseServiceRunner):
    def run(self) -> str:
        for _ in range(3):
            self.kill_event()
        return "done"


def test_kill_event_does_nothing_outside_a_call_or_in_a_call_still_running() -> None:
    _Quiet().kill_event()
    state = _state()
    try:
        frame = execute(
            _Quiet(), protocol.Call("c2", "run", {}, {}), cast(Outbox, _Frames()), state, 1024
        )
    finally:
        bind(None)
    [result] = protocol.FrameDecoder().feed(frame)
    assert (result["ok"], result["output"]) == (True, "done")


def test_ping_and_do_reset_are_dtlpys() -> None:
    progress = ProgressReporter(cast(Outbox, _Frames()), _state(), logging.getLogger("test"))
    assert BaseServiceRunner.ping(progress) == "pong"
    runner = BaseServiceRunner()
    runner.do_reset()
    assert runner._do_reset is True
