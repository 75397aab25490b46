"""Look-ups that also decide who may see what: a missing object and one the caller may not
see answer the same 404, so ids of other tenants' objects reveal nothing."""

from __future__ import annotations

from spool_common.models import Execution, Package, Project, Service
from spool_gateway.catalog import Principal
from spool_gateway.core import Gateway
from spool_gateway.http_errors import ApiError, not_found


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise ApiError(403, "forbidden", "this operation needs a user token")


async def project_of(gw: Gateway, project_id: str, field: str = "projectId") -> Project:
    project = await gw.catalog.project(project_id)
    if project is None:
        raise not_found("project", field, project_id)
    return project


async def package_of(
    gw: Gateway, who: Principal, package_id: str, version: str | None = None
) -> Package:
    """The package (at `version`, if given). Agents see only their service's package."""
    if not who.is_admin:
        found = await gw.services.get(who.service_id or "")
        if found is None or found[0].package_id != package_id:
            raise not_found("package", "packageId", package_id)
    package = await gw.catalog.package(package_id, version)
    if package is None:
        if version is not None and await gw.catalog.package(package_id) is not None:
            raise not_found("package revision", "version", version)
        raise not_found("package", "packageId", package_id)
    return package


async def service_of(gw: Gateway, who: Principal, service_id: str) -> tuple[Service, int]:
    """The service and its revision. Agents see only their own service."""
    found = await gw.services.get(service_id)
    if found is None or not (who.is_admin or who.service_id == service_id):
        raise not_found("service", "serviceId", service_id)
    return found


async def execution_of(gw: Gateway, who: Principal, execution_id: str) -> Execution:
    """The execution. Agents see only their own service's."""
    execution = await gw.ledger.get(execution_id)
    if execution is None or not (who.is_admin or who.service_id == execution.service_id):
        raise not_found("execution", "executionId", execution_id)
    return execution
