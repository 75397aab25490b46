"""MLRun-style runtime configuration of a service: environment, requests and limits, volumes,
preemption, priority, node selection and state thresholds. Pure models with validation;
values keep the user's spelling (e.g. "500m", "1Gi", "30 minutes") and are checked here.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from spool_common.durations import STATE_THRESHOLD_DEFAULTS, parse_duration
from spool_common.envfiles import NAME, RESERVED_PREFIX, validate_env
from spool_common.errors import ValidationFailure
from spool_common.models_base import WireModel
from spool_common.quantities import parse_cpu, parse_gpus, parse_memory

DEFAULT_GPU_TYPE = "nvidia.com/gpu"


def _reason(failure: ValidationFailure) -> str:
    return "; ".join(e.reason for e in failure.errors)


class PreemptionMode(StrEnum):
    """Whether pods may run on preemptible (spot) nodes (MLRun's with_preemption_mode)."""

    ALLOW = "allow"
    CONSTRAIN = "constrain"
    PREVENT = "prevent"
    NONE = "none"


_PARSERS: dict[str, Callable[[Any], object]] = {
    "cpu": lambda v: parse_cpu(v, field="cpu"),
    "memory": lambda v: parse_memory(v, field="memory"),
    "gpus": lambda v: parse_gpus(v, field="gpus"),
}


class ResourceAmounts(WireModel):
    cpu: str | float | None = None
    memory: str | int | None = None
    gpus: int | str | None = None

    @field_validator("cpu", "memory", "gpus", mode="before")
    @classmethod
    def _quantity(cls, value: Any, info: ValidationInfo) -> Any:
        """One clear error per amount, before pydantic tries each member of the union (and
        before it would read `true` as 1)."""
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError("must be a quantity such as 2, '500m' or '1Gi'")
        try:
            _PARSERS[info.field_name or "cpu"](value)
        except ValidationFailure as e:
            raise ValueError(_reason(e)) from e
        return value

    def cpu_cores(self) -> float | None:
        return None if self.cpu is None else parse_cpu(self.cpu, field="cpu")

    def memory_bytes(self) -> int | None:
        return None if self.memory is None else parse_memory(self.memory, field="memory")

    def gpu_count(self) -> int | None:
        return None if self.gpus is None else parse_gpus(self.gpus, field="gpus")


class ResourceSpec(WireModel):
    """Requests (what a replica needs to start) and limits (the most it may use)."""

    requests: ResourceAmounts = Field(default_factory=ResourceAmounts)
    limits: ResourceAmounts = Field(default_factory=ResourceAmounts)
    gpu_type: str = Field(default=DEFAULT_GPU_TYPE, min_length=1, max_length=253)

    @model_validator(mode="after")
    def _requests_within_limits(self) -> ResourceSpec:
        pairs = (
            ("cpu", self.requests.cpu_cores(), self.limits.cpu_cores()),
            ("memory", self.requests.memory_bytes(), self.limits.memory_bytes()),
            ("gpus", self.requests.gpu_count(), self.limits.gpu_count()),
        )
        for name, request, limit in pairs:
            if request is not None and limit is not None and request > limit:
                raise ValueError(f"requests.{name} is larger than limits.{name}")
        return self


class VolumeSpec(WireModel):
    """A volume mounted into every replica: a PVC, a ConfigMap or a Secret."""

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    type: Literal["pvc", "configMap", "secret"]
    source: str = Field(min_length=1, max_length=253, description="claim, ConfigMap or Secret")
    mount_path: str = Field(pattern=r"^/.*")
    sub_path: str | None = None
    read_only: bool = False


class StateThresholds(WireModel):
    """MLRun's "preventing stuck pods": how long a replica may stay in each state before it is
    aborted. Time strings such as "30 minutes 5h 1day"; "-1" means never."""

    pending_scheduled: str = STATE_THRESHOLD_DEFAULTS["pendingScheduled"]
    pending_not_scheduled: str = STATE_THRESHOLD_DEFAULTS["pendingNotScheduled"]
    image_pull_backoff: str = STATE_THRESHOLD_DEFAULTS["imagePullBackoff"]
    running: str = STATE_THRESHOLD_DEFAULTS["running"]

    @field_validator("*", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> str:
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise ValueError("must be a time string such as '30 minutes' or '1h', or -1")
        try:
            parse_duration(value, field="threshold")
        except ValidationFailure as e:
            raise ValueError(_reason(e)) from e
        return str(value)

    def seconds(self) -> dict[str, float | None]:
        """Each threshold in seconds; None for infinity."""
        return {
            key: parse_duration(getattr(self, attr), field=key)
            for key, attr in (
                ("pendingScheduled", "pending_scheduled"),
                ("pendingNotScheduled", "pending_not_scheduled"),
                ("imagePullBackoff", "image_pull_backoff"),
                ("running", "running"),
            )
        }


def _env_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a valid variable name: use letters, digits and _, "
            "not starting with a digit"
        )
    if name.startswith(RESERVED_PREFIX):
        raise ValueError(f"names starting with {RESERVED_PREFIX} are reserved for Spool")
    return name


def _env_value(value: Any) -> str:
    if not isinstance(value, str):
        text = "" if value is None else str(value).lower() if isinstance(value, bool) else value
        raise ValueError(f'must be a string; quote it: "{text}"')
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError("is not valid Unicode (a lone surrogate)") from e
    return value


EnvName = Annotated[str, AfterValidator(_env_name)]
EnvValue = Annotated[str, BeforeValidator(_env_value)]


def checked_env(value: dict[str, str]) -> dict[str, str]:
    """The limits on the whole set (count, size, NUL characters), after each variable is
    checked by its own validators (so an error names the variable)."""
    try:
        return validate_env(value, field="env")
    except ValidationFailure as e:
        raise ValueError(_reason(e)) from e
