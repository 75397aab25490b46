"""Service notifications: what went wrong with a service's replicas (an import error, a
crash loop, a stuck replica), newest first. `service.notifications()`,
`project.notifications(type=spool.NotificationType.INIT_ERROR)`."""

from __future__ import annotations

from typing import Any

from spool.client import Client
from spool_common.messages import NotificationType
from spool_common.notifications import Notification

__all__ = ["Notification", "find_notifications"]


def find_notifications(
    client: Client,
    path: str,
    type: NotificationType | str | None,
    limit: int,
    offset: int,
    **params: Any,
) -> list[Notification]:
    """GET `path` (`/notifications` or a service's) with the common filters."""
    found = client.get(path, type=type, limit=limit, offset=offset, **params)
    return [Notification.model_validate(n) for n in found]
