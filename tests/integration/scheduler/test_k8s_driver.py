"""The kubernetes driver through kubernetes-asyncio against a small Kubernetes API server
started here (aiohttp on 127.0.0.1): Deployments are created, replaced and deleted as the
services ask, pods are read into replicas and exits, and API failures surface as
KubernetesError.

The fake speaks the API's JSON for the calls the driver makes, stores what it is given and
returns it as the API server does (uid, resourceVersion, creationTimestamp; a stale
resourceVersion is a 409). It validates every Deployment it receives against the Kubernetes
schema, strictly, and filters by label selector; pods and their `status` are set by the test,
which plays the controllers and the kubelet."""

from __future__ import annotations

import copy
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
from aiohttp import web
from kubernetes_asyncio.client import (
    ApiClient,
    ApiException,
    AppsV1Api,
    Configuration,
)

from spool_common.models import Service
from spool_scheduler.driver import DeploymentSpec, ReplicaStatus
from spool_scheduler.k8s_driver import KubernetesDriver, KubernetesError, settings_from
from spool_scheduler.k8s_manifests import KubernetesSettings, SecretKeyRef, deployment_name
from spool_scheduler.settings import SchedulerSettings

pytestmark = pytest.mark.integration

NAMESPACE = "spool-test"
WALL = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
MONO = 5_000.0
APPS = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
PODS = f"/api/v1/namespaces/{NAMESPACE}/pods"

Doc = dict[str, Any]


