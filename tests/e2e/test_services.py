"""Packages and services over the real API, database, bus and agents: revisions, deploy as
upsert, pinned package revisions, rollback, pause and resume, status, delete, configuration
reaching user code, requirements, deploy_from_file, and bad input that changes nothing."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from support.platform import LocalPlatform, run, running_platform

from spool_common.archive import build_archive

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]


def versioned(tag: str) -> dict[str, bytes]:
    main = f"class ServiceRunner:\n    def run(self):\n        return {tag!r}\n"
    return {"main.py": main.encode()}


CONFIGURED = {
    "main.py": b"""
import os

class ServiceRunner:
    def __init__(self, model_name, threshold=0.5):
        self.model_name, self.threshold = model_name, threshold

    def run(self):
        return {"model": self.model_name, "threshold": self.threshold,
                "greeting": os.environ.get("GREETING"), "other": os.environ.get("OTHER"),
                "leaked": sorted(k for k in os.environ if k.startswith("SPOOL_"))}
""",
    "package.json": orjson.dumps(
        {
            "name": "configured",
            "modules": [
                {
                    "name": "default_module",
                    "initInputs": [
                        {"name": "model_name", "type": "String"},
                        {"name": "threshold", "type": "Float"},
                    ],
                    "functions": [{"name": "run"}],
                }
            ],
        }
    ),
}

BROKEN_INIT = {
    "main.py": b"class ServiceRunner:\n    def __init__(self):\n        1 / 0\n"
    b"    def run(self):\n        return 1\n"
}


def _wheel(directory: Path) -> None:
    """A tiny pure-Python wheel, so requirements install without any index."""
    name, version = "spooltestdep", "1.0"
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": b"VALUE = 'from a wheel'\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: spool-test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(directory / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(
    tmp_path_factory: pytest.TempPathFactory, servers: None
) -> AsyncIterator[LocalPlatform]:

    wheels = tmp_path_factory.mktemp("wheels")
    _wheel(wheels)
    extra = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)}
    async with running_platform(tmp_path_factory.mktemp("platform"), extra) as p:
        yield p


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def project(client: httpx.AsyncClient) -> str:
    response = await client.post("/projects", json={"name": "services-e2e"})
    assert response.status_code == 201, response.text
    project_id: str = response.json()["id"]
    return project_id


def _upload(files: dict[str, bytes]) -> dict[str, Any]:
    return {"codebase": ("code.zip", build_archive(files), "application/zip")}


async def _push(
    client: httpx.AsyncClient, project: str, files: dict[str, bytes], name: str
) -> dict[str, Any]:
    response = await client.post(
        "/packages",
        files=_upload(files),
        data={"projectId": project, "package": orjson.dumps({"name": name}).decode()},
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def _deploy(client: httpx.AsyncClient, body: dict[str, Any], status: int = 201) -> Any:
    response = await client.post("/services", json=body)
    assert response.status_code == status, response.text
    return response.json()


async def _output_becomes(client: httpx.AsyncClient, service_id: str, wanted: object) -> None:
    """Run until the output is `wanted` (a new revision's replicas replace the old ones)."""
    outputs = []
    for _ in range(60):
        done = await run(client, service_id, {})
        outputs.append(done.get("output"))
        if done["output"] == wanted:
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"never got {wanted!r}; got {outputs[-5:]}")


async def _replica_revisions(
    client: httpx.AsyncClient, service_id: str, wanted: set[int]
) -> set[int]:
    """The revisions the service's ready replicas run, once they are `wanted`."""
    seen: set[int] = set()
    for _ in range(120):
        status = (await client.get(f"/services/{service_id}/status")).json()
        seen = {r["revision"] for r in status["runtimeStatus"] if r["state"] == "ready"}
        if seen == wanted:
            break
        await asyncio.sleep(0.25)
    return seen


