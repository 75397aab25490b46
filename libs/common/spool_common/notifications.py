"""Pure: a service notification as the API answers it (the gateway writes it, the SDK reads
it): what went wrong with a service's replicas, and whether it deactivated the service."""

from __future__ import annotations

from datetime import datetime

from spool_common.messages import NotificationType
from spool_common.models_base import WireModel


class Notification(WireModel):
    id: str
    project_id: str
    service_id: str
    type: NotificationType
    title: str
    message: str
    replica_id: str | None = None
    log_tail: list[str]
    deactivated: bool  # this notification set the service inactive (a crash loop)
    created_at: datetime