def _stamp(seconds_ago: float) -> str:
    return (WALL - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(code: int, reason: str, message: str) -> web.Response:
    body: Doc = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
    body |= {"message": message, "reason": reason, "code": code}
    return web.json_response(body, status=code)


def _matches(labels: dict[str, str], selector: str) -> bool:
    """`a=b`, `a!=b` and `a` (exists), comma-separated, as the API server reads them."""
    for term in filter(None, selector.split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key) != value:
                return False
        elif term not in labels:
            return False
    return True


class FakeKubernetes:
    """Deployments and pods in one namespace, and the requests that came in."""

    def __init__(self) -> None:
        self.deployments: dict[str, Doc] = {}
        self.pods: dict[str, Doc] = {}
        self.logs: dict[tuple[str, bool], str] = {}  # (pod, previous) -> log text
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.fail_with: int | None = None  # answer every request with this status
        self.race = False  # another writer changes each Deployment right after a list
        self._versions = itertools.count(100)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        app.router.add_get(APPS, self.list_deployments)
        app.router.add_post(APPS, self.create_deployment)
        app.router.add_put(APPS + "/{name}", self.replace_deployment)
        app.router.add_delete(APPS + "/{name}", self.delete_deployment)
        app.router.add_get(PODS, self.list_pods)
        app.router.add_delete(PODS + "/{name}", self.delete_pod)
        app.router.add_get(PODS + "/{name}/log", self.read_log)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path, dict(request.query)))
        if self.fail_with is not None:
            return _status(self.fail_with, "InternalError", "the fake was told to fail")
        response: web.StreamResponse = await handler(request)
        return response

    def writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p, _ in self.requests if m != "GET"]

    def add_pod(self, name: str, labels: dict[str, str], status: Doc) -> None:
        self.pods[name] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "labels": labels,
                "creationTimestamp": _stamp(300),
                "uid": str(uuid.uuid4()),
            },
            "spec": {"containers": [{"name": "agent", "image": "spool:latest"}]},
            "status": status,
        }

    # --- deployments ---

    async def list_deployments(self, request: web.Request) -> web.Response:
        selector = request.query.get("labelSelector", "")
        items = [d for d in self.deployments.values() if _matches(_labels(d), selector)]
        body = {"kind": "DeploymentList", "apiVersion": "apps/v1", "items": items}
        response = web.json_response({**body, "metadata": {"resourceVersion": "1"}})
        if self.race:
            for stored in self.deployments.values():
                stored["metadata"]["resourceVersion"] = str(next(self._versions))
        return response

    async def create_deployment(self, request: web.Request) -> web.Response:
        body = await request.json()
        problem = _invalid(body)
        if problem is not None:
            return _status(422, "Invalid", problem)
        name = body["metadata"]["name"]
        if name in self.deployments:
            return _status(409, "AlreadyExists", f'deployments.apps "{name}" already exists')
        meta = body["metadata"]
        meta |= {"uid": str(uuid.uuid4()), "creationTimestamp": _stamp(0), "generation": 1}
        meta["resourceVersion"] = str(next(self._versions))
        body["status"] = {}
        self.deployments[name] = body
        return web.json_response(body, status=201)

    async def replace_deployment(self, request: web.Request) -> web.Response:
        name, body = request.match_info["name"], await request.json()
        stored = self.deployments.get(name)
        if stored is None:
            return _status(404, "NotFound", f'deployments.apps "{name}" not found')
        problem = _invalid(body)
        if problem is not None:
            return _status(422, "Invalid", problem)
        version = body["metadata"].get("resourceVersion")
        if version is not None and version != stored["metadata"]["resourceVersion"]:
            return _status(409, "Conflict", "the object has been modified; please retry")
        kept = {k: stored["metadata"][k] for k in ("uid", "creationTimestamp", "generation")}
        if body["spec"] != stored["spec"]:
            kept["generation"] += 1
        body["metadata"] |= kept | {"resourceVersion": str(next(self._versions))}
        body["status"] = stored["status"]
        self.deployments[name] = body
        return web.json_response(body)

    async def delete_deployment(self, request: web.Request) -> web.Response:
        if self.deployments.pop(request.match_info["name"], None) is None:
            return _status(404, "NotFound", "not found")
        return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Success"})

    # --- pods ---

    async def list_pods(self, request: web.Request) -> web.Response:
        selector = request.query.get("labelSelector", "")
        items = [p for p in self.pods.values() if _matches(_labels(p), selector)]
        return web.json_response({"kind": "PodList", "apiVersion": "v1", "items": items})

    async def delete_pod(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.pods:
            return _status(404, "NotFound", f'pods "{name}" not found')
        grace = int(request.query.get("gracePeriodSeconds", "30"))
        return web.json_response(self.delete(name, grace))

    def delete(self, name: str, grace: int) -> Doc:
        """Grace 0 removes the pod at once; otherwise it terminates until the kubelet is done."""
        if grace == 0:
            return self.pods.pop(name)
        meta = self.pods[name]["metadata"]
        meta |= {"deletionTimestamp": _stamp(-grace), "deletionGracePeriodSeconds": grace}
        return self.pods[name]

    async def read_log(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        previous = request.query.get("previous", "false").lower() == "true"
        text = self.logs.get((name, previous))
        if name not in self.pods or text is None:
            reason = f'previous terminated container "agent" in pod "{name}" not found'
            return _status(400, "BadRequest", reason)
        tail = int(request.query.get("tailLines", "0")) or None
        lines = text.splitlines(keepends=True)
        return web.Response(text="".join(lines[-tail:] if tail else lines))


def _labels(doc: Doc) -> dict[str, str]:
    labels: dict[str, str] = doc["metadata"].get("labels") or {}
    return labels


def _invalid(doc: Doc) -> str | None:
    try:
        kubernetes_validate.validate(doc, "1.30", strict=True)
    except kubernetes_validate.ValidationError as error:
        return f"{'.'.join(map(str, error.path))}: {error.message}"
    return None


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeKubernetes, str]]:
    server = FakeKubernetes()
    runner = web.AppRunner(server.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield server, f"http://127.0.0.1:{port}"
    await runner.cleanup()


def _driver(url: str) -> KubernetesDriver:
    client = ApiClient(Configuration(host=url))
    settings = KubernetesSettings(namespace=NAMESPACE, request_timeout=5.0)
    return KubernetesDriver(client, settings, clock=lambda: MONO, now=lambda: WALL)


@pytest.fixture
async def k8s(
    fake: tuple[FakeKubernetes, str],
) -> AsyncIterator[tuple[FakeKubernetes, KubernetesDriver]]:
    server, url = fake
    driver = _driver(url)
    yield server, driver
    await driver.close()


def _service(name: str = "hello", service_id: str | None = None, **runtime: Any) -> Service:
    return Service.model_validate(
        {
            "id": service_id or uuid.uuid4().hex,
            "name": name,
            "projectId": "p1",
            "packageId": "pk1",
            "packageRevision": "1.0.0",
            "drainTime": 60,
            "runtime": runtime,
        }
    )


def _env(deployment: Doc) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {var["name"]: var.get("value") for var in container["env"]}


Fixture = tuple[FakeKubernetes, KubernetesDriver]


def _killed(server: FakeKubernetes) -> list[str]:
    """The pods deleted with no grace period, in order."""
    return [
        path
        for method, path, query in server.requests
        if method == "DELETE" and path.startswith(PODS) and query.get("gracePeriodSeconds") == "0"
    ]


# --- apply -----------------------------------------------------------------------------------


async def test_apply_creates_the_deployment_once(k8s: Fixture) -> None:
    server, driver = k8s
    service = _service(env={"MODEL": "v1"})
    await driver.apply(DeploymentSpec(service, revision=1, replicas=2))

    (stored,) = server.deployments.values()
    assert stored["metadata"]["name"] == deployment_name(service)
    assert stored["metadata"]["namespace"] == NAMESPACE
    assert stored["spec"]["replicas"] == 2
    assert stored["metadata"]["labels"]["spool.dev/revision"] == "1"
    assert _env(stored)["MODEL"] == "v1"
    assert server.writes() == [("POST", APPS)]

    await driver.apply(DeploymentSpec(service, revision=1, replicas=2))  # nothing changed
    assert server.writes() == [("POST", APPS)]


async def test_a_new_revision_replaces_the_spec_exactly(k8s: Fixture) -> None:
    server, driver = k8s
    service = _service(env={"OLD": "1", "KEEP": "1"})
    await driver.apply(DeploymentSpec(service, revision=1, replicas=1))
    name = deployment_name(service)
    created = copy.deepcopy(server.deployments[name])

    renewed = service.model_copy(
        update={"runtime": service.runtime.model_copy(update={"env": {"KEEP": "2"}})}
    )
    await driver.apply(DeploymentSpec(renewed, revision=2, replicas=3))

    stored = server.deployments[name]
    assert server.writes()[-1] == ("PUT", f"{APPS}/{name}")
    assert stored["metadata"]["uid"] == created["metadata"]["uid"]  # the same Deployment
    assert stored["metadata"]["generation"] == 2
    assert stored["spec"]["replicas"] == 3
    assert stored["spec"]["template"]["metadata"]["labels"]["spool.dev/revision"] == "2"
    env = _env(stored)
    assert env["KEEP"] == "2"
    assert "OLD" not in env  # a merge patch would have kept it


async def test_replicas_changed_behind_the_drivers_back_are_put_back(k8s: Fixture) -> None:
    server, driver = k8s
    service = _service()
    spec = DeploymentSpec(service, revision=1, replicas=2)
    await driver.apply(spec)
    server.deployments[deployment_name(service)]["spec"]["replicas"] = 7  # kubectl scale

    await driver.apply(spec)
    assert server.deployments[deployment_name(service)]["spec"]["replicas"] == 2


async def test_a_concurrent_change_is_a_conflict_not_an_overwrite(k8s: Fixture) -> None:
    server, driver = k8s
    service = _service()
    await driver.apply(DeploymentSpec(service, revision=1, replicas=1))
    server.race = True
    with pytest.raises(KubernetesError, match="409"):
        await driver.apply(DeploymentSpec(service, revision=2, replicas=1))
    stored = server.deployments[deployment_name(service)]
    assert stored["metadata"]["labels"]["spool.dev/revision"] == "1"
    server.race = False
    await driver.apply(DeploymentSpec(service, revision=2, replicas=1))  # the next round
    stored = server.deployments[deployment_name(service)]
    assert stored["metadata"]["labels"]["spool.dev/revision"] == "2"


async def test_a_renamed_service_moves_to_its_new_deployment(k8s: Fixture) -> None:
    server, driver = k8s
    service = _service(name="before")
    await driver.apply(DeploymentSpec(service, revision=1, replicas=1))
    renamed = service.model_copy(update={"name": "after"})
    await driver.apply(DeploymentSpec(renamed, revision=2, replicas=1))
    assert list(server.deployments) == [deployment_name(renamed)]
    deleted = [q for m, p, q in server.requests if m == "DELETE"]
    assert deleted == [{"propagationPolicy": "Foreground"}]


async def test_force_kills_the_old_revisions_pods(k8s: Fixture) -> None:
    server, driver = k8s
    service = _service()
    await driver.apply(DeploymentSpec(service, revision=1, replicas=2))
    labels = dict(
        server.deployments[deployment_name(service)]["spec"]["template"]["metadata"]["labels"]
    )
    server.add_pod("old-1", labels, {"phase": "Running"})
    server.add_pod("new-1", labels | {"spool.dev/revision": "2"}, {"phase": "Pending"})
    other = labels | {"spool.dev/service-id": "another-service"}
    server.add_pod("other-1", other, {"phase": "Running"})

    await driver.apply(DeploymentSpec(service, revision=2, replicas=2, force=True))

    assert server.deployments[deployment_name(service)]["spec"]["strategy"] == {"type": "Recreate"}
    assert sorted(server.pods) == ["new-1", "other-1"]
    assert _killed(server) == [f"{PODS}/old-1"]


async def test_the_fake_refuses_what_the_api_server_would(
    k8s: Fixture, fake: tuple[FakeKubernetes, str]
) -> None:
    """So the driver's successes above mean valid Deployments."""
    server, driver = k8s
    service = _service()
    await driver.apply(DeploymentSpec(service, revision=1, replicas=1))
    stored = copy.deepcopy(server.deployments[deployment_name(service)])
    stored["spec"]["replcas"] = 1
    async with ApiClient(Configuration(host=fake[1])) as client:
        with pytest.raises(ApiException) as raised:
            await AppsV1Api(client).replace_namespaced_deployment(
                stored["metadata"]["name"], NAMESPACE, stored
            )
    assert raised.value.status == 422
    assert "replcas" in raised.value.body


# --- remove and stop -------------------------------------------------------------------------


async def test_remove_deletes_the_deployment_in_the_foreground(k8s: Fixture) -> None:
    server, driver = k8s
    service, other = _service(), _service(name="other")
    for each in (service, other):
        await driver.apply(DeploymentSpec(each, revision=1, replicas=1))
    labels = server.deployments[deployment_name(service)]["spec"]["template"]["metadata"]["labels"]
    server.add_pod("p1", dict(labels), {"phase": "Running"})

    await driver.remove(service.id)

    assert list(server.deployments) == [deployment_name(other)]
    assert server.requests[-1][2] == {"propagationPolicy": "Foreground"}
    assert "p1" in server.pods  # the cluster drains it
    await driver.remove(service.id)  # already gone: nothing to do, no error


async def test_remove_with_force_kills_the_pods_at_once(k8s: Fixture) -> None:
    server, driver = k8s
    service = _service()
    await driver.apply(DeploymentSpec(service, revision=1, replicas=1))
    labels = server.deployments[deployment_name(service)]["spec"]["template"]["metadata"]["labels"]
    server.add_pod("p1", dict(labels), {"phase": "Running"})
    server.add_pod("unrelated", {"app": "x"}, {"phase": "Running"})

    await driver.remove(service.id, force=True)

    assert server.deployments == {}
    assert list(server.pods) == ["unrelated"]
    assert _killed(server) == [f"{PODS}/p1"]


async def test_stop_replica_deletes_its_pod_now(k8s: Fixture) -> None:
    server, driver = k8s
    server.add_pod("stuck", {"app.kubernetes.io/managed-by": "spool-scheduler"}, {})
    await driver.stop_replica("stuck", "pendingScheduled threshold exceeded")
    assert server.pods == {}
    assert server.requests[-1] == ("DELETE", f"{PODS}/stuck", {"gracePeriodSeconds": "0"})
    await driver.stop_replica("stuck", "again")  # already gone: no error


async def test_restart_replica_deletes_its_pod_with_its_own_grace_period(k8s: Fixture) -> None:
    server, driver = k8s
    server.add_pod("r1", {"app.kubernetes.io/managed-by": "spool-scheduler"}, {})
    assert await driver.restart_replica("r1")
    # No gracePeriodSeconds: the pod's terminationGracePeriodSeconds (the drain time) holds.
    assert server.requests[-1] == ("DELETE", f"{PODS}/r1", {})
    assert _killed(server) == []
    assert "deletionTimestamp" in server.pods["r1"]["metadata"]  # terminating, not gone
    assert not await driver.restart_replica("never-was")


# --- observe ---------------------------------------------------------------------------------

OURS = {
    "app.kubernetes.io/managed-by": "spool-scheduler",
    "spool.dev/service-id": "svc1",
    "spool.dev/revision": "4",
}


def _running(ready: bool, restarts: int = 0, last_state: Doc | None = None) -> Doc:
    return {
        "phase": "Running",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": _stamp(290)},
            {"type": "Ready", "status": str(ready), "lastTransitionTime": _stamp(100)},
        ],
        "containerStatuses": [
            {
                "name": "agent",
                "ready": ready,
                "restartCount": restarts,
                "state": {"running": {"startedAt": _stamp(200)}},
                "lastState": last_state or {},
            }
        ],
    }


