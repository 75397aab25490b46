"""Entity models with the wire shapes of the Dataloop FaaS reference (camelCase JSON).

These are complete now so later work adds behaviour, not fields. Field names, defaults and
enum values follow ../shared/reference/dataloop-faas.md sections 1-4.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from spool_common.models_base import WireModel as WireModel
from spool_common.runtime_spec import (
    EnvName,
    EnvValue,
    PreemptionMode,
    ResourceSpec,
    StateThresholds,
    VolumeSpec,
    checked_env,
)

DEFAULT_ENTRY_POINT = "main.py"
DEFAULT_CLASS_NAME = "ServiceRunner"
DEFAULT_FUNCTION_NAME = "run"
DEFAULT_MODULE_NAME = "default_module"
DEFAULT_EXECUTION_TIMEOUT = 3600
DEFAULT_DRAIN_TIME = 600
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_COOLDOWN_PERIOD = 300
DEFAULT_POLLING_INTERVAL = 10


class PackageInputType(StrEnum):
    DATASET = "Dataset"
    ITEM = "Item"
    ANNOTATION = "Annotation"
    EXECUTION = "Execution"
    TASK = "Task"
    ASSIGNMENT = "Assignment"
    SERVICE = "Service"
    PACKAGE = "Package"
    PROJECT = "Project"
    RECIPE = "Recipe"
    JSON = "Json"
    STRING = "String"
    NUMBER = "Number"
    INTEGER = "Integer"
    FLOAT = "Float"
    BOOLEAN = "Boolean"
    MODEL = "Model"
    DATASETS = "Dataset[]"
    ITEMS = "Item[]"
    ANNOTATIONS = "Annotation[]"
    EXECUTIONS = "Execution[]"
    TASKS = "Task[]"
    ASSIGNMENTS = "Assignment[]"
    SERVICES = "Service[]"
    PACKAGES = "Package[]"
    PROJECTS = "Project[]"
    JSONS = "Json[]"
    STRINGS = "String[]"
    NUMBERS = "Number[]"
    INTEGERS = "Integer[]"
    FLOATS = "Float[]"
    BOOLEANS = "Boolean[]"
    MODELS = "Model[]"
    RECIPES = "Recipe[]"

    @property
    def is_list(self) -> bool:
        return self.value.endswith("[]")

    @property
    def element(self) -> PackageInputType:
        return PackageInputType(self.value.removesuffix("[]"))

    @property
    def is_entity(self) -> bool:
        return self.element.value not in SCALAR_INPUT_TYPES


SCALAR_INPUT_TYPES = frozenset({"Json", "String", "Number", "Integer", "Float", "Boolean"})


class ExecutionStatus(StrEnum):
    CREATED = "created"
    IN_PROGRESS = "in-progress"
    SUCCESS = "success"
    FAILED = "failed"
    TERMINATED = "terminated"
    ABORTED = "aborted"
    CANCELED = "canceled"
    SYSTEM_FAILURE = "system-failure"
    TIMEOUT = "timeout"
    RERUN = "rerun"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {
        ExecutionStatus.SUCCESS,
        ExecutionStatus.FAILED,
        ExecutionStatus.TERMINATED,
        ExecutionStatus.ABORTED,
        ExecutionStatus.CANCELED,
        ExecutionStatus.SYSTEM_FAILURE,
        ExecutionStatus.TIMEOUT,
    }
)


class OnResetAction(StrEnum):
    FAILED = "failed"
    RERUN = "rerun"


class PackageType(StrEnum):
    FAAS = "faas"
    APP = "app"
    ML = "ml"


class ServiceType(StrEnum):
    REGULAR = "regular"
    SYSTEM = "system"


class InstanceType(StrEnum):
    REGULAR_XS = "regular-xs"
    REGULAR_S = "regular-s"
    REGULAR_M = "regular-m"
    REGULAR_L = "regular-l"
    HIGHMEM_XS = "highmem-xs"
    HIGHMEM_S = "highmem-s"
    HIGHMEM_M = "highmem-m"
    HIGHMEM_L = "highmem-l"
    GPU_T4 = "gpu-t4"
    GPU_T4_M = "gpu-t4-m"


class AutoscalerType(StrEnum):
    RABBITMQ = "rabbitmq"
    RPS = "rps"


class TriggerResource(StrEnum):
    ITEM = "Item"
    DATASET = "Dataset"
    ANNOTATION = "Annotation"
    ITEM_STATUS = "ItemStatus"
    TASK = "Task"
    ASSIGNMENT = "Assignment"
    MODEL = "Model"


class TriggerAction(StrEnum):
    CREATED = "Created"
    UPDATED = "Updated"
    DELETED = "Deleted"
    CLONE = "Clone"
    STATUS_CHANGED = "statusChanged"
    TASK_ASSIGNED = "taskAssigned"


class TriggerExecutionMode(StrEnum):
    ONCE = "Once"
    ALWAYS = "Always"


class TriggerType(StrEnum):
    EVENT = "Event"
    CRON = "Cron"


# --- packages ---------------------------------------------------------------------------


class FunctionIO(WireModel):
    type: PackageInputType
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    value: Any = None
    description: str | None = None
    actions: list[str] | None = None
    integration: dict[str, Any] | None = None
    mandatory: bool | None = None


class PackageFunction(WireModel):
    name: str = Field(
        default=DEFAULT_FUNCTION_NAME, min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$"
    )
    description: str | None = None
    display_name: str | None = None
    display_icon: str | None = None
    input: list[FunctionIO] = Field(default_factory=list)
    output: list[FunctionIO] = Field(default_factory=list)
    compute_config: str | None = None


class PackageModule(WireModel):
    name: str = Field(default=DEFAULT_MODULE_NAME, min_length=1, max_length=128)
    entry_point: str = Field(default=DEFAULT_ENTRY_POINT, min_length=1)
    class_name: str = Field(
        default=DEFAULT_CLASS_NAME, min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$"
    )
    init_inputs: list[FunctionIO] = Field(default_factory=list)
    functions: list[PackageFunction] = Field(
        default_factory=lambda: [PackageFunction(name=DEFAULT_FUNCTION_NAME)]
    )
    compute_config: str | None = None

    def function(self, name: str) -> PackageFunction | None:
        return next((f for f in self.functions if f.name == name), None)


class Requirement(WireModel):
    name: str
    version: str | None = None
    operator: Literal["==", ">", "<", "<=", ">="] | None = None


class Codebase(WireModel):
    """Where a revision's code lives. `item` points at a stored archive by id (its sha256)."""

    type: Literal["item", "git", "filesystem", "local"] = "item"
    item_id: str | None = None
    md5: str | None = None
    size: int | None = None


