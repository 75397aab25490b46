"""The `apps/v1` Deployment that runs one service, as a plain dict built from a
`DeploymentSpec` and the driver's `KubernetesSettings`. Pure: no I/O, no clock. (`k8s_pods`
reads the pods back; `k8s_driver` sends and fetches both.)

Preemption (MLRun's `with_preemption_mode`): preemptible nodes carry the node label and the
taint `<preemptible_label>=<preemptible_value>` (default `spool.dev/preemptible=true`; point it
at your provider's spot label, e.g. `cloud.google.com/gke-spot`):

- allow: tolerate the taint (the pod may land on preemptible nodes, or not);
- constrain: tolerate it and require preemptible nodes (node affinity);
- prevent: no toleration, and require nodes without that label;
- none: neither.

Names: `spool-<service name>-<8 hex of sha256(service id)>`, a DNS-1123 label of at most 63
characters. The hash is always there: service names are unique only within a project (and
reusable once a service is deleted), while every Deployment shares the namespace.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from spool_common.errors import ValidationFailure
from spool_common.instances import instance
from spool_common.models import Service
from spool_common.quantities import format_cpu, format_memory
from spool_common.runtime_spec import PreemptionMode, ResourceAmounts, VolumeSpec
from spool_scheduler.driver import DeploymentSpec

Manifest = dict[str, Any]

NAME_LABEL: Final = "app.kubernetes.io/name"
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
SERVICE_ID_LABEL: Final = "spool.dev/service-id"
SERVICE_NAME_LABEL: Final = "spool.dev/service-name"
REVISION_LABEL: Final = "spool.dev/revision"
HASH_ANNOTATION: Final = "spool.dev/manifest-hash"
THRESHOLDS_ANNOTATION: Final = "spool.dev/state-thresholds"
AGENT: Final = "spool-agent"
MANAGER: Final = "spool-scheduler"
MANAGED_SELECTOR: Final = f"{MANAGED_BY_LABEL}={MANAGER}"

CONTAINER: Final = "agent"
OPS_PORT: Final = 8081
RUN_AS: Final = 10001  # the user of images/runner.Containerfile
WORK_VOLUME: Final = "spool-work"
WORK_DIR: Final = "/var/lib/spool"  # the agent's cwd: codebase, deps/, runner log
# Scratch space on the read-only root: not /tmp, where the runner image keeps its wheels
# (PIP_FIND_LINKS); Python's tempfile picks /var/tmp by itself when /tmp is not writable.
TMP_VOLUME: Final = "spool-tmp"
TMP_DIR: Final = "/var/tmp"  # noqa: S108 (an emptyDir of the pod, not a shared dir)
DRAIN_MARGIN: Final = 30  # seconds past drainTime before the kubelet kills the agent

_MAX_NAME: Final = 63
_HASH_LENGTH: Final = 8
_NOT_DNS: Final = re.compile(r"[^a-z0-9-]+")
_NOT_LABEL: Final = re.compile(r"[^A-Za-z0-9._-]+")
_LABEL_VALUE: Final = re.compile(r"([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?")


@dataclass(frozen=True)
class SecretKeyRef:
    """One key of a Kubernetes Secret."""

    name: str
    key: str


def _default_secret_env() -> Mapping[str, SecretKeyRef]:
    # The control plane's own Secret (k8s/README.md): agents read the bus URL from it.
    return MappingProxyType({"SPOOL_AMQP_URL": SecretKeyRef("spool-credentials", "amqp-url")})


@dataclass(frozen=True)
class KubernetesSettings:
    """What the kubernetes driver needs besides the service: where and how agents run.

    `secret_env` maps agent settings to Secret keys (read with `secretKeyRef`, never written
    into the manifest); `amqp_url` is a literal fallback used only when `SPOOL_AMQP_URL` is not
    in `secret_env` (a development cluster). `extra_env` adds plain variables (the lease
    interval); the settings above take precedence over it."""

    namespace: str = "spool"
    runner_image: str = "spool-runner:latest"  # images/runner.Containerfile
    image_pull_policy: str = "IfNotPresent"
    bus_namespace: str = "spool"
    gateway_url: str = "http://spool-gateway.spool.svc:8080"
    amqp_url: str | None = None
    secret_env: Mapping[str, SecretKeyRef] = field(default_factory=_default_secret_env)
    extra_env: Mapping[str, str] = field(default_factory=dict)  # more plain agent settings
    log_level: str = "info"
    log_format: str = "json"
    preemptible_label: str = "spool.dev/preemptible"
    preemptible_value: str = "true"
    default_preemption_mode: PreemptionMode = PreemptionMode.NONE
    drain_margin: int = DRAIN_MARGIN
    request_timeout: float = 30.0  # seconds per Kubernetes API call

    def __post_init__(self) -> None:
        if self.drain_margin < 1:
            raise ValueError(f"drain_margin must be >= 1 second, got {self.drain_margin}")
        if self.request_timeout <= 0:
            raise ValueError(f"request_timeout must be > 0, got {self.request_timeout}")


# --- names and labels ------------------------------------------------------------------------


def deployment_name(service: Service) -> str:
    """`spool-<name>-<hash>`: lowercase, `[a-z0-9-]`, at most 63 characters."""
    digest = hashlib.sha256(service.id.encode()).hexdigest()[:_HASH_LENGTH]
    cleaned = _NOT_DNS.sub("-", service.name.lower()).strip("-")
    base = f"spool-{cleaned}" if cleaned else "spool"
    return f"{base[: _MAX_NAME - _HASH_LENGTH - 1].rstrip('-')}-{digest}"


def label_value(text: str) -> str:
    """`text` as a label value: invalid characters become "-", at most 63 characters."""
    cleaned = _NOT_LABEL.sub("-", text)[:_MAX_NAME]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", cleaned)


def service_selector(service_id: str) -> str:
    """The label selector of one service's Deployments and pods."""
    return f"{MANAGED_SELECTOR},{SERVICE_ID_LABEL}={service_id}"