async def test_observe_reads_each_pod_as_a_replica(k8s: Fixture) -> None:
    server, driver = k8s
    server.add_pod("ready-1", OURS, _running(ready=True))
    server.add_pod("starting-1", OURS, _running(ready=False))
    unschedulable = {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}],
    }
    server.add_pod("pending-1", OURS, unschedulable)
    pulling = {
        "phase": "Pending",
        "containerStatuses": [
            {"name": "agent", "restartCount": 0, "state": {"waiting": {"reason": "ErrImagePull"}}}
        ],
    }
    server.add_pod("pulling-1", OURS, pulling)
    server.add_pod("someone-elses", {"app": "x"}, _running(ready=True))

    observation = await driver.observe()

    views = {v.replica_id: v for v in observation.replicas}
    assert set(views) == {"ready-1", "starting-1", "pending-1", "pulling-1"}
    assert views["ready-1"].status is ReplicaStatus.READY
    assert views["ready-1"].since == MONO - 100
    assert views["ready-1"].started_at == MONO - 300
    assert (views["ready-1"].service_id, views["ready-1"].revision) == ("svc1", 4)
    assert views["starting-1"].status is ReplicaStatus.STARTING
    assert (views["pending-1"].status, views["pending-1"].waiting) == (
        ReplicaStatus.PENDING,
        "Unschedulable",
    )
    assert views["pulling-1"].waiting == "ErrImagePull"
    assert observation.exits == []
    ((_, _, query),) = [r for r in server.requests if r[1] == PODS]
    assert query == {"labelSelector": "app.kubernetes.io/managed-by=spool-scheduler"}


