"""What the process driver needs to start an agent: a credential and an environment."""

from __future__ import annotations

import os

from spool_common.bus.amqp import Bus, BusError
from spool_common.messages import CredentialReply, CredentialRequest
from spool_common.models import Service
from spool_scheduler.settings import SchedulerSettings

_AGENT_ENV_PASSED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "VIRTUAL_ENV")


class CredentialError(LookupError):
    """The gateway would not give a replica a credential (unknown service, bus down)."""


class AgentSetup:
    def __init__(self, bus: Bus, settings: SchedulerSettings) -> None:
        self.bus = bus
        self.settings = settings

    async def credential(self, service_id: str, replica_id: str) -> str:
        """A fresh credential for one replica, from the gateway (request/reply on the bus)."""
        request = CredentialRequest(service_id=service_id, replica_id=replica_id)
        try:
            reply = await self.bus.request(
                self.bus.topology.agent, "credential", request, timeout=5.0
            )
        except BusError as e:
            raise CredentialError(f"no credential for {service_id}: {e}") from e
        if not isinstance(reply, CredentialReply) or reply.token is None:
            raise CredentialError(
                f"no credential for {service_id}: {getattr(reply, 'error', None)}"
            )
        return reply.token

    def agent_env(
        self, service: Service, revision: int, replica_id: str, token: str
    ) -> dict[str, str]:
        env = {k: os.environ[k] for k in _AGENT_ENV_PASSED if k in os.environ}
        # pip settings the agent uses to install requirements (private index, find-links).
        env.update({k: v for k, v in os.environ.items() if k.startswith("PIP_")})
        # The operator's sandbox settings for user code (spool_agent.sandbox): uid base, limits,
        # SPOOL_RUNNER_NETWORK=false for an empty network namespace.
        env.update({k: v for k, v in os.environ.items() if k.startswith("SPOOL_RUNNER_")})
        env.update(
            {
                "SPOOL_SERVICE_ID": service.id,
                "SPOOL_SERVICE_REVISION": str(revision),
                "SPOOL_REPLICA_ID": replica_id,
                "SPOOL_AGENT_TOKEN": token,
                "SPOOL_AMQP_URL": self.settings.amqp_url,
                "SPOOL_GATEWAY_URL": self.settings.gateway_url,
                "SPOOL_BUS_NAMESPACE": self.settings.bus_namespace,
                "SPOOL_LOG_LEVEL": self.settings.log_level,
                "SPOOL_LOG_FORMAT": self.settings.log_format,
                "SPOOL_LEASE_RENEW_INTERVAL": str(self.settings.agent_lease_renew_interval),
                "SPOOL_OPS_HOST": "127.0.0.1",
                "SPOOL_OPS_PORT": "0",
            }
        )
        return env
