"""Bad input gets a 4xx JSON error naming the field and the reason, and nothing is written."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from support.platform import HELLO, LocalPlatform, deploy

from spool_common.archive import build_archive

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(platform: LocalPlatform) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, Any]]]:
    async with platform.client() as client:
        service = await deploy(client, HELLO, "hello", runtime={"numReplicas": 0})
        yield client, service


def _error(response: httpx.Response, status: int, field: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]
    assert body["message"]
    fields = [d["field"] for d in body["details"]]
    assert field in fields, body
    reason: str = next(d["reason"] for d in body["details"] if d["field"] == field)
    return reason


async def _counts(client: httpx.AsyncClient, service_id: str) -> tuple[int, int, int]:
    executions = (await client.get("/executions", params={"serviceId": service_id})).json()
    packages = (await client.get("/packages")).json()
    services = (await client.get("/services")).json()
    return len(executions), len(packages), len(services)


async def _push(
    client: httpx.AsyncClient,
    project_id: str,
    files: dict[str, bytes],
    package: dict[str, Any] | None = None,
) -> httpx.Response:
    data = {"projectId": project_id}
    if package is not None:
        data["package"] = orjson.dumps(package).decode()
    upload = {"codebase": ("code.zip", build_archive(files), "application/zip")}
    return await client.post("/packages", files=upload, data=data)


async def test_missing_or_bad_token_is_401(platform: LocalPlatform) -> None:
    async with httpx.AsyncClient(base_url=f"{platform.url}/api/v1") as anonymous:
        _error(await anonymous.get("/projects"), 401, "Authorization")
        bad = {"Authorization": "Bearer nope"}
        _error(await anonymous.get("/projects", headers=bad), 401, "Authorization")


@pytest.mark.parametrize(
    ("files", "package", "field", "words"),
    [
        (
            {"main.py": b"x = 1"},
            {"modules": [{"className": "Missing"}]},
            "modules[0].className",
            "Missing",
        ),
        ({"other.py": b"x = 1"}, None, "modules[0].entryPoint", "main.py"),
        ({"main.py": HELLO["main.py"], "package.json": b"{oops"}, None, "package.json", "JSON"),
        (
            {"main.py": HELLO["main.py"]},
            {"modules": [{"functions": [{"name": "nothere"}]}]},
            "modules[0].functions[0].name",
            "nothere",
        ),
        (
            {"main.py": HELLO["main.py"]},
            {
                "modules": [
                    {"functions": [{"name": "run", "input": [{"name": "name", "type": "Str"}]}]}
                ]
            },
            "modules[0].functions[0].input[0].type",
            "",
        ),
        ({"main.py": b"def broken(:\n"}, None, "modules[0].entryPoint", "line"),
    ],
    ids=[
        "missing-class",
        "missing-entry-file",
        "bad-package-json",
        "unknown-function",
        "bad-input-type",
        "syntax-error",
    ],
)
async def test_a_bad_package_is_400_and_not_stored(
    world: tuple[httpx.AsyncClient, dict[str, Any]],
    files: dict[str, bytes],
    package: dict[str, Any] | None,
    field: str,
    words: str,
) -> None:
    client, service = world
    before = await _counts(client, service["id"])
    reason = _error(await _push(client, service["projectId"], files, package), 400, field)
    assert words in reason
    assert await _counts(client, service["id"]) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"functionName": "nope", "input": {"name": "x"}}, "functionName"),
        ({"input": {"name": 3}}, "input.name"),
        ({"input": {"name": "x", "extra": 1}}, "input.extra"),
        ({"input": "not an object"}, "input"),
    ],
    ids=["unknown-function", "wrong-type", "unknown-input", "input-not-object"],
)
async def test_a_bad_execution_is_400_and_not_recorded(
    world: tuple[httpx.AsyncClient, dict[str, Any]], body: dict[str, Any], field: str
) -> None:
    client, service = world
    before = await _counts(client, service["id"])
    _error(await client.post(f"/executions/{service['id']}", json=body), 400, field)
    assert await _counts(client, service["id"]) == before


async def test_unknown_service_is_404(world: tuple[httpx.AsyncClient, dict[str, Any]]) -> None:
    client, _ = world
    _error(await client.post("/executions/nope", json={"input": {}}), 404, "serviceId")
    _error(await client.get("/executions/nope"), 404, "executionId")


async def test_a_bad_service_is_400_and_not_created(
    world: tuple[httpx.AsyncClient, dict[str, Any]],
) -> None:
    client, service = world
    before = await _counts(client, service["id"])
    base = {"projectId": service["projectId"], "packageId": service["packageId"]}
    _error(await client.post("/services", json={**base, "name": "Bad Name"}), 400, "name")
    _error(
        await client.post("/services", json={**base, "name": "ok", "moduleName": "x"}),
        400,
        "moduleName",
    )
    body = {**base, "name": "ok", "runtime": {"concurrency": 0}}
    _error(await client.post("/services", json=body), 400, "runtime.concurrency")
    assert await _counts(client, service["id"]) == before


async def test_a_body_that_is_not_json_is_400_naming_the_body(
    world: tuple[httpx.AsyncClient, dict[str, Any]],
) -> None:
    client, service = world
    before = await _counts(client, service["id"])
    response = await client.post(
        f"/executions/{service['id']}",
        content=b'{"input":',
        headers={"content-type": "application/json"},
    )
    assert "not valid JSON" in _error(response, 400, "body")
    assert await _counts(client, service["id"]) == before
