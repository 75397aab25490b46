"""The Deployment the kubernetes driver sends: every option the builder supports gives a
manifest that is valid against the real Kubernetes OpenAPI schemas (strict: an unknown or
misspelled field fails), for the oldest version we support and the newest bundled, and says
what the service asked for."""

from __future__ import annotations

import copy
import re
import uuid
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from spool_common.errors import ValidationFailure
from spool_common.models import Service
from spool_common.runtime_spec import PreemptionMode
from spool_scheduler.driver import DeploymentSpec
from spool_scheduler.k8s_manifests import (
    HASH_ANNOTATION,
    REVISION_LABEL,
    SERVICE_ID_LABEL,
    SERVICE_NAME_LABEL,
    THRESHOLDS_ANNOTATION,
    KubernetesSettings,
    SecretKeyRef,
    build_deployment,
    deployment_name,
    label_value,
    manifest_hash,
    service_selector,
)

KUBERNETES_VERSIONS = sorted({"1.30", kubernetes_validate.latest_version()})
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
SETTINGS = KubernetesSettings()
PREEMPTIBLE = SETTINGS.preemptible_label

Doc = dict[str, Any]


def _service(name: str = "hello", service_id: str | None = None, **fields: Any) -> Service:
    return Service.model_validate(
        {
            "id": service_id or uuid.uuid4().hex,
            "name": name,
            "projectId": "p1",
            "packageId": "pk1",
            "packageRevision": "1.0.0",
            **fields,
        }
    )


def _build(
    service: Service | None = None,
    *,
    revision: int = 3,
    replicas: int = 2,
    force: bool = False,
    settings: KubernetesSettings = SETTINGS,
) -> Doc:
    spec = DeploymentSpec(service or _service(), revision, replicas, force=force)
    return build_deployment(spec, settings)


def _runtime(**runtime: Any) -> Service:
    return _service(runtime=runtime)


def _pod(doc: Doc) -> Doc:
    pod: Doc = doc["spec"]["template"]["spec"]
    return pod


def _container(doc: Doc) -> Doc:
    (container,) = _pod(doc)["containers"]
    return dict(container)


def _env(doc: Doc) -> dict[str, Doc]:
    return {var["name"]: var for var in _container(doc)["env"]}


def _values(doc: Doc) -> dict[str, str]:
    return {name: var["value"] for name, var in _env(doc).items() if "value" in var}


def _volume(name: str, kind: str, source: str, path: str, **extra: Any) -> Doc:
    return {"name": name, "type": kind, "source": source, "mountPath": path, **extra}


