"""HTTP routes for packages: push, update (a new revision), revisions, codebase download,
and deploy from a package.json with services and triggers."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, File, Form, Query, Response, UploadFile

from spool_common.errors import FieldError, ValidationFailure
from spool_common.models import Package
from spool_gateway.access import authorize, package_of, projects_visible
from spool_gateway.api import GatewayDep, PrincipalDep
from spool_gateway.catalog import Principal
from spool_gateway.core import Gateway
from spool_gateway.http_errors import ApiError
from spool_gateway.identity import Role
from spool_gateway.package_ops import Upload, deploy_from_file, push, update

router = APIRouter(tags=["packages"])

CodebaseFile = Annotated[UploadFile, File(description="zip archive of the package's code")]
PackageField = Annotated[str | None, Form(description="Package JSON: name, modules...")]
ProjectField = Annotated[str | None, Form(alias="projectId")]


def _fields(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        fields = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ValidationFailure(FieldError("package", f"not valid JSON: {e}")) from e
    if not isinstance(fields, dict):
        raise ValidationFailure(FieldError("package", "must be a JSON object"))
    return fields


async def _read(upload: UploadFile, limit: int) -> bytes:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise ApiError(
            413,
            "too_large",
            f"codebase is larger than {limit} bytes",
            (FieldError("codebase", f"at most {limit} bytes"),),
        )
    return data


async def _upload(
    gw: Gateway, who: Principal, package: str | None, project_id: str | None, codebase: UploadFile
) -> Upload:
    """The upload, once `who` is known to be a Developer or Owner of its project."""
    fields = _fields(package)
    project = fields.get("projectId") or project_id
    if not isinstance(project, str) or not project:
        raise ValidationFailure(FieldError("projectId", "required"))
    await authorize(gw, who, project, Role.DEVELOPER)
    return Upload(fields, await _read(codebase, gw.settings.max_upload_bytes), project)


@router.post("/packages", status_code=201)
async def push_package(
    gw: GatewayDep,
    who: PrincipalDep,
    codebase: CodebaseFile,
    package: PackageField = None,
    project_id: ProjectField = None,
) -> Package:
    """Push a new package: version 1.0.0, checked without running its code."""
    return await push(gw, await _upload(gw, who, package, project_id, codebase), who.subject)


@router.patch("/packages/{package_id}")
async def update_package(
    package_id: str,
    gw: GatewayDep,
    who: PrincipalDep,
    codebase: Annotated[UploadFile | None, File()] = None,
    package: PackageField = None,
) -> Package:
    """A new revision (the patch number goes up) from a new codebase, new fields, or both."""
    current = await package_of(gw, who, package_id, need=Role.DEVELOPER)
    data = None if codebase is None else await _read(codebase, gw.settings.max_upload_bytes)
    return await update(gw, current, _fields(package), data, who.subject)


@router.post("/packages/deploy", status_code=200)
async def deploy_package(
    gw: GatewayDep,
    who: PrincipalDep,
    codebase: CodebaseFile,
    package: PackageField = None,
    project_id: ProjectField = None,
) -> dict[str, Any]:
    """deploy_from_file: push or update the package, create or update each service of its
    package.json by name, and store their triggers."""
    upload = await _upload(gw, who, package, project_id, codebase)
    return await deploy_from_file(gw, upload, who.subject)


@router.get("/packages")
async def list_packages(
    gw: GatewayDep,
    who: PrincipalDep,
    project_id: Annotated[str | None, Query(alias="projectId")] = None,
    name: str | None = None,
) -> list[Package]:
    """The packages of the projects the caller is a member of."""
    return await gw.catalog.packages(await projects_visible(gw, who, project_id), name)


@router.get("/packages/{package_id}")
async def get_package(
    package_id: str, gw: GatewayDep, who: PrincipalDep, version: str | None = None
) -> Package:
    return await package_of(gw, who, package_id, version)


@router.get("/packages/{package_id}/revisions")
async def package_revisions(package_id: str, gw: GatewayDep, who: PrincipalDep) -> list[Package]:
    """Every revision's full Package JSON, oldest first."""
    await package_of(gw, who, package_id)
    return await gw.catalog.package_revisions(package_id)


@router.get("/packages/{package_id}/codebase", response_class=Response)
async def download_codebase(
    package_id: str, gw: GatewayDep, who: PrincipalDep, version: str | None = None
) -> Response:
    """The zip of a revision (the current one by default)."""
    package = await package_of(gw, who, package_id, version)
    data = await gw.catalog.codebase(package_id, package.version)
    assert data is not None
    return Response(data, media_type="application/zip")
