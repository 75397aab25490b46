"""How many replicas a service wants."""

from __future__ import annotations

from typing import Any

import pytest

from spool_common.models import Service
from spool_common.replicas import desired_replicas


def service(*, active: bool = True, drain_time: int = 600, **runtime: Any) -> Service:
    return Service.model_validate(
        {
            "id": "svc",
            "name": "svc",
            "projectId": "p",
            "packageId": "pkg",
            "packageRevision": "1",
            "active": active,
            "drainTime": drain_time,
            "runtime": runtime,
        }
    )


# --- desired_replicas ---------------------------------------------------------------------------

SCALER = {"type": "rabbitmq", "minReplicas": 2, "maxReplicas": 5}


@pytest.mark.parametrize(
    ("svc", "deleted", "replicas"),
    [
        pytest.param(service(), True, None, id="deleted"),
        pytest.param(service(active=False), False, None, id="paused"),
        pytest.param(service(active=False, numReplicas=3), True, None, id="paused-and-deleted"),
        pytest.param(service(), False, 1, id="default-one-replica"),
        pytest.param(service(numReplicas=3), False, 3, id="num-replicas"),
        pytest.param(service(numReplicas=0), False, 0, id="zero-replicas"),
        pytest.param(service(numReplicas=1, autoscaler=SCALER), False, 2, id="raised-to-min"),
        pytest.param(service(numReplicas=3, autoscaler=SCALER), False, 3, id="within-bounds"),
        pytest.param(service(numReplicas=8, autoscaler=SCALER), False, 5, id="lowered-to-max"),
        pytest.param(
            service(numReplicas=0, autoscaler={"type": "rps", "minReplicas": 0}),
            False,
            0,
            id="scale-to-zero-allowed",
        ),
    ],
)
def test_desired_replicas(svc: Service, deleted: bool, replicas: int | None) -> None:
    assert desired_replicas(svc, deleted=deleted) == replicas


@pytest.mark.parametrize(
    ("svc", "scaled", "replicas"),
    [
        pytest.param(service(autoscaler=SCALER), 4, 4, id="autoscaler-count"),
        pytest.param(service(autoscaler=SCALER), 9, 5, id="bounded-by-max"),
        pytest.param(service(autoscaler=SCALER), 0, 2, id="bounded-by-min"),
        pytest.param(service(numReplicas=3), 7, 3, id="ignored-without-autoscaler"),
        pytest.param(service(active=False, autoscaler=SCALER), 4, None, id="paused"),
    ],
)
def test_an_autoscaler_decision_sets_the_count_within_bounds(
    svc: Service, scaled: int, replicas: int | None
) -> None:
    assert desired_replicas(svc, deleted=False, scaled=scaled) == replicas