# One manifest per option value; each must be valid for every Kubernetes version we test.
CASES: dict[str, Doc] = {
    "defaults": _build(),
    "no-replicas": _build(replicas=0),
    "many-replicas": _build(replicas=10),
    "force": _build(force=True),
    "no-drain-time": _build(_service(drainTime=0)),
    "long-drain-time": _build(_service(drainTime=86_400)),
    **{
        f"preemption-{mode}": _build(_runtime(preemptionMode=mode.value)) for mode in PreemptionMode
    },
    "preemptible-true": _build(_runtime(preemptible=True)),
    "preemptible-false": _build(_runtime(preemptible=False)),
    "default-preemption-from-settings": _build(
        settings=KubernetesSettings(default_preemption_mode=PreemptionMode.PREVENT)
    ),
    "gpu-pod-type": _build(_runtime(podType="gpu-t4")),
    "gpu-pod-type-other-gpu": _build(
        _runtime(podType="gpu-t4-m", resources={"gpuType": "amd.com/gpu"})
    ),
    "gpu-explicit": _build(
        _runtime(resources={"requests": {"cpu": "2"}, "limits": {"memory": "8Gi", "gpus": 2}})
    ),
    "gpu-explicit-type": _build(
        _runtime(resources={"limits": {"gpus": "1"}, "gpuType": "amd.com/gpu"})
    ),
    "pod-type-highmem": _build(_runtime(podType="highmem-l")),
    "pod-type-regular-xs": _build(_runtime(podType="regular-xs")),
    "resources-explicit": _build(
        _runtime(
            resources={
                "requests": {"cpu": "500m", "memory": "1Gi"},
                "limits": {"cpu": 2, "memory": "1.5Gi"},
            }
        )
    ),
    "resources-requests-only": _build(_runtime(resources={"requests": {"cpu": 0.25}})),
    "resources-limits-only": _build(_runtime(resources={"limits": {"memory": 1_000_000_000}})),
    "volume-pvc": _build(
        _runtime(volumes=[_volume("data", "pvc", "claim-1", "/data", subPath="models")])
    ),
    "volume-pvc-read-only": _build(
        _runtime(volumes=[_volume("data", "pvc", "claim-1", "/data", readOnly=True)])
    ),
    "volume-config-map": _build(
        _runtime(volumes=[_volume("cfg", "configMap", "my-config", "/etc/cfg")])
    ),
    "volume-secret": _build(_runtime(volumes=[_volume("keys", "secret", "my-keys", "/keys")])),
    "volumes-all-kinds": _build(
        _runtime(
            volumes=[
                _volume("data", "pvc", "claim-1", "/data"),
                _volume("cfg", "configMap", "my-config", "/etc/cfg"),
                _volume("keys", "secret", "my-keys", "/keys"),
            ]
        )
    ),
    "secrets": _build(_service(secrets=["db-credentials", "api-keys"])),
    "env": _build(_runtime(env={"MODEL": "resnet", "EMPTY": "", "QUOTES": 'a "b"\n'})),
    "node-selector": _build(_runtime(nodeSelector={"disktype": "ssd", "zone": "eu-1"})),
    "priority-class": _build(_runtime(priorityClassName="high-priority")),
    "runner-image": _build(_runtime(runnerImage="registry.example.com/runner:2")),
    "long-name": _build(_service(name="a" * 120)),
    "odd-name": _build(_service(name="My_Service.v2 (test)!")),
    "unicode-name": _build(_service(name="модель")),
    "state-thresholds": _build(
        _runtime(stateThresholds={"running": "-1", "imagePullBackoff": "5m"})
    ),
    "literal-amqp-url": _build(
        settings=KubernetesSettings(amqp_url="amqp://dev:dev@rabbit:5672/", secret_env={})
    ),
    "more-secret-env": _build(
        settings=KubernetesSettings(
            secret_env={
                "SPOOL_AMQP_URL": SecretKeyRef("spool-credentials", "amqp-url"),
                "SPOOL_EXTRA_TOKEN": SecretKeyRef("other", "token"),
            }
        )
    ),
    "everything": _build(
        _service(
            name="Everything At Once",
            secrets=["s1"],
            drainTime=30,
            runtime={
                "podType": "gpu-t4",
                "runnerImage": "runner:gpu",
                "env": {"A": "1"},
                "resources": {"requests": {"cpu": "1"}, "limits": {"gpus": 1}},
                "volumes": [_volume("data", "pvc", "claim", "/data", readOnly=True)],
                "preemptionMode": "constrain",
                "priorityClassName": "batch",
                "nodeSelector": {"pool": "gpu"},
            },
        ),
        replicas=5,
    ),
}


def _problem(doc: Doc, version: str) -> str | None:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = ".".join(str(part) for part in error.path) or "(top)"
        return f"Kubernetes {error.version}: {where}: {error.message}"
    return None


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_option_gives_a_valid_deployment(case: str, version: str) -> None:
    assert _problem(CASES[case], version) is None


@pytest.mark.parametrize(
    "break_it",
    [
        pytest.param(lambda d: _pod(d).update(tolerashuns=[]), id="misspelled-field"),
        pytest.param(
            lambda d: _pod(d)["containers"][0]["resources"].update(limits="1"), id="wrong-type"
        ),
        pytest.param(lambda d: _pod(d)["containers"][0].pop("name"), id="missing-field"),
    ],
)
def test_the_validation_catches_a_broken_deployment(break_it: Any) -> None:
    doc = copy.deepcopy(CASES["everything"])
    assert _problem(doc, kubernetes_validate.latest_version()) is None
    break_it(doc)
    assert _problem(doc, kubernetes_validate.latest_version()) is not None