async def test_a_crash_is_an_exit_with_its_log_tail(k8s: Fixture) -> None:
    server, driver = k8s
    server.add_pod("r1", OURS, _running(ready=True))
    assert (await driver.observe()).exits == []

    oom = {"terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": _stamp(10)}}
    server.pods["r1"]["status"] = _running(ready=False, restarts=1, last_state=oom)
    server.logs[("r1", True)] = "".join(f"line {i}\n" for i in range(50))
    observation = await driver.observe()

    (exit_,) = observation.exits
    assert (exit_.replica_id, exit_.exit_code, exit_.reason) == ("r1", 137, "OOMKilled")
    assert exit_.expected is False
    assert exit_.at == MONO - 10
    assert exit_.log_tail == tuple(f"line {i}" for i in range(30, 50))
    (query,) = [q for m, p, q in server.requests if p == f"{PODS}/r1/log"]
    assert query == {"container": "agent", "previous": "True", "tailLines": "20"}
    assert [v.status for v in observation.replicas] == [ReplicaStatus.STARTING]
    assert (await driver.observe()).exits == []  # reported once


async def test_an_exit_without_a_log_is_still_reported(k8s: Fixture) -> None:
    server, driver = k8s
    server.add_pod("r1", OURS, _running(ready=True))
    await driver.observe()
    error = {"terminated": {"exitCode": 3, "reason": "Error"}}
    server.pods["r1"]["status"] = _running(ready=False, restarts=1, last_state=error)
    (exit_,) = (await driver.observe()).exits  # the fake answers 400: no previous log
    assert (exit_.exit_code, exit_.log_tail) == (3, ())