class Package(WireModel):
    id: str
    name: str
    version: str = "1.0.0"
    project_id: str
    creator: str | None = None
    type: PackageType = PackageType.FAAS
    modules: list[PackageModule] = Field(default_factory=list)
    codebase: Codebase | None = None
    requirements: list[Requirement] = Field(default_factory=list)
    service_config: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    is_global: bool = Field(default=False, alias="global")
    created_at: datetime | None = None
    updated_at: datetime | None = None
    url: str | None = None

    def module(self, name: str) -> PackageModule | None:
        return next((m for m in self.modules if m.name == name), None)


# --- services ---------------------------------------------------------------------------


class _AutoscalerBase(WireModel):
    min_replicas: int = Field(default=0, ge=0, le=1000)
    max_replicas: int = Field(default=1, ge=0, le=1000)
    cooldown_period: int | None = Field(default=DEFAULT_COOLDOWN_PERIOD, ge=0)
    polling_interval: int | None = Field(default=DEFAULT_POLLING_INTERVAL, ge=1)

    @model_validator(mode="after")
    def _bounds(self) -> _AutoscalerBase:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas ({self.min_replicas}) is larger than "
                f"maxReplicas ({self.max_replicas})"
            )
        return self


class RabbitmqAutoscaler(_AutoscalerBase):
    type: Literal[AutoscalerType.RABBITMQ] = AutoscalerType.RABBITMQ
    queue_length: int = Field(default=1000, ge=1)


class RpsAutoscaler(_AutoscalerBase):
    type: Literal[AutoscalerType.RPS] = AutoscalerType.RPS
    threshold: int = Field(default=10, ge=1)
    rate_seconds: int = Field(default=30, ge=1)


Autoscaler = Annotated[RabbitmqAutoscaler | RpsAutoscaler, Field(discriminator="type")]


class KubernetesRuntime(WireModel):
    pod_type: InstanceType = InstanceType.REGULAR_S
    num_replicas: int = Field(default=1, ge=0, le=1000)
    concurrency: int = Field(default=10, ge=1, le=1000)
    runner_image: str | None = None
    proxy_image: str | None = None
    single_agent: bool | None = None
    preemptible: bool | None = None
    dynamic_concurrency: bool | None = None
    dynamic_concurrency_config: dict[str, Any] | None = None
    autoscaler: Autoscaler | None = None
    # MLRun-style configuration (../shared/seeds/mlrun-configuring-runs-and-functions.txt).
    env: dict[EnvName, EnvValue] = Field(default_factory=dict)
    resources: ResourceSpec | None = None
    volumes: list[VolumeSpec] = Field(default_factory=list, max_length=64)
    preemption_mode: PreemptionMode | None = None
    priority_class_name: str | None = Field(default=None, min_length=1, max_length=253)
    node_selector: dict[str, str] = Field(default_factory=dict)
    state_thresholds: StateThresholds = Field(default_factory=StateThresholds)

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        return checked_env(value)

    @field_validator("volumes")
    @classmethod
    def _distinct_volumes(cls, volumes: list[VolumeSpec]) -> list[VolumeSpec]:
        for what, values in (
            ("name", [v.name for v in volumes]),
            ("mountPath", [v.mount_path for v in volumes]),
        ):
            if len(values) != len(set(values)):
                raise ValueError(f"two volumes share the same {what}")
        return volumes


