"""Bus handlers of the scheduler: service changes update the desired state."""

from __future__ import annotations

from spool_common.bus.dispositions import Outcome
from spool_common.logging import get_logger
from spool_common.messages import (
    AnyMessage,
    ReplicaChanged,
    ReplicaRestartRequested,
    ScaleDecided,
    ServiceChange,
    ServiceChanged,
)
from spool_scheduler.reconciler import Reconciler
from spool_scheduler.store import DesiredStore

log = get_logger(__name__)


class Inbox:
    def __init__(self, store: DesiredStore, reconciler: Reconciler) -> None:
        self.store = store
        self.reconciler = reconciler

    async def handle(self, message: AnyMessage | None) -> Outcome:
        if isinstance(message, ServiceChanged):
            deleted = message.change is ServiceChange.DELETED
            desired = await self.store.upsert(message.service, message.revision, deleted)
            if desired is None:
                return Outcome.DUPLICATE
            self.reconciler.set_service(desired, force=message.force)
            return Outcome.HANDLED
        if isinstance(message, ReplicaChanged):
            log.debug("replica_changed", replica_id=message.replica_id, state=message.state)
            return Outcome.HANDLED
        if isinstance(message, ReplicaRestartRequested):
            restarted = await self.reconciler.restart_replica(
                message.service_id, message.replica_id
            )
            log.info(
                "replica_restart_requested",
                service_id=message.service_id,
                replica_id=message.replica_id,
                requested_by=message.requested_by,
                restarted=restarted,
            )
            return Outcome.HANDLED
        if isinstance(message, ScaleDecided):
            applied = self.reconciler.scale(message.service_id, message.replicas)
            log.info(
                "scale_decided",
                service_id=message.service_id,
                replicas=message.replicas,
                applied=applied,
                reason=message.reason,
            )
            return Outcome.HANDLED
        return Outcome.UNDECODABLE if message is None else Outcome.HANDLED
