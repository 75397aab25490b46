"""Table tests for a service's runtime: requests and limits, state thresholds, volumes,
autoscaler defaults, and the camelCase wire shape (with a hypothesis round trip)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from spool_common.envfiles import RESERVED_PREFIX
from spool_common.errors import FieldError, from_pydantic
from spool_common.models import (
    AutoscalerType,
    InstanceType,
    KubernetesRuntime,
    RabbitmqAutoscaler,
    RpsAutoscaler,
)
from spool_common.runtime_spec import (
    PreemptionMode,
    ResourceSpec,
    StateThresholds,
    VolumeSpec,
)


def refusal(model: type[BaseModel], data: dict[str, Any]) -> list[FieldError]:
    """The errors a user sees when `data` is sent as `runtime` (paths under `runtime`)."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return list(from_pydantic(caught.value, prefix="runtime").errors)


# --- ResourceSpec --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requests", "limits"),
    [
        pytest.param({"cpu": "500m"}, {"cpu": "1"}, id="cpu-millicores-below-cores"),
        pytest.param({"cpu": "1"}, {"cpu": "1000m"}, id="cpu-equal-in-other-units"),
        pytest.param({"cpu": 0.25}, {"cpu": "250m"}, id="cpu-number-equal"),
        pytest.param({"memory": "1000M"}, {"memory": "1Gi"}, id="memory-decimal-below-binary"),
        pytest.param({"memory": "512Mi"}, {"memory": 536870912}, id="memory-equal-bytes"),
        pytest.param({"memory": "1Gi"}, {"memory": "1.5Gi"}, id="memory-fraction"),
        pytest.param({"gpus": "1"}, {"gpus": 1}, id="gpus-equal"),
        pytest.param({"gpus": 0}, {"gpus": 2}, id="gpus-below"),
        pytest.param({"cpu": "64", "memory": "256Gi"}, {}, id="requests-only"),
        pytest.param({}, {"cpu": "100m", "memory": "64Mi", "gpus": 1}, id="limits-only"),
        pytest.param({"cpu": "2"}, {"memory": "1Gi"}, id="different-resources"),
    ],
)
def test_requests_within_limits_are_accepted(
    requests: dict[str, Any], limits: dict[str, Any]
) -> None:
    spec = ResourceSpec.model_validate({"requests": requests, "limits": limits})
    assert spec.requests.model_dump(exclude_none=True) == requests
    assert spec.limits.model_dump(exclude_none=True) == limits


@pytest.mark.parametrize(
    ("requests", "limits", "name"),
    [
        pytest.param({"cpu": "1.5"}, {"cpu": "1"}, "cpu", id="cpu"),
        pytest.param({"cpu": 2}, {"cpu": "1500m"}, "cpu", id="cpu-number-vs-millicores"),
        pytest.param({"cpu": "1001m"}, {"cpu": "1"}, "cpu", id="cpu-one-millicore-over"),
        pytest.param({"memory": "1Gi"}, {"memory": "1000M"}, "memory", id="memory-mixed-units"),
        pytest.param({"memory": "1Gi"}, {"memory": "1G"}, "memory", id="memory-gi-vs-g"),
        pytest.param({"memory": 1025}, {"memory": "1Ki"}, "memory", id="memory-bytes"),
        pytest.param({"gpus": 2}, {"gpus": 1}, "gpus", id="gpus"),
        pytest.param({"gpus": 1}, {"gpus": "0"}, "gpus", id="gpus-string-limit"),
    ],
)
def test_requests_above_limits_are_refused(
    requests: dict[str, Any], limits: dict[str, Any], name: str
) -> None:
    runtime = {"resources": {"requests": requests, "limits": limits}}
    errors = refusal(KubernetesRuntime, runtime)
    assert errors == [
        FieldError("runtime.resources", f"requests.{name} is larger than limits.{name}")
    ]


