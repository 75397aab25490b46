"""Use case for service notifications from the scheduler: record each once and, for a
sustained crash loop, set the service inactive (a new revision and its `service.updated`
event, as a pause does) with its `crashloop` field saying why."""

from __future__ import annotations

from spool_common.bus.dispositions import Outcome
from spool_common.logging import get_logger
from spool_common.messages import ServiceChange, ServiceNotification
from spool_common.models import Service
from spool_gateway.core import Gateway
from spool_gateway.notification_rules import deactivated, deactivates, record_of
from spool_gateway.notifications_store import ServiceChangedMeanwhile, ServiceUpdate

log = get_logger(__name__)

# Tries when a user changes the service between our read and our write; then requeue.
ATTEMPTS = 3


async def record_notification(gw: Gateway, notification: ServiceNotification) -> Outcome:
    """HANDLED once recorded, DUPLICATE if it was recorded before; a notification about a
    service that does not exist (any more) is dropped."""
    for _ in range(ATTEMPTS):
        found = await gw.services.get(notification.service_id)
        if found is None:
            log.info(
                "notification_for_unknown_service",
                service_id=notification.service_id,
                notification_id=notification.notification_id,
            )
            return Outcome.HANDLED
        try:
            return await _record(gw, notification, *found)
        except ServiceChangedMeanwhile:
            log.info("notification_retried", service_id=notification.service_id)
    return Outcome.TRANSIENT


async def _record(
    gw: Gateway, notification: ServiceNotification, service: Service, revision: int
) -> Outcome:
    change = None
    if deactivates(notification, service):
        inactive = deactivated(service, notification, gw.clock())
        row = gw.deployments.announce(ServiceChange.UPDATED, inactive, revision + 1)
        change = ServiceUpdate(inactive, revision, row)
    record = record_of(notification, service.project_id, deactivated=change is not None)
    ids = await gw.notifications.record(record, change)
    if ids is None:
        return Outcome.DUPLICATE
    if change is not None:
        gw.relay.hand_over([change.announce], ids)
        log.warning(
            "service_deactivated",
            service_id=service.id,
            cause=record.type,
            notification_id=record.id,
            revision=revision + 1,
        )
    log.info(
        "notification_recorded",
        service_id=service.id,
        notification_id=record.id,
        type=record.type,
    )
    return Outcome.HANDLED
