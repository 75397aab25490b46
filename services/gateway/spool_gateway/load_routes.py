"""HTTP routes about a service's load: the autoscaler's decisions (`/scaling`), and the query
log (`/query-log`, Dataiku's "API query logs" dataset: one row per execution, JSON or CSV)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from spool_common.models import WireModel
from spool_gateway.access import service_of
from spool_gateway.api import GatewayDep, PrincipalDep
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
