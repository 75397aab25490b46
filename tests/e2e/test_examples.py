"""Every example in examples/ deployed on the real platform from its own folder, with
deploy-from-file (package.json's services and triggers), and run as its README says: hello
greets; image-pipeline fires on a matching Item Created event only and reports progress;
cron-job's trigger is stored and fires on its minute; long-job is retried after a timeout and
fails with the timeout message when every attempt times out, and its failure replays locally;
model-service builds its model once per replica from a PyPI package and answers."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Iterator
from itertools import groupby
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from support.platform import LocalPlatform

from spool.local import replay
from spool_common.archive import build_archive

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAMES = ("hello", "image-pipeline", "cron-job", "long-job", "model-service")
TIMEOUT_MESSAGE = "Execution stopped due to runner timeout"
CAT = {
    "id": "i-cat",
    "name": "cat.jpg",
    "dir": "/incoming",
    "metadata": {"system": {"mimetype": "image/jpeg", "size": 2048}},
}


def example_zip(name: str) -> bytes:
    """The example's folder as the README zips it (without Python's caches)."""
    root = EXAMPLES / name
    files = {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }
    return build_archive(files)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def deployed(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    """Every example deployed at once, first thing, so the cron minute and model-service's pip
    install run while the other tests do. hello's package.json has no services: it gets one."""
    project = (await client.post("/projects", json={"name": "examples"})).json()["id"]
    found: dict[str, dict[str, Any]] = {}
    for name in NAMES:
        upload = {"codebase": (f"{name}.zip", example_zip(name), "application/zip")}
        response = await client.post("/packages/deploy", files=upload, data={"projectId": project})
        assert response.status_code == 200, response.text
        found[name] = response.json()
    hello = found["hello"]
    body = {"name": "hello", "projectId": project, "packageId": hello["package"]["id"]}
    response = await client.post("/services", json=body)
    assert response.status_code == 201, response.text
    hello["services"] = [response.json()]
    return found


@pytest.fixture(scope="module")
def checkpoints() -> Iterator[list[str]]:
    """Ids of long-job executions; the checkpoints their replicas left in /tmp are removed."""
    ids: list[str] = []
    yield ids
    for execution_id in ids:
        with contextlib.suppress(OSError):
            (Path(tempfile.gettempdir()) / f"long-job-{execution_id}.json").unlink()


