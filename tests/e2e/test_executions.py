"""The execution lifecycle on the real platform: inputs of every kind, progress and context,
timeouts, terminate, rerun, synchronous invoke, logs, output limits, phases, and re-driving
failures by query."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from support.platform import deploy, run, wait, wait_for_status

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

CODE = b"""
import logging
import os
import sys
import time

class ServiceRunner:
    def __init__(self):
        print("init output goes to the replica log")

    def echo(self, item, items, count, ratio, flag, name, blob, progress, context):
        progress.update(progress=3, message="too small a step")
        progress.update(progress=10, message="a tenth")
        progress.update(progress=12)
        print("to stdout")
        print("to stderr", file=sys.stderr)
        logging.getLogger("user").warning("through logging")
        return {"item": item.to_json(), "itemId": item.id, "items": [i.id for i in items],
                "count": count, "ratio": ratio, "flag": flag, "name": name, "blob": blob,
                "executionId": context.execution_id, "serviceId": context.service_id}

    def busy(self, seconds):
        end = time.time() + seconds
        n = 0
        while time.time() < end:
            n += 1
        return n

    def sleep(self, seconds):
        time.sleep(seconds)
        return os.getpid()

    def big(self):
        return "x" * (5 * 1024 * 1024)

    def boom(self):
        raise ValueError("kaboom")
