"""HTTP routes for projects, executions and agents. Each: authorise, validate, one call into
the core or a store."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field

from spool_common.errors import FieldError, ValidationFailure, raise_if_any
from spool_common.models import (
    DEFAULT_FUNCTION_NAME,
    Execution,
    ExecutionStatus,
    Project,
    Service,
    WireModel,
)
from spool_gateway.access import (
    authorize,
    execution_of,
    package_of,
    projects_visible,
    service_of,
)
from spool_gateway.api import GatewayDep, PrincipalDep
from spool_gateway.catalog import Principal
from spool_gateway.core import Gateway, hash_token, new_id
from spool_gateway.http_errors import ApiError
from spool_gateway.identity import Role, new_token
from spool_gateway.ledger import ExecutionQuery
from spool_gateway.query_log import open_range
from spool_gateway.secret_routes import values_for

router = APIRouter()


class ProjectCreate(WireModel):
    name: str = Field(min_length=1, max_length=128)


class ExecutionCreate(WireModel):
    function_name: str = DEFAULT_FUNCTION_NAME
    input: dict[str, Any] = Field(default_factory=dict)
    project_id: str | None = None


MAX_BATCH = 1000


class ExecutionBatchCreate(WireModel):
    executions: list[ExecutionCreate] = Field(min_length=1, max_length=MAX_BATCH)


# --- projects ------------------------------------------------------------------------------


@router.post("/projects", status_code=201, tags=["projects"])
async def create_project(body: ProjectCreate, gw: GatewayDep, who: PrincipalDep) -> Project:
    """Admins and users create projects; a user becomes the new project's owner."""
    if not (who.is_admin or who.kind == "user"):
        raise ApiError(403, "forbidden", "projects are created with a user's or admin token")
    project = Project(id=new_id(), name=body.name, creator=who.subject, created_at=gw.clock())
    owner = who.subject if who.kind == "user" else None
    if not await gw.catalog.create_project(project, owner):
        raise ApiError(
            409,
            "conflict",
            f"you have a project named '{body.name}'",
            (FieldError("name", "already taken"),),
        )
    return project


@router.get("/projects", tags=["projects"])
async def list_projects(
    gw: GatewayDep, who: PrincipalDep, name: str | None = None
) -> list[Project]:
    """Every project for an admin; the projects one is a member of for users and bots."""
    projects = await gw.catalog.projects(name)
    if who.is_admin:
        return projects
    mine = await gw.identity.projects_of(who.subject) if who.kind in ("user", "bot") else set()
    return [p for p in projects if p.id in mine]


@router.get("/projects/{project_id}", tags=["projects"])
async def get_project(project_id: str, gw: GatewayDep, who: PrincipalDep) -> Project:
    return await authorize(gw, who, project_id, Role.VIEWER)


# --- executions ----------------------------------------------------------------------------


@router.post("/executions/{service_id}", status_code=201, tags=["executions"])
async def create_execution(
    service_id: str, body: ExecutionCreate, gw: GatewayDep, who: PrincipalDep
) -> Execution:
    """Run a function of the service. Accepted (201) means it will end in a final status."""
    service, _ = await service_of(gw, who, service_id, Role.DEVELOPER)
    if body.project_id is not None and body.project_id != service.project_id:
        raise ValidationFailure(FieldError("projectId", "does not match the service's project"))
    return await gw.create_execution(service, body.function_name, body.input, who.subject)


@router.post("/executions/{service_id}/batch", status_code=201, tags=["executions"])
async def create_executions(
    service_id: str, body: ExecutionBatchCreate, gw: GatewayDep, who: PrincipalDep
) -> dict[str, Any]:
    """Run up to 1000 calls of the service's functions in one request: all are accepted (201,
    their ids in order) or, if any is invalid, none (400 naming `executions[i].<field>`)."""
    service, _ = await service_of(gw, who, service_id, Role.DEVELOPER)
    wrong = [
        FieldError(f"executions[{i}].projectId", "does not match the service's project")
        for i, call in enumerate(body.executions)
        if call.project_id is not None and call.project_id != service.project_id
    ]
    raise_if_any(wrong)
    calls = [(call.function_name, call.input) for call in body.executions]
    created = await gw.create_executions(service, calls, who.subject)
    return {"count": len(created), "executionIds": [e.id for e in created]}


