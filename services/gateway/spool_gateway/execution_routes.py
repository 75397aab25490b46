"""HTTP routes that control executions and read their logs: terminate, rerun (one or by
query), synchronous invoke, and logs per execution or per service (dtlpy's POST
/services/logs, with checkpoint paging that ends with `stop: true`)."""

from __future__ import annotations

import shlex
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import Field

from spool_common.errors import FieldError, ValidationFailure
from spool_common.models import Execution, WireModel
from spool_gateway.access import execution_of, service_of
from spool_gateway.api import API_PREFIX, GatewayDep, PrincipalDep
from spool_gateway.execution_ops import rerun, rerun_many, terminate
from spool_gateway.http_errors import ApiError, not_found
from spool_gateway.identity import Role
from spool_gateway.lifecycle import ExecutionKind
from spool_gateway.routes import ExecutionCreate, await_end

router = APIRouter(tags=["executions"])

DONE_LINE = "[Done] Executing function."


class RerunQuery(WireModel):
    """Which finished executions to rerun; every given key must match. Tokens other than the
    admin's name the service."""

    service_id: str | None = None
    status: str | None = None
    function_name: str | None = None
    error_type: str | None = Field(default=None, description="e.g. DeadLettered, Timeout")


class LogsQuery(WireModel):
    service_id: str | None = None
    execution_id: list[str] | None = Field(default=None, max_length=1000)
    start: datetime | None = None
    text: str | None = None
    size: int = Field(default=100, ge=1, le=1000)
    follow: bool = False
    checkpoint: dict[str, Any] | None = None
    tail: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="the first page is the newest `tail` lines, in order; its checkpoint "
        "follows on from them (as `kubectl logs --tail`)",
    )


@router.post("/executions/rerun")
async def rerun_by_query(body: RerunQuery, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    """Rerun every finished execution matching the query (at most 1000): how dead letters and
    failures are re-driven."""
    if body.service_id is not None:
        await service_of(gw, who, body.service_id, Role.DEVELOPER)
    elif not who.is_admin:
        raise ValidationFailure(
            FieldError("serviceId", "required (only the admin reruns across services)")
        )
    query = body.model_dump(by_alias=True, exclude_none=True)
    if not query:
        raise ApiError(
            400,
            "invalid_request",
            "give at least one of serviceId, status, functionName, errorType",
        )
    ids = await rerun_many(gw, gw.control, query)
    return {"count": len(ids), "executionIds": ids}


@router.post("/executions/{execution_id}/terminate")
async def terminate_execution(execution_id: str, gw: GatewayDep, who: PrincipalDep) -> Execution:
    """A queued execution never starts; a running one is stopped (thread mode: "termination
    signal"; process mode: "killed"). Answers the execution as it is now."""
    await terminate(gw, gw.control, await execution_of(gw, who, execution_id, Role.DEVELOPER))
    return await execution_of(gw, who, execution_id)


@router.post("/executions/{execution_id}/rerun")
async def rerun_execution(execution_id: str, gw: GatewayDep, who: PrincipalDep) -> Execution:
    """Run a finished execution again: same id, the service's current revision, new attempts."""
    execution = await execution_of(gw, who, execution_id, Role.DEVELOPER)
    service, _ = await service_of(gw, who, execution.service_id, Role.DEVELOPER)
    if not await rerun(gw, gw.control, execution, service):
        raise ApiError(409, "conflict", "only a finished execution can be rerun")
    return await execution_of(gw, who, execution_id)


@router.post("/executions/{service_id}/invoke", response_model=None)
async def invoke(
    service_id: str,
    body: ExecutionCreate,
    gw: GatewayDep,
    who: PrincipalDep,
    timeout: Annotated[float, Query(gt=0, le=300)] = 60.0,
) -> JSONResponse:
    """Run a function and answer with its output (200), its error (422), or, if it has not
    finished within `timeout`, the execution so far (202)."""
    service, _ = await service_of(gw, who, service_id, Role.DEVELOPER)
    created = await gw.create_execution(
        service, body.function_name, body.input, who.subject, ExecutionKind.INVOKE
    )
    execution = await await_end(gw, who, created.id, timeout)
    status = execution.latest_status
    if status.status == "success":
        return JSONResponse(execution.output, headers={"X-Spool-Execution-Id": execution.id})
    body_json = execution.model_dump(mode="json", by_alias=True)
    if not status.status.is_terminal:
        return JSONResponse(body_json, status_code=202)
    error = {
        "error": "execution_failed",
        "message": status.message or str(status.status),
        "details": [{"field": "execution", "reason": status.message or ""}],
        "execution": body_json,
    }
    return JSONResponse(error, status_code=422)


@router.post("/executions/{service_id}/curl")
async def export_curl(
    service_id: str, body: ExecutionCreate, gw: GatewayDep, who: PrincipalDep
) -> dict[str, str]:
    """dtlpy's return_curl_only: the curl command that would create this execution (nothing
    is created; the token is left as $SPOOL_TOKEN)."""
    await service_of(gw, who, service_id)
    url = f"{gw.settings.gateway_url}{API_PREFIX}/executions/{service_id}"
    data = body.model_dump_json(by_alias=True)
    command = (
        f"curl -X POST -H 'Authorization: Bearer $SPOOL_TOKEN' "
        f"-H 'Content-Type: application/json' -d {shlex.quote(data)} {shlex.quote(url)}"
    )
    return {"curl": command}


@router.get("/executions/{execution_id}/logs")
async def execution_logs(
    execution_id: str,
    gw: GatewayDep,
    who: PrincipalDep,
    after: int = 0,
    size: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> dict[str, Any]:
    """What the execution's code printed, every attempt, in order; `after` pages on."""
    execution = await execution_of(gw, who, execution_id)
    rows = await gw.logs.page(
        service_id=None,
        execution_ids=[execution.id],
        after=after,
        start=None,
        text=None,
        limit=size,
    )
    return {
        "logs": [_line(r) for r in rows],
        "checkpoint": {"after": rows[-1].id if rows else after},
    }


@router.post("/services/logs")
async def service_logs(body: LogsQuery, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    """dtlpy's service logs: pass the returned checkpoint back until `stop` is true. `stop` is
    true whenever a page is not full and `follow` is false, so clients never loop forever.
    With `tail`, the first page is the newest lines instead of the oldest."""
    if body.service_id is None and not body.execution_id:
        raise not_found("service", "serviceId", "")
    if body.tail is not None and body.checkpoint is not None:
        raise ValidationFailure(
            FieldError("tail", "only for the first page: page on with the checkpoint alone")
        )
    if body.service_id is not None:
        await service_of(gw, who, body.service_id)
    for execution_id in body.execution_id or ():
        await execution_of(gw, who, execution_id)
    after = int((body.checkpoint or {}).get("after", 0))
    rows = await gw.logs.page(
        service_id=body.service_id,
        execution_ids=body.execution_id,
        after=after,
        start=body.start,
        text=body.text,
        limit=body.tail or body.size,
        newest=body.tail is not None,
    )
    stop = not body.follow and (body.tail is not None or len(rows) < body.size)
    return {
        "logs": [_line(r) for r in rows],
        "checkpoint": {"after": rows[-1].id if rows else after},
        "stop": stop,
    }


def _line(row: Any) -> dict[str, Any]:
    return {
        "timestamp": row.at.isoformat(),
        "message": row.line,
        "stream": row.stream,
        "executionId": row.execution_id,
        "replicaId": row.replica_id,
    }
