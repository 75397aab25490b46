"""T29's explicit limits and T30's admission: oversized bodies 413, deep JSON 400, large headers
431, inputs larger than the cap 400; a project past its rate limit 429 with Retry-After; a
service whose queue is full 503 with Retry-After. Every refusal writes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from support.platform import HELLO, LocalPlatform, deploy, running_platform

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

MAX_BODY = 64 * 1024
MAX_INPUT = 4096
BURST = 6
CAP = 4  # executions waiting per service; services here never start a replica

CALL = {"functionName": "run", "input": {"name": "x"}}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(
    tmp_path_factory: pytest.TempPathFactory, servers: None
) -> AsyncIterator[LocalPlatform]:
    """conftest's platform with low limits: almost no refill, so a test sees its own bucket."""
    env = {
        "SPOOL_MAX_BODY_BYTES": str(MAX_BODY),
        "SPOOL_MAX_INPUT_BYTES": str(MAX_INPUT),
        "SPOOL_EXECUTION_RATE": "0.001",
        "SPOOL_EXECUTION_BURST": str(BURST),
        "SPOOL_MAX_WAITING_EXECUTIONS": str(CAP),
    }
    async with running_platform(tmp_path_factory.mktemp("platform"), env) as p:
        yield p


async def _service(client: httpx.AsyncClient, name: str) -> dict[str, Any]:
    return await deploy(client, HELLO, name, runtime={"numReplicas": 0})


async def _sibling(client: httpx.AsyncClient, service: dict[str, Any]) -> dict[str, Any]:
    """Another service of the same project and package."""
    body = {
        "name": f"{service['name']}-2",
        "projectId": service["projectId"],
        "packageId": service["packageId"],
        "runtime": {"numReplicas": 0},
    }
    response = await client.post("/services", json=body)
    assert response.status_code == 201, response.text
    sibling: dict[str, Any] = response.json()
    return sibling


async def _count(client: httpx.AsyncClient, *services: dict[str, Any]) -> int:
    total = 0
    for service in services:
        found = await client.get("/executions", params={"serviceId": service["id"]})
        total += len(found.json())
    return total


def _refused(response: httpx.Response, status: int, field: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"]
    assert body["message"]
    assert field in [d["field"] for d in body["details"]], body
    return body


async def test_an_oversized_body_is_413_and_not_recorded(client: httpx.AsyncClient) -> None:
    service = await _service(client, "big-body")
    body = {"functionName": "run", "input": {"name": "x" * MAX_BODY}}
    response = await client.post(f"/executions/{service['id']}", json=body)
    assert str(MAX_BODY) in _refused(response, 413, "body")["message"]
    assert await _count(client, service) == 0


async def test_deep_json_is_400_and_not_recorded(client: httpx.AsyncClient) -> None:
    service = await _service(client, "deep-body")
    deep = "[" * 40 + "]" * 40
    content = f'{{"functionName": "run", "input": {{"name": {deep}}}}}'.encode()
    response = await client.post(
        f"/executions/{service['id']}",
        content=content,
        headers={"content-type": "application/json"},
    )
    assert "42 deep" in _refused(response, 400, "body")["details"][0]["reason"]
    assert await _count(client, service) == 0


async def test_huge_headers_are_431(client: httpx.AsyncClient) -> None:
    response = await client.get("/projects", headers={"x-padding": "y" * 40_000})
    _refused(response, 431, "headers")


async def test_an_input_over_the_cap_is_400_naming_it(client: httpx.AsyncClient) -> None:
    service = await _service(client, "big-input")
    body = {"functionName": "run", "input": {"name": "x" * MAX_INPUT}}
    response = await client.post(f"/executions/{service['id']}", json=body)
    assert str(MAX_INPUT) in _refused(response, 400, "input")["message"]
    assert await _count(client, service) == 0


async def test_past_the_rate_limit_is_429_with_retry_after(client: httpx.AsyncClient) -> None:
    first = await _service(client, "rated")
    second = await _sibling(client, first)  # same project: the same bucket
    for service in (first, second):
        response = await client.post(
            f"/executions/{service['id']}/batch", json={"executions": [CALL] * (BURST // 2)}
        )
        assert response.status_code == 201, response.text
    before = await _count(client, first, second)
    response = await client.post(f"/executions/{first['id']}", json=CALL)
    body = _refused(response, 429, "projectId")
    assert first["projectId"] in body["message"]
    assert int(response.headers["Retry-After"]) >= 1
    batch = await client.post(f"/executions/{second['id']}/batch", json={"executions": [CALL]})
    _refused(batch, 429, "projectId")
    invoke = await client.post(f"/executions/{second['id']}/invoke", json=CALL)
    _refused(invoke, 429, "projectId")
    assert await _count(client, first, second) == before == BURST
    other = await _service(client, "unrated")  # another project is not slowed down
    assert (await client.post(f"/executions/{other['id']}", json=CALL)).status_code == 201


async def test_a_batch_over_the_burst_is_400(client: httpx.AsyncClient) -> None:
    service = await _service(client, "big-batch")
    body = {"executions": [CALL] * (BURST + 1)}
    response = await client.post(f"/executions/{service['id']}/batch", json=body)
    _refused(response, 400, "executions")
    assert await _count(client, service) == 0


async def test_a_full_queue_is_503_with_retry_after(client: httpx.AsyncClient) -> None:
    service = await _service(client, "capped")
    for _ in range(CAP):
        assert (await client.post(f"/executions/{service['id']}", json=CALL)).status_code == 201
    response = await client.post(f"/executions/{service['id']}", json=CALL)
    assert str(CAP) in _refused(response, 503, "serviceId")["message"]
    assert int(response.headers["Retry-After"]) >= 1
    assert await _count(client, service) == CAP