@router.get("/executions", tags=["executions"])
async def list_executions(
    gw: GatewayDep,
    who: PrincipalDep,
    service_id: Annotated[str | None, Query(alias="serviceId")] = None,
    project_id: Annotated[str | None, Query(alias="projectId")] = None,
    status: ExecutionStatus | None = None,
    resource_id: Annotated[str | None, Query(alias="resourceId")] = None,
    error_type: Annotated[str | None, Query(alias="errorType")] = None,
    trigger_id: Annotated[str | None, Query(alias="triggerId")] = None,
    function_name: Annotated[str | None, Query(alias="functionName", min_length=1)] = None,
    start: Annotated[
        datetime | None,
        Query(alias="from", description="created at or after (ISO 8601; UTC if no zone)"),
    ] = None,
    end: Annotated[
        datetime | None, Query(alias="to", description="created before (ISO 8601; UTC if no zone)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[Execution]:
    """Newest first, filtered by service, project, status, an input entity's id (resources),
    the latest error's type (DeadLettered, AttemptsExhausted, Timeout...), trigger, function
    and creation time [from, to). Only executions of projects the caller is a member of (also
    those of a deleted service)."""
    created_from, created_to = open_range(start, end)
    query = ExecutionQuery(
        service_id,
        await projects_visible(gw, who, project_id),
        status.value if status else None,
        resource_id,
        error_type,
        trigger_id,
        function_name,
        created_from,
        created_to,
    )
    return await gw.ledger.find(query, limit)


@router.get("/executions/{execution_id}", tags=["executions"])
async def get_execution(execution_id: str, gw: GatewayDep, who: PrincipalDep) -> Execution:
    return await execution_of(gw, who, execution_id)


@router.get("/executions/{execution_id}/wait", tags=["executions"])
async def wait_execution(
    execution_id: str,
    gw: GatewayDep,
    who: PrincipalDep,
    timeout: Annotated[float, Query(gt=0, le=300)] = 30.0,
) -> Execution:
    """Long-poll: answers as soon as the execution ends, or after `timeout` seconds with its
    current state. Woken by the status consumer; re-reads every second as a fallback for
    executions finished through another gateway replica."""
    return await await_end(gw, who, execution_id, timeout)


async def await_end(gw: Gateway, who: Principal, execution_id: str, timeout: float) -> Execution:
    """The execution once it has ended, or as it is after `timeout` seconds."""
    deadline = gw.clock().timestamp() + timeout
    while True:
        execution = await execution_of(gw, who, execution_id)
        remaining = deadline - gw.clock().timestamp()
        if execution.latest_status.status.is_terminal or remaining <= 0:
            return execution
        await gw.waiters.wait(execution_id, min(remaining, 1.0))


# --- agents --------------------------------------------------------------------------------


BOT_TOKEN_NAME = "replica"  # noqa: S105 - the name tokens are listed under, not a secret
BOT_TOKEN_SECONDS = 7 * 86400


@router.get("/agent/bootstrap", include_in_schema=False)
async def agent_bootstrap(gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    """What an agent needs to start: its service, the package revision it pins, the opened
    values of its secrets (this answer is the only way out of a secret's value) and a token
    of the service's bot, with which its user code calls the API as that bot."""
    if who.service_id is None:
        raise ApiError(403, "forbidden", "only agents bootstrap")
    service, revision = await service_of(gw, who, who.service_id)
    package = await package_of(gw, who, service.package_id, service.package_revision)
    return {
        "service": service.to_wire(),
        "package": package.to_wire(),
        "revision": revision,
        "secrets": await values_for(gw, service),
        "botToken": await _bot_token(gw, service),
    }


async def _bot_token(gw: Gateway, service: Service) -> str | None:
    """A new token of the service's bot for one replica, valid for BOT_TOKEN_SECONDS."""
    if service.bot_id is None:
        return None
    await gw.identity.drop_expired(service.bot_id, BOT_TOKEN_NAME)
    token = new_token()
    await gw.identity.add_token(
        new_id(), hash_token(token), "bot", service.bot_id, BOT_TOKEN_NAME, BOT_TOKEN_SECONDS
    )
    return token