# --- what every manifest promises ------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_deployment_runs_the_agent_safely(case: str) -> None:
    doc = CASES[case]
    pod, container = _pod(doc), _container(doc)
    assert doc["apiVersion"] == "apps/v1"
    assert doc["kind"] == "Deployment"
    assert doc["metadata"]["namespace"] == "spool"
    assert DNS_LABEL.fullmatch(doc["metadata"]["name"])
    assert len(doc["metadata"]["name"]) <= 63
    for label in doc["metadata"]["labels"].values():
        assert LABEL_VALUE.fullmatch(label)
        assert len(label) <= 63
    assert container["command"] == ["python", "-m", "spool_agent"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["privileged"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    scratch = "/var/tmp"  # noqa: S108 (the pod's own emptyDir)
    assert {"/var/lib/spool", scratch} <= writable  # the work dir and scratch space
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert {"SPOOL_AGENT_TOKEN", "SPOOL_DATABASE_URL", "SPOOL_ADMIN_TOKEN"}.isdisjoint(_env(doc))
    assert _problem(doc, "1.30") is None


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_selector_is_the_service_alone_so_a_revision_rolls_pods(case: str) -> None:
    doc = CASES[case]
    labels = doc["metadata"]["labels"]
    selector = doc["spec"]["selector"]["matchLabels"]
    assert selector == {SERVICE_ID_LABEL: labels[SERVICE_ID_LABEL]}
    assert doc["spec"]["template"]["metadata"]["labels"] == labels
    assert labels["app.kubernetes.io/name"] == "spool-agent"
    assert labels["app.kubernetes.io/managed-by"] == "spool-scheduler"


def test_the_labels_name_the_service_and_its_revision() -> None:
    service = _service(name="My Service!")
    doc = _build(service, revision=7)
    labels = doc["metadata"]["labels"]
    assert labels[SERVICE_ID_LABEL] == service.id
    assert labels[SERVICE_NAME_LABEL] == "My-Service"
    assert labels[REVISION_LABEL] == "7"
    assert _values(doc)["SPOOL_SERVICE_REVISION"] == "7"
    assert _values(doc)["SPOOL_SERVICE_ID"] == service.id
    assert service_selector(service.id) == (
        f"app.kubernetes.io/managed-by=spool-scheduler,{SERVICE_ID_LABEL}={service.id}"
    )


def test_a_new_revision_changes_the_pod_template_but_not_the_name_or_selector() -> None:
    service = _service()
    old, new = _build(service, revision=1), _build(service, revision=2)
    assert old["metadata"]["name"] == new["metadata"]["name"]
    assert old["spec"]["selector"] == new["spec"]["selector"]
    assert old["spec"]["template"] != new["spec"]["template"]


# --- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "prefix"),
    [
        ("hello", "spool-hello-"),
        ("Hello World", "spool-hello-world-"),
        ("My_Service.v2 (test)!", "spool-my-service-v2-test-"),
        ("--x--", "spool-x-"),
        ("модель", "spool-"),
        ("a" * 120, "spool-" + "a" * 48 + "-"),
    ],
)
def test_the_name_is_a_dns_label_with_a_hash_of_the_service_id(name: str, prefix: str) -> None:
    service = _service(name=name, service_id="0123456789abcdef0123456789abcdef")
    result = deployment_name(service)
    assert result.startswith(prefix)
    assert DNS_LABEL.fullmatch(result)
    assert len(result) <= 63
    assert re.fullmatch(r"[0-9a-f]{8}", result.rsplit("-", 1)[1])


def test_same_names_in_two_projects_give_two_deployments() -> None:
    first, second = _service(name="a" * 100), _service(name="a" * 100)
    assert deployment_name(first) != deployment_name(second)
    assert deployment_name(first) == deployment_name(first)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("hello", "hello"), ("a b/c", "a-b-c"), ("-x.", "x"), ("é", ""), ("z" * 70, "z" * 63)],
)
def test_label_values_are_sanitised(text: str, expected: str) -> None:
    assert label_value(text) == expected


def test_a_service_id_that_cannot_be_a_label_is_refused() -> None:
    with pytest.raises(ValidationFailure, match="label value"):
        _build(_service(service_id="not/a label"))


# --- environment -----------------------------------------------------------------------------