MAX_EXECUTION_TIMEOUT = 2_500_000  # the seed's recommended maximum, in seconds


class Service(WireModel):
    id: str
    name: str
    project_id: str
    package_id: str
    package_revision: str
    module_name: str = DEFAULT_MODULE_NAME
    init_params: dict[str, Any] = Field(default_factory=dict)
    runtime: KubernetesRuntime = Field(default_factory=KubernetesRuntime)
    execution_timeout: int = Field(
        default=DEFAULT_EXECUTION_TIMEOUT, ge=1, le=MAX_EXECUTION_TIMEOUT
    )
    drain_time: int = Field(default=DEFAULT_DRAIN_TIME, ge=0, le=MAX_EXECUTION_TIMEOUT)
    on_reset: OnResetAction = OnResetAction.FAILED
    max_attempts: int = Field(default=DEFAULT_MAX_ATTEMPTS, ge=1, le=100)
    run_execution_as_process: bool = False
    secrets: list[str] = Field(default_factory=list)
    integrations: list[dict[str, Any]] = Field(default_factory=list)
    active: bool = True
    bot_user_name: str | None = None
    bot_id: str | None = None  # the project bot the service runs as (None: admin-deployed)
    use_user_jwt: bool = False
    versions: dict[str, Any] | None = None
    driver_id: str | None = None
    mode: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    queue_length_limit: int | None = None
    type: ServiceType = ServiceType.REGULAR
    is_global: bool = Field(default=False, alias="global")
    crashloop: dict[str, Any] | None = None
    version: str | None = None
    creator: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None
    url: str | None = None


# --- executions -------------------------------------------------------------------------


class ExecutionError(WireModel):
    type: str
    message: str
    traceback: str | None = None


class StatusEntry(WireModel):
    status: ExecutionStatus
    timestamp: datetime
    message: str | None = None
    percent_complete: int | None = None
    replica_id: str | None = None
    attempt: int | None = None
    service_revision: int | None = None  # in-progress: the service revision that ran it
    error: ExecutionError | None = None


class ResourceRef(WireModel):
    type: str
    id: str


class ExecutionPhases(WireModel):
    """When the execution was queued, when its last attempt started and finished, and how long
    the replica that ran it took to start (its cold start)."""

    queued_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    replica_init_seconds: float | None = None


class Execution(WireModel):
    id: str
    project_id: str
    service_id: str
    service_name: str | None = None
    package_id: str | None = None
    package_name: str | None = None
    package_revision: str | None = None
    module_name: str | None = None
    function_name: str = DEFAULT_FUNCTION_NAME
    input: dict[str, Any] = Field(default_factory=dict)
    output: Any = None
    status_log: list[StatusEntry] = Field(default_factory=list)
    latest_status: StatusEntry
    attempts: int = 0
    service_revision: int | None = None  # the service revision of the latest run
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    duration: float | None = None
    to_terminate: bool = False
    trigger_id: str | None = None
    resources: list[ResourceRef] = Field(default_factory=list)
    phases: ExecutionPhases | None = None
    creator: str | None = None
    created_at: datetime
    updated_at: datetime
    url: str | None = None


# --- triggers ---------------------------------------------------------------------------


class TriggerOperation(WireModel):
    type: Literal["function"] = "function"
    service_id: str
    function_name: str = DEFAULT_FUNCTION_NAME


class EventTriggerSpec(WireModel):
    resource: TriggerResource = TriggerResource.ITEM
    actions: list[TriggerAction] = Field(default_factory=lambda: [TriggerAction.CREATED])
    filter: dict[str, Any] = Field(default_factory=dict)
    execution_mode: TriggerExecutionMode = TriggerExecutionMode.ONCE
    input: dict[str, Any] = Field(default_factory=dict)
    operation: TriggerOperation


class CronTriggerSpec(WireModel):
    cron: str
    start_at: datetime | None = None
    end_at: datetime | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    operation: TriggerOperation


class Trigger(WireModel):
    id: str
    name: str
    project_id: str
    type: TriggerType = TriggerType.EVENT
    active: bool = True
    scope: str | None = None
    is_global: bool = Field(default=False, alias="global")
    spec: EventTriggerSpec | CronTriggerSpec
    creator: str | None = None
    updated_by: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    url: str | None = None


class Project(WireModel):
    id: str
    name: str
    creator: str | None = None
    created_at: datetime | None = None
