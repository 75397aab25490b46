"""Limits at the HTTP edge, as an ASGI middleware in front of every route: headers larger than
`max_header_bytes` → 431; a body larger than its limit → 413, read in chunks and never
buffered past the limit; JSON nested deeper than `max_json_depth` → 400. Each answer is the
API's JSON error naming the field and the limit, sent before any route runs.

A JSON body (or one without a content type, which FastAPI reads as JSON) is read whole, up to
`max_body_bytes`, scanned for depth and for `\u0000` (PostgreSQL stores no NUL character, in
text or jsonb: like a NUL in the path or query, it is refused with 400), and handed on. Any
other body is passed through as it arrives, counted: multipart uploads may be
`max_upload_bytes` plus 1 MiB of form fields.

uvicorn (h11) refuses a request head past `H11_HEAD_BYTES` itself, with a plain 400.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spool_common.errors import FieldError
from spool_gateway.http_errors import error_body
from spool_gateway.settings import GatewaySettings

MIB = 1024 * 1024
FORM_FIELDS_BYTES = MIB  # a multipart upload's framing and form fields, beyond the codebase
H11_HEAD_BYTES = 256 * 1024  # uvicorn's own ceiling on a request head (see app.py)

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")  # an unescaped \u0000 in JSON
_STEP = tuple(1 if b in b"[{" else -1 if b in b"]}" else 0 for b in range(256))


@dataclass(frozen=True)
class RequestLimits:
    max_body_bytes: int
    max_upload_bytes: int
    max_json_depth: int
    max_header_bytes: int

    @classmethod
    def of(cls, settings: GatewaySettings) -> RequestLimits:
        return cls(
            max_body_bytes=settings.max_body_bytes,
            max_upload_bytes=settings.max_upload_bytes + FORM_FIELDS_BYTES,
            max_json_depth=settings.max_json_depth,
            max_header_bytes=settings.max_header_bytes,
        )


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


def error(status: int, code: str, field: str, reason: str) -> Answer:
    return Answer(status, error_body(code, f"{field} {reason}", (FieldError(field, reason),)))


def json_depth(body: bytes) -> int:
    """How deep arrays and objects nest in `body` (brackets inside strings do not count)."""
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def is_json(content_type: str) -> bool:
    """FastAPI parses the body as JSON: no content type, application/json or */*+json."""
    kind = content_type.partition(";")[0].strip().lower()
    return kind in ("", "application/json") or kind.endswith("+json")


def body_limit(limits: RequestLimits, content_type: str) -> int:
    kind = content_type.partition(";")[0].strip().lower()
    forms = ("multipart/form-data", "application/x-www-form-urlencoded")
    return limits.max_upload_bytes if kind in forms else limits.max_body_bytes


def too_large(limit: int) -> Answer:
    return error(413, "too_large", "body", f"is larger than the limit of {limit} bytes")


def check_head(limits: RequestLimits, headers: list[tuple[bytes, bytes]]) -> Answer | None:
    """431 for headers over the limit; 413 for a declared Content-Length over the body's."""
    size = sum(len(name) + len(value) + 4 for name, value in headers)
    if size > limits.max_header_bytes:
        reason = f"take {size} bytes; the limit is {limits.max_header_bytes}"
        return error(431, "headers_too_large", "headers", reason)
    found = {name.lower(): value for name, value in headers}
    limit = body_limit(limits, found.get(b"content-type", b"").decode("latin-1"))
    declared = found.get(b"content-length", b"")
    if declared.isdigit() and int(declared) > limit:
        return too_large(limit)
    return None


def check_text(path: str, query: bytes) -> Answer | None:
    """PostgreSQL stores no NUL character: refuse one in the path or the query."""
    if "\x00" in path:
        return error(400, "invalid_request", "path", "contains a NUL character")
    if b"%00" in query or b"\x00" in query:
        return error(400, "invalid_request", "query", "contains a NUL character (%00)")
    return None


def check_json(limits: RequestLimits, body: bytes) -> Answer | None:
    if _NUL_ESCAPE.search(body):
        reason = "contains a NUL character (\\u0000), which cannot be stored"
        return error(400, "invalid_request", "body", reason)
    depth = json_depth(body)
    if depth > limits.max_json_depth:
        reason = f"nests arrays and objects {depth} deep; the limit is {limits.max_json_depth}"
        return error(400, "invalid_request", "body", reason)
    return None


class _TooLarge(Exception):
    pass


async def _send_answer(send: Send, answer: Answer) -> None:
    body = orjson.dumps(answer.body)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it passes `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _TooLarge  # the client went away: nothing to answer
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class RequestLimitsMiddleware:
    def __init__(self, app: ASGIApp, limits: RequestLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        answer = check_head(self.limits, scope["headers"]) or check_text(
            scope["path"], scope["query_string"]
        )
        if answer is not None:
            await _send_answer(send, answer)
            return
        content_type = dict(scope["headers"]).get(b"content-type", b"").decode("latin-1")
        limit = body_limit(self.limits, content_type)
        if is_json(content_type):
            await self._json(scope, receive, send, limit)
        else:
            await self._streamed(scope, receive, send, limit)

    async def _json(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        try:
            body = await _read_body(receive, limit)
        except _TooLarge:
            return
        answer = too_large(limit) if body is None else check_json(self.limits, body)
        if answer is not None:
            await _send_answer(send, answer)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _streamed(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Pass the body through as it arrives; past `limit`, stop reading and answer 413 in
        place of whatever the route makes of the interrupted body."""
        size = 0
        tripped = False
        started = False

        async def counted() -> Message:
            nonlocal size, tripped
            message = await receive()
            size += len(message.get("body", b""))
            if size > limit:
                tripped = True
                raise _TooLarge
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if tripped:
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _send_answer(send, too_large(limit))
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except _TooLarge:
            if not started:
                await _send_answer(send, too_large(limit))


def install_limits(app: FastAPI, settings: GatewaySettings) -> None:
    """The request limits in front of every route."""
    app.add_middleware(RequestLimitsMiddleware, limits=RequestLimits.of(settings))