def test_the_agent_environment() -> None:
    doc = CASES["defaults"]
    assert _values(doc) | {"SPOOL_SERVICE_ID": "x"} == {
        "SPOOL_SERVICE_ID": "x",
        "SPOOL_SERVICE_REVISION": "3",
        "SPOOL_GATEWAY_URL": "http://spool-gateway.spool.svc:8080",
        "SPOOL_BUS_NAMESPACE": "spool",
        "SPOOL_OPS_HOST": "0.0.0.0",
        "SPOOL_OPS_PORT": "8081",
        "SPOOL_STATE_DIR": "/var/lib/spool/state",
        "SPOOL_LOG_LEVEL": "info",
        "SPOOL_LOG_FORMAT": "json",
    }
    env = _env(doc)
    assert env["SPOOL_REPLICA_ID"]["valueFrom"] == {
        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}
    }
    assert env["SPOOL_AMQP_URL"] == {
        "name": "SPOOL_AMQP_URL",
        "valueFrom": {"secretKeyRef": {"name": "spool-credentials", "key": "amqp-url"}},
    }
    assert "envFrom" not in _container(doc)


def test_settings_secrets_are_references_and_a_literal_url_only_without_one() -> None:
    assert _env(CASES["literal-amqp-url"])["SPOOL_AMQP_URL"]["value"] == (
        "amqp://dev:dev@rabbit:5672/"
    )
    env = _env(CASES["more-secret-env"])
    assert env["SPOOL_EXTRA_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "other",
        "key": "token",
    }
    both = KubernetesSettings(amqp_url="amqp://literal")
    assert "value" not in _env(_build(settings=both))["SPOOL_AMQP_URL"]


def test_extra_env_is_passed_but_never_over_spools_own() -> None:
    settings = KubernetesSettings(
        extra_env={
            "PIP_INDEX_URL": "https://pypi.example/simple",
            "SPOOL_LEASE_RENEW_INTERVAL": "5.0",
            "SPOOL_SERVICE_ID": "spoofed",
            "SPOOL_REPLICA_ID": "spoofed",
            "SPOOL_AMQP_URL": "amqp://spoofed",
        }
    )
    doc = _build(_service(service_id="s" * 32), settings=settings)
    names = [var["name"] for var in _container(doc)["env"]]
    assert len(names) == len(set(names))
    env = _env(doc)
    assert env["PIP_INDEX_URL"]["value"] == "https://pypi.example/simple"
    assert env["SPOOL_LEASE_RENEW_INTERVAL"]["value"] == "5.0"
    assert env["SPOOL_SERVICE_ID"]["value"] == "s" * 32
    assert "fieldRef" in env["SPOOL_REPLICA_ID"]["valueFrom"]
    assert "secretKeyRef" in env["SPOOL_AMQP_URL"]["valueFrom"]


def test_the_service_env_follows_spools_own() -> None:
    env = _container(CASES["env"])["env"]
    names = [var["name"] for var in env]
    assert names[-3:] == ["EMPTY", "MODEL", "QUOTES"]
    assert env[-1] == {"name": "QUOTES", "value": 'a "b"\n'}
    assert all(name.startswith("SPOOL_") for name in names[:-3])


def test_service_secrets_are_env_from_secret_refs() -> None:
    assert _container(CASES["secrets"])["envFrom"] == [
        {"secretRef": {"name": "db-credentials"}},
        {"secretRef": {"name": "api-keys"}},
    ]


