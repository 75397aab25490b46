"""Use cases for packages: push, update (a new revision), and deploy from a package.json with
services and triggers. Everything is checked before anything is written."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from spool_common.archive import Archive, ArchiveLimits, read_archive
from spool_common.errors import FieldError, ValidationFailure, from_pydantic
from spool_common.models import (
    CronTriggerSpec,
    EventTriggerSpec,
    Package,
    Service,
    Trigger,
    TriggerType,
)
from spool_gateway.core import Gateway
from spool_gateway.deployment_rules import checked_module_inputs, merged_env, parse_spec
from spool_gateway.http_errors import ApiError
from spool_gateway.packaging import as_update, build_package, manifest_services, same_content


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
    if await gw.catalog.packages(upload.project_id, built.name):
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
    """A new revision from a new archive, new fields, or both (the rest carried over)."""
    if data is None:
        data = await gw.catalog.codebase(current.id, current.version) or b""
    base = {"name": current.name, "modules": [m.to_wire() for m in current.modules]}
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
    services by name, and store their triggers (they fire once the trigger engine does)."""
    archive = _archive(gw, upload.data)
    built = _build(gw, upload, archive, who)
    services = manifest_services(archive)
    existing = await gw.catalog.packages(upload.project_id, built.name)
    package = as_update(built, existing[0], gw.clock()) if existing else built
    if existing and same_content(built, existing[0]):
        package = existing[0]  # an identical push reuses the current revision
    bodies = [_service_body(s, package, upload.project_id) for s in services]
    for i, body in enumerate(bodies):  # check every service before writing anything
        _precheck(body, package, f"package.json.services[{i}]")
    triggers = [_triggers(s, i, upload.project_id, gw) for i, s in enumerate(services)]
    if not existing:
        await gw.catalog.create_package(package, archive.sha256, upload.data)
    elif package is not existing[0]:
        await _store_update(gw, package, existing[0], upload.data)
    deployed = [(await gw.deployments.deploy(body, who))[0] for body in bodies]
    stored = [
        await gw.services.upsert_trigger(_target(t, svc), svc.id)
        for svc, ts in zip(deployed, triggers, strict=True)
        for t in ts
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


def _triggers(service: dict[str, Any], i: int, project_id: str, gw: Gateway) -> list[Trigger]:
    raw = service.get("triggers") or []
    if not isinstance(raw, list):
        raise ValidationFailure(
            FieldError(f"package.json.services[{i}].triggers", "must be a list")
        )
    return [
        _trigger(t, f"package.json.services[{i}].triggers[{j}]", project_id, gw)
        for j, t in enumerate(raw)
    ]


def _trigger(raw: Any, where: str, project_id: str, gw: Gateway) -> Trigger:
    if not isinstance(raw, dict):
        raise ValidationFailure(FieldError(where, "must be a trigger object"))
    spec = dict(raw.get("spec") or {})
    spec["operation"] = {
        "type": "function",
        "serviceId": "pending",
        "functionName": (spec.get("operation") or {}).get("functionName", "run"),
    }
    kind = raw.get("type", TriggerType.EVENT)
    try:
        model = CronTriggerSpec if kind == TriggerType.CRON else EventTriggerSpec
        now = gw.clock()
        return Trigger(
            id=uuid.uuid4().hex,
            name=raw.get("name", ""),
            project_id=project_id,
            type=kind,
            active=raw.get("active", True),
            spec=model.model_validate(spec),
            created_at=now,
            updated_at=now,
        )
    except ValidationError as e:
        raise from_pydantic(e, where) from e


def _target(trigger: Trigger, service: Service) -> Trigger:
    spec = trigger.spec.model_copy(
        update={"operation": trigger.spec.operation.model_copy(update={"service_id": service.id})}
    )
    return trigger.model_copy(update={"spec": spec})