"""


def package_json(name: str) -> bytes:
    functions = [
        {
            "name": "echo",
            "input": [
                {"name": "item", "type": "Item"},
                {"name": "items", "type": "Item[]"},
                {"name": "count", "type": "Integer"},
                {"name": "ratio", "type": "Float"},
                {"name": "flag", "type": "Boolean"},
                {"name": "name", "type": "String"},
                {"name": "blob", "type": "Json"},
            ],
        },
        {"name": "busy", "input": [{"name": "seconds", "type": "Float"}]},
        {"name": "sleep", "input": [{"name": "seconds", "type": "Float"}]},
        {"name": "big"},
        {"name": "boom"},
    ]
    return orjson.dumps(
        {"name": name, "modules": [{"name": "default_module", "functions": functions}]}
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def threads(client: httpx.AsyncClient) -> dict[str, Any]:
    files = {"main.py": CODE, "package.json": package_json("threads")}
    return await deploy(
        client, files, "threads", executionTimeout=4, onReset="failed", runtime={"concurrency": 4}
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def processes(client: httpx.AsyncClient) -> dict[str, Any]:
    files = {"main.py": CODE, "package.json": package_json("processes")}
    return await deploy(
        client,
        files,
        "processes",
        executionTimeout=2,
        onReset="rerun",
        maxAttempts=2,
        runExecutionAsProcess=True,
        runtime={"concurrency": 4},
    )


DONE_LINE = "[Done] Executing function."
ECHO = {
    "item": {"item_id": "i-1", "name": "cat.jpg"},
    "items": ["i-2", {"item_id": "i-3"}],
    "count": 3,
    "ratio": 0.5,
    "flag": True,
    "name": "n",
    "blob": {"any": [1, "json"]},
}


async def test_inputs_progress_context_and_logs_reach_the_user_and_back(
    client: httpx.AsyncClient, threads: dict[str, Any]
) -> None:
    done = await run(client, threads["id"], ECHO, function="echo")
    assert done["latestStatus"]["status"] == "success", done
    out = done["output"]
    assert out["itemId"] == "i-1"
    assert out["item"]["name"] == "cat.jpg"
    assert out["items"] == ["i-2", "i-3"]
    assert (out["count"], out["ratio"], out["flag"], out["name"]) == (3, 0.5, True, "n")
    assert out["blob"] == {"any": [1, "json"]}
    assert (out["executionId"], out["serviceId"]) == (done["id"], threads["id"])
    assert sorted(r["id"] for r in done["resources"]) == ["i-1", "i-2", "i-3"]
    by_item = (await client.get("/executions", params={"resourceId": "i-2"})).json()
    assert [e["id"] for e in by_item] == [done["id"]]
    progress = [e.get("percentComplete") for e in done["statusLog"] if e["status"] == "in-progress"]
    assert progress == [None, 10, 100] or progress == [None, 10], done["statusLog"]
    phases = done["phases"]
    assert phases["queuedAt"] <= phases["startedAt"] <= phases["finishedAt"]
    assert phases["replicaInitSeconds"] is not None
    logs = await _logs(client, done["id"])
    assert [line for line in logs if line.startswith("to std")] == ["to stdout", "to stderr"]
    assert any("through logging" in line for line in logs)
    assert logs[-1] == "[Done] Executing function."
    assert not any("init output" in line for line in logs)


async def _logs(client: httpx.AsyncClient, execution_id: str) -> list[str]:
    for _ in range(50):
        body = (await client.get(f"/executions/{execution_id}/logs")).json()
        lines = [entry["message"] for entry in body["logs"]]
        if lines and lines[-1] == "[Done] Executing function.":
            return lines
        await asyncio.sleep(0.1)
    return lines


async def test_service_logs_page_by_checkpoint_and_stop(
    client: httpx.AsyncClient, threads: dict[str, Any]
) -> None:
    await run(client, threads["id"], ECHO, function="echo")
    seen: list[str] = []
    checkpoint = None
    for _ in range(50):
        body = {"serviceId": threads["id"], "size": 2, "follow": False, "checkpoint": checkpoint}
        page = (await client.post("/services/logs", json=body)).json()
        seen += [line["message"] for line in page["logs"]]
        checkpoint = page["checkpoint"]
        if page["stop"]:
            break
    else:
        raise AssertionError("the log never said stop")
    assert seen.count("[Done] Executing function.") >= 1
    assert "init output goes to the replica log" in seen  # __init__'s print, outside any call


async def test_service_logs_tail_begins_with_the_newest_lines_then_follows_on(
    client: httpx.AsyncClient, threads: dict[str, Any]
) -> None:
    await run(client, threads["id"], ECHO, function="echo")
    every = await _service_lines(client, {"serviceId": threads["id"], "size": 1000})
    body = {"serviceId": threads["id"], "tail": 3}
    tail = (await client.post("/services/logs", json=body)).json()
    assert [line["message"] for line in tail["logs"]] == every[-3:]
    assert tail["stop"] is True

    done = await run(client, threads["id"], ECHO, function="echo")
    after = {"serviceId": threads["id"], "size": 1000, "checkpoint": tail["checkpoint"]}
    after_tail = await _service_lines(client, after)
    assert after_tail == (await _service_lines(client, {**after, "executionId": [done["id"]]}))
    assert after_tail[-1] == DONE_LINE  # only the new execution's lines, none twice

    both = {"serviceId": threads["id"], "tail": 3, "checkpoint": tail["checkpoint"]}
    refused = await client.post("/services/logs", json=both)
    assert refused.status_code == 400, refused.text
    assert "tail" in refused.text
    assert "checkpoint" in refused.text
    too_many = await client.post("/services/logs", json={"serviceId": threads["id"], "tail": 0})
    assert too_many.status_code == 400
    assert "tail" in too_many.text


async def _service_lines(client: httpx.AsyncClient, body: dict[str, Any]) -> list[str]:
    """Every line the query pages through until `stop`, once they end with an execution's
    last line (the echo's final lines may still be on their way)."""
    for _ in range(50):
        lines, query = [], dict(body)
        while True:
            page = (await client.post("/services/logs", json=query)).json()
            lines += [line["message"] for line in page["logs"]]
            if page["stop"]:
                break
            query["checkpoint"] = page["checkpoint"]
        if lines and lines[-1] == DONE_LINE:
            return lines
        await asyncio.sleep(0.1)
    raise AssertionError(f"no complete log for {body}")


async def test_a_thread_mode_timeout_fails_with_the_documented_message(
    client: httpx.AsyncClient, threads: dict[str, Any]
) -> None:
    done = await run(client, threads["id"], {"seconds": 30}, function="busy")
    assert done["latestStatus"]["status"] == "failed", done
    assert done["latestStatus"]["message"] == "Execution stopped due to runner timeout"
    after = await run(client, threads["id"], {"seconds": 0.01}, function="sleep")
    assert after["latestStatus"]["status"] == "success"  # the replica was reset and serves again


async def test_a_process_mode_timeout_is_rerun_then_fails_after_max_attempts(
    client: httpx.AsyncClient, processes: dict[str, Any]
) -> None:
    done = await run(client, processes["id"], {"seconds": 30}, function="busy")
    statuses = [e["status"] for e in done["statusLog"]]
    assert statuses == ["created", "in-progress", "rerun", "in-progress", "failed"], statuses
    assert done["attempts"] == 2
    assert "runner timeout" in done["latestStatus"]["message"]


async def test_terminate_a_queued_execution_and_a_running_one(
    client: httpx.AsyncClient, threads: dict[str, Any], processes: dict[str, Any]
) -> None:
    running = (
        await client.post(
            f"/executions/{processes['id']}",
            json={"functionName": "sleep", "input": {"seconds": 1.5}},
        )
    ).json()
    await wait_for_status(client, running["id"], "in-progress")
    await client.post(f"/executions/{running['id']}/terminate")
    done = await wait(client, running["id"])
    assert done["latestStatus"]["status"] == "terminated", done
    assert "killed" in done["latestStatus"]["message"]

    looping = (
        await client.post(
            f"/executions/{threads['id']}", json={"functionName": "busy", "input": {"seconds": 3.5}}
        )
    ).json()
    await wait_for_status(client, looping["id"], "in-progress")
    await client.post(f"/executions/{looping['id']}/terminate")
    done = await wait(client, looping["id"])
    assert done["latestStatus"]["status"] == "terminated", done
    assert "termination signal" in done["latestStatus"]["message"]

    await client.post(f"/services/{threads['id']}/stop")
    queued = (
        await client.post(
            f"/executions/{threads['id']}", json={"functionName": "sleep", "input": {"seconds": 0}}
        )
    ).json()
    ended = (await client.post(f"/executions/{queued['id']}/terminate")).json()
    assert ended["latestStatus"]["status"] == "terminated"
    await client.post(f"/services/{threads['id']}/resume")
    await asyncio.sleep(1.0)
    still = (await client.get(f"/executions/{queued['id']}")).json()
    assert still["attempts"] == 0  # it never started


async def test_rerun_keeps_the_id_and_adds_an_attempt(
    client: httpx.AsyncClient, threads: dict[str, Any]
) -> None:
    failed = await run(client, threads["id"], {}, function="boom")
    assert failed["latestStatus"]["status"] == "failed"
    assert failed["latestStatus"]["error"]["type"] == "ValueError"
    assert "kaboom" in failed["latestStatus"]["error"]["traceback"]
    again = (await client.post(f"/executions/{failed['id']}/rerun")).json()
    assert again["id"] == failed["id"]
    done = await wait(client, failed["id"])
    assert done["attempts"] == 2
    statuses = [e["status"] for e in done["statusLog"]]
    assert statuses == ["created", "in-progress", "failed", "rerun", "in-progress", "failed"]
    by_error = (await client.get("/executions", params={"errorType": "ValueError"})).json()
    assert failed["id"] in [e["id"] for e in by_error]
    batch = (
        await client.post(
            "/executions/rerun", json={"serviceId": threads["id"], "errorType": "ValueError"}
        )
    ).json()
    assert failed["id"] in batch["executionIds"]


async def test_invoke_answers_the_output_or_the_error(
    client: httpx.AsyncClient, threads: dict[str, Any]
) -> None:
    ok = await client.post(
        f"/executions/{threads['id']}/invoke",
        json={"functionName": "sleep", "input": {"seconds": 0}},
    )
    assert ok.status_code == 200
    assert isinstance(ok.json(), int)
    bad = await client.post(f"/executions/{threads['id']}/invoke", json={"functionName": "boom"})
    assert bad.status_code == 422
    assert "kaboom" in bad.json()["message"]
    curl = (
        await client.post(f"/executions/{threads['id']}/curl", json={"functionName": "boom"})
    ).json()["curl"]
    assert curl.startswith("curl -X POST")
    assert threads["id"] in curl


async def test_a_batch_runs_every_call_or_refuses_them_all(
    client: httpx.AsyncClient, threads: dict[str, Any]
) -> None:
    calls = [{"functionName": "sleep", "input": {"seconds": 0}} for _ in range(40)]
    created = await client.post(f"/executions/{threads['id']}/batch", json={"executions": calls})
    assert created.status_code == 201, created.text
    ids = created.json()["executionIds"]
    assert created.json()["count"] == 40 == len(set(ids))
    ended = await asyncio.gather(*(wait(client, i) for i in ids))
    assert {e["latestStatus"]["status"] for e in ended} == {"success"}
    assert all(e["attempts"] == 1 for e in ended)

    before = (
        await client.get("/executions", params={"serviceId": threads["id"], "limit": 1000})
    ).json()
    bad = [calls[0], {"functionName": "nope"}, {"functionName": "sleep", "input": {"x": 1}}]
    refused = await client.post(f"/executions/{threads['id']}/batch", json={"executions": bad})
    assert refused.status_code == 400
    fields = [d["field"] for d in refused.json()["details"]]
    assert fields[0] == "executions[1].functionName"
    assert any(f.startswith("executions[2].") for f in fields)
    after = (
        await client.get("/executions", params={"serviceId": threads["id"], "limit": 1000})
    ).json()
    assert len(after) == len(before)  # nothing of the refused batch was written

    too_many = {"executions": [calls[0]] * 1001}
    response = await client.post(f"/executions/{threads['id']}/batch", json=too_many)
    assert response.status_code == 400
    assert response.json()["details"][0]["field"] == "executions"


async def test_an_output_over_4mb_fails_with_the_documented_message(
    client: httpx.AsyncClient, threads: dict[str, Any]
) -> None:
    done = await run(client, threads["id"], {}, function="big")
    assert done["latestStatus"]["status"] == "failed"
    assert done["latestStatus"]["message"] == (
        "The function execution was successful, but the output couldn't be saved because it "
        "was larger than the maximum size allowed of 4.0MB"
    )