def _labels(service: Service, revision: int) -> dict[str, str]:
    if not service.id or not _LABEL_VALUE.fullmatch(service.id):
        raise ValidationFailure.of("id", f"{service.id!r} cannot be a Kubernetes label value")
    return {
        NAME_LABEL: AGENT,
        MANAGED_BY_LABEL: MANAGER,
        "app.kubernetes.io/part-of": "spool",
        SERVICE_ID_LABEL: service.id,
        SERVICE_NAME_LABEL: label_value(service.name),
        REVISION_LABEL: str(revision),
    }


# --- the Deployment --------------------------------------------------------------------------


def build_deployment(spec: DeploymentSpec, settings: KubernetesSettings) -> Manifest:
    """The Deployment of `spec.service` at `spec.revision`, with `HASH_ANNOTATION` set to a
    digest of everything else (equal digests: nothing to update). `spec.force` swaps the
    rolling update for `Recreate` (old replicas go first; the driver then kills them)."""
    service = spec.service
    labels = _labels(service, spec.revision)
    thresholds = json.dumps(service.runtime.state_thresholds.to_wire(), sort_keys=True)
    manifest: Manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(service),
            "namespace": settings.namespace,
            "labels": labels,
            "annotations": {THRESHOLDS_ANNOTATION: thresholds},
        },
        "spec": {
            "replicas": spec.replicas,
            "revisionHistoryLimit": 3,
            # The revision is not in the selector: a new revision rolls this Deployment's pods.
            "selector": {"matchLabels": {SERVICE_ID_LABEL: service.id}},
            "strategy": _strategy(spec),
            "template": {
                "metadata": {"labels": labels},
                "spec": _pod_spec(spec, settings),
            },
        },
    }
    manifest["metadata"]["annotations"][HASH_ANNOTATION] = manifest_hash(manifest)
    return manifest