@pytest.mark.parametrize(
    ("amounts", "field"),
    [
        pytest.param({"limits": {"memory": "1Gb"}}, "runtime.resources.limits.memory", id="gb"),
        pytest.param({"limits": {"memory": "512m"}}, "runtime.resources.limits.memory", id="m"),
        pytest.param({"requests": {"cpu": "0"}}, "runtime.resources.requests.cpu", id="cpu-0"),
        pytest.param({"requests": {"cpu": "2 cores"}}, "runtime.resources.requests.cpu", id="txt"),
        pytest.param({"limits": {"gpus": "1.5"}}, "runtime.resources.limits.gpus", id="half-gpu"),
        pytest.param({"limits": {"gpus": -1}}, "runtime.resources.limits.gpus", id="neg-gpus"),
    ],
)
def test_bad_quantities_name_the_amount(amounts: dict[str, Any], field: str) -> None:
    assert [e.field for e in refusal(KubernetesRuntime, {"resources": amounts})] == [field]


@pytest.mark.parametrize(
    ("amounts", "field"),
    [
        pytest.param({"limits": {"gpus": 1.5}}, "runtime.resources.limits.gpus", id="gpus-float"),
        pytest.param({"limits": {"cpu": [1]}}, "runtime.resources.limits.cpu", id="cpu-list"),
        pytest.param(
            {"limits": {"memory": {"gi": 1}}}, "runtime.resources.limits.memory", id="obj"
        ),
        pytest.param(
            {"requests": {"memory": 1.5}}, "runtime.resources.requests.memory", id="memory-float"
        ),
    ],
)
def test_wrong_json_types_get_one_error_on_the_amount(amounts: dict[str, Any], field: str) -> None:
    assert [e.field for e in refusal(KubernetesRuntime, {"resources": amounts})] == [field]


@pytest.mark.parametrize("amount", ["cpu", "memory", "gpus"])
@pytest.mark.parametrize("value", [True, False])
def test_booleans_are_not_quantities(amount: str, value: bool) -> None:
    # `true` must not become 1 core, 1 byte or 1 GPU.
    errors = refusal(KubernetesRuntime, {"resources": {"limits": {amount: value}}})
    assert [e.field for e in errors] == [f"runtime.resources.limits.{amount}"]


@pytest.mark.parametrize(
    ("given", "gpu_type"),
    [
        pytest.param({}, "nvidia.com/gpu", id="default"),
        pytest.param({"gpuType": "amd.com/gpu"}, "amd.com/gpu", id="camel"),
        pytest.param({"gpu_type": "amd.com/gpu"}, "amd.com/gpu", id="snake"),
    ],
)
def test_gpu_type(given: dict[str, Any], gpu_type: str) -> None:
    spec = ResourceSpec.model_validate({"limits": {"gpus": 1}, **given})
    assert spec.gpu_type == gpu_type
    assert spec.to_wire()["gpuType"] == gpu_type


# --- StateThresholds -----------------------------------------------------------------------


def test_state_threshold_defaults_are_mlruns() -> None:
    thresholds = StateThresholds()
    assert thresholds.to_wire() == {
        "pendingScheduled": "1h",
        "pendingNotScheduled": "-1",
        "imagePullBackoff": "1h",
        "running": "24h",
    }
    assert thresholds.seconds() == {
        "pendingScheduled": 3600.0,
        "pendingNotScheduled": None,
        "imagePullBackoff": 3600.0,
        "running": 86400.0,
    }


def test_a_runtime_has_the_default_thresholds() -> None:
    assert KubernetesRuntime().state_thresholds == StateThresholds()


