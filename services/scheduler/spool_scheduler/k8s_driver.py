"""The kubernetes runtime driver: one `apps/v1` Deployment per service, through
kubernetes-asyncio. A thin adapter: the manifests are built by `k8s_manifests`, the pods are
read by `k8s_pods`; this module only sends and fetches, each call through `_request`.

`apply` replaces the Deployment (PUT, carrying the `resourceVersion` it just read) rather
than patching it: a strategic merge patch merges lists such as `env`, `volumes` and
`volumeMounts` by name, so a variable or a volume that a new revision dropped would stay.
Replacing makes the Deployment exactly the manifest; the resourceVersion turns a concurrent
change into a 409, retried by the next reconcile. A manifest whose hash annotation and replicas
already match is not sent at all.

RBAC (k8s/rbac.yaml): deployments list, create, update, delete; pods list, delete; pods/log
get.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import aiohttp
from kubernetes_asyncio import config
from kubernetes_asyncio.client import ApiClient, AppsV1Api, Configuration, CoreV1Api

from spool_common.logging import get_logger
from spool_scheduler.driver import DeploymentSpec, Observation, ReplicaExit
from spool_scheduler.k8s_manifests import (
    CONTAINER,
    HASH_ANNOTATION,
    MANAGED_SELECTOR,
    REVISION_LABEL,
    KubernetesSettings,
    Manifest,
    SecretKeyRef,
    build_deployment,
    service_selector,
)
from spool_scheduler.k8s_pods import FoundExit, Seen, read_pods
from spool_scheduler.settings import SchedulerSettings

log = get_logger(__name__)

LOG_TAIL_LINES = 20
NOT_FOUND = 404


class KubernetesError(Exception):
    """The Kubernetes API failed or refused a call; the next reconcile round tries again."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def settings_from(settings: SchedulerSettings) -> KubernetesSettings:
    """The driver's settings from the scheduler's (SPOOL_K8S_*, and the agents' shared ones).

    Without `k8s_amqp_secret` the bus URL is written into the Deployment as a literal value:
    fine for a development cluster, not for one where others may read Deployments."""
    secret = settings.k8s_amqp_secret
    return KubernetesSettings(
        namespace=settings.k8s_namespace,
        runner_image=settings.k8s_runner_image,
        bus_namespace=settings.bus_namespace,
        gateway_url=settings.gateway_url,
        amqp_url=None if secret else settings.amqp_url,
        secret_env={"SPOOL_AMQP_URL": SecretKeyRef(secret, "amqp-url")} if secret else {},
        log_level=settings.log_level,
        log_format=settings.log_format,
        # Not the scheduler's PIP_* (paths of its own image); a service sets its own in env.
        extra_env={"SPOOL_LEASE_RENEW_INTERVAL": str(settings.agent_lease_renew_interval)},
    )


