"""Where a thread-mode terminate may land: only in user code (see `runner_state`)."""

from __future__ import annotations

import sys
from types import FrameType

import pytest

from spool_agent.runner_state import ExecutionTerminated, in_user_code


def frame_in_module(name: str) -> FrameType:
    """A live frame of a function whose module is called `name`."""
    namespace: dict[str, object] = {"__name__": name, "sys": sys}
    exec("def here():\n    return sys._getframe()\n", namespace)  # noqa: S102 - our own text
    here = namespace["here"]
    assert callable(here)
    frame = here()
    assert isinstance(frame, FrameType)
    return frame


@pytest.mark.parametrize(
    ("module", "user_code"),
    [
        ("main", True),  # the service's entry point
        ("my_package.models", True),
        ("numpy.core", True),  # third-party code may be interrupted
        ("__main__", True),
        ("logging", False),  # its locks are why
        ("logging.handlers", False),
        ("threading", False),
        ("importlib._bootstrap", False),
        ("queue", False),
        ("spool_agent.runner_output", False),  # the runner itself
        ("spool_agent", False),
    ],
)
def test_in_user_code(module: str, user_code: bool) -> None:
    assert in_user_code(frame_in_module(module)) is user_code


def test_no_frame_is_not_user_code() -> None:
    assert not in_user_code(None)


def test_execution_terminated_is_dtlpys_interrupted_error() -> None:
    error = ExecutionTerminated()
    assert isinstance(error, InterruptedError)
    assert str(error) == "Execution received termination signal"
    assert str(ExecutionTerminated("other")) == "other"