async def test_a_deleted_pod_is_an_expected_exit(k8s: Fixture) -> None:
    server, driver = k8s
    server.add_pod("r1", OURS, _running(ready=True))
    await driver.observe()
    await driver.stop_replica("r1", "stuck")
    observation = await driver.observe()
    assert observation.replicas == []
    (exit_,) = observation.exits
    assert (exit_.replica_id, exit_.expected, exit_.service_id) == ("r1", True, "svc1")


async def test_a_draining_pod(k8s: Fixture) -> None:
    server, driver = k8s
    server.add_pod("r1", OURS, _running(ready=True))
    server.delete("r1", 30)  # a rollout or a scale-in asked it to go
    (view,) = (await driver.observe()).replicas
    assert view.status is ReplicaStatus.DRAINING
    assert view.since == MONO


# --- failures --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [403, 500])
async def test_api_errors_are_kubernetes_errors(k8s: Fixture, status: int) -> None:
    server, driver = k8s
    server.fail_with = status
    for call in (
        driver.apply(DeploymentSpec(_service(), revision=1, replicas=1)),
        driver.remove("svc1"),
        driver.stop_replica("r1", "stuck"),
        driver.observe(),
    ):
        with pytest.raises(KubernetesError, match=f"HTTP {status}"):
            await call