def _service(deployed: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    services: list[dict[str, Any]] = deployed[name]["services"]
    [service] = services
    return service


async def _create(
    client: httpx.AsyncClient, service: dict[str, Any], function: str, inputs: dict[str, Any]
) -> str:
    body = {"functionName": function, "input": inputs}
    response = await client.post(f"/executions/{service['id']}", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _wait(client: httpx.AsyncClient, execution_id: str, timeout: float = 60) -> Any:
    """The execution once it ended (a server-side long poll)."""
    response = await client.get(
        f"/executions/{execution_id}/wait", params={"timeout": timeout}, timeout=timeout + 10
    )
    assert response.status_code == 200, response.text
    done = response.json()
    assert done["latestStatus"]["status"] not in ("created", "in-progress", "rerun"), done
    return done


async def _run(
    client: httpx.AsyncClient,
    service: dict[str, Any],
    function: str,
    inputs: dict[str, Any],
    timeout: float = 60,
    record: list[str] | None = None,
) -> Any:
    execution_id = await _create(client, service, function, inputs)
    if record is not None:
        record.append(execution_id)
    return await _wait(client, execution_id, timeout)


def _statuses(execution: dict[str, Any]) -> list[str]:
    """The status log's statuses, repeats folded (progress updates repeat in-progress)."""
    return [status for status, _ in groupby(e["status"] for e in execution["statusLog"])]


async def _trigger_executions(
    client: httpx.AsyncClient, trigger_id: str, count: int, timeout: float, quiet: float = 2.0
) -> list[dict[str, Any]]:
    """The trigger's executions once there are `count` and nothing new came for `quiet` s."""
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get("/executions", params={"triggerId": trigger_id})
        found: list[dict[str, Any]] = response.json()
        if len(found) >= count:
            await asyncio.sleep(quiet)
            return list((await client.get("/executions", params={"triggerId": trigger_id})).json())
        assert time.monotonic() < deadline, f"{len(found)} executions of {trigger_id}"
        await asyncio.sleep(0.2)


async def test_hello_returns_its_greeting(
    client: httpx.AsyncClient, deployed: dict[str, dict[str, Any]]
) -> None:
    done = await _run(client, _service(deployed, "hello"), "run", {"name": "world"})
    assert done["latestStatus"]["status"] == "success", done
    assert done["output"] == "hello world"


async def _event(client: httpx.AsyncClient, project: str, entity: dict[str, Any]) -> None:
    body = {"resource": "Item", "action": "Created", "projectId": project, "entity": entity}
    response = await client.post("/events", json=body)
    assert response.status_code == 202, response.text


async def test_image_pipeline_fires_on_a_matching_image_and_reports_progress(
    client: httpx.AsyncClient, deployed: dict[str, dict[str, Any]]
) -> None:
    service = _service(deployed, "image-pipeline")
    [trigger] = deployed["image-pipeline"]["triggers"]
    video = {**CAT, "id": "i-video", "metadata": {"system": {"mimetype": "video/mp4"}}}
    elsewhere = {**CAT, "id": "i-elsewhere", "dir": "/archive"}
    for entity in (video, CAT, elsewhere):
        await _event(client, service["projectId"], entity)
    [execution] = await _trigger_executions(client, trigger["id"], 1, timeout=30)
    assert [r["id"] for r in execution["resources"]] == ["i-cat"]
    done = await _wait(client, execution["id"])
    assert done["latestStatus"]["status"] == "success", done
    assert done["output"]["itemId"] == "i-cat"
    assert done["output"]["mimetype"] == "image/jpeg"
    assert (done["output"]["triggerId"], done["output"]["action"]) == (trigger["id"], "Created")
    percents = [e.get("percentComplete") for e in done["statusLog"]]
    assert sorted({p for p in percents if p is not None and 0 < p < 100}) == [25, 50, 75]
    assert done["latestStatus"]["percentComplete"] == 100


@pytest.mark.timeout(150)
async def test_cron_job_trigger_is_stored_and_fires_on_its_minute(
    client: httpx.AsyncClient, deployed: dict[str, dict[str, Any]]
) -> None:
    service = _service(deployed, "cron-job")
    [trigger] = deployed["cron-job"]["triggers"]
    assert (trigger["type"], trigger["active"]) == ("Cron", True)
    assert trigger["spec"]["cron"] == "* * * * *"
    listed = (await client.get("/triggers", params={"serviceId": service["id"]})).json()
    assert [t["id"] for t in listed] == [trigger["id"]]
    by_hand = await _run(client, service, "tick", {"config": {"report": "by hand"}})
    assert (by_hand["output"]["report"], by_hand["output"]["triggerId"]) == ("by hand", None)
    # Deployed when the module started; its first tick is at the start of the next minute.
    ticks = await _trigger_executions(client, trigger["id"], 1, timeout=75, quiet=0.5)
    first = min(ticks, key=lambda e: str(e["createdAt"]))
    done = await _wait(client, first["id"])
    assert done["latestStatus"]["status"] == "success", done
    assert (done["output"]["report"], done["output"]["triggerId"]) == ("heartbeat", trigger["id"])


async def test_long_job_stalled_first_attempt_times_out_and_the_retry_resumes(
    client: httpx.AsyncClient, deployed: dict[str, dict[str, Any]], checkpoints: list[str]
) -> None:
    service = _service(deployed, "long-job")
    assert (service["executionTimeout"], service["onReset"], service["maxAttempts"]) == (
        6,
        "rerun",
        2,
    )
    inputs = {"steps": 6, "step_seconds": 0.2, "stall_first_attempt": True}
    done = await _run(client, service, "run", inputs, record=checkpoints)
    assert _statuses(done) == ["created", "in-progress", "rerun", "in-progress", "success"], done
    rerun = next(e for e in done["statusLog"] if e["status"] == "rerun")
    assert TIMEOUT_MESSAGE in rerun["message"]
    assert done["attempts"] == 2
    assert done["output"] == {"steps": 6, "attempt": 2, "resumedAfterStep": 3}


async def test_long_job_fails_with_the_timeout_message_when_every_attempt_times_out(
    client: httpx.AsyncClient, deployed: dict[str, dict[str, Any]], checkpoints: list[str]
) -> None:
    service = _service(deployed, "long-job")
    inputs = {"steps": 2, "step_seconds": 30}
    done = await _run(client, service, "run", inputs, record=checkpoints)
    assert _statuses(done) == ["created", "in-progress", "rerun", "in-progress", "failed"], done
    assert done["latestStatus"]["message"] == TIMEOUT_MESSAGE
    assert done["attempts"] == 2


async def test_a_failed_long_job_replays_locally_with_the_same_exception(
    platform: LocalPlatform,
    client: httpx.AsyncClient,
    deployed: dict[str, dict[str, Any]],
    checkpoints: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inputs = {"steps": 4, "step_seconds": 0.1, "fail_at_step": 2}
    done = await _run(client, _service(deployed, "long-job"), "run", inputs, record=checkpoints)
    assert done["latestStatus"]["status"] == "failed", done
    assert done["attempts"] == 1  # an exception is not retried
    error = done["latestStatus"]["error"]
    assert (error["type"], error["message"]) == ("RuntimeError", "step 2 of 4 failed on purpose")

    monkeypatch.setenv("CHECKPOINT_DIR", str(tmp_path))  # not the replica's checkpoint
    code = tmp_path / "code"
    with pytest.raises(RuntimeError, match=r"^step 2 of 4 failed on purpose$") as replayed:
        await asyncio.to_thread(
            replay, done["id"], url=platform.url, token=platform.token, download_to=code
        )
    assert replayed.traceback[-1].path == code / "main.py"  # the revision that ran, downloaded
    assert (code / "package.json").exists()


@pytest.mark.timeout(300)
async def test_model_service_loads_its_model_once_per_replica_and_answers(
    client: httpx.AsyncClient, deployed: dict[str, dict[str, Any]]
) -> None:
    service = _service(deployed, "model-service")
    assert service["initParams"] == {"threshold": 0.3}
    texts = ("Spool is really great!", "This is awful and broken.", "The sky is blue.")
    answers = []
    for text in texts:  # one at a time: the counter shows the same instance serving each
        done = await _run(client, service, "predict", {"text": text}, timeout=240)
        assert done["latestStatus"]["status"] == "success", done
        answers.append(done["output"])
    assert [a["sentiment"] for a in answers] == ["positive", "negative", "neutral"]
    assert [(a["inits"], a["calls"]) for a in answers] == [(1, 1), (1, 2), (1, 3)]
    assert len({a["instance"] for a in answers}) == 1
    assert {a["threshold"] for a in answers} == {0.3}
