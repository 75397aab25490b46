"""HTTP routes about a service's load: the autoscaler's decisions (`/scaling`), and the query
log (`/query-log`, Dataiku's "API query logs" dataset: one row per execution, JSON or CSV)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from spool_common.models import WireModel
from spool_gateway.access import projects_visible, service_of
from spool_gateway.api import GatewayDep, PrincipalDep
from spool_gateway.load_store import LoadStore
from spool_gateway.query_log import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    QueryLogFormat,
    as_csv,
    as_record,
    time_range,
)
from spool_gateway.scaling_store import ScalingRecord

router = APIRouter(tags=["services"])


class ScalingDecision(WireModel):
    at: datetime
    from_: int | None = Field(alias="from", description="replicas before (null: not known)")
    to: int = Field(description="replicas decided")
    rule: str = Field(description="queue | rps | latency | bounds | hold")
    reason: str
    inputs: dict[str, float] = Field(description="the numbers the rule saw")


def _decision(record: ScalingRecord) -> ScalingDecision:
    return ScalingDecision(
        at=record.at,
        from_=record.previous,
        to=record.replicas,
        rule=record.rule,
        reason=record.reason,
        inputs=record.inputs,
    )


class ServiceLoad(WireModel):
    service_id: str
    queued: int = Field(description="executions waiting (created or rerun)")
    in_flight: int = Field(description="executions running (in-progress)")
    created: int = Field(description="executions created in the window")
    finished: int = Field(description="executions that ended in the window")
    executions_per_minute: float = Field(description="finished per minute over the window")
    latency_p50: float | None = Field(
        description="median create -> finish seconds of those that finished in the window "
        "(null: none finished)"
    )
    latency_p75: float | None = Field(description="75th percentile, as latencyP50")
    window: int = Field(description="seconds")
    at: datetime = Field(description="when the numbers were read (the database's clock)")


@router.get("/services/load")
async def services_load(
    gw: GatewayDep,
    who: PrincipalDep,
    project_id: Annotated[str | None, Query(alias="projectId")] = None,
    service_id: Annotated[str | None, Query(alias="serviceId")] = None,
    window: Annotated[int, Query(ge=5, le=3600, description="seconds")] = 60,
) -> list[ServiceLoad]:
    """The load of each live service the caller sees (or of `serviceId`) now: queue depth and
    in-flight count, and over the last `window` seconds the executions created and finished,
    finished per minute, and the p50 / p75 latency of those that finished. The dashboard's
    services table and live chart read this."""
    if service_id is not None:
        ids = [(await service_of(gw, who, service_id))[0].id]
    else:
        visible = await projects_visible(gw, who, project_id)
        ids = [s.id for s in await gw.services.find(visible, None)]
    if not ids:
        return []
    return [
        ServiceLoad(
            service_id=s.service_id,
            queued=s.queued,
            in_flight=s.running,
            created=s.created,
            finished=s.finished,
            executions_per_minute=round(s.finished * 60 / window, 3),
            latency_p50=s.p50,
            latency_p75=s.p75,
            window=window,
            at=s.at,
        )
        for s in await LoadStore(gw.ledger.pool).summary(ids, window)
    ]


@router.get("/services/{service_id}/scaling")
async def scaling_decisions(
    service_id: str,
    gw: GatewayDep,
    who: PrincipalDep,
    since: Annotated[
        datetime | None, Query(description="only decisions at or after (ISO 8601; UTC if no zone)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ScalingDecision]:
    """The autoscaler's decisions for the service, newest first: when, from how many replicas
    to how many, by which rule, why, and the numbers it saw."""
    await service_of(gw, who, service_id)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return [_decision(r) for r in await gw.scaling.find(service_id, since, limit)]


@router.get("/services/{service_id}/query-log", response_model=None)
async def query_log(
    service_id: str,
    gw: GatewayDep,
    who: PrincipalDep,
    start: Annotated[
        datetime | None,
        Query(alias="from", description="created at or after (default: 24 h before `to`)"),
    ] = None,
    end: Annotated[
        datetime | None, Query(alias="to", description="created before (default: now)")
    ] = None,
    function_name: Annotated[str | None, Query(alias="functionName", min_length=1)] = None,
    output: Annotated[QueryLogFormat, Query(alias="format")] = QueryLogFormat.JSON,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Response:
    """One row per execution of the service (invokes included) created in [from, to), oldest
    first: executionId, functionName, kind (invoke | execution), createdAt, finishedAt,
    latencySeconds (create -> end), status. `format=csv`: text/csv with a header row. When
    more rows matched than `limit`, the answer has `X-Spool-Truncated: true`: ask again with
    `from` = the last createdAt (the rows of that instant come again). Times without a zone
    are UTC."""
    await service_of(gw, who, service_id)
    lower, upper = time_range(start, end, gw.clock())
    rows = await gw.query_log.rows(service_id, lower, upper, function_name, limit + 1)
    headers = {"X-Spool-Truncated": "true"} if len(rows) > limit else {}
    rows = rows[:limit]
    if output is QueryLogFormat.CSV:
        headers["Content-Disposition"] = f'attachment; filename="query-log-{service_id}.csv"'
        return Response(as_csv(rows), media_type="text/csv; charset=utf-8", headers=headers)
    return JSONResponse([as_record(r) for r in rows], headers=headers)
