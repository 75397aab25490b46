"""Agent settings (SPOOL_*), set by the scheduler for each replica."""

from __future__ import annotations

from pydantic import Field

from spool_agent.sandbox import SandboxSettings
from spool_common.settings import CommonSettings


class AgentSettings(CommonSettings):
    service_id: str
    replica_id: str
    agent_token: str = ""  # empty (Kubernetes): the agent asks for one over the bus at start
    service_revision: int | None = None
    lease_renew_interval: float = 10.0  # well under the gateway's lease (30 s by default)
    claim_timeout: float = 5.0
    drain_time: float | None = None  # default: the service's drainTime
    # User code isolation (spool_agent.sandbox): SPOOL_RUNNER_*.
    runner_sandbox_user: bool = True  # as root, run user code under a uid of its own
    runner_uid_base: int = Field(default=1_000_000_000, ge=1000, le=4_000_000_000)
    runner_uid_count: int = Field(default=1_000_000, ge=1, le=200_000_000)
    runner_max_open_files: int = Field(default=1024, ge=64)
    runner_max_file_bytes: int = Field(default=2 * 1024**3, ge=1024**2)
    runner_max_processes: int = Field(default=256, ge=16)
    runner_network: bool = True  # False: user code runs in an empty network namespace

    def sandbox(self) -> SandboxSettings:
        return SandboxSettings(
            user=self.runner_sandbox_user,
            uid_base=self.runner_uid_base,
            uid_count=self.runner_uid_count,
            max_open_files=self.runner_max_open_files,
            max_file_bytes=self.runner_max_file_bytes,
            max_processes=self.runner_max_processes,
            network=self.runner_network,
        )
