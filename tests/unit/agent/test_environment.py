"""The environment user code runs with: enough to run Python, never the agent's secrets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spool_agent.environment import PASSED_THROUGH, runner_environment

AGENT_ENV = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/home/spool",
    "LANG": "C.UTF-8",
    "TZ": "UTC",
    "SPOOL_AMQP_URL": "amqp://agent:secret@broker/",
    "SPOOL_AGENT_TOKEN": "spa_secret",
    "SPOOL_DATABASE_URL": "postgresql://postgres@db/spool",
    "AWS_SECRET_ACCESS_KEY": "agent-only",
    "PYTHONPATH": "/opt/agent",
    "PYTHONUNBUFFERED": "0",
}


@pytest.mark.parametrize(
    ("service_env", "expected"),
    [
        pytest.param(
            {},
            {
                "PATH": "/usr/bin:/bin",
                "HOME": "/home/spool",
                "LANG": "C.UTF-8",
                "TZ": "UTC",
                "PYTHONUNBUFFERED": "1",
            },
            id="agent-env-only",
        ),
        pytest.param(
            {"MODEL_DIR": "/models", "SPOOL_AGENT_TOKEN": "x", "SPOOL_": "y"},
            {
                "PATH": "/usr/bin:/bin",
                "HOME": "/home/spool",
                "LANG": "C.UTF-8",
                "TZ": "UTC",
                "MODEL_DIR": "/models",
                "PYTHONUNBUFFERED": "1",
            },
            id="service-env-without-spool",
        ),
        pytest.param(
            {"PYTHONUNBUFFERED": "0"},
            {
                "PATH": "/usr/bin:/bin",
                "HOME": "/home/spool",
                "LANG": "C.UTF-8",
                "TZ": "UTC",
                "PYTHONUNBUFFERED": "1",
            },
            id="unbuffered-always",
        ),
    ],
)
def test_runner_environment(service_env: dict[str, str], expected: dict[str, str]) -> None:
    assert runner_environment(AGENT_ENV, service_env) == expected


def test_an_empty_agent_env_still_runs_unbuffered() -> None:
    assert runner_environment({}, {}) == {"PYTHONUNBUFFERED": "1"}


def test_the_caller_env_is_not_changed() -> None:
    agent = dict(AGENT_ENV)
    runner_environment(agent, {"X": "1"})
    assert agent == AGENT_ENV


keys = st.sampled_from([*PASSED_THROUGH, "SPOOL_AMQP_URL", "SPOOL_X", "OTHER"]) | st.text(
    min_size=1, max_size=12
)
envs = st.dictionaries(keys, st.text(max_size=8), max_size=8)


@given(agent=envs, service=envs)
def test_no_spool_variable_ever_reaches_user_code(
    agent: dict[str, str], service: dict[str, str]
) -> None:
    env = runner_environment(agent, service)
    assert not [k for k in env if k.startswith("SPOOL_")]
    assert env["PYTHONUNBUFFERED"] == "1"
    for key in env.keys() - {"PYTHONUNBUFFERED"}:
        assert key in service or key in PASSED_THROUGH or key.startswith("PIP_"), key


def test_pip_settings_reach_user_code_that_installs_packages() -> None:
    env = runner_environment({"PIP_INDEX_URL": "https://mirror/simple", "OTHER": "x"}, {})
    assert env["PIP_INDEX_URL"] == "https://mirror/simple"
    assert "OTHER" not in env