@pytest.mark.parametrize(
    ("value", "stored", "seconds"),
    [
        pytest.param("30 minutes 5h 1day", "30 minutes 5h 1day", 106200.0, id="mlrun-example"),
        pytest.param("1 minute and 30s", "1 minute and 30s", 90.0, id="and"),
        pytest.param("90s", "90s", 90.0, id="seconds"),
        pytest.param("2 weeks", "2 weeks", 1209600.0, id="weeks"),
        pytest.param(-1, "-1", None, id="minus-one-int"),
        pytest.param("-1", "-1", None, id="minus-one-string"),
    ],
)
@pytest.mark.parametrize(
    ("key", "attribute"),
    [
        ("pendingScheduled", "pending_scheduled"),
        ("pendingNotScheduled", "pending_not_scheduled"),
        ("imagePullBackoff", "image_pull_backoff"),
        ("running", "running"),
    ],
)
def test_thresholds_accept_mlrun_time_strings(
    key: str, attribute: str, value: str | int, stored: str, seconds: float | None
) -> None:
    thresholds = StateThresholds.model_validate({key: value})
    assert getattr(thresholds, attribute) == stored
    assert thresholds.seconds()[key] == seconds


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        pytest.param("5 parsecs", "parsecs", id="unknown-unit"),
        pytest.param("90", "no unit", id="no-unit"),
        pytest.param(90, '"90s"', id="int-without-unit"),
        pytest.param("", "empty", id="empty"),
        pytest.param(-2, "negative", id="negative-int"),
        pytest.param("-5m", "negative", id="negative-string"),
        pytest.param(True, "time string", id="boolean"),
        pytest.param(None, "time string", id="null"),
        pytest.param(1.5, "time string", id="float"),
    ],
)
def test_bad_thresholds_name_the_state(value: Any, quoted: str) -> None:
    errors = refusal(KubernetesRuntime, {"stateThresholds": {"running": value}})
    assert [e.field for e in errors] == ["runtime.stateThresholds.running"]
    assert quoted in errors[0].reason


# --- VolumeSpec ----------------------------------------------------------------------------

VOLUME = {"name": "data", "source": "claim", "mountPath": "/data"}


@pytest.mark.parametrize("kind", ["pvc", "configMap", "secret"])
def test_volume_types(kind: str) -> None:
    assert VolumeSpec.model_validate({**VOLUME, "type": kind}).type == kind


@pytest.mark.parametrize("kind", ["hostPath", "emptyDir", "PVC", "configmap", "nfs", ""])
def test_other_volume_types_are_refused(kind: str) -> None:
    errors = refusal(KubernetesRuntime, {"volumes": [{**VOLUME, "type": kind}]})
    assert [e.field for e in errors] == ["runtime.volumes[0].type"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param({"mountPath": "data"}, "runtime.volumes[0].mountPath", id="relative-path"),
        pytest.param({"mountPath": ""}, "runtime.volumes[0].mountPath", id="empty-path"),
        pytest.param({"name": "Data"}, "runtime.volumes[0].name", id="capital-name"),
        pytest.param({"name": "data-"}, "runtime.volumes[0].name", id="trailing-dash"),
        pytest.param({"source": ""}, "runtime.volumes[0].source", id="no-source"),
    ],
)
def test_bad_volumes_name_the_field(change: dict[str, str], field: str) -> None:
    errors = refusal(KubernetesRuntime, {"volumes": [{**VOLUME, "type": "pvc", **change}]})
    assert [e.field for e in errors] == [field]


# --- autoscalers and runtime defaults ------------------------------------------------------


@pytest.mark.parametrize(
    ("autoscaler", "expected"),
    [
        pytest.param(
            RabbitmqAutoscaler(),
            {
                "type": "rabbitmq",
                "minReplicas": 0,
                "maxReplicas": 1,
                "queueLength": 1000,
                "cooldownPeriod": 300,
                "pollingInterval": 10,
            },
            id="rabbitmq",
        ),
        pytest.param(
            RpsAutoscaler(),
            {
                "type": "rps",
                "minReplicas": 0,
                "maxReplicas": 1,
                "threshold": 10,
                "rateSeconds": 30,
                "cooldownPeriod": 300,
                "pollingInterval": 10,
            },
            id="rps",
        ),
    ],
)
def test_autoscaler_defaults_follow_dtlpy(autoscaler: Any, expected: dict[str, Any]) -> None:
    assert autoscaler.to_wire() == expected


@pytest.mark.parametrize("kind", list(AutoscalerType))
def test_a_stored_autoscaler_always_carries_its_type(kind: AutoscalerType) -> None:
    # dtlpy reads autoscaler['type'] and fails without it.
    runtime = KubernetesRuntime.model_validate({"autoscaler": {"type": kind.value}})
    assert runtime.to_wire()["autoscaler"]["type"] == kind.value