async def _status(client: httpx.AsyncClient, service_id: str, wanted: str) -> dict[str, Any]:
    for _ in range(120):
        status: dict[str, Any] = (await client.get(f"/services/{service_id}/status")).json()
        if status["status"] == wanted:
            return status
        await asyncio.sleep(0.25)
    raise AssertionError(f"status never became {wanted}: {status}")


async def test_package_revisions_pinning_update_and_rollback(
    client: httpx.AsyncClient, project: str
) -> None:
    package = await _push(client, project, versioned("v1"), "versioned")
    assert package["version"] == "1.0.0"
    patched = await client.patch(f"/packages/{package['id']}", files=_upload(versioned("v2")))
    assert patched.status_code == 200, patched.text
    assert patched.json()["version"] == "1.0.1"
    revisions = (await client.get(f"/packages/{package['id']}/revisions")).json()
    assert [r["version"] for r in revisions] == ["1.0.0", "1.0.1"]
    old_zip = await client.get(f"/packages/{package['id']}/codebase", params={"version": "1.0.0"})
    with zipfile.ZipFile(io.BytesIO(old_zip.content)) as z:
        assert b"v1" in z.read("main.py")

    body = {
        "name": "pinned",
        "projectId": project,
        "packageId": package["id"],
        "packageRevision": "1.0.0",
        "runtime": {"numReplicas": 1},
    }
    service = await _deploy(client, body)
    assert service["packageRevision"] == "1.0.0"
    await _output_becomes(client, service["id"], "v1")  # the old revision runs

    ready = await _replica_revisions(client, service["id"], {1})
    updated = await client.patch(f"/services/{service['id']}", json={"packageRevision": "latest"})
    assert updated.json()["packageRevision"] == "1.0.1"
    await _output_becomes(client, service["id"], "v2")
    # The status says which revision each replica runs: the rollout is done when only 2 runs.
    assert ready == {1}
    assert await _replica_revisions(client, service["id"], {2}) == {2}

    rolled = await client.post(f"/services/{service['id']}/rollback", json={"revision": 1})
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["packageRevision"] == "1.0.0"
    await _output_becomes(client, service["id"], "v1")
    history = (await client.get(f"/services/{service['id']}/revisions")).json()
    assert [h["revision"] for h in history] == [1, 2, 3]
    assert [h["service"]["packageRevision"] for h in history] == ["1.0.0", "1.0.1", "1.0.0"]