# --- resources -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "requests", "limits"),
    [
        ("defaults", {"cpu": "1413m", "memory": "6912500k"}, None),
        ("pod-type-regular-xs", {"cpu": "457m", "memory": "3381250k"}, None),
        ("pod-type-highmem", {"cpu": "7150m", "memory": "50G"}, None),
        ("gpu-pod-type", {"cpu": "3500m", "memory": "14G"}, {"nvidia.com/gpu": "1"}),
        ("gpu-pod-type-other-gpu", {"cpu": "7500m", "memory": "28G"}, {"amd.com/gpu": "1"}),
    ],
)
def test_the_pod_type_gives_guaranteed_requests_and_limits(
    case: str, requests: dict[str, str], limits: dict[str, str] | None
) -> None:
    resources = _container(CASES[case])["resources"]
    assert resources == {"requests": requests, "limits": {**requests, **(limits or {})}}


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (
            "resources-explicit",
            {
                "requests": {"cpu": "500m", "memory": "1Gi"},
                "limits": {"cpu": "2", "memory": "1536Mi"},
            },
        ),
        ("resources-requests-only", {"requests": {"cpu": "250m"}}),
        ("resources-limits-only", {"limits": {"memory": "1G"}}),
        (
            "gpu-explicit",
            {"requests": {"cpu": "2"}, "limits": {"memory": "8Gi", "nvidia.com/gpu": "2"}},
        ),
        ("gpu-explicit-type", {"limits": {"amd.com/gpu": "1"}}),
        ("everything", {"requests": {"cpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}),
    ],
)
def test_explicit_requests_and_limits_replace_the_pod_type(case: str, expected: Doc) -> None:
    assert _container(CASES[case])["resources"] == expected


# --- volumes ---------------------------------------------------------------------------------

WORK = [{"name": "spool-work", "emptyDir": {}}, {"name": "spool-tmp", "emptyDir": {}}]
WORK_MOUNT = [
    {"name": "spool-work", "mountPath": "/var/lib/spool"},
    {"name": "spool-tmp", "mountPath": "/var/tmp"},  # noqa: S108 (an emptyDir)
]


@pytest.mark.parametrize(
    ("case", "volumes", "mounts"),
    [
        (
            "volume-pvc",
            [
                {
                    "name": "data",
                    "persistentVolumeClaim": {"claimName": "claim-1", "readOnly": False},
                }
            ],
            [{"name": "data", "mountPath": "/data", "readOnly": False, "subPath": "models"}],
        ),
        (
            "volume-pvc-read-only",
            [{"name": "data", "persistentVolumeClaim": {"claimName": "claim-1", "readOnly": True}}],
            [{"name": "data", "mountPath": "/data", "readOnly": True}],
        ),
        (
            "volume-config-map",
            [{"name": "cfg", "configMap": {"name": "my-config"}}],
            [{"name": "cfg", "mountPath": "/etc/cfg", "readOnly": True}],
        ),
        (
            "volume-secret",
            [{"name": "keys", "secret": {"secretName": "my-keys"}}],
            [{"name": "keys", "mountPath": "/keys", "readOnly": True}],
        ),
    ],
)
def test_volumes_and_mounts(case: str, volumes: list[Doc], mounts: list[Doc]) -> None:
    doc = CASES[case]
    assert _pod(doc)["volumes"] == [*WORK, *volumes]
    assert _container(doc)["volumeMounts"] == [*WORK_MOUNT, *mounts]
    assert _container(doc)["workingDir"] == "/var/lib/spool"


def test_only_the_work_dir_without_volumes() -> None:
    assert _pod(CASES["defaults"])["volumes"] == WORK
    assert len(_pod(CASES["volumes-all-kinds"])["volumes"]) == 5


@pytest.mark.parametrize(
    ("volume", "field"),
    [
        (_volume("spool-work", "pvc", "c", "/data"), "runtime.volumes[0].name"),
        (_volume("data", "pvc", "c", "/var/lib/spool/"), "runtime.volumes[0].mountPath"),
        (_volume("spool-tmp", "pvc", "c", "/data"), "runtime.volumes[0].name"),
        (_volume("data", "pvc", "c", "/var/tmp"), "runtime.volumes[0].mountPath"),  # noqa: S108
    ],
)
def test_a_volume_may_not_take_spools_work_dir(volume: Doc, field: str) -> None:
    with pytest.raises(ValidationFailure) as raised:
        _build(_runtime(volumes=[volume]))
    assert raised.value.errors[0].field == field


# --- placement -------------------------------------------------------------------------------

TOLERATION = [{"key": PREEMPTIBLE, "operator": "Equal", "value": "true"}]


def _affinity(operator: str) -> Doc:
    term = {"matchExpressions": [{"key": PREEMPTIBLE, "operator": operator, "values": ["true"]}]}
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}
        }
    }


