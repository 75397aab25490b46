"""Pure: turn an uploaded archive and the request's package fields into a checked Package."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from spool_common.archive import Archive
from spool_common.errors import FieldError, ValidationFailure
from spool_common.models import Codebase, Package, PackageModule
from spool_gateway.inspect import (
    inspect_modules,
    mark_required,
    modules_from_sources,
    parse_package_json,
    parse_requirements,
)

DEFAULT_PACKAGE_NAME = "default-package"
NAME_PATTERN = r"^[a-z0-9][a-z0-9-_]{0,62}$"


def _modules(fields: dict[str, Any], manifest: dict[str, Any]) -> tuple[Any, str]:
    if "modules" in fields:
        return fields["modules"], "modules"
    if "modules" in manifest:
        return manifest["modules"], "package.json.modules"
    return None, "modules"


def _parse_modules(raw: Any, where: str) -> list[PackageModule]:
    if not isinstance(raw, list) or not raw:
        raise ValidationFailure(FieldError(where, "must be a non-empty list of modules"))
    modules = []
    for i, item in enumerate(raw):
        try:
            modules.append(PackageModule.model_validate(item))
        except ValidationError as e:
            first = e.errors()[0]
            loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
            raise ValidationFailure(FieldError(f"{where}[{i}]{loc}", first["msg"])) from e
    return modules


def build_package(
    fields: dict[str, Any],
    archive: Archive,
    *,
    package_id: str,
    project_id: str,
    creator: str,
    now: datetime,
) -> Package:
    """Package fields come from the request first, then the archive's package.json."""
    manifest: dict[str, Any] = {}
    if "package.json" in archive.files:
        manifest = parse_package_json(archive.files["package.json"])
    name = fields.get("name") or manifest.get("name") or DEFAULT_PACKAGE_NAME
    if not isinstance(name, str) or not _valid_name(name):
        raise ValidationFailure(
            FieldError("name", "must be 1-63 lowercase letters, digits, '-' or '_'")
        )
    raw_modules, where = _modules(fields, manifest)
    if raw_modules is None:
        modules = modules_from_sources(archive.files)
    else:
        modules = _parse_modules(raw_modules, where)
    inspect_modules(modules, archive.files, field=where)
    modules = mark_required(modules, archive.files)
    requirements = []
    if "requirements.txt" in archive.files:
        requirements = parse_requirements(
            archive.files["requirements.txt"].decode("utf-8", "replace")
        )
    return Package(
        id=package_id,
        name=name,
        version="1.0.0",
        project_id=project_id,
        creator=creator,
        modules=modules,
        codebase=Codebase(type="item", item_id=archive.sha256, size=archive.size),
        requirements=requirements,
        service_config=_service_config(manifest),
        created_at=now,
        updated_at=now,
    )


def _valid_name(name: str) -> bool:
    return re.fullmatch(NAME_PATTERN, name) is not None


def _service_config(manifest: dict[str, Any]) -> dict[str, Any]:
    """The first of package.json's `services`, the default for services deployed from it."""
    services = manifest.get("services", [])
    if not isinstance(services, list) or not all(isinstance(s, dict) for s in services):
        raise ValidationFailure(
            FieldError("package.json.services", "must be a list of service objects")
        )
    return dict(services[0]) if services else {}


def next_version(version: str) -> str:
    """The server bumps the patch number on every update: 1.0.0 → 1.0.1."""
    parts = version.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"not a semantic version: {version!r}")
    return f"{parts[0]}.{parts[1]}.{int(parts[2]) + 1}"


def as_update(built: Package, current: Package, now: datetime) -> Package:
    """A freshly built package as the next revision of `current` (same id, name, creator)."""
    if built.name != current.name:
        raise ValidationFailure(
            FieldError("name", f"is '{current.name}'; a package cannot be renamed")
        )
    return built.model_copy(
        update={
            "id": current.id,
            "version": next_version(current.version),
            "creator": current.creator,
            "created_at": current.created_at,
            "updated_at": now,
        }
    )


def same_content(a: Package, b: Package) -> bool:
    """Whether two builds would run the same: same code, modules and requirements."""
    keys = ("codebase", "modules", "requirements")
    return all(getattr(a, k) == getattr(b, k) for k in keys)


def manifest_services(archive: Archive) -> list[dict[str, Any]]:
    """package.json's `services`, each with its `triggers` (deploy_from_file)."""
    if "package.json" not in archive.files:
        return []
    manifest = parse_package_json(archive.files["package.json"])
    _service_config(manifest)  # validates the list's shape
    return [dict(s) for s in manifest.get("services", [])]