async def test_a_new_codebase_brings_its_own_modules(
    client: httpx.AsyncClient, project: str
) -> None:
    """An update with a new archive reads its functions from that archive (its package.json,
    else its sources); without one, the current modules are carried over."""
    package = await _push(client, project, versioned("m1"), "remodelled")
    assert [f["name"] for f in package["modules"][0]["functions"]] == ["run"]
    two = {
        "main.py": b"class ServiceRunner:\n    def run(self):\n        return 1\n"
        b"    def other(self):\n        return 2\n",
        "package.json": orjson.dumps(
            {"name": "remodelled", "modules": [{"functions": [{"name": "run"}, {"name": "other"}]}]}
        ),
    }
    patched = await client.patch(f"/packages/{package['id']}", files=_upload(two))
    assert patched.status_code == 200, patched.text
    assert [f["name"] for f in patched.json()["modules"][0]["functions"]] == ["run", "other"]
    renamed = await client.patch(
        f"/packages/{package['id']}",
        data={"package": orjson.dumps({"metadata": {"k": 1}}).decode()},
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["version"] == "1.0.2"
    assert [f["name"] for f in renamed.json()["modules"][0]["functions"]] == ["run", "other"]


async def test_deploy_is_an_upsert_by_project_and_name(
    client: httpx.AsyncClient, project: str
) -> None:
    package = await _push(client, project, versioned("u"), "upserted")
    body = {
        "name": "upsert",
        "projectId": project,
        "packageId": package["id"],
        "runtime": {"numReplicas": 0},
    }
    first = await _deploy(client, body, 201)
    second = await _deploy(client, {**body, "runtime": {"numReplicas": 0, "concurrency": 3}}, 200)
    assert second["id"] == first["id"]
    assert second["runtime"]["concurrency"] == 3
    assert second["createdAt"] == first["createdAt"]
    history = (await client.get(f"/services/{first['id']}/revisions")).json()
    assert [h["service"]["runtime"]["concurrency"] for h in history] == [10, 3]


async def test_a_paused_service_queues_executions_and_runs_them_after_resume(
    client: httpx.AsyncClient, project: str
) -> None:
    package = await _push(client, project, versioned("resumed"), "pausable")
    service = await _deploy(
        client, {"name": "pausable", "projectId": project, "packageId": package["id"]}
    )
    await _status(client, service["id"], "Active")
    paused = (await client.post(f"/services/{service['id']}/stop")).json()
    assert paused["active"] is False
    inactive = await _status(client, service["id"], "Inactive")
    created = (await client.post(f"/executions/{service['id']}", json={})).json()
    await asyncio.sleep(1.5)
    still = (await client.get(f"/executions/{created['id']}")).json()
    assert still["latestStatus"]["status"] == "created"
    assert inactive["desiredReplicas"] == 0
    await client.post(f"/services/{service['id']}/resume")
    done = (await client.get(f"/executions/{created['id']}/wait", params={"timeout": 60})).json()
    assert done["latestStatus"]["status"] == "success"
    assert done["output"] == "resumed"
    status = await _status(client, service["id"], "Active")
    assert len(status["runtimeStatus"]) == 1
    assert status["runtimeStatus"][0]["state"] == "ready"


async def test_configuration_reaches_user_code_and_credentials_do_not(
    client: httpx.AsyncClient, project: str
) -> None:
    package = await _push(client, project, CONFIGURED, "configured")
    body = {
        "name": "configured",
        "projectId": project,
        "packageId": package["id"],
        "initParams": {"model_name": "resnet", "threshold": 0.9},
        "runtime": {"env": {"GREETING": "hello"}},
        "envFile": "# from a file\nOTHER='x y'\n",
    }
    service = await _deploy(client, body)
    assert service["runtime"]["env"] == {"GREETING": "hello", "OTHER": "x y"}
    done = await run(client, service["id"], {})
    assert done["output"] == {
        "model": "resnet",
        "threshold": 0.9,
        "greeting": "hello",
        "other": "x y",
        "leaked": ["SPOOL_TOKEN", "SPOOL_URL"],  # only the bot's token and the API's address
    }


async def test_a_service_whose_init_fails_shows_error_with_the_reason(
    client: httpx.AsyncClient, project: str
) -> None:
    package = await _push(client, project, BROKEN_INIT, "broken")
    service = await _deploy(
        client, {"name": "broken", "projectId": project, "packageId": package["id"]}
    )
    status = await _status(client, service["id"], "Error")
    # The scheduler restarts it with backoff, so a replica may be starting at any moment;
    # between restarts none is live, and the status stays Error throughout.
    for _ in range(120):
        if status["runtimeStatus"] == []:
            break
        await asyncio.sleep(0.1)
        status = await _status(client, service["id"], "Error")
    assert status["status"] == "Error"
    assert status["runtimeStatus"] == []
    await client.post(f"/services/{service['id']}/stop")  # stop the restart loop


async def test_requirements_are_installed_or_the_service_shows_why_not(
    client: httpx.AsyncClient, project: str, platform: LocalPlatform
) -> None:
    code = (
        b"import spooltestdep\n\nclass ServiceRunner:\n    def run(self):\n"
        b"        return spooltestdep.VALUE\n"
    )
    good = await _push(
        client, project, {"main.py": code, "requirements.txt": b"spooltestdep==1.0\n"}, "with-deps"
    )
    assert good["requirements"] == [{"name": "spooltestdep", "version": "1.0", "operator": "=="}]
    service = await _deploy(
        client, {"name": "with-deps", "projectId": project, "packageId": good["id"]}
    )
    assert (await run(client, service["id"], {}))["output"] == "from a wheel"

    files = {"main.py": versioned("x")["main.py"], "requirements.txt": b"no-such-package-x==9.9\n"}
    bad = await _push(client, project, files, "missing-deps")
    broken = await _deploy(
        client, {"name": "missing-deps", "projectId": project, "packageId": bad["id"]}
    )
    await _status(client, broken["id"], "Error")
    assert "No matching distribution found for no-such-package-x" in platform.agent_logs()
    await client.post(f"/services/{broken['id']}/stop")


async def test_deploy_from_file_creates_then_updates_services_and_their_triggers(
    client: httpx.AsyncClient, project: str
) -> None:
    manifest = {
        "name": "from-file",
        "modules": [
            {
                "name": "default_module",
                "functions": [{"name": "run", "input": [{"name": "item", "type": "Item"}]}],
            }
        ],
        "services": [
            {
                "name": "from-file-svc",
                "moduleName": "default_module",
                "runtime": {"gpu": False, "replicas": 0, "concurrency": 4},
                "triggers": [
                    {
                        "name": "on-upload",
                        "type": "Event",
                        "active": True,
                        "spec": {
                            "filter": {},
                            "resource": "Item",
                            "actions": ["Created"],
                            "operation": {"type": "function", "functionName": "run"},
                            "executionMode": "Once",
                        },
                    }
                ],
            }
        ],
    }
    files = {
        "main.py": b"class ServiceRunner:\n    def run(self, item):\n        return item\n",
        "package.json": orjson.dumps(manifest),
    }
    first = await client.post("/packages/deploy", files=_upload(files), data={"projectId": project})
    assert first.status_code == 200, first.text
    result = first.json()
    [service] = result["services"]
    assert service["runtime"]["numReplicas"] == 0
    assert service["runtime"]["concurrency"] == 4
    [trigger] = result["triggers"]
    assert trigger["spec"]["operation"]["serviceId"] == service["id"]
    again = (
        await client.post("/packages/deploy", files=_upload(files), data={"projectId": project})
    ).json()
    assert again["package"]["version"] == "1.0.0"  # identical: the same revision is reused
    assert [s["id"] for s in again["services"]] == [service["id"]]
    assert [t["id"] for t in again["triggers"]] == [trigger["id"]]
    listed = (await client.get("/triggers", params={"serviceId": service["id"]})).json()
    assert [t["name"] for t in listed] == ["on-upload"]

    assert (await client.delete(f"/services/{service['id']}")).status_code == 204
    assert (await client.get(f"/services/{service['id']}")).status_code == 404
    assert (await client.get("/triggers", params={"serviceId": service["id"]})).json() == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"runtime": {"podType": "huge"}}, "runtime.podType"),
        ({"runtime": {"concurrency": 0}}, "runtime.concurrency"),
        ({"runtime": {"concurrency": -3}}, "runtime.concurrency"),
        (
            {"runtime": {"autoscaler": {"type": "rabbitmq", "minReplicas": 3, "maxReplicas": 1}}},
            "runtime.autoscaler",
        ),
        ({"executionTimeout": 0}, "executionTimeout"),
        ({"executionTimeout": 2_500_001}, "executionTimeout"),
        ({"initParams": {"threshold": 0.1}}, "initParams.model_name"),
        ({"moduleName": "nope"}, "moduleName"),
        ({"packageRevision": "9.9.9"}, "packageRevision"),
        (
            {"runtime": {"stateThresholds": {"running": "5 parsecs"}}},
            "runtime.stateThresholds.running",
        ),
        ({"envFile": "GOOD=1\nthis line is bad\n"}, "envFile"),
        ({"runtime": {"env": {"SPOOL_AMQP_URL": "x"}}}, "runtime.env.SPOOL_AMQP_URL"),
        (
            {"runtime": {"resources": {"limits": {"memory": "1GB"}}}},
            "runtime.resources.limits.memory",
        ),
    ],
    ids=[
        "pod-type",
        "zero-concurrency",
        "negative-concurrency",
        "min-over-max",
        "timeout-zero",
        "timeout-too-long",
        "missing-init-input",
        "unknown-module",
        "unknown-revision",
        "bad-time-string",
        "bad-env-file",
        "reserved-env",
        "bad-memory",
    ],
)
async def test_bad_service_configuration_is_400_and_changes_nothing(
    client: httpx.AsyncClient, project: str, change: dict[str, Any], field: str
) -> None:
    packages = (
        await client.get("/packages", params={"projectId": project, "name": "configured"})
    ).json()
    package = packages[0] if packages else await _push(client, project, CONFIGURED, "configured")
    base = {
        "name": "validated",
        "projectId": project,
        "packageId": package["id"],
        "initParams": {"model_name": "m"},
        "runtime": {"numReplicas": 0},
    }
    existing = (await client.get("/services", params={"name": "validated"})).json()
    service = existing[0] if existing else await _deploy(client, base)
    before = (await client.get(f"/services/{service['id']}/revisions")).json()
    for response in (
        await client.post("/services", json={**base, **change}),
        await client.patch(f"/services/{service['id']}", json=change),
    ):
        assert response.status_code == 400, response.text
        assert field in [d["field"] for d in response.json()["details"]], response.text
    assert (await client.get(f"/services/{service['id']}/revisions")).json() == before


