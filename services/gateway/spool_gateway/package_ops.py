"""Use cases for packages: push, update (a new revision), and deploy from a package.json with
services and triggers. Everything is checked before anything is written."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from spool_common.archive import Archive, ArchiveLimits, read_archive
from spool_common.errors import FieldError, ValidationFailure
from spool_common.models import DEFAULT_MODULE_NAME, Package
from spool_gateway.core import Gateway
from spool_gateway.deployment_rules import checked_module_inputs, merged_env, parse_spec
from spool_gateway.http_errors import ApiError
from spool_gateway.packaging import as_update, build_package, manifest_services, same_content
from spool_gateway.trigger_ops import manifest_drafts, store_for
from spool_gateway.trigger_rules import TriggerDraft


@dataclass(frozen=True)
class Upload:
    fields: dict[str, Any]
    data: bytes
    project_id: str


def inspected(path: str) -> bool:
    """What the gateway reads of an archive: the code and the manifests. Everything else is
    checked (sizes, CRC) while streaming and never held in memory."""
    return path.endswith(".py") or path.rsplit("/", 1)[-1] in ("package.json", "requirements.txt")


def _archive(gw: Gateway, data: bytes) -> Archive:
    limits = ArchiveLimits(max_archive_bytes=gw.settings.max_upload_bytes)
    return read_archive(data, limits, keep=inspected)


def _build(gw: Gateway, upload: Upload, archive: Archive, who: str) -> Package:
    return build_package(
        upload.fields,
        archive,
        package_id=uuid.uuid4().hex,
        project_id=upload.project_id,
        creator=who,
        now=gw.clock(),
    )


async def push(gw: Gateway, upload: Upload, who: str) -> Package:
    archive = _archive(gw, upload.data)
    built = _build(gw, upload, archive, who)
    if await gw.catalog.packages([upload.project_id], built.name):
        raise ApiError(
            409,
            "conflict",
            f"package '{built.name}' exists in this project; update it with PATCH /packages/{{id}}",
            (FieldError("name", "already taken"),),
        )
    await gw.catalog.create_package(built, archive.sha256, upload.data)
    return built


async def update(
    gw: Gateway, current: Package, fields: dict[str, Any], data: bytes | None, who: str
) -> Package:
    """A new revision from a new archive, new fields, or both. Modules not given as fields
    come from the new archive (its package.json, else its sources) or, without one, are
    carried over."""
    base: dict[str, Any] = {"name": current.name}
    if data is None:
        data = await gw.catalog.codebase(current.id, current.version) or b""
        base["modules"] = [m.to_wire() for m in current.modules]
    upload = Upload({**base, **fields}, data, current.project_id)
    package = as_update(_build(gw, upload, _archive(gw, data), who), current, gw.clock())
    await _store_update(gw, package, current, data)
    return package


async def _store_update(gw: Gateway, package: Package, current: Package, data: bytes) -> None:
    codebase_id = package.codebase.item_id if package.codebase else None
    if codebase_id is None or not await gw.catalog.update_package(
        package, current.version, codebase_id, data
    ):
        raise ApiError(
            409,
            "conflict",
            f"package '{current.name}' changed meanwhile; retry",
            (FieldError("packageId", "updated concurrently"),),
        )


async def deploy_from_file(gw: Gateway, upload: Upload, who: str) -> dict[str, Any]:
    """Push or update the package named in package.json, then create or update each of its
    services by name, and create or replace their triggers by name (each announced)."""
    archive = _archive(gw, upload.data)
    built = _build(gw, upload, archive, who)
    services = manifest_services(archive)
    existing = await gw.catalog.packages([upload.project_id], built.name)
    package = as_update(built, existing[0], gw.clock()) if existing else built
    if existing and same_content(built, existing[0]):
        package = existing[0]  # an identical push reuses the current revision
    bodies = [_service_body(s, package, upload.project_id) for s in services]
    for i, body in enumerate(bodies):  # check every service before writing anything
        _precheck(body, package, f"package.json.services[{i}]")
    drafts = _manifest_triggers(services, bodies, package, upload.project_id)
    if not existing:
        await gw.catalog.create_package(package, archive.sha256, upload.data)
    elif package is not existing[0]:
        await _store_update(gw, package, existing[0], upload.data)
    deployed = [(await gw.deployments.deploy(body, who))[0] for body in bodies]
    stored = [
        await store_for(gw, draft, svc, who)
        for svc, service_drafts in zip(deployed, drafts, strict=True)
        for draft in service_drafts
    ]
    return {
        "package": package.to_wire(),
        "services": [s.to_wire() for s in deployed],
        "triggers": [t.to_wire() for t in stored],
    }


def _service_body(raw: dict[str, Any], package: Package, project_id: str) -> dict[str, Any]:
    body = {k: v for k, v in raw.items() if k != "triggers"}
    runtime = dict(body.get("runtime") or {})
    if "replicas" in runtime and "numReplicas" not in runtime:  # the legacy key of the asset
        runtime["numReplicas"] = runtime.pop("replicas")
    body.update(runtime=runtime, projectId=project_id, packageId=package.id)
    body.setdefault("packageRevision", package.version)
    if body["packageRevision"] == "latest":
        body["packageRevision"] = package.version
    return body


def _precheck(body: dict[str, Any], package: Package, where: str) -> None:
    try:
        spec = parse_spec(body)
        checked_module_inputs(spec, package)
        merged_env(spec)
    except ValidationFailure as e:
        raise ValidationFailure(FieldError(f"{where}.{f.field}", f.reason) for f in e.errors) from e


def _manifest_triggers(
    services: list[dict[str, Any]],
    bodies: list[dict[str, Any]],
    package: Package,
    project_id: str,
) -> list[list[TriggerDraft]]:
    """Each service's triggers, checked as POST /triggers checks them, against the module the
    service runs; names (a trigger's default is its service's name) must differ."""
    drafts, seen = [], set()
    for i, (raw, body) in enumerate(zip(services, bodies, strict=True)):
        where = f"package.json.services[{i}].triggers"
        module = package.module(str(body.get("moduleName", DEFAULT_MODULE_NAME)))
        assert module is not None  # _precheck checked it
        default = str(body.get("name"))
        found = manifest_drafts(raw.get("triggers") or [], module, project_id, where)
        for j, draft in enumerate(found):
            name = draft.name or default
            if name in seen:
                raise ValidationFailure.of(f"{where}[{j}].name", f"'{name}' is used twice")
            seen.add(name)
        drafts.append(found)
    return drafts
