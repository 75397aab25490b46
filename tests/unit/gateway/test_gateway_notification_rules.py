"""Table tests for the notification rules: which notification deactivates its service, what
the service's `crashloop` says, and that only activating a service clears it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from spool_common.messages import NotificationType, ServiceNotification
from spool_common.models import Package, PackageModule, Service
from spool_gateway.deployment_rules import build_service, parse_spec
from spool_gateway.notification_rules import (
    DEACTIVATED_BY,
    crashloop_of,
    deactivated,
    deactivates,
    record_of,
)

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
PACKAGE = Package(id="K", name="pkg", version="1.0.0", project_id="P", modules=[PackageModule()])


def service(active: bool = True, updated_at: datetime | None = NOW, **extra: Any) -> Service:
    return Service(
        id="S",
        name="svc",
        project_id="P",
        package_id="K",
        package_revision="1.0.0",
        active=active,
        created_at=NOW - timedelta(days=1),
        updated_at=updated_at,
        **extra,
    )


def notification(
    deactivate: bool = True, at: datetime = NOW, replica_id: str | None = "r1"
) -> ServiceNotification:
    return ServiceNotification(
        notification_id="n1",
        service_id="S",
        notification=NotificationType.INIT_ERROR,
        title="Service Init Function Error",
        message="ValueError: no model",
        replica_id=replica_id,
        log_tail=["Traceback", "ValueError: no model"],
        deactivate=deactivate,
        at=at,
    )


LATER = NOW + timedelta(minutes=5)
EARLIER = NOW - timedelta(minutes=5)


@pytest.mark.parametrize(
    ("msg", "svc", "expected"),
    [
        pytest.param(notification(at=LATER), service(), True, id="crash-loop-after-last-change"),
        pytest.param(notification(at=NOW), service(), True, id="at-the-same-instant"),
        pytest.param(notification(deactivate=False, at=LATER), service(), False, id="no-ask"),
        pytest.param(notification(at=LATER), service(active=False), False, id="already-inactive"),
        pytest.param(notification(at=EARLIER), service(), False, id="older-than-the-last-change"),
        pytest.param(
            notification(at=EARLIER), service(updated_at=None), True, id="created-earlier-still"
        ),
        pytest.param(
            notification(at=LATER.replace(tzinfo=None)), service(), True, id="naive-time-is-utc"
        ),
    ],
)
def test_which_notification_deactivates_its_service(
    msg: ServiceNotification, svc: Service, expected: bool
) -> None:
    assert deactivates(msg, svc) is expected


def test_the_crashloop_field_names_the_cause_the_time_and_the_notification() -> None:
    assert crashloop_of(notification(at=LATER)) == {
        "cause": "InitError",
        "title": "Service Init Function Error",
        "message": "ValueError: no model",
        "replicaId": "r1",
        "notificationId": "n1",
        "at": LATER.isoformat(),
    }


def test_a_deactivated_service_is_inactive_with_its_crashloop_and_otherwise_unchanged() -> None:
    before = service(runtime={"concurrency": 4})
    after = deactivated(before, notification(at=LATER), LATER)
    assert after.active is False
    assert after.crashloop is not None
    assert after.crashloop["notificationId"] == "n1"
    assert (after.updated_at, after.updated_by) == (LATER, DEACTIVATED_BY)
    unchanged = {"active", "crashloop", "updatedAt", "updatedBy"}
    assert {k: v for k, v in after.to_wire().items() if k not in unchanged} == {
        k: v for k, v in before.to_wire().items() if k not in unchanged
    }


def test_the_record_carries_the_message_and_the_services_project() -> None:
    record = record_of(notification(), "P", deactivated=True)
    assert (record.id, record.project_id, record.service_id) == ("n1", "P", "S")
    assert (record.type, record.replica_id, record.deactivated) == ("InitError", "r1", True)
    assert record.log_tail == ("Traceback", "ValueError: no model")
    assert record.created_at == NOW


CRASHLOOP = {"cause": "InitError", "notificationId": "n1"}


@pytest.mark.parametrize(
    ("active", "kept"),
    [
        pytest.param(False, CRASHLOOP, id="an-update-of-an-inactive-service-keeps-it"),
        pytest.param(True, None, id="activating-clears-it"),
    ],
)
def test_only_activating_a_service_clears_its_crashloop(
    active: bool, kept: dict[str, Any] | None
) -> None:
    previous = service(active=False, crashloop=CRASHLOOP)
    body = {**previous.to_wire(), "active": active}
    updated = build_service(
        parse_spec(body), PACKAGE, "1.0.0", service_id="S", who="u", now=LATER, previous=previous
    )
    assert updated.crashloop == kept