async def test_the_instance_catalog_is_served(client: httpx.AsyncClient) -> None:
    catalog = {t["name"]: t for t in (await client.get("/instance-types")).json()}
    assert catalog["regular-s"]["cpu"] == 1.4125
    assert catalog["highmem-l"]["memory"] == "50G"
    assert catalog["gpu-t4"]["gpus"] == 1


SLEEPER = {
    "main.py": b"import time\n\nclass ServiceRunner:\n    def run(self, seconds=0):\n"
    b"        time.sleep(seconds)\n        return 'slept'\n"
}


async def test_a_restarted_replica_drains_its_work_while_a_new_one_takes_its_place(
    client: httpx.AsyncClient, project: str
) -> None:
    package = await _push(client, project, SLEEPER, "restartable")
    service = await _deploy(
        client,
        {
            "name": "restartable",
            "projectId": project,
            "packageId": package["id"],
            "runtime": {"concurrency": 1},
        },
    )
    (old,) = (await _status(client, service["id"], "Active"))["runtimeStatus"]
    running = (await client.post(f"/executions/{service['id']}", json={"seconds": 2})).json()
    for _ in range(80):
        got = (await client.get(f"/executions/{running['id']}")).json()
        if got["latestStatus"]["status"] == "in-progress":
            break
        await asyncio.sleep(0.1)
    url = f"/services/{service['id']}/replicas"

    restart = await client.post(f"{url}/{old['replicaId']}/restart")
    assert restart.status_code == 202, restart.text
    assert restart.json() == {
        "serviceId": service["id"],
        "replicaId": old["replicaId"],
        "status": "restarting",
    }
    missing = await client.post(f"{url}/no-such-replica/restart")
    assert missing.status_code == 404
    assert missing.json()["details"][0]["field"] == "replicaId"

    # The old replica finishes what it runs (one attempt) and a new one takes its place.
    done = (await client.get(f"/executions/{running['id']}/wait", params={"timeout": 60})).json()
    assert done["latestStatus"]["status"] == "success"
    assert done["attempts"] == 1
    for _ in range(120):
        replicas = (await client.get(f"/services/{service['id']}/status")).json()["runtimeStatus"]
        if [r["state"] for r in replicas] == ["ready"] and replicas[0]["replicaId"] != old[
            "replicaId"
        ]:
            break
        await asyncio.sleep(0.25)
    else:
        raise AssertionError(f"no new replica took the old one's place: {replicas}")
    after = await run(client, service["id"], {})
    assert after["output"] == "slept"
    # A restart someone asked for is no failure.
    notes = (await client.get(f"/services/{service['id']}/notifications")).json()
    assert notes == []
