"""k8s/: the pods of Spool's control plane. Each service runs from the control-plane image with
probes the kubelet can reach, limits, and a restricted security context; the scheduler runs alone
with the kubernetes driver; the migration Job migrates the four schemas, one after the other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

K8S = Path(__file__).resolve().parents[3] / "k8s"
CONTROL_PLANE_IMAGE = "spool-control-plane:latest"
RUNNER_IMAGE = "spool-runner:latest"
TMP = "/tmp"  # noqa: S108 (a path inside the pod, not a file this test writes)
OPS_PORT = 8081
# Control-plane service → its module and its own PostgreSQL schema.
SERVICES = {
    "gateway": ("spool_gateway", "gateway"),
    "scheduler": ("spool_scheduler", "scheduler"),
    "autoscaler": ("spool_autoscaler", "autoscaler"),
    "trigger-engine": ("spool_trigger_engine", "trigger_engine"),
}
OPS_SERVICES = sorted(set(SERVICES) - {"gateway"})  # the gateway serves ops on its API port

Doc = dict[str, Any]


def _load() -> list[Doc]:
    (kustomization,) = yaml.safe_load_all((K8S / "kustomization.yaml").read_text())
    return [
        doc
        for name in kustomization["resources"]
        for doc in yaml.safe_load_all((K8S / name).read_text())
        if doc
    ]


RESOURCES = _load()


def _named(kind: str, name: str) -> Doc:
    (doc,) = [d for d in RESOURCES if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def _deployment(service: str) -> Doc:
    return _named("Deployment", f"spool-{service}")


JOB = _named("Job", "spool-migrate")
WORKLOADS = {
    **{f"spool-{service}": _deployment(service) for service in SERVICES},
    "spool-migrate": JOB,
}


def _pod(workload: Doc) -> Doc:
    pod: Doc = workload["spec"]["template"]["spec"]
    return pod


def _container(service: str) -> Doc:
    container: Doc
    (container,) = _pod(_deployment(service))["containers"]
    return container


def _containers(workload: Doc) -> list[Doc]:
    return [*_pod(workload).get("initContainers", []), *_pod(workload)["containers"]]


def _env(container: Doc) -> dict[str, Doc]:
    return {var["name"]: var for var in container.get("env", [])}


def _value(container: Doc, name: str) -> Any:
    return _env(container)[name]["value"]


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_each_deployment_runs_its_service_from_the_control_plane_image(service: str) -> None:
    deployment = _deployment(service)
    module, schema = SERVICES[service]
    template = deployment["spec"]["template"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= template["metadata"]["labels"].items()
    assert template["metadata"]["labels"]["app.kubernetes.io/component"] == service
    pod = template["spec"]
    assert pod["serviceAccountName"] == f"spool-{service}"
    assert pod["terminationGracePeriodSeconds"] == 60
    assert pod["enableServiceLinks"] is False  # SPOOL_GATEWAY_* would land in our settings
    container = _container(service)
    assert container["image"] == CONTROL_PLANE_IMAGE
    assert container["command"] == ["python", "-m", module]
    env = _env(container)
    assert env["SPOOL_DB_SCHEMA"]["value"] == schema
    assert {"SPOOL_AMQP_URL", "SPOOL_DATABASE_URL"} <= env.keys()
    # Only the gateway reads the admin token; the others are not handed it.
    assert ("SPOOL_ADMIN_TOKEN" in env) == (service == "gateway")
    assert container["envFrom"] == [{"configMapRef": {"name": "spool-config"}}]


def _effective(pod: Doc, container: Doc, field: str) -> Any:
    """A container's security setting, falling back to the pod's, as Kubernetes applies it."""
    own = container.get("securityContext", {})
    return own[field] if field in own else pod.get("securityContext", {}).get(field)


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_every_container_is_restricted_and_limited(workload: str) -> None:
    pod = _pod(WORKLOADS[workload])
    for host_namespace in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(host_namespace)
    tmp_volumes = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    assert all(v.keys() <= {"name", "emptyDir", "configMap", "secret"} for v in pod["volumes"])
    for container in _containers(WORKLOADS[workload]):
        security = container["securityContext"]
        assert _effective(pod, container, "runAsNonRoot") is True
        assert _effective(pod, container, "runAsUser") == 10001  # the images' user
        assert _effective(pod, container, "seccompProfile") == {"type": "RuntimeDefault"}
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert not security["capabilities"].get("add")
        assert security.get("privileged") is not True
        assert security["readOnlyRootFilesystem"] is True
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts.get(TMP) in tmp_volumes  # writable scratch space on a read-only root
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= container["resources"][kind].keys(), container["name"]
        assert container["image"] == CONTROL_PLANE_IMAGE


def _probe_target(container: Doc, probe: str) -> tuple[str, int]:
    """The path and the port number a probe of `container` requests."""
    http = container[probe]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    return http["path"], ports.get(http["port"], http["port"])


def test_the_gateway_serves_http_on_8080_with_probes_on_livez_and_readyz() -> None:
    deployment = _deployment("gateway")
    container = _container("gateway")
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": 8080}
    assert _probe_target(container, "livenessProbe") == ("/livez", 8080)
    assert _probe_target(container, "readinessProbe") == ("/readyz", 8080)
    assert _probe_target(container, "startupProbe") == ("/livez", 8080)
    assert _value(container, "SPOOL_HOST") == "0.0.0.0"  # not loopback: probes come from outside
    assert _value(container, "SPOOL_PORT") == "8080"
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "8080"

    service = _named("Service", "spool-gateway")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    (port,) = service["spec"]["ports"]
    assert port["port"] == 8080
    assert port["targetPort"] in ("http", 8080)


@pytest.mark.parametrize("service", OPS_SERVICES)
def test_the_other_services_serve_probes_and_metrics_on_the_ops_port(service: str) -> None:
    container = _container(service)
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"ops": OPS_PORT}
    assert _value(container, "SPOOL_OPS_HOST") == "0.0.0.0"
    assert _value(container, "SPOOL_OPS_PORT") == str(OPS_PORT)
    assert _probe_target(container, "livenessProbe") == ("/livez", OPS_PORT)
    assert _probe_target(container, "readinessProbe") == ("/readyz", OPS_PORT)
    assert _probe_target(container, "startupProbe") == ("/livez", OPS_PORT)
    annotations = _deployment(service)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(OPS_PORT)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_the_scheduler_runs_alone_with_the_kubernetes_driver() -> None:
    spec = _deployment("scheduler")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    env = _env(_container("scheduler"))
    assert env["SPOOL_DRIVER"]["value"] == "kubernetes"
    # Its own namespace, whatever `kustomize edit set namespace` made it.
    assert env["SPOOL_K8S_NAMESPACE"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.namespace"}
    }
    assert env["SPOOL_K8S_RUNNER_IMAGE"]["value"] == RUNNER_IMAGE
    assert env["SPOOL_K8S_AMQP_SECRET"]["value"] == "spool-credentials"
    for service in set(SERVICES) - {"scheduler"}:
        assert not {"SPOOL_DRIVER", "SPOOL_K8S_NAMESPACE"} & _env(_container(service)).keys()


def test_the_migration_job_migrates_every_schema_one_after_the_other() -> None:
    pod = _pod(JOB)
    # Init containers run in order, each to success, before the Job's container.
    commands = [c["command"] for c in _containers(JOB)]
    assert commands == [["python", "-m", module, "migrate"] for module, _ in SERVICES.values()]
    for container, (service, (_, schema)) in zip(_containers(JOB), SERVICES.items(), strict=True):
        env = _env(container)
        assert env["SPOOL_DB_SCHEMA"]["value"] == schema
        assert _value(_container(service), "SPOOL_DB_SCHEMA") == schema  # the one it serves
        assert env["SPOOL_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "database-url"
        assert "SPOOL_AMQP_URL" not in env  # migrating needs the database only
    assert pod["restartPolicy"] == "OnFailure"  # the database may still be starting
    assert pod["serviceAccountName"] == "spool-migrate"
    assert JOB["spec"]["backoffLimit"] >= 1
    assert JOB["spec"]["activeDeadlineSeconds"] > 0  # never waits forever
