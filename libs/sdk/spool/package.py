"""Packages: push a source directory (a new package, or a new revision of the one with that
name, as dtlpy's `push` does) and deploy it as a service."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from spool import codebase
from spool.client import Bound, Client
from spool.entity import Entity
from spool.errors import BadRequest, Conflict, required
from spool.project import need_one, only_one
from spool_common import models

if TYPE_CHECKING:
    from spool.project import Project
    from spool.runtime import KubernetesRuntime
    from spool.service import Service
    from spool.trigger import Trigger

DEFAULT_PACKAGE_NAME = "default-package"  # dtlpy's push default, and the gateway's


def default_service_name(package: models.Package) -> str:
    """dtlpy: the package's service config name, else the package's name (service names
    take no '_', so it becomes '-')."""
    configured = package.service_config.get("name")
    if isinstance(configured, str) and configured:
        return configured
    return package.name.replace("_", "-")


def default_module_name(package: models.Package) -> str | None:
    """The package's only module; None (the gateway's `default_module`) if it has several."""
    return package.modules[0].name if len(package.modules) == 1 else None


def _wire(value: Any) -> Any:
    return value.to_wire() if isinstance(value, models.WireModel) else value


def deploy_body(
    package: models.Package, name: str | None, given: Mapping[str, Any]
) -> dict[str, Any]:
    """Pure: the POST /services body. Only fields the caller gave are sent, so deploying an
    existing service's name again changes just those (the gateway's upsert)."""
    body = {
        "name": name or default_service_name(package),
        "projectId": package.project_id,
        "packageId": package.id,
        "packageRevision": package.version,
        "moduleName": default_module_name(package),
        **given,
    }
    return {key: _wire(value) for key, value in body.items() if value is not None}


class Package(models.Package, Entity):
    @property
    def revisions(self) -> builtins.list[Package]:
        """Every revision, oldest first (1.0.0, 1.0.1, ...)."""
        found = self.client.get(f"/packages/{self.id}/revisions")
        return [Package.from_json(self.client, p) for p in found]

    def deploy(
        self,
        service_name: str | None = None,
        runtime: KubernetesRuntime | models.KubernetesRuntime | None = None,
        init_input: Mapping[str, Any] | None = None,
        *,
        init_params: Mapping[str, Any] | None = None,
        module_name: str | None = None,
        package_revision: str | None = None,
        execution_timeout: int | None = None,
        drain_time: int | None = None,
        on_reset: models.OnResetAction | str | None = None,
        max_attempts: int | None = None,
        run_execution_as_process: bool | None = None,
        secrets: Sequence[str] | None = None,
        bot_id: str | None = None,
        active: bool | None = None,
    ) -> Service:
        """Create the service, or update the project's service of that name. It runs this
        revision (`package_revision` to pick another) of this package's only module."""
        from spool.service import Service

        if init_input is not None and init_params is not None:
            raise BadRequest("give init_input or init_params, not both")
        given = {
            "runtime": runtime,
            "initParams": init_input if init_input is not None else init_params,
            "moduleName": module_name,
            "packageRevision": package_revision,
            "executionTimeout": execution_timeout,
            "drainTime": drain_time,
            "onReset": on_reset,
            "maxAttempts": max_attempts,
            "runExecutionAsProcess": run_execution_as_process,
            "secrets": list(secrets) if secrets is not None else None,
            "botId": bot_id,
            "active": active,
        }
        given = {k: v for k, v in given.items() if v is not None}
        body = deploy_body(self, service_name, given)
        return Service.from_json(self.client, self.client.post("/services", body))


@dataclass(frozen=True)
class Deployment:
    """What `deploy_from_file` pushed and deployed."""

    package: Package
    services: builtins.list[Service]
    triggers: builtins.list[Trigger]


