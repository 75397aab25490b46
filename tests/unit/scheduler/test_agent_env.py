"""What the scheduler hands a process-driver agent in its environment: the replica's identity,
the platform's connection settings, the operator's sandbox settings for user code
(SPOOL_RUNNER_*), and nothing else of the scheduler's own."""

from __future__ import annotations

from typing import cast

import pytest

from spool_common.bus.amqp import Bus
from spool_common.models import Service
from spool_scheduler.agents import AgentSetup
from spool_scheduler.settings import SchedulerSettings

SERVICE = Service.model_validate(
    {"id": "svc", "name": "svc", "projectId": "p", "packageId": "pkg", "packageRevision": "1"}
)


def test_sandbox_settings_pass_through_and_scheduler_secrets_do_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SPOOL_RUNNER_NETWORK", "false")
    monkeypatch.setenv("SPOOL_RUNNER_UID_BASE", "300000")
    monkeypatch.setenv("SPOOL_DATABASE_URL", "postgresql://scheduler-only")
    monkeypatch.setenv("SPOOL_SECRETS_KEY", "gateway-only")
    setup = AgentSetup(cast(Bus, None), SchedulerSettings())

    env = setup.agent_env(SERVICE, 3, "r-1", "agent-token")

    assert env["SPOOL_RUNNER_NETWORK"] == "false"
    assert env["SPOOL_RUNNER_UID_BASE"] == "300000"
    assert (env["SPOOL_SERVICE_ID"], env["SPOOL_SERVICE_REVISION"]) == ("svc", "3")
    assert (env["SPOOL_REPLICA_ID"], env["SPOOL_AGENT_TOKEN"]) == ("r-1", "agent-token")
    assert "SPOOL_DATABASE_URL" not in env
    assert "SPOOL_SECRETS_KEY" not in env
