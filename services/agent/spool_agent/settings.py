"""Agent settings (SPOOL_*), set by the scheduler for each replica."""

from __future__ import annotations

from spool_common.settings import CommonSettings


class AgentSettings(CommonSettings):
    service_id: str
    replica_id: str
    agent_token: str = ""  # empty (Kubernetes): the agent asks for one over the bus at start
    service_revision: int | None = None
    lease_renew_interval: float = 10.0  # well under the gateway's lease (30 s by default)
    claim_timeout: float = 5.0
    drain_time: float | None = None  # default: the service's drainTime