@pytest.mark.parametrize(
    ("case", "tolerations", "affinity"),
    [
        ("preemption-allow", TOLERATION, None),
        ("preemption-constrain", TOLERATION, _affinity("In")),
        ("preemption-prevent", None, _affinity("NotIn")),
        ("preemption-none", None, None),
        ("defaults", None, None),
        ("preemptible-true", TOLERATION, None),
        ("preemptible-false", None, _affinity("NotIn")),
        ("default-preemption-from-settings", None, _affinity("NotIn")),
    ],
)
def test_preemption_modes(case: str, tolerations: list[Doc] | None, affinity: Doc | None) -> None:
    pod = _pod(CASES[case])
    assert pod.get("tolerations") == tolerations
    assert pod.get("affinity") == affinity


def test_the_preemptible_label_is_a_setting() -> None:
    settings = KubernetesSettings(preemptible_label="cloud.google.com/gke-spot")
    pod = _pod(_build(_runtime(preemptionMode="constrain"), settings=settings))
    assert pod["tolerations"][0]["key"] == "cloud.google.com/gke-spot"
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchExpressions"][0]["key"] == (
        "cloud.google.com/gke-spot"
    )


def test_priority_class_and_node_selector_only_when_set() -> None:
    assert _pod(CASES["priority-class"])["priorityClassName"] == "high-priority"
    assert _pod(CASES["node-selector"])["nodeSelector"] == {"disktype": "ssd", "zone": "eu-1"}
    assert {"priorityClassName", "nodeSelector"}.isdisjoint(_pod(CASES["defaults"]))


def test_the_runner_image() -> None:
    assert _container(CASES["defaults"])["image"] == "spool-runner:latest"
    assert _container(CASES["runner-image"])["image"] == "registry.example.com/runner:2"
    custom = KubernetesSettings(runner_image="registry.example.com/spool:1.2")
    assert _container(_build(settings=custom))["image"] == "registry.example.com/spool:1.2"


# --- rollout and lifecycle -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "replicas", "surge"),
    [("no-replicas", 0, 1), ("defaults", 2, 1), ("many-replicas", 10, 3), ("everything", 5, 2)],
)
def test_rolling_update_surges_a_quarter_and_never_goes_below(
    case: str, replicas: int, surge: int
) -> None:
    spec = CASES[case]["spec"]
    assert spec["replicas"] == replicas
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": surge, "maxUnavailable": 0},
    }


def test_force_recreates() -> None:
    assert CASES["force"]["spec"]["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize(
    ("case", "drain_time"),
    [("no-drain-time", 0), ("defaults", 600), ("everything", 30), ("long-drain-time", 86_400)],
)
def test_the_kubelet_waits_past_the_drain_time(case: str, drain_time: int) -> None:
    grace = _pod(CASES[case])["terminationGracePeriodSeconds"]
    assert drain_time < grace <= drain_time + 60


def test_probes_on_the_ops_port() -> None:
    container = _container(CASES["defaults"])
    assert {"name": "ops", "containerPort": 8081, "protocol": "TCP"} in container["ports"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 8081}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": 8081}
    assert container["startupProbe"]["httpGet"] == {"path": "/livez", "port": 8081}
    liveness = container["livenessProbe"]
    # A minute or more of no answer before the kubelet restarts an agent (installs, extraction).
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 60
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60


def test_state_thresholds_ride_along_as_an_annotation() -> None:
    annotation = CASES["state-thresholds"]["metadata"]["annotations"][THRESHOLDS_ANNOTATION]
    assert '"running": "-1"' in annotation
    assert '"imagePullBackoff": "5m"' in annotation


def test_the_hash_changes_with_the_manifest_and_only_with_it() -> None:
    service = _service()
    first, again = _build(service), _build(service)
    assert first == again
    digest = first["metadata"]["annotations"][HASH_ANNOTATION]
    assert digest == manifest_hash(first)
    for other in (_build(service, revision=4), _build(service, replicas=3)):
        assert other["metadata"]["annotations"][HASH_ANNOTATION] != digest


@pytest.mark.parametrize(
    "bad",
    [{"drain_margin": 0}, {"request_timeout": 0}],
)
def test_settings_are_checked(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        KubernetesSettings(**bad)