@pytest.mark.parametrize(
    ("autoscaler", "reason_has"),
    [
        pytest.param({"type": "rps", "minReplicas": 3, "maxReplicas": 1}, "minReplicas (3)"),
        pytest.param({"type": "rabbitmq", "minReplicas": -1}, "greater than or equal to 0"),
        pytest.param({"type": "rabbitmq", "queueLength": 0}, "greater than or equal to 1"),
        pytest.param({"type": "rps", "rateSeconds": 0}, "greater than or equal to 1"),
    ],
)
def test_bad_autoscalers_are_refused(autoscaler: dict[str, Any], reason_has: str) -> None:
    errors = refusal(KubernetesRuntime, {"autoscaler": autoscaler})
    assert len(errors) == 1
    assert errors[0].field.startswith("runtime.autoscaler")
    assert reason_has in errors[0].reason


# --- the wire shape ------------------------------------------------------------------------

FULL_RUNTIME: dict[str, Any] = {
    "podType": "gpu-t4",
    "numReplicas": 2,
    "concurrency": 4,
    "runnerImage": "registry.example/runner:1",
    "autoscaler": {"type": "rabbitmq", "minReplicas": 1, "maxReplicas": 5, "queueLength": 20},
    "env": {"MODEL_DIR": "/models", "lower_case": "ok"},
    "resources": {
        "requests": {"cpu": "500m", "memory": "1Gi", "gpus": 1},
        "limits": {"cpu": "2", "memory": "4Gi", "gpus": 1},
        "gpuType": "nvidia.com/gpu",
    },
    "volumes": [
        {
            "name": "models",
            "type": "pvc",
            "source": "models-claim",
            "mountPath": "/models",
            "subPath": "v1",
            "readOnly": True,
        }
    ],
    "preemptionMode": "prevent",
    "priorityClassName": "high",
    "nodeSelector": {"kubernetes.io/arch": "amd64", "pool_name": "gpu"},
    "stateThresholds": {"running": "2h", "pendingNotScheduled": "30 minutes"},
}
USER_KEYED = {"env", "nodeSelector"}  # their keys are the user's, not ours


def field_names(value: Any) -> set[str]:
    """Every key of every object in `value`, except inside user-keyed maps."""
    if isinstance(value, list):
        return set().union(*(field_names(v) for v in value))
    if not isinstance(value, dict):
        return set()
    names = set(value)
    for key, inner in value.items():
        if key not in USER_KEYED:
            names |= field_names(inner)
    return names


def test_a_full_runtime_parses() -> None:
    runtime = KubernetesRuntime.model_validate(FULL_RUNTIME)
    assert runtime.pod_type is InstanceType.GPU_T4
    assert runtime.preemption_mode is PreemptionMode.PREVENT
    assert runtime.volumes[0].mount_path == "/models"
    assert runtime.volumes[0].read_only is True
    assert runtime.node_selector == {"kubernetes.io/arch": "amd64", "pool_name": "gpu"}
    assert runtime.state_thresholds.seconds() == {
        "pendingScheduled": 3600.0,
        "pendingNotScheduled": 1800.0,
        "imagePullBackoff": 3600.0,
        "running": 7200.0,
    }


@pytest.mark.parametrize(
    "name",
    [
        "podType",
        "numReplicas",
        "runnerImage",
        "mountPath",
        "subPath",
        "readOnly",
        "priorityClassName",
        "nodeSelector",
        "stateThresholds",
        "pendingScheduled",
        "imagePullBackoff",
        "preemptionMode",
        "gpuType",
        "minReplicas",
        "queueLength",
        "cooldownPeriod",
    ],
)
def test_the_wire_json_is_camel_case(name: str) -> None:
    assert name in field_names(KubernetesRuntime.model_validate(FULL_RUNTIME).to_wire())


def test_no_snake_case_field_reaches_the_wire() -> None:
    wire = KubernetesRuntime.model_validate(FULL_RUNTIME).to_wire()
    assert sorted(n for n in field_names(wire) if "_" in n) == []
    # ... while user-chosen keys keep their spelling.
    assert set(wire["env"]) == {"MODEL_DIR", "lower_case"}
    assert set(wire["nodeSelector"]) == {"kubernetes.io/arch", "pool_name"}


