"""Request limits at the HTTP edge: the pure checks, and the middleware in front of a tiny app
(413 without reading an oversized body whole, 400 for deep JSON, 431 for large headers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import orjson
import pytest
from fastapi import FastAPI, File, UploadFile

from spool_gateway.limits import (
    RequestLimits,
    RequestLimitsMiddleware,
    body_limit,
    check_head,
    check_json,
    check_text,
    is_json,
    json_depth,
)

LIMITS = RequestLimits(
    max_body_bytes=1000, max_upload_bytes=5000, max_json_depth=4, max_header_bytes=2000
)


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        (b"1", 0),
        (b"{}", 1),
        (b'{"a": [1, {"b": []}]}', 4),
        (b'{"a": "[[[[[[[["}', 1),  # brackets in strings do not count
        (b'{"a": "\\"[[[[[[", "b": [[]]}', 3),  # nor do they after an escaped quote
        (b"[" * 50 + b"]" * 50, 50),
        (b"[][][][]", 1),
    ],
)
def test_json_depth(body: bytes, depth: int) -> None:
    assert json_depth(body) == depth


@pytest.mark.parametrize(
    ("content_type", "json", "limit"),
    [
        ("", True, 1000),
        ("application/json", True, 1000),
        ("application/merge-patch+json; charset=utf-8", True, 1000),
        ("multipart/form-data; boundary=x", False, 5000),
        ("application/x-www-form-urlencoded", False, 5000),
        ("text/plain", False, 1000),
    ],
)
def test_body_kinds(content_type: str, json: bool, limit: int) -> None:
    assert is_json(content_type) is json
    assert body_limit(LIMITS, content_type) == limit


def test_check_head() -> None:
    assert check_head(LIMITS, [(b"content-length", b"1000")]) is None
    declared = check_head(LIMITS, [(b"content-length", b"1001")])
    assert declared is not None
    assert declared.status == 413
    huge = check_head(LIMITS, [(b"x-big", b"x" * 2000)])
    assert huge is not None
    assert huge.status == 431
    assert huge.body["details"][0]["field"] == "headers"


def _app() -> FastAPI:
    app = FastAPI()

    @app.post("/echo")
    async def echo(body: dict[str, Any]) -> dict[str, Any]:
        return body

    @app.post("/upload")
    async def upload(codebase: Annotated[UploadFile, File()]) -> dict[str, int]:
        return {"size": len(await codebase.read())}

    app.add_middleware(RequestLimitsMiddleware, limits=LIMITS)
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def _refused(response: httpx.Response, status: int, field: str, words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]
    assert words in body["message"]
    assert body["details"][0]["field"] == field


async def test_json_within_limits_passes(client: httpx.AsyncClient) -> None:
    response = await client.post("/echo", json={"a": [[1]]})
    assert (response.status_code, response.json()) == (200, {"a": [[1]]})


async def test_json_too_large_is_413(client: httpx.AsyncClient) -> None:
    _refused(await client.post("/echo", json={"a": "x" * 2000}), 413, "body", "1000 bytes")


async def test_streamed_json_too_large_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"a": "'
        for _ in range(100):
            yield b"x" * 100
        yield b'"}'

    headers = {"content-type": "application/json"}
    response = await client.post("/echo", content=chunks(), headers=headers)
    _refused(response, 413, "body", "1000 bytes")


async def test_json_too_deep_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/echo", content=b'{"a": [[[[1]]]]}')
    _refused(response, 400, "body", "5 deep")


async def test_an_upload_over_its_limit_is_413(client: httpx.AsyncClient) -> None:
    ok = await client.post("/upload", files={"codebase": ("c.zip", b"x" * 3000)})
    assert (ok.status_code, ok.json()) == (200, {"size": 3000})
    big = await client.post("/upload", files={"codebase": ("c.zip", b"x" * 6000)})
    _refused(big, 413, "body", "5000 bytes")


async def test_a_streamed_upload_over_its_limit_is_413(client: httpx.AsyncClient) -> None:
    boundary = b"b0undary"
    head = b'--b0undary\r\nContent-Disposition: form-data; name="codebase"; filename="c"\r\n\r\n'

    async def chunks() -> AsyncIterator[bytes]:
        yield head
        for _ in range(100):
            yield b"x" * 100
        yield b"\r\n--" + boundary + b"--\r\n"

    headers = {"content-type": "multipart/form-data; boundary=b0undary"}
    response = await client.post("/upload", content=chunks(), headers=headers)
    _refused(response, 413, "body", "5000 bytes")


async def test_large_headers_are_431(client: httpx.AsyncClient) -> None:
    response = await client.post("/echo", json={}, headers={"x-big": "y" * 3000})
    _refused(response, 431, "headers", "the limit is 2000")
    assert orjson.loads(response.content)["details"][0]["reason"]


@pytest.mark.parametrize(
    ("body", "refused"),
    [
        (b'{"a": "\\u0000"}', True),
        (b'{"a": "\\\\u0000"}', False),  # an escaped backslash, then the text u0000
        (b'{"a": "\\\\\\u0000"}', True),
        (b'{"a": "u0000"}', False),
    ],
)
def test_json_nul_is_refused(body: bytes, refused: bool) -> None:
    answer = check_json(LIMITS, body)
    assert (answer is not None) is refused
    if answer is not None:
        assert (answer.status, answer.body["details"][0]["field"]) == (400, "body")


def test_nul_in_path_or_query_is_refused() -> None:
    assert check_text("/api/v1/projects", b"name=x") is None
    path = check_text("/api/v1/projects/\x00", b"")
    assert path is not None
    assert path.body["details"][0]["field"] == "path"
    query = check_text("/api/v1/projects", b"name=a%00b")
    assert query is not None
    assert query.body["details"][0]["field"] == "query"
