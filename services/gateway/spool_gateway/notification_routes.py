"""HTTP routes for service notifications (crash loops, stuck replicas), newest first, per
project or per service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from spool_common.messages import NotificationType
from spool_common.notifications import Notification
from spool_gateway.access import authorize, service_of
from spool_gateway.api import GatewayDep, PrincipalDep
from spool_gateway.identity import Role
from spool_gateway.notification_rules import NotificationRecord
from spool_gateway.notifications_store import NotificationQuery

router = APIRouter(tags=["notifications"])

Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0)]
TypeFilter = Annotated[NotificationType | None, Query(alias="type")]


def _out(record: NotificationRecord) -> Notification:
    return Notification(
        id=record.id,
        project_id=record.project_id,
        service_id=record.service_id,
        type=NotificationType(record.type),
        title=record.title,
        message=record.message,
        replica_id=record.replica_id,
        log_tail=list(record.log_tail),
        deactivated=record.deactivated,
        created_at=record.created_at,
    )


@router.get("/notifications")
async def list_notifications(
    gw: GatewayDep,
    who: PrincipalDep,
    project_id: Annotated[str, Query(alias="projectId")],
    service_id: Annotated[str | None, Query(alias="serviceId")] = None,
    notification_type: TypeFilter = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[Notification]:
    """The project's service notifications, newest first, optionally of one service and one
    type (InitError, RequirementsError, ServiceForcedDeactivation...)."""
    await authorize(gw, who, project_id, Role.VIEWER)
    query = NotificationQuery(
        project_id, service_id, notification_type.value if notification_type else None
    )
    return [_out(r) for r in await gw.notifications.find(query, limit, offset)]


@router.get("/services/{service_id}/notifications")
async def service_notifications(
    service_id: str,
    gw: GatewayDep,
    who: PrincipalDep,
    notification_type: TypeFilter = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[Notification]:
    """The service's notifications, newest first."""
    await service_of(gw, who, service_id)
    query = NotificationQuery(
        None, service_id, notification_type.value if notification_type else None
    )
    return [_out(r) for r in await gw.notifications.find(query, limit, offset)]
