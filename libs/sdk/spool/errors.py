"""What can go wrong talking to Spool, as one exception hierarchy rooted at `SpoolError`.

The gateway answers every error as `{"error": <code>, "message": <sentence>, "details":
[{"field", "reason"}]}`; `from_response` turns that into the subclass for its status, so a
caller can `except spool.NotFound` and a person reading the traceback sees the field at fault.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from spool_common.errors import ValidationFailure


@dataclass(frozen=True)
class Detail:
    """One field the API (or the SDK, before sending) found fault with."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class SpoolError(Exception):
    """Base of every error the SDK raises. `status` is the HTTP status (None when the SDK
    found the problem itself), `code` the API's error code, `details` the fields at fault,
    `retry_after` the seconds the API asked to wait (429, 503)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        details: tuple[Detail, ...] = (),
        retry_after: float | None = None,
    ) -> None:
        super().__init__(_with_details(message, details))
        self.message = message
        self.status = status
        self.code = code
        self.details = details
        self.retry_after = retry_after


class ConfigError(SpoolError):
    """No URL or token was found: not passed, not in the environment, not in the config file."""


class SpoolConnectionError(SpoolError, ConnectionError):
    """The gateway could not be reached (refused, DNS, TLS, or no answer in time)."""


class BadRequest(SpoolError, ValueError):
    """400 (or 413), or a value the SDK refused before sending: `details` names each field."""


class Unauthorized(SpoolError):
    """401: the token is missing, unknown, expired or revoked."""


class Forbidden(SpoolError):
    """403: the token is valid but its role does not allow this."""


class NotFound(SpoolError, LookupError):
    """404: no such object, or one in a project the token is not a member of."""


class Conflict(SpoolError):
    """409: the name is taken, or the object changed meanwhile."""


class ExecutionFailed(SpoolError):
    """422 from a synchronous invoke: the function raised; `details` holds its message."""


class RateLimited(SpoolError):
    """429: the project's execution rate limit; retry after `retry_after` seconds."""


class Unavailable(SpoolError):
    """503: the service's queue is full or the gateway is not ready; retry later."""


class ServerError(SpoolError):
    """5xx other than 503: a bug or outage on the server side."""


_BY_STATUS: Mapping[int, type[SpoolError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: BadRequest,
    422: ExecutionFailed,
    429: RateLimited,
    503: Unavailable,
}


def _with_details(message: str, details: tuple[Detail, ...]) -> str:
    """The message, with the fields at fault appended unless it already says them."""
    missing = [str(d) for d in details if str(d) not in message]
    return f"{message} ({'; '.join(missing)})" if missing else message


def _details(raw: Any) -> tuple[Detail, ...]:
    if not isinstance(raw, list):
        return ()
    return tuple(
        Detail(str(d.get("field", "")), str(d.get("reason", "")))
        for d in raw
        if isinstance(d, dict)
    )


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header; None if absent or not a number of seconds (the
    gateway always sends seconds; an HTTP date is not worth a parser here)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def from_response(
    status: int, body: bytes, retry_after: str | None = None, where: str = ""
) -> SpoolError:
    """The exception for an error answer. `where` ("GET /services/x") prefixes bodies that
    are not the API's JSON error (a proxy's HTML page, say)."""
    kind = _BY_STATUS.get(status, ServerError if status >= 500 else SpoolError)
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        message, code = parsed["message"], parsed.get("error")
        details = _details(parsed.get("details"))
    else:
        text = body[:300].decode("utf-8", "replace").strip() or "no body"
        message, code, details = f"{where} answered HTTP {status}: {text}".strip(), None, ()
    return kind(
        message,
        status=status,
        code=str(code) if code is not None else None,
        details=details,
        retry_after=parse_retry_after(retry_after),
    )


def required(argument: str, field: str) -> BadRequest:
    """A call missing an argument it needs (and no default to fall back on)."""
    return BadRequest(f"give {argument}", details=(Detail(field, "required"),))


def from_validation(failure: ValidationFailure) -> BadRequest:
    """A check the SDK ran before sending (shared with the gateway) as a `BadRequest`."""
    details = tuple(Detail(e.field, e.reason) for e in failure.errors)
    return BadRequest(failure.message, details=details)
