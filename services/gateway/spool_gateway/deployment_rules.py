"""Pure rules for deploying services: the request's shape and defaults, revision resolution,
updates as merges, and the service status a user sees. No I/O, no clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import Field, ValidationError

from spool_common.envfiles import parse_env_file
from spool_common.errors import FieldError, ValidationFailure, from_pydantic
from spool_common.models import (
    DEFAULT_DRAIN_TIME,
    DEFAULT_EXECUTION_TIMEOUT,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MODULE_NAME,
    MAX_EXECUTION_TIMEOUT,
    KubernetesRuntime,
    OnResetAction,
    Package,
    PackageFunction,
    Service,
    WireModel,
)
from spool_gateway.inputs import validate_input

LATEST = "latest"
# Fields a request may set; everything else on a Service is the server's.
SERVER_OWNED = frozenset(
    {
        "id",
        "projectId",
        "packageId",
        "name",
        "creator",
        "createdAt",
        "updatedAt",
        "updatedBy",
        "version",
        "url",
        "crashloop",
    }
)
# A replica that failed this recently, with none ready, puts the service in Error.
ERROR_WINDOW = timedelta(minutes=5)
LIVE_STATES = frozenset({"starting", "ready", "draining"})


class ServiceSpec(WireModel):
    """What a user sends to deploy a service (dtlpy's Service JSON is accepted as is)."""

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
    project_id: str
    package_id: str
    package_revision: str = LATEST
    module_name: str = DEFAULT_MODULE_NAME
    init_params: dict[str, Any] = Field(default_factory=dict)
    runtime: KubernetesRuntime = Field(default_factory=KubernetesRuntime)
    env_file: str | None = Field(default=None, description="dotenv text merged into runtime.env")
    execution_timeout: int = Field(
        default=DEFAULT_EXECUTION_TIMEOUT, ge=1, le=MAX_EXECUTION_TIMEOUT
    )
    drain_time: int = Field(default=DEFAULT_DRAIN_TIME, ge=0, le=MAX_EXECUTION_TIMEOUT)
    on_reset: OnResetAction = OnResetAction.FAILED
    max_attempts: int = Field(default=DEFAULT_MAX_ATTEMPTS, ge=1, le=100)
    run_execution_as_process: bool = False
    active: bool = True
    secrets: list[str] = Field(default_factory=list)
    integrations: list[dict[str, Any]] = Field(default_factory=list)
    bot_user_name: str | None = None
    bot_id: str | None = Field(
        default=None, max_length=64, description="the project bot the service runs as"
    )
    use_user_jwt: bool = False
    versions: dict[str, Any] | None = None
    driver_id: str | None = None
    mode: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    queue_length_limit: int | None = Field(default=None, ge=1)


def parse_spec(body: dict[str, Any]) -> ServiceSpec:
    try:
        return ServiceSpec.model_validate(body)
    except ValidationError as e:
        raise from_pydantic(e) from e


def resolve_revision(requested: str, package: Package, versions: list[str]) -> str:
    """`latest` (or nothing) means the package's current version; anything else must exist."""
    if requested in ("", LATEST):
        return package.version
    if requested not in versions:
        known = ", ".join(versions[-10:])
        raise ValidationFailure(
            FieldError(
                "packageRevision",
                f"package '{package.name}' has no revision '{requested}' (revisions: {known})",
            )
        )
    return requested


def checked_module_inputs(spec: ServiceSpec, package: Package) -> dict[str, Any]:
    """The module exists in this revision and initParams match its initInputs."""
    module = package.module(spec.module_name)
    if module is None:
        names = ", ".join(m.name for m in package.modules)
        raise ValidationFailure(
            FieldError(
                "moduleName",
                f"no module '{spec.module_name}' in "
                f"package '{package.name}' {package.version} "
                f"(modules: {names})",
            )
        )
    init = PackageFunction(name="__init__", input=module.init_inputs)
    return validate_input(init, spec.init_params, field="initParams").input


def merged_env(spec: ServiceSpec) -> dict[str, str]:
    """runtime.env with the env file's variables added; the file may not redefine one."""
    if spec.env_file is None:
        return dict(spec.runtime.env)
    from_file = parse_env_file(spec.env_file, field="envFile")
    clash = sorted(set(from_file) & set(spec.runtime.env))
    if clash:
        raise ValidationFailure(
            FieldError(
                "envFile",
                f"sets {', '.join(clash)}, already in runtime.env; set each variable once",
            )
        )
    return {**spec.runtime.env, **from_file}


def build_service(
    spec: ServiceSpec,
    package: Package,
    revision: str,
    *,
    service_id: str,
    who: str,
    now: datetime,
    previous: Service | None,
) -> Service:
    """The Service a spec deploys, checked against the package revision it pins. An inactive
    service keeps the `crashloop` that deactivated it; activating it clears it."""
    init_params = checked_module_inputs(spec, package)
    runtime = spec.runtime.model_copy(update={"env": merged_env(spec)})
    fields = spec.model_dump(exclude={"env_file", "runtime", "init_params", "package_revision"})
    return Service(
        **fields,
        id=service_id,
        package_revision=revision,
        init_params=init_params,
        runtime=runtime,
        creator=previous.creator if previous else who,
        created_at=previous.created_at if previous else now,
        updated_at=now,
        updated_by=who,
        crashloop=previous.crashloop if previous is not None and not spec.active else None,
    )


def merge_patch(target: Any, patch: Any) -> Any:
    """JSON merge patch (RFC 7386): objects merge key by key, null removes, the rest replace.
    So `{"runtime": {"concurrency": 3}}` changes the concurrency and keeps the rest."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def patched_spec(current: Service, patch: dict[str, Any]) -> ServiceSpec:
    """An update is the current service with the request's fields laid over it; `runtime` is
    merged (JSON merge patch), every other field is replaced. Fields the server owns are
    ignored if they repeat the current value, refused if they differ. An envFile's variables
    replace stored ones of the same name unless the request also sets them."""
    wire = current.to_wire()
    for key in sorted(SERVER_OWNED & patch.keys()):
        if patch[key] != wire.get(key):
            raise ValidationFailure(FieldError(key, "cannot be changed by an update"))
    merged = {**wire, **{k: v for k, v in patch.items() if k not in SERVER_OWNED}}
    if isinstance(patch.get("runtime"), dict):
        merged["runtime"] = merge_patch(wire["runtime"], patch["runtime"])
    if patch.get("envFile"):
        from_file = parse_env_file(patch["envFile"], field="envFile")
        sent = ((patch.get("runtime") or {}).get("env") or {}).keys()
        env = merged.get("runtime", {}).get("env", {})
        merged["runtime"]["env"] = {k: v for k, v in env.items() if k in sent or k not in from_file}
    return parse_spec(merged)


class ServiceStatus(StrEnum):
    ACTIVE = "Active"
    INACTIVE = "Inactive"
    INITIALIZING = "Initializing"
    ERROR = "Error"


def service_status(
    active: bool, desired: int, replicas: list[tuple[str, str, datetime]], now: datetime
) -> ServiceStatus:
    """replicas: (state, reason, updated_at) of the replicas heard of, newest first."""
    if not active:
        return ServiceStatus.INACTIVE
    if any(state == "ready" for state, _, _ in replicas) or desired == 0:
        return ServiceStatus.ACTIVE
    if any(state == "failed" and now - at <= ERROR_WINDOW for state, _, at in replicas):
        return ServiceStatus.ERROR
    return ServiceStatus.INITIALIZING