async def test_an_unreachable_api_server_is_a_kubernetes_error(
    fake: tuple[FakeKubernetes, str],
) -> None:
    server, _ = fake
    driver = _driver("http://127.0.0.1:9")  # discard: nothing listens
    try:
        with pytest.raises(KubernetesError):
            await driver.observe()
    finally:
        await driver.close()
    assert server.requests == []


async def test_close_leaves_the_deployments_running(fake: tuple[FakeKubernetes, str]) -> None:
    server, url = fake
    driver = _driver(url)
    await driver.apply(DeploymentSpec(_service(), revision=1, replicas=1))
    await driver.close()
    assert len(server.deployments) == 1
    assert json.dumps(server.writes()).count("DELETE") == 0


# --- settings --------------------------------------------------------------------------------


def test_settings_from_the_schedulers() -> None:
    base = SchedulerSettings(
        k8s_namespace="team-a",
        k8s_runner_image="registry.example/runner:3",
        bus_namespace="prod",
        gateway_url="http://gw:8080",
        amqp_url="amqp://user:pw@rabbit/",
        agent_lease_renew_interval=7.5,
    )
    literal = settings_from(base)
    assert (literal.namespace, literal.runner_image) == ("team-a", "registry.example/runner:3")
    assert (literal.bus_namespace, literal.gateway_url) == ("prod", "http://gw:8080")
    assert (literal.amqp_url, dict(literal.secret_env)) == ("amqp://user:pw@rabbit/", {})
    assert literal.extra_env["SPOOL_LEASE_RENEW_INTERVAL"] == "7.5"

    secret = settings_from(base.model_copy(update={"k8s_amqp_secret": "bus-credentials"}))
    assert secret.amqp_url is None
    assert dict(secret.secret_env) == {
        "SPOOL_AMQP_URL": SecretKeyRef("bus-credentials", "amqp-url")
    }