def manifest_hash(manifest: Manifest) -> str:
    """A digest of `manifest` without its own `HASH_ANNOTATION`."""
    annotations = dict(manifest.get("metadata", {}).get("annotations", {}))
    annotations.pop(HASH_ANNOTATION, None)
    bare = {**manifest, "metadata": {**manifest.get("metadata", {}), "annotations": annotations}}
    text = json.dumps(bare, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _strategy(spec: DeploymentSpec) -> Manifest:
    if spec.force:
        return {"type": "Recreate"}
    # New replicas are ready before old ones drain: nothing unavailable, a quarter extra.
    surge = max(1, math.ceil(spec.replicas / 4))
    return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": 0}}


def _pod_spec(spec: DeploymentSpec, settings: KubernetesSettings) -> Manifest:
    runtime = spec.service.runtime
    pod: Manifest = {
        "automountServiceAccountToken": False,  # agents never talk to the Kubernetes API
        "enableServiceLinks": False,  # no SPOOL_GATEWAY_* service-link variables
        "terminationGracePeriodSeconds": math.ceil(spec.drain_time) + settings.drain_margin,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(spec, settings)],
        "volumes": [
            {"name": WORK_VOLUME, "emptyDir": {}},
            {"name": TMP_VOLUME, "emptyDir": {}},
            *(_volume(v) for v in _checked_volumes(runtime.volumes)),
        ],
        **_placement(spec.service, settings),
    }
    if runtime.priority_class_name:
        pod["priorityClassName"] = runtime.priority_class_name
    if runtime.node_selector:
        pod["nodeSelector"] = dict(runtime.node_selector)
    return pod


def _container(spec: DeploymentSpec, settings: KubernetesSettings) -> Manifest:
    runtime = spec.service.runtime
    container: Manifest = {
        "name": CONTAINER,
        "image": runtime.runner_image or settings.runner_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["python", "-m", "spool_agent"],
        "workingDir": WORK_DIR,
        "env": _env(spec, settings),
        "ports": [{"name": "ops", "containerPort": OPS_PORT, "protocol": "TCP"}],
        "resources": _resources(spec.service),
        **_probes(),
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "privileged": False,
            "readOnlyRootFilesystem": True,  # writable: the work dir and TMP_DIR only
        },
        "volumeMounts": [
            {"name": WORK_VOLUME, "mountPath": WORK_DIR},
            {"name": TMP_VOLUME, "mountPath": TMP_DIR},
            *(_mount(v) for v in runtime.volumes),
        ],
    }
    if spec.service.secrets:
        # Before `env` in precedence: a user secret can never override a SPOOL_* setting.
        container["envFrom"] = [{"secretRef": {"name": s}} for s in spec.service.secrets]
    return container


def _env(spec: DeploymentSpec, settings: KubernetesSettings) -> list[Manifest]:
    """Spool's settings (over `extra_env`), the references (the pod's name, Secret keys) over
    both, then the service's own variables, which are never SPOOL_* (the runtime spec refuses)."""
    plain = {
        **settings.extra_env,
        "SPOOL_SERVICE_ID": spec.service_id,
        "SPOOL_SERVICE_REVISION": str(spec.revision),
        "SPOOL_GATEWAY_URL": settings.gateway_url,
        "SPOOL_BUS_NAMESPACE": settings.bus_namespace,
        "SPOOL_OPS_HOST": "0.0.0.0",  # noqa: S104 (the kubelet probes the pod's address)
        "SPOOL_OPS_PORT": str(OPS_PORT),
        "SPOOL_STATE_DIR": f"{WORK_DIR}/state",
        "SPOOL_LOG_LEVEL": settings.log_level,
        "SPOOL_LOG_FORMAT": settings.log_format,
    }
    if settings.amqp_url is not None:
        plain["SPOOL_AMQP_URL"] = settings.amqp_url
    refs: dict[str, Manifest] = {
        "SPOOL_REPLICA_ID": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
        **{
            name: {"secretKeyRef": {"name": ref.name, "key": ref.key}}
            for name, ref in sorted(settings.secret_env.items())
        },
    }
    return [
        *({"name": k, "value": v} for k, v in plain.items() if k not in refs),
        *({"name": k, "valueFrom": v} for k, v in refs.items()),
        *({"name": k, "value": v} for k, v in sorted(spec.service.runtime.env.items())),
    ]


def _resources(service: Service) -> Manifest:
    """Explicit requests/limits when the runtime spec has any, else the podType's figures as
    both requests and limits (Guaranteed QoS). GPUs go in limits only, as Kubernetes wants."""
    explicit = service.runtime.resources
    pod_type = instance(service.runtime.pod_type.value, field="runtime.podType")
    gpu_type = explicit.gpu_type if explicit else pod_type.gpu_type
    if explicit is None or not _has_amounts(explicit.requests, explicit.limits):
        amounts = {"cpu": format_cpu(pod_type.cpu), "memory": format_memory(pod_type.memory_bytes)}
        limits = dict(amounts)
        if pod_type.gpus and gpu_type:
            limits[gpu_type] = str(pod_type.gpus)
        return {"requests": amounts, "limits": limits}
    requests = _amounts(explicit.requests)
    limits = _amounts(explicit.limits)
    gpus = explicit.limits.gpu_count() or explicit.requests.gpu_count()
    if gpus:
        limits[explicit.gpu_type] = str(gpus)
    return {key: value for key, value in (("requests", requests), ("limits", limits)) if value}