def test_mlrun_snake_case_input_is_accepted() -> None:
    snake = {
        "pod_type": "gpu-t4",
        "priority_class_name": "high",
        "node_selector": {"pool": "gpu"},
        "volumes": [{"name": "v", "type": "secret", "source": "s", "mount_path": "/s"}],
        "state_thresholds": {"pending_scheduled": "2h"},
    }
    wire = KubernetesRuntime.model_validate(snake).to_wire()
    assert wire["podType"] == "gpu-t4"
    assert wire["priorityClassName"] == "high"
    assert wire["volumes"][0]["mountPath"] == "/s"
    assert wire["stateThresholds"]["pendingScheduled"] == "2h"


def round_trip(runtime: KubernetesRuntime) -> KubernetesRuntime:
    """Through JSON text, as a stored service is read back."""
    return KubernetesRuntime.model_validate(json.loads(json.dumps(runtime.to_wire())))


def test_a_full_runtime_round_trips() -> None:
    runtime = KubernetesRuntime.model_validate(FULL_RUNTIME)
    again = round_trip(runtime)
    assert again == runtime
    assert again.to_wire() == runtime.to_wire()


env_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True).filter(
    lambda n: not n.startswith(RESERVED_PREFIX)
)
env_values = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)
durations = st.one_of(
    st.just(-1),
    st.integers(0, 10_000).map(lambda n: f"{n}s"),
    st.sampled_from(["1h", "30 minutes 5h 1day", "1 minute and 30s", "2 weeks", "-1"]),
)


@st.composite
def autoscalers(draw: st.DrawFn) -> dict[str, Any] | None:
    if draw(st.booleans()):
        return None
    low = draw(st.integers(0, 1000))
    high = draw(st.integers(low, 1000))
    kind = draw(st.sampled_from(list(AutoscalerType)))
    return {"type": kind.value, "minReplicas": low, "maxReplicas": high}


@st.composite
def resources(draw: st.DrawFn) -> dict[str, Any] | None:
    if draw(st.booleans()):
        return None
    cpu = draw(st.integers(1, 64_000))
    memory = draw(st.integers(1, 2**40))
    gpus = draw(st.integers(0, 8))
    return {
        "requests": {"cpu": f"{cpu}m", "memory": memory, "gpus": gpus},
        "limits": {
            "cpu": draw(st.sampled_from([f"{cpu}m", cpu / 1000, f"{cpu + 1}m"])),
            "memory": draw(st.sampled_from([memory, f"{memory}", memory + 1])),
            "gpus": draw(st.sampled_from([gpus, str(gpus), gpus + 1])),
        },
    }


@settings(max_examples=200, deadline=None)
@given(
    pod_type=st.sampled_from(list(InstanceType)),
    replicas=st.integers(0, 1000),
    concurrency=st.integers(1, 1000),
    env=st.dictionaries(env_names, env_values, max_size=5),
    autoscaler=autoscalers(),
    amounts=resources(),
    preemption=st.none() | st.sampled_from(list(PreemptionMode)),
    running=durations,
)
def test_a_serialised_runtime_round_trips_unchanged(
    pod_type: InstanceType,
    replicas: int,
    concurrency: int,
    env: dict[str, str],
    autoscaler: dict[str, Any] | None,
    amounts: dict[str, Any] | None,
    preemption: PreemptionMode | None,
    running: str | int,
) -> None:
    runtime = KubernetesRuntime.model_validate(
        {
            "podType": pod_type.value,
            "numReplicas": replicas,
            "concurrency": concurrency,
            "env": env,
            "autoscaler": autoscaler,
            "resources": amounts,
            "preemptionMode": preemption,
            "stateThresholds": {"running": running},
        }
    )
    assert runtime.env == env
    assert runtime.state_thresholds.running == str(running)
    again = round_trip(runtime)
    assert again == runtime
    assert again.to_wire() == runtime.to_wire()
