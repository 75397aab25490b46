"""Pure rules for service notifications: whether one deactivates its service, what the
service's `crashloop` field then says, and the row that records it. No I/O, no clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from spool_common.messages import ServiceNotification
from spool_common.models import Service

# Who the service revision that deactivates a crash-looping service names as its author.
DEACTIVATED_BY = "system:scheduler"


@dataclass(frozen=True)
class NotificationRecord:
    """One stored notification, as listed by the API."""

    id: str
    project_id: str
    service_id: str
    type: str
    title: str
    message: str
    replica_id: str | None
    log_tail: tuple[str, ...]
    deactivated: bool  # this notification set the service inactive
    created_at: datetime


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def deactivates(notification: ServiceNotification, service: Service) -> bool:
    """A notification that asks for it deactivates its service if the service is active and
    has not changed since the notification was raised: a user's update or resume after that
    (new code, a fixed secret) wins over a crash loop of what it replaced."""
    if not notification.deactivate or not service.active:
        return False
    changed = service.updated_at or service.created_at
    return changed is None or _aware(notification.at) >= _aware(changed)


def crashloop_of(notification: ServiceNotification) -> dict[str, Any]:
    """The service's `crashloop` field after a deactivation: the cause, when, which
    notification (its id finds the log tail in GET /notifications)."""
    return {
        "cause": notification.notification.value,
        "title": notification.title,
        "message": notification.message,
        "replicaId": notification.replica_id,
        "notificationId": notification.notification_id,
        "at": _aware(notification.at).isoformat(),
    }


def deactivated(service: Service, notification: ServiceNotification, now: datetime) -> Service:
    """The service as a crash-loop deactivation leaves it: inactive, with its `crashloop`."""
    return service.model_copy(
        update={
            "active": False,
            "crashloop": crashloop_of(notification),
            "updated_at": now,
            "updated_by": DEACTIVATED_BY,
        }
    )


def record_of(
    notification: ServiceNotification, project_id: str, deactivated: bool
) -> NotificationRecord:
    return NotificationRecord(
        id=notification.notification_id,
        project_id=project_id,
        service_id=notification.service_id,
        type=notification.notification.value,
        title=notification.title,
        message=notification.message,
        replica_id=notification.replica_id,
        log_tail=tuple(notification.log_tail),
        deactivated=deactivated,
        created_at=_aware(notification.at),
    )