class KubernetesDriver:
    """`RuntimeDriver` on Deployments. Owns `api_client` (closed by `close`)."""

    def __init__(
        self,
        api_client: ApiClient,
        settings: KubernetesSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._client = api_client
        self._apps = AppsV1Api(api_client)
        self._core = CoreV1Api(api_client)
        self._settings = settings
        self._ns = settings.namespace
        self._clock = clock
        self._now = now
        self._seen: dict[str, Seen] | None = None  # None until the first observe()

    @classmethod
    async def in_cluster(cls, settings: KubernetesSettings) -> KubernetesDriver:
        """A driver on the cluster this runs in (its service account), else ~/.kube/config."""
        configuration = Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            await config.load_kube_config(client_configuration=configuration)
        return cls(ApiClient(configuration), settings)

    async def apply(self, spec: DeploymentSpec) -> None:
        desired = build_deployment(spec, self._settings)
        name = desired["metadata"]["name"]
        found = await self._deployments(spec.service_id)
        current = next((d for d in found if d["metadata"]["name"] == name), None)
        if current is None:
            await self._request(self._apps.create_namespaced_deployment, self._ns, desired)
            log.info("deployment_created", deployment=name, revision=spec.revision)
        elif not _up_to_date(current, desired):
            desired["metadata"]["resourceVersion"] = current["metadata"].get("resourceVersion")
            await self._request(self._apps.replace_namespaced_deployment, name, self._ns, desired)
            log.info("deployment_replaced", deployment=name, revision=spec.revision)
        for old in found:  # the service was renamed: its Deployment was under another name
            if old["metadata"]["name"] != name:
                await self._delete_deployment(old["metadata"]["name"])
        if spec.force:
            selector = f"{service_selector(spec.service_id)},{REVISION_LABEL}!={spec.revision}"
            await self._kill_pods(selector)

    async def remove(self, service_id: str, *, force: bool = False) -> None:
        for deployment in await self._deployments(service_id):
            await self._delete_deployment(deployment["metadata"]["name"])
        if force:  # after the Deployment, or its ReplicaSet would start new pods
            await self._kill_pods(service_selector(service_id))

    async def stop_replica(self, replica_id: str, reason: str) -> None:
        await self._request(
            self._core.delete_namespaced_pod,
            replica_id,
            self._ns,
            grace_period_seconds=0,
            missing_ok=True,
        )
        log.info("replica_stopped", replica_id=replica_id, reason=reason)

    async def restart_replica(self, replica_id: str) -> bool:
        """Delete the pod with its own grace period (terminationGracePeriodSeconds: the
        service's drain time and a margin): the kubelet sends SIGTERM, the agent drains, and
        the Deployment creates a new pod at once."""
        body = await self._request(
            self._core.delete_namespaced_pod, replica_id, self._ns, missing_ok=True
        )
        log.info("replica_restart", replica_id=replica_id, found=bool(body))
        return bool(body)

    async def observe(self) -> Observation:
        body = await self._request(
            self._core.list_namespaced_pod, self._ns, label_selector=MANAGED_SELECTOR
        )
        pods = _json(body).get("items") or []
        read = read_pods(pods, self._seen, mono=self._clock(), wall=self._now())
        self._seen = read.seen
        exits = [await self._with_log(found) for found in read.exits]
        return Observation(replicas=read.replicas, exits=exits)

    async def close(self, *, grace: bool = True) -> None:
        """Deployments stay: the cluster keeps running the services."""
        await self._client.close()

    async def _deployments(self, service_id: str) -> list[Manifest]:
        body = await self._request(
            self._apps.list_namespaced_deployment,
            self._ns,
            label_selector=service_selector(service_id),
        )
        items: list[Manifest] = _json(body).get("items") or []
        return items

    async def _delete_deployment(self, name: str) -> None:
        await self._request(
            self._apps.delete_namespaced_deployment,
            name,
            self._ns,
            propagation_policy="Foreground",
            missing_ok=True,
        )
        log.info("deployment_deleted", deployment=name)

    async def _kill_pods(self, selector: str) -> None:
        """Delete the pods at once, draining nothing (one by one: the Role has no
        deletecollection)."""
        body = await self._request(
            self._core.list_namespaced_pod, self._ns, label_selector=selector
        )
        for pod in _json(body).get("items") or []:
            name = pod["metadata"]["name"]
            await self._request(
                self._core.delete_namespaced_pod,
                name,
                self._ns,
                grace_period_seconds=0,
                missing_ok=True,
            )
        log.info("replicas_killed", selector=selector)

    async def _with_log(self, found: FoundExit) -> ReplicaExit:
        if found.previous_log is None:
            return found.exit
        try:
            text = await self._request(
                self._core.read_namespaced_pod_log,
                found.exit.replica_id,
                self._ns,
                container=CONTAINER,
                previous=found.previous_log,
                tail_lines=LOG_TAIL_LINES,
            )
        except KubernetesError as e:  # the exit matters more than its log
            log.warning("replica_log_unavailable", replica_id=found.exit.replica_id, error=str(e))
            return found.exit
        lines = text.decode(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        return replace(found.exit, log_tail=tuple(lines))

    async def _request(
        self,
        call: Callable[..., Awaitable[Any]],
        *args: Any,
        missing_ok: bool = False,
        **kwargs: Any,
    ) -> bytes:
        """One API call: the response body; b"" for a 404 when `missing_ok` (deleting what is
        gone is done); KubernetesError for anything else that is not a success."""
        try:
            response = await call(
                *args,
                _preload_content=False,
                _request_timeout=self._settings.request_timeout,
                **kwargs,
            )
            try:
                status, body = response.status, await response.read()
            finally:
                response.release()
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            raise KubernetesError(f"{call.__name__}: {e!r}") from e
        if status == NOT_FOUND and missing_ok:
            return b""
        if not 200 <= status <= 299:
            raise KubernetesError(f"{call.__name__}: HTTP {status}: {_message(body)}")
        data: bytes = body
        return data


def _up_to_date(current: Manifest, desired: Manifest) -> bool:
    annotations = current["metadata"].get("annotations") or {}
    return bool(
        annotations.get(HASH_ANNOTATION) == desired["metadata"]["annotations"][HASH_ANNOTATION]
        and current.get("spec", {}).get("replicas") == desired["spec"]["replicas"]
    )


def _json(body: bytes) -> Manifest:
    if not body:
        return {}
    value: Manifest = json.loads(body)
    return value


def _message(body: bytes) -> str:
    """The `message` of a Kubernetes Status body, else the body itself (shortened)."""
    try:
        return str(json.loads(body)["message"])
    except (ValueError, KeyError, TypeError):
        return body[:200].decode(errors="replace")
