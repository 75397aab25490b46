"""The runtime under dtlpy's names, MLRun's modifiers on it and on a service, and what
`update()` sends after them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import spool
from spool import (
    InstanceCatalog,
    KubernetesRabbitmqAutoscaler,
    KubernetesRPSAutoscaler,
    KubernetesRuntime,
)
from spool_common.models import EventTriggerSpec

SERVICE = {
    "id": "s1",
    "name": "svc",
    "projectId": "p1",
    "packageId": "k1",
    "packageRevision": "1.0.0",
    "initParams": {"model": "small", "size": 2},
    "runtime": {"concurrency": 10, "env": {"KEEP": "1", "DROP": "2"}},
}


def _service() -> spool.Service:
    """A service as the server sent it (the client is never called in these tests)."""
    client = spool.Client(url="http://127.0.0.1:9", token="unused")
    return spool.Service.from_json(client, SERVICE)


def test_defaults_are_dtlpys() -> None:
    wire = KubernetesRuntime().to_wire()
    assert (wire["podType"], wire["numReplicas"], wire["concurrency"]) == ("regular-s", 1, 10)
    assert wire["autoscaler"] is None
    rabbit = KubernetesRabbitmqAutoscaler().to_wire()
    assert rabbit["type"] == "rabbitmq"
    assert (rabbit["minReplicas"], rabbit["maxReplicas"], rabbit["queueLength"]) == (0, 1, 1000)
    rps = KubernetesRPSAutoscaler().to_wire()
    assert (rps["type"], rps["threshold"], rps["rateSeconds"]) == ("rps", 10, 30)


def test_the_seed_deploy_runtime_serialises_as_the_reference_shows() -> None:
    runtime = KubernetesRuntime(
        pod_type=InstanceCatalog.HIGHMEM_L,
        concurrency=32,
        num_replicas=2,
        autoscaler=KubernetesRabbitmqAutoscaler(
            min_replicas=0, max_replicas=5, queue_length=10, cooldown_period=300
        ),
    )
    wire = runtime.to_wire()
    assert wire["podType"] == "highmem-l"
    assert (wire["concurrency"], wire["numReplicas"]) == (32, 2)
    assert wire["autoscaler"] == {
        "type": "rabbitmq",
        "minReplicas": 0,
        "maxReplicas": 5,
        "queueLength": 10,
        "cooldownPeriod": 300,
        "pollingInterval": 10,
    }


def test_modifiers_chain_and_change_the_runtime_in_place() -> None:
    runtime = KubernetesRuntime()
    same = (
        runtime.set_env("MODE", "fast")
        .set_envs({"A": "1"})
        .with_requests(mem="1G", cpu=1)
        .with_limits(mem="2G", cpu=2, gpus=1)
        .with_preemption_mode("prevent")
        .with_priority_class("high")
        .with_node_selection({"pool": "gpu"})
        .with_node_selection({"zone": "a"})
    )
    assert same is runtime
    wire = runtime.to_wire()
    assert wire["env"] == {"MODE": "fast", "A": "1"}
    assert wire["resources"]["requests"] == {"cpu": 1, "memory": "1G", "gpus": None}
    assert wire["resources"]["limits"] == {"cpu": 2, "memory": "2G", "gpus": 1}
    assert wire["resources"]["gpuType"] == "nvidia.com/gpu"
    assert wire["preemptionMode"] == "prevent"
    assert wire["priorityClassName"] == "high"
    assert wire["nodeSelector"] == {"pool": "gpu", "zone": "a"}


def test_patch_keeps_other_amounts_and_replace_drops_them() -> None:
    runtime = KubernetesRuntime().with_requests(cpu="500m")
    runtime.with_requests(mem="1Gi", patch=True)
    assert runtime.to_wire()["resources"]["requests"]["cpu"] == "500m"
    runtime.with_requests(mem="2Gi")
    assert runtime.to_wire()["resources"]["requests"] == {
        "cpu": None,
        "memory": "2Gi",
        "gpus": None,
    }


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        (lambda r: r.set_env("SPOOL_X", "1"), "runtime.env", "reserved for Spool"),
        (lambda r: r.set_env("1BAD", "1"), "runtime.env", "not a valid variable name"),
        (
            lambda r: r.with_limits(cpu=1).with_requests(cpu=2),
            "runtime.resources",
            "larger than limits.cpu",
        ),
        (lambda r: r.with_requests(mem="lots"), "runtime.resources.requests.memory", ""),
        (lambda r: r.with_preemption_mode("sometimes"), "runtime.preemptionMode", ""),
        (
            lambda r: r.set_state_thresholds({"running": "soon"}),
            "runtime.stateThresholds.running",
            "soon",
        ),
    ],
)
def test_bad_values_fail_before_sending_and_change_nothing(
    change: Any, field: str, reason: str
) -> None:
    runtime = KubernetesRuntime()
    before = runtime.to_wire()
    with pytest.raises(spool.BadRequest) as caught:
        change(runtime)
    assert caught.value.status is None
    assert caught.value.details[0].field.startswith(field)
    assert reason in str(caught.value)
    if field != "runtime.resources":  # that case's first modifier is valid and applied
        assert runtime.to_wire() == before


def test_state_thresholds_take_mlrun_names_and_patch_by_default() -> None:
    runtime = KubernetesRuntime().set_state_thresholds({"pending_not_scheduled": "1 min"})
    assert runtime.to_wire()["stateThresholds"] == {
        "pendingScheduled": "1h",
        "pendingNotScheduled": "1 min",
        "imagePullBackoff": "1h",
        "running": "24h",
    }
    runtime.set_state_thresholds({"running": "2h"}, patch=False)
    assert runtime.to_wire()["stateThresholds"]["pendingNotScheduled"] == "-1"
    assert runtime.to_wire()["stateThresholds"]["running"] == "2h"


def test_set_envs_reads_a_dotenv_file(tmp_path: Path) -> None:
    env_file = tmp_path / "env.txt"
    env_file.write_text("# settings\nexport GREETING=\"hi there\"\nRAW='a b'\n")
    runtime = KubernetesRuntime().set_envs({"A": "1"}, file_path=env_file)
    assert runtime.env == {"A": "1", "GREETING": "hi there", "RAW": "a b"}
    env_file.write_text("NO_EQUALS_SIGN\n")
    with pytest.raises(spool.BadRequest, match="line 1"):
        runtime.set_envs(file_path=env_file)


def test_an_unchanged_service_has_nothing_to_send() -> None:
    assert _service().changes() == {}


def test_update_sends_only_what_changed_runtime_key_by_key() -> None:
    service = _service()
    service.runtime.concurrency = 5
    service.set_env("MODE", "fast").with_limits(mem="2G")
    del service.runtime.env["DROP"]
    service.init_params = {"model": "large"}
    assert service.changes() == {
        "runtime": {
            "concurrency": 5,
            "env": {"MODE": "fast", "DROP": None},
            "resources": {
                "requests": {"cpu": None, "memory": None, "gpus": None},
                "limits": {"cpu": None, "memory": "2G", "gpus": None},
                "gpuType": "nvidia.com/gpu",
            },
        },
        "initParams": {"model": "large"},  # replaced whole by the server, so sent whole
    }


def test_a_trigger_sends_its_filter_whole() -> None:
    client = spool.Client(url="http://127.0.0.1:9", token="unused")
    trigger = spool.Trigger.from_json(
        client,
        {
            "id": "t1",
            "name": "t",
            "projectId": "p1",
            "type": "Event",
            "spec": {
                "filter": {"dir": "/a", "hidden": False},
                "operation": {"serviceId": "s1"},
            },
        },
    )
    assert isinstance(trigger.spec, EventTriggerSpec)
    trigger.active = False
    trigger.spec.filter = {"dir": "/b", "hidden": False}
    assert trigger.changes() == {
        "active": False,
        "spec": {"filter": {"dir": "/b", "hidden": False}},
    }
