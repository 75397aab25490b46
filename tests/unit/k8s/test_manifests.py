"""k8s/: the manifests that deploy Spool's control plane are valid Kubernetes objects (checked
against the real OpenAPI schemas, strictly: an unknown or misspelled field fails) and keep the
promises that matter: restricted pods, secrets only by reference, one schema per service, RBAC
confined to the scheduler and its namespace."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

K8S = Path(__file__).resolve().parents[3] / "k8s"
NAMESPACE = "spool"
SECRET = "spool-credentials"
TMP = "/tmp"  # noqa: S108 (a path inside the pod, not a file this test writes)
SECRET_SETTINGS = {"SPOOL_AMQP_URL", "SPOOL_DATABASE_URL", "SPOOL_ADMIN_TOKEN"}
# Control-plane service → (its module, its own PostgreSQL schema).
SERVICES = {
    "gateway": ("spool_gateway", "gateway"),
    "scheduler": ("spool_scheduler", "scheduler"),
    "autoscaler": ("spool_autoscaler", "autoscaler"),
    "trigger-engine": ("spool_trigger_engine", "trigger_engine"),
}
# The oldest Kubernetes we support and the newest the schemas describe.
KUBERNETES_VERSIONS = sorted({"1.30", kubernetes_validate.latest_version()})

Doc = dict[str, Any]


def _load() -> dict[str, list[Doc]]:
    files = sorted(K8S.glob("*.yaml")) + sorted(K8S.glob("*.yml"))
    return {f.name: [d for d in yaml.safe_load_all(f.read_text()) if d] for f in files}


MANIFESTS = _load()
KUSTOMIZATION = "kustomization.yaml"
RESOURCES = [
    (name, doc) for name, docs in MANIFESTS.items() if name != KUSTOMIZATION for doc in docs
]


def _id(doc: Doc) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def _of_kind(kind: str) -> list[Doc]:
    return [doc for _, doc in RESOURCES if doc["kind"] == kind]


def _named(kind: str, name: str) -> Doc:
    (doc,) = [doc for doc in _of_kind(kind) if doc["metadata"]["name"] == name]
    return doc


def _deployment(service: str) -> Doc:
    return _named("Deployment", f"spool-{service}")


def _containers(deployment: Doc) -> list[Doc]:
    pod = deployment["spec"]["template"]["spec"]
    return [*pod.get("initContainers", []), *pod["containers"]]


def _env(container: Doc) -> dict[str, Doc]:
    return {var["name"]: var for var in container.get("env", [])}


def _problem(doc: Doc, version: str) -> str | None:
    """What makes `doc` invalid for that Kubernetes version (unknown fields included), if any."""
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = ".".join(str(part) for part in error.path) or "(top)"
        return f"{_id(doc)}, Kubernetes {error.version}: {where}: {error.message}"
    return None


DEPLOYMENTS = sorted(SERVICES)


def test_the_manifests_are_found() -> None:
    assert KUSTOMIZATION in MANIFESTS
    assert {_id(doc) for _, doc in RESOURCES} >= {
        "Namespace/spool",
        "ConfigMap/spool-config",
        "Role/spool-scheduler",
        "RoleBinding/spool-scheduler",
        "Service/spool-gateway",
        *(f"Deployment/spool-{s}" for s in SERVICES),
        *(f"ServiceAccount/spool-{s}" for s in SERVICES),
    }


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(("file", "doc"), RESOURCES, ids=[f"{f}:{_id(d)}" for f, d in RESOURCES])
def test_every_manifest_is_valid_against_the_kubernetes_schemas(
    file: str, doc: Doc, version: str
) -> None:
    assert _problem(doc, version) is None


@pytest.mark.parametrize(
    ("break_it", "culprit"),
    [
        pytest.param(lambda d: d["spec"].update(replcas=1), "replcas", id="misspelled-field"),
        pytest.param(
            lambda d: d["spec"]["template"]["spec"]["containers"][0].update(ports="8080"),
            "ports",
            id="wrong-type",
        ),
        pytest.param(lambda d: d["spec"].pop("selector"), "selector", id="missing-field"),
    ],
)
def test_a_broken_manifest_fails_validation(break_it: Any, culprit: str) -> None:
    doc = copy.deepcopy(_deployment("gateway"))
    version = kubernetes_validate.latest_version()
    assert _problem(doc, version) is None
    break_it(doc)
    problem = _problem(doc, version)
    assert problem is not None
    assert culprit in problem


def test_the_kustomization_lists_every_manifest() -> None:
    (kustomization,) = MANIFESTS[KUSTOMIZATION]
    assert kustomization["kind"] == "Kustomization"
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources))
    assert set(resources) == set(MANIFESTS) - {KUSTOMIZATION}


def test_everything_lives_in_the_spool_namespace_and_is_labelled() -> None:
    for _, doc in RESOURCES:
        labels = doc["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/part-of") == "spool", _id(doc)
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == NAMESPACE, _id(doc)
            assert "app.kubernetes.io/name" in labels, _id(doc)
            assert "app.kubernetes.io/component" in labels, _id(doc)


def test_the_namespace_enforces_pod_security_restricted() -> None:
    labels = _named("Namespace", NAMESPACE)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("service", DEPLOYMENTS)
def test_each_deployment_runs_its_service_from_the_spool_image(service: str) -> None:
    deployment = _deployment(service)
    module, _ = SERVICES[service]
    template = deployment["spec"]["template"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= template["metadata"]["labels"].items()
    assert template["metadata"]["labels"]["app.kubernetes.io/component"] == service
    pod = template["spec"]
    assert pod["serviceAccountName"] == f"spool-{service}"
    assert pod["terminationGracePeriodSeconds"] == 60
    assert pod["enableServiceLinks"] is False  # SPOOL_GATEWAY_* would land in our settings
    (container,) = pod["containers"]
    assert container["image"] == "spool:latest"
    assert container["command"] == ["python", "-m", module]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= container["resources"][kind].keys()


def _effective(pod: Doc, container: Doc, field: str) -> Any:
    """A container's security setting, falling back to the pod's, as Kubernetes applies it."""
    own = container.get("securityContext", {})
    return own[field] if field in own else pod.get("securityContext", {}).get(field)


@pytest.mark.parametrize("service", DEPLOYMENTS)
def test_every_container_meets_pod_security_restricted(service: str) -> None:
    pod = _deployment(service)["spec"]["template"]["spec"]
    for host_namespace in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(host_namespace)
    tmp_volumes = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    assert all(v.keys() <= {"name", "emptyDir", "configMap", "secret"} for v in pod["volumes"])
    for container in _containers(_deployment(service)):
        security = container["securityContext"]
        assert _effective(pod, container, "runAsNonRoot") is True
        assert _effective(pod, container, "runAsUser") == 10001
        assert _effective(pod, container, "seccompProfile") == {"type": "RuntimeDefault"}
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert not security["capabilities"].get("add")
        assert security.get("privileged") is not True
        assert security["readOnlyRootFilesystem"] is True
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts.get(TMP) in tmp_volumes  # writable scratch space on a read-only root


def test_secret_settings_come_only_from_the_credentials_secret() -> None:
    for file, doc in RESOURCES:
        assert doc["kind"] != "Secret", f"{file}: secrets are created by hand, see k8s/README.md"
        if doc["kind"] == "ConfigMap":
            assert not SECRET_SETTINGS & doc.get("data", {}).keys(), file
    for service in DEPLOYMENTS:
        for container in _containers(_deployment(service)):
            assert all("secretRef" not in source for source in container.get("envFrom", []))
            for name, var in _env(container).items():
                if name in SECRET_SETTINGS:
                    assert "value" not in var, f"{service}: {name} has a literal value"
                    assert var["valueFrom"]["secretKeyRef"]["name"] == SECRET, (service, name)
                    assert var["valueFrom"]["secretKeyRef"].get("optional") is not True


@pytest.mark.parametrize("service", DEPLOYMENTS)
def test_each_service_reads_the_bus_and_its_own_database_schema(service: str) -> None:
    (container,) = _deployment(service)["spec"]["template"]["spec"]["containers"]
    env = _env(container)
    _, schema = SERVICES[service]
    assert env["SPOOL_DB_SCHEMA"]["value"] == schema
    assert {"SPOOL_AMQP_URL", "SPOOL_DATABASE_URL"} <= env.keys()
    # Only the gateway reads the admin token; the others are not handed it.
    assert ("SPOOL_ADMIN_TOKEN" in env) == (service == "gateway")
    assert container["envFrom"] == [{"configMapRef": {"name": "spool-config"}}]


def test_the_configmap_carries_the_shared_settings() -> None:
    data = _named("ConfigMap", "spool-config")["data"]
    assert data["SPOOL_GATEWAY_URL"] == "http://spool-gateway.spool.svc:8080"
    assert data["SPOOL_LOG_FORMAT"] == "json"
    assert data["SPOOL_DRIVER"] == "kubernetes"
    assert {"SPOOL_BUS_NAMESPACE", "SPOOL_LOG_LEVEL"} <= data.keys()
    assert "SPOOL_DB_SCHEMA" not in data  # each service sets its own


def test_the_gateway_serves_http_on_8080_with_probes_on_healthz() -> None:
    deployment = _deployment("gateway")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8080}
    for probe in ("readinessProbe", "livenessProbe"):
        http = container[probe]["httpGet"]
        assert http["path"] == "/healthz"
        assert ports.get(http["port"], http["port"]) == 8080
    env = _env(container)
    assert env["SPOOL_HOST"]["value"] == "0.0.0.0"  # not loopback: the probes come from outside
    assert env["SPOOL_PORT"]["value"] == "8080"

    service = _named("Service", "spool-gateway")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    (port,) = service["spec"]["ports"]
    assert port["port"] == 8080
    assert port["targetPort"] in ("http", 8080)


def test_the_scheduler_runs_alone() -> None:
    spec = _deployment("scheduler")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}


def test_only_the_scheduler_may_use_the_kubernetes_api_and_only_in_its_namespace() -> None:
    kinds = {doc["kind"] for _, doc in RESOURCES}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}

    (role,) = _of_kind("Role")
    assert role["metadata"]["name"] == "spool-scheduler"
    assert role["metadata"]["namespace"] == NAMESPACE
    grants = {
        (group, resource): set(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert grants == {
        ("apps", "deployments"): {"get", "list", "watch", "create", "patch", "update", "delete"},
        ("", "pods"): {"get", "list", "watch"},
    }

    (binding,) = _of_kind("RoleBinding")
    assert binding["metadata"]["namespace"] == NAMESPACE
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "spool-scheduler",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "spool-scheduler", "namespace": NAMESPACE}
    ]

    for service in DEPLOYMENTS:
        account = _named("ServiceAccount", f"spool-{service}")
        pod = _deployment(service)["spec"]["template"]["spec"]
        mounts_token = pod.get(
            "automountServiceAccountToken", account.get("automountServiceAccountToken", True)
        )
        assert mounts_token is (service == "scheduler"), service
