"""k8s/: the manifests that deploy Spool's control plane are valid Kubernetes objects (checked
against the real OpenAPI schemas, strictly: an unknown or misspelled field fails), kustomize
renders exactly them, and they keep the promises that matter: secrets only by reference, one
schema per service, RBAC confined to the scheduler, its namespace and the verbs it needs.
The pods themselves (probes, security, resources, the migration Job) are test_workloads.py's."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

K8S = Path(__file__).resolve().parents[3] / "k8s"
NAMESPACE = "spool"
SECRET = "spool-credentials"
SECRET_SETTINGS = {"SPOOL_AMQP_URL", "SPOOL_DATABASE_URL", "SPOOL_ADMIN_TOKEN"}
SERVICES = ("gateway", "scheduler", "autoscaler", "trigger-engine")
# The oldest Kubernetes we support and the newest the schemas describe.
KUBERNETES_VERSIONS = sorted({"1.30", kubernetes_validate.latest_version()})
# Everything the scheduler may do through the API, and nothing else.
SCHEDULER_GRANTS = {
    ("apps", "deployments"): {"get", "list", "watch", "create", "update", "patch", "delete"},
    ("", "pods"): {"get", "list", "watch", "delete"},
    ("", "pods/log"): {"get"},
}

Doc = dict[str, Any]
KUSTOMIZATION = "kustomization.yaml"


def _docs(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


(_KUSTOMIZATION,) = _docs(K8S / KUSTOMIZATION)
LISTED: list[str] = _KUSTOMIZATION["resources"]
# The objects of every file the kustomization lists, in its order: what `kubectl apply -k` applies.
RESOURCES = [(name, doc) for name in LISTED for doc in _docs(K8S / name)]


def _id(doc: Doc) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def _of_kind(kind: str) -> list[Doc]:
    return [doc for _, doc in RESOURCES if doc["kind"] == kind]


def _named(kind: str, name: str) -> Doc:
    (doc,) = [doc for doc in _of_kind(kind) if doc["metadata"]["name"] == name]
    return doc


def _pod(workload: Doc) -> Doc:
    pod: Doc = workload["spec"]["template"]["spec"]
    return pod


def _containers(workload: Doc) -> list[Doc]:
    return [*_pod(workload).get("initContainers", []), *_pod(workload)["containers"]]


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


def test_the_manifests_are_found() -> None:
    assert {_id(doc) for _, doc in RESOURCES} >= {
        "Namespace/spool",
        "ConfigMap/spool-config",
        "Role/spool-scheduler",
        "RoleBinding/spool-scheduler",
        "Service/spool-gateway",
        "Job/spool-migrate",
        "ServiceAccount/spool-migrate",
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
    doc = copy.deepcopy(_named("Deployment", "spool-gateway"))
    version = kubernetes_validate.latest_version()
    assert _problem(doc, version) is None
    break_it(doc)
    problem = _problem(doc, version)
    assert problem is not None
    assert culprit in problem


def test_the_kustomization_lists_every_manifest() -> None:
    assert _KUSTOMIZATION["kind"] == "Kustomization"
    assert _KUSTOMIZATION["namespace"] == NAMESPACE
    assert len(LISTED) == len(set(LISTED))
    files = {path.name for pattern in ("*.yaml", "*.yml") for path in K8S.glob(pattern)}
    assert set(LISTED) == files - {KUSTOMIZATION}


def _kustomize() -> list[str] | None:
    if path := shutil.which("kustomize"):
        return [path, "build"]
    if path := shutil.which("kubectl"):
        return [path, "kustomize"]
    return None


# Outside CI a machine without either tool skips this one; in CI it must run (CI=true).
@pytest.mark.skipif(
    _kustomize() is None and os.environ.get("CI") != "true",
    reason="neither kustomize nor kubectl is installed",
)
def test_kustomize_renders_exactly_the_listed_files() -> None:
    command = _kustomize()
    assert command is not None
    done = subprocess.run(
        [*command, str(K8S)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    rendered = [doc for doc in yaml.safe_load_all(done.stdout) if doc]

    def canonical(docs: list[Doc]) -> list[str]:
        return sorted(json.dumps(doc, sort_keys=True) for doc in docs)

    # Nothing added, dropped or changed: the files are what gets applied (the namespace too).
    assert canonical(rendered) == canonical([doc for _, doc in RESOURCES])


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


def test_secret_settings_come_only_from_the_credentials_secret() -> None:
    for file, doc in RESOURCES:
        assert doc["kind"] != "Secret", f"{file}: secrets are created by hand, see k8s/README.md"
        if doc["kind"] == "ConfigMap":
            assert not SECRET_SETTINGS & doc.get("data", {}).keys(), file
    workloads = [*_of_kind("Deployment"), *_of_kind("Job")]
    assert len(workloads) == len(SERVICES) + 1
    for workload in workloads:
        for container in _containers(workload):
            assert all("secretRef" not in source for source in container.get("envFrom", []))
            for name, var in _env(container).items():
                if name in SECRET_SETTINGS:
                    where = (_id(workload), container["name"], name)
                    assert "value" not in var, f"{where}: a literal value"
                    assert var["valueFrom"]["secretKeyRef"]["name"] == SECRET, where
                    assert var["valueFrom"]["secretKeyRef"].get("optional") is not True, where


def test_the_configmap_carries_the_shared_settings() -> None:
    data = _named("ConfigMap", "spool-config")["data"]
    assert data["SPOOL_GATEWAY_URL"] == "http://spool-gateway.spool.svc:8080"
    assert data["SPOOL_LOG_FORMAT"] == "json"
    assert {"SPOOL_BUS_NAMESPACE", "SPOOL_LOG_LEVEL", "SPOOL_STATE_DIR"} <= data.keys()
    # Each service sets its own schema; the driver and the ops port are not shared settings.
    assert not {"SPOOL_DB_SCHEMA", "SPOOL_DRIVER", "SPOOL_OPS_PORT"} & data.keys()


def _grants(role: Doc) -> dict[tuple[str, str], set[str]]:
    grants: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert rule.keys() <= {"apiGroups", "resources", "verbs"}  # no resourceNames, no URLs
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants.setdefault((group, resource), set()).update(rule["verbs"])
    return grants


def test_the_scheduler_may_manage_deployments_and_pods_in_its_namespace_only() -> None:
    kinds = {doc["kind"] for _, doc in RESOURCES}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}

    (role,) = _of_kind("Role")
    assert role["metadata"]["name"] == "spool-scheduler"
    assert role["metadata"]["namespace"] == NAMESPACE
    assert _grants(role) == SCHEDULER_GRANTS  # exactly: no wildcard, no secrets, no exec

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


def test_only_the_scheduler_mounts_an_api_token() -> None:
    workloads = [*_of_kind("Deployment"), *_of_kind("Job")]
    for workload in workloads:
        pod = _pod(workload)
        account = _named("ServiceAccount", pod["serviceAccountName"])
        mounts_token = pod.get(
            "automountServiceAccountToken", account.get("automountServiceAccountToken", True)
        )
        assert mounts_token is (_id(workload) == "Deployment/spool-scheduler"), _id(workload)
        assert account.get("automountServiceAccountToken") is mounts_token, _id(account)
