"""A service's runtime under dtlpy's names, with MLRun's modifiers.

`KubernetesRuntime` is the gateway's own model (`spool_common.models.KubernetesRuntime`: pod
type, replicas, concurrency, autoscaler, env, resources, preemption, priority, node selector,
state thresholds) with MLRun-style methods that change it in place and return it, so they
chain: `runtime.with_limits(mem="2G").set_env("MODE", "fast")`. Each change is checked by the
same validators the gateway runs, so a bad value fails here, naming the field, before anything
is sent. The autoscalers and the instance catalog are the gateway's models under dtlpy's names.

Tolerations: Spool's runtime has no tolerations field (the Kubernetes driver derives them from
`preemptionMode`), so `with_node_selection` takes a node selector only.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ValidationError

from spool.errors import from_validation
from spool_common import models
from spool_common.durations import MLRUN_STATE_NAMES
from spool_common.envfiles import parse_env_file
from spool_common.errors import ValidationFailure, from_pydantic
from spool_common.runtime_spec import (
    DEFAULT_GPU_TYPE,
    PreemptionMode,
    ResourceSpec,
    StateThresholds,
)

KubernetesRabbitmqAutoscaler = models.RabbitmqAutoscaler
KubernetesRPSAutoscaler = models.RpsAutoscaler
KubernetesAutoscalerType = models.AutoscalerType
InstanceCatalog = models.InstanceType

__all__ = [
    "InstanceCatalog",
    "KubernetesAutoscalerType",
    "KubernetesRPSAutoscaler",
    "KubernetesRabbitmqAutoscaler",
    "KubernetesRuntime",
    "PreemptionMode",
]


def _amounts(
    current: dict[str, Any], patch: bool, cpu: Any, memory: Any, gpus: Any = None
) -> dict[str, Any]:
    """MLRun's `patch`: False replaces the amounts with the ones given, True keeps the rest."""
    given = {k: v for k, v in (("cpu", cpu), ("memory", memory), ("gpus", gpus)) if v is not None}
    return {**current, **given} if patch else given


def _plain(value: Any) -> Any:
    """Models as JSON, so validation checks them again (pydantic trusts model instances)."""
    return value.model_dump(by_alias=True) if isinstance(value, BaseModel) else value


class KubernetesRuntime(models.KubernetesRuntime):
    """How a service runs: `pod_type` (`regular-s`), `num_replicas` (1), `concurrency` (10),
    `autoscaler` (none), and the MLRun settings below."""

    def _apply(self, **changes: Any) -> Self:
        """Set `changes` if the runtime with them is valid; else raise `BadRequest`."""
        fields = type(self).model_fields
        wire = {fields[name].alias or name: _plain(value) for name, value in changes.items()}
        candidate = {**self.model_dump(by_alias=True), **wire}  # so errors name camelCase paths
        try:
            checked = type(self).model_validate(candidate)
        except ValidationError as e:
            raise from_validation(from_pydantic(e, "runtime")) from None
        for name in changes:
            setattr(self, name, getattr(checked, name))
        return self

    def set_env(self, name: str, value: str) -> Self:
        """One environment variable of the user code."""
        return self._apply(env={**self.env, name: value})

    def set_envs(
        self, env_vars: Mapping[str, str] | None = None, file_path: str | Path | None = None
    ) -> Self:
        """Several variables, from a mapping and/or a dotenv file (MLRun's format)."""
        added = dict(env_vars or {})
        if file_path is not None:
            text = Path(file_path).read_text(encoding="utf-8")
            try:
                added.update(parse_env_file(text, field=str(file_path)))
            except ValidationFailure as e:
                raise from_validation(e) from None
        return self._apply(env={**self.env, **added})

    def with_requests(
        self, mem: str | int | None = None, cpu: str | float | None = None, patch: bool = False
    ) -> Self:
        """What a replica needs to be scheduled (`mem="1G"`, `cpu=1` or `"500m"`)."""
        spec = (self.resources or ResourceSpec()).to_wire()
        spec["requests"] = _amounts(spec["requests"], patch, cpu, mem)
        return self._apply(resources=spec)

    def with_limits(
        self,
        mem: str | int | None = None,
        cpu: str | float | None = None,
        gpus: int | None = None,
        gpu_type: str = DEFAULT_GPU_TYPE,
        patch: bool = False,
    ) -> Self:
        """The most a replica may use; GPUs as `gpu_type` (`nvidia.com/gpu`)."""
        spec = (self.resources or ResourceSpec()).to_wire()
        spec["limits"] = _amounts(spec["limits"], patch, cpu, mem, gpus)
        return self._apply(resources={**spec, "gpuType": gpu_type})

    def with_preemption_mode(self, mode: PreemptionMode | str) -> Self:
        """Whether replicas may run on preemptible (spot) nodes: allow, constrain, prevent."""
        return self._apply(preemption_mode=mode)

    def with_priority_class(self, name: str) -> Self:
        return self._apply(priority_class_name=name)

    def with_node_selection(self, node_selector: Mapping[str, str] | None = None) -> Self:
        """Only nodes with these labels (merged over the current selector)."""
        return self._apply(node_selector={**self.node_selector, **(node_selector or {})})

    def set_state_thresholds(self, state_thresholds: Mapping[str, str], patch: bool = True) -> Self:
        """How long a replica may stay pending, pulling its image, or running but never ready
        (`{"pending_not_scheduled": "1 min"}`; MLRun's snake_case or Spool's camelCase)."""
        base = self.state_thresholds.to_wire() if patch else {}
        merged = {**base, **{MLRUN_STATE_NAMES.get(k, k): v for k, v in state_thresholds.items()}}
        try:
            thresholds = StateThresholds.model_validate(merged)
        except ValidationError as e:
            raise from_validation(from_pydantic(e, "runtime.stateThresholds")) from None
        return self._apply(state_thresholds=thresholds)
