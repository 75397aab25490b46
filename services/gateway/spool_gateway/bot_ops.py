"""Services run as a project bot. Before executions of a service start, its bot must still be
a Developer (or Owner) of the service's project; a bot that was deleted or demoted fails them
with an `AuthorizationError`, and the service's owners get one `AuthorizationError`
notification per service revision and bot. A service without a bot (deployed with the admin
token before bots existed) is not checked."""

from __future__ import annotations

import time
from datetime import datetime

from spool_common.messages import (
    ClaimReplies,
    ClaimReply,
    ClaimRequest,
    Claims,
    ClaimVerdict,
    NotificationType,
    ServiceNotification,
)
from spool_common.models import ExecutionError, ExecutionStatus, Service, StatusEntry
from spool_gateway.core import Gateway
from spool_gateway.identity import Role, allows
from spool_gateway.notifications import record_notification

# How long a verdict on a service's bot is kept: a demotion takes effect within this.
CHECK_SECONDS = 5.0


def refusal_entry(service: Service, now: datetime) -> StatusEntry:
    message = (
        f"Execution failed: the service's bot '{service.bot_id}' is not a Developer of "
        f"project '{service.project_id}' any more"
    )
    return StatusEntry(
        status=ExecutionStatus.FAILED,
        timestamp=now,
        message=message,
        error=ExecutionError(type="AuthorizationError", message=message),
    )


class BotGuard:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self._verdicts: dict[str, tuple[float, tuple[Service, int] | None]] = {}

    async def refused(self, service_id: str) -> tuple[Service, int] | None:
        """The service (and its revision) when its bot may not run it, else None."""
        now = time.monotonic()
        cached = self._verdicts.get(service_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        verdict = None
        found = await self.gw.services.get(service_id)
        bot_id = found[0].bot_id if found is not None else None
        if found is not None and bot_id is not None:
            role = await self.gw.identity.role(found[0].project_id, bot_id)
            verdict = None if allows(role, Role.DEVELOPER) else found
        if len(self._verdicts) > 10_000:
            self._verdicts.clear()
        self._verdicts[service_id] = (now + CHECK_SECONDS, verdict)
        return verdict

    async def claim(self, request: ClaimRequest | Claims) -> ClaimReplies:
        """The gateway's claim, unless the service's bot may no longer run it: then each
        execution asked for fails (if still queued) and is answered UNAUTHORIZED."""
        refused = await self.refused(request.service_id)
        if refused is None:
            return await self.gw.claim_many(request)
        service, revision = refused
        ids = [request.execution_id] if isinstance(request, ClaimRequest) else request.execution_ids
        entry = refusal_entry(service, self.gw.clock())
        for execution_id in ids:
            if await self.gw.ledger.fail_queued(execution_id, entry):
                self.gw.waiters.wake(execution_id)
        await record_notification(
            self.gw,
            ServiceNotification(
                notification_id=f"bot-{service.id}-{revision}-{service.bot_id}",
                service_id=service.id,
                notification=NotificationType.AUTHORIZATION_ERROR,
                title="Service Bot Unauthorized",
                message=entry.message or "",
                at=entry.timestamp,
            ),
        )
        return ClaimReplies(
            replies=[ClaimReply(execution_id=i, verdict=ClaimVerdict.UNAUTHORIZED) for i in ids]
        )