def _has_amounts(*amounts: ResourceAmounts) -> bool:
    return any(a.cpu is not None or a.memory is not None or a.gpus is not None for a in amounts)


def _amounts(amounts: ResourceAmounts) -> dict[str, str]:
    out: dict[str, str] = {}
    cpu, memory = amounts.cpu_cores(), amounts.memory_bytes()
    if cpu is not None:
        out["cpu"] = format_cpu(cpu)
    if memory is not None:
        out["memory"] = format_memory(memory)
    return out


def _probes() -> Manifest:
    """/livez answers from the agent's first second (its ops server starts before the code is
    fetched and requirements installed); /readyz only once init is done and the consumer is
    attached, and no longer once the drain begins."""

    def get(path: str) -> Manifest:
        return {"httpGet": {"path": path, "port": OPS_PORT}, "timeoutSeconds": 5}

    return {
        # Up to 2 minutes for the interpreter to start and serve /livez.
        "startupProbe": {**get("/livez"), "periodSeconds": 5, "failureThreshold": 24},
        # A minute of silence (a long synchronous extraction, a busy loop) before a restart.
        "livenessProbe": {
            **get("/livez"),
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "failureThreshold": 6,
        },
        "readinessProbe": {**get("/readyz"), "periodSeconds": 5, "failureThreshold": 2},
    }


def _checked_volumes(volumes: list[VolumeSpec]) -> list[VolumeSpec]:
    for i, volume in enumerate(volumes):
        if volume.name in (WORK_VOLUME, TMP_VOLUME):
            raise ValidationFailure.of(f"runtime.volumes[{i}].name", "is reserved for Spool")
        if volume.mount_path.rstrip("/") in (WORK_DIR, TMP_DIR):
            raise ValidationFailure.of(
                f"runtime.volumes[{i}].mountPath", "is Spool's work dir or scratch space"
            )
    return volumes


def _volume(volume: VolumeSpec) -> Manifest:
    if volume.type == "pvc":
        source = {"claimName": volume.source, "readOnly": volume.read_only}
        return {"name": volume.name, "persistentVolumeClaim": source}
    if volume.type == "configMap":
        return {"name": volume.name, "configMap": {"name": volume.source}}
    return {"name": volume.name, "secret": {"secretName": volume.source}}


def _mount(volume: VolumeSpec) -> Manifest:
    mount: Manifest = {
        "name": volume.name,
        "mountPath": volume.mount_path,
        # ConfigMap and Secret volumes are read-only whatever the mount says.
        "readOnly": volume.read_only or volume.type != "pvc",
    }
    if volume.sub_path:
        mount["subPath"] = volume.sub_path
    return mount


def preemption_mode(service: Service, settings: KubernetesSettings) -> PreemptionMode:
    """The runtime's preemptionMode; else Dataloop's `preemptible` (true: allow, false:
    prevent); else the driver's default."""
    runtime = service.runtime
    if runtime.preemption_mode is not None:
        return runtime.preemption_mode
    if runtime.preemptible is not None:
        return PreemptionMode.ALLOW if runtime.preemptible else PreemptionMode.PREVENT
    return settings.default_preemption_mode


def _placement(service: Service, settings: KubernetesSettings) -> Manifest:
    mode = preemption_mode(service, settings)
    key, value = settings.preemptible_label, settings.preemptible_value
    toleration = {"key": key, "operator": "Equal", "value": value}
    operator = {PreemptionMode.CONSTRAIN: "In", PreemptionMode.PREVENT: "NotIn"}.get(mode)
    placement: Manifest = {}
    if mode in (PreemptionMode.ALLOW, PreemptionMode.CONSTRAIN):
        placement["tolerations"] = [toleration]
    if operator is not None:
        term = {"matchExpressions": [{"key": key, "operator": operator, "values": [value]}]}
        required = {"nodeSelectorTerms": [term]}
        placement["affinity"] = {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}
        }
    return placement