def push_fields(name: str, found: Mapping[str, Any], update: bool) -> dict[str, Any]:
    """The `package` form field. An update also sends package.json's modules: the gateway
    reads them from the archive only for a new package, and otherwise keeps the old ones."""
    fields: dict[str, Any] = {"name": name}
    if update and "modules" in found:
        fields["modules"] = found["modules"]
    return fields


class Packages(Bound):
    def __init__(self, client: Client | None = None, project_id: str | None = None) -> None:
        super().__init__(client)
        self._project_id = project_id

    def _project(self, project_id: str | None, project: Project | None) -> str:
        chosen = project_id or (project.id if project is not None else None) or self._project_id
        if chosen is None:
            raise required("project_id= or project=", "projectId")
        return chosen

    def push(
        self,
        src_path: str | Path,
        package_name: str | None = None,
        project_id: str | None = None,
        project: Project | None = None,
    ) -> Package:
        """Zip `src_path` and push it: a new package (1.0.0), or, if the project has one of
        that name, its next revision. The name is `package_name`, else package.json's, else
        `default-package`."""
        project_key = self._project(project_id, project)
        files = codebase.read_sources(Path(src_path))
        found = codebase.manifest(files)
        name = package_name or found.get("name") or DEFAULT_PACKAGE_NAME
        upload = {"codebase": ("codebase.zip", codebase.zip_sources(files), "application/zip")}
        existing = self.client.get("/packages", projectId=project_key, name=name)
        if existing:
            return self._update(existing[0]["id"], push_fields(name, found, True), upload)
        data = {"package": orjson.dumps(push_fields(name, found, False)).decode()}
        try:
            created = self.client.request(
                "POST", "/packages", files=upload, data={**data, "projectId": project_key}
            )
        except Conflict:  # pushed meanwhile by someone else: add a revision to theirs
            again = self.client.get("/packages", projectId=project_key, name=name)
            return self._update(again[0]["id"], push_fields(name, found, True), upload)
        return Package.from_json(self.client, created)

    def deploy_from_file(
        self, src_path: str | Path, project_id: str | None = None, project: Project | None = None
    ) -> Deployment:
        """dtlpy's deploy_from_file: push `src_path` (a new package or revision, reusing the
        current one if nothing changed), then create or update each service of its
        package.json by name, and their triggers by name."""
        from spool.service import Service
        from spool.trigger import Trigger

        files = codebase.read_sources(Path(src_path))
        upload = {"codebase": ("codebase.zip", codebase.zip_sources(files), "application/zip")}
        data = {"projectId": self._project(project_id, project)}
        done = self.client.request("POST", "/packages/deploy", files=upload, data=data)
        return Deployment(
            Package.from_json(self.client, done["package"]),
            [Service.from_json(self.client, s) for s in done["services"]],
            [Trigger.from_json(self.client, t) for t in done["triggers"]],
        )

    def _update(
        self, package_id: str, fields: dict[str, Any], upload: dict[str, tuple[str, bytes, str]]
    ) -> Package:
        data = {"package": orjson.dumps(fields).decode()}
        updated = self.client.request("PATCH", f"/packages/{package_id}", files=upload, data=data)
        return Package.from_json(self.client, updated)

    def get(
        self,
        package_id: str | None = None,
        package_name: str | None = None,
        project_id: str | None = None,
        version: str | None = None,
    ) -> Package:
        """By id, or by name (in `project_id` if given); `version` picks a revision."""
        need_one({"package_id": package_id, "package_name": package_name})
        if package_id is None:
            found = self.client.get(
                "/packages", name=package_name, projectId=project_id or self._project_id
            )
            package_id = only_one(found, "package", "packageName", str(package_name))["id"]
        data = self.client.get(f"/packages/{package_id}", version=version)
        return Package.from_json(self.client, data)

    def list(self, project_id: str | None = None) -> builtins.list[Package]:
        found = self.client.get("/packages", projectId=project_id or self._project_id)
        return [Package.from_json(self.client, p) for p in found]
