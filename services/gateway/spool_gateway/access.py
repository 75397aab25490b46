"""Look-ups that also decide who may see what: a missing object and one the caller may not
see answer the same 404, so ids of other tenants' objects reveal nothing."""

from __future__ import annotations

from spool_common.models import Execution, Package, Project, Service, Trigger
from spool_gateway.catalog import Principal
from spool_gateway.core import Gateway
from spool_gateway.http_errors import ApiError, not_found
from spool_gateway.identity import Role, allows


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise ApiError(403, "forbidden", "this operation needs the admin token")


async def role_in(gw: Gateway, who: Principal, project_id: str) -> Role | None:
    """The principal's role in the project: admins act as owners; agents have none here."""
    if who.is_admin:
        return Role.OWNER
    if who.kind not in ("user", "bot"):
        return None
    return await gw.identity.role(project_id, who.subject)


async def authorize(
    gw: Gateway, who: Principal, project_id: str, needed: Role, field: str = "projectId"
) -> Project:
    """The project, if `who` may do what needs `needed` there. Not a member: 404, the same
    answer as for a project that does not exist; a member without the role: 403."""
    project = await gw.catalog.project(project_id)
    if project is None or not await _may(gw, who, project_id, needed):
        raise not_found("project", field, project_id)
    return project


async def projects_visible(gw: Gateway, who: Principal, project_id: str | None) -> list[str] | None:
    """Which projects a list may draw from: `project_id` alone if given (404 unless `who` may
    read it), otherwise every project for an admin (None) and the caller's own projects for
    users and bots. Agents list nothing."""
    if project_id is not None:
        await authorize(gw, who, project_id, Role.VIEWER)
        return [project_id]
    if who.is_admin:
        return None
    if who.kind in ("user", "bot"):
        return sorted(await gw.identity.projects_of(who.subject))
    return []


async def project_of(gw: Gateway, project_id: str, field: str = "projectId") -> Project:
    project = await gw.catalog.project(project_id)
    if project is None:
        raise not_found("project", field, project_id)
    return project


async def package_of(
    gw: Gateway,
    who: Principal,
    package_id: str,
    version: str | None = None,
    need: Role = Role.VIEWER,
) -> Package:
    """The package (at `version`, if given), for members of its project with `need`. Agents
    see only their service's package."""
    if who.kind == "agent":
        found = await gw.services.get(who.service_id or "")
        if need is not Role.VIEWER or found is None or found[0].package_id != package_id:
            raise not_found("package", "packageId", package_id)
    package = await gw.catalog.package(package_id, version)
    visible = who.kind == "agent" or (
        package is not None and await _may(gw, who, package.project_id, need)
    )
    if package is None or not visible:
        if version is not None and await gw.catalog.package(package_id) is not None:
            raise not_found("package revision", "version", version)
        raise not_found("package", "packageId", package_id)
    return package


async def service_of(
    gw: Gateway, who: Principal, service_id: str, need: Role = Role.VIEWER
) -> tuple[Service, int]:
    """The service and its revision, for members of its project with `need`. Agents see only
    their own service."""
    found = await gw.services.get(service_id)
    if found is None or not await _may(gw, who, found[0].project_id, need, service_id):
        raise not_found("service", "serviceId", service_id)
    return found


async def execution_of(
    gw: Gateway, who: Principal, execution_id: str, need: Role = Role.VIEWER
) -> Execution:
    """The execution, for members of its project with `need`. Agents see only their own
    service's."""
    execution = await gw.ledger.get(execution_id)
    if execution is None or not await _may(
        gw, who, execution.project_id, need, execution.service_id
    ):
        raise not_found("execution", "executionId", execution_id)
    return execution


async def trigger_of(
    gw: Gateway, who: Principal, trigger_id: str, need: Role = Role.VIEWER
) -> tuple[Trigger, int]:
    """The trigger and its revision, for members of its project with `need`. Agents see only
    their own service's triggers."""
    found = await gw.triggers.get(trigger_id)
    if found is None or not await _may(
        gw, who, found[0].project_id, need, found[0].spec.operation.service_id
    ):
        raise not_found("trigger", "triggerId", trigger_id)
    return found


async def _may(
    gw: Gateway, who: Principal, project_id: str, need: Role, service_id: str | None = None
) -> bool:
    """Whether `who` may act with `need` on an object of `project_id` (and `service_id`).
    Members with too low a role get 403; everyone else is told the object does not exist."""
    if who.kind == "agent":
        return need is Role.VIEWER and service_id is not None and who.service_id == service_id
    role = await role_in(gw, who, project_id)
    if role is None:
        return False
    if not allows(role, need):
        raise ApiError(
            403, "forbidden", f"this needs the role {need.value} in the project (you: {role})"
        )
    return True
