"""Table tests for what an exited replica's exit code tells the user about the service."""

from __future__ import annotations

import pytest

from spool_common.messages import ReplicaState
from spool_scheduler.plan import exit_state


@pytest.mark.parametrize(
    ("code", "state", "reason"),
    [
        pytest.param(0, ReplicaState.STOPPED, "stopped", id="clean"),
        pytest.param(-9, ReplicaState.FAILED, "killed by signal 9", id="sigkill"),
        pytest.param(-15, ReplicaState.FAILED, "killed by signal 15", id="sigterm"),
        pytest.param(1, ReplicaState.FAILED, "exited with code 1", id="code-1"),
        pytest.param(2, ReplicaState.FAILED, "exited with code 2", id="code-2"),
        pytest.param(137, ReplicaState.FAILED, "exited with code 137", id="code-137"),
    ],
)
def test_exit_state(code: int, state: ReplicaState, reason: str) -> None:
    assert exit_state(code) == (state, reason)


@pytest.mark.parametrize(
    ("code", "words"),
    [
        # AgentExit.INIT_FAILED: the service class's __init__ raised.
        pytest.param(3, ("init failed", "log"), id="init-failed"),
        # The agent could not install the package's requirements.
        pytest.param(4, ("requirements", "installed"), id="requirements-failed"),
        # AgentExit.RUNNER_CRASHED: the child process running user code died.
        pytest.param(5, ("runner", "died"), id="runner-died"),
        pytest.param(6, ("imported", "class"), id="codebase-error"),
        pytest.param(7, ("refused", "credential"), id="unauthorized"),
    ],
)
def test_agent_exit_codes_explain_themselves(code: int, words: tuple[str, ...]) -> None:
    state, reason = exit_state(code)
    assert state is ReplicaState.FAILED
    assert all(word in reason for word in words), reason
    assert "exited with code" not in reason


def test_an_unknown_exit_status_is_a_failure_that_says_so() -> None:
    state, reason = exit_state(None)
    assert state is ReplicaState.FAILED
    assert "unknown" in reason
    assert "None" not in reason
