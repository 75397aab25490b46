"""Errors the HTTP API answers with: a status, a code, a sentence, and the fields at fault."""

from __future__ import annotations

from typing import Any

from spool_common.errors import FieldError


class ApiError(Exception):
    """`retry_after` (seconds): the request may succeed later; answered as `Retry-After`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: tuple[FieldError, ...] = (),
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.retry_after = retry_after


def error_body(code: str, message: str, details: tuple[FieldError, ...]) -> dict[str, Any]:
    """The API's one error shape."""
    return {
        "error": code,
        "message": message,
        "details": [{"field": d.field, "reason": d.reason} for d in details],
    }


def not_found(kind: str, field: str, value: str) -> ApiError:
    return ApiError(
        404, "not_found", f"{kind} '{value}' not found", (FieldError(field, f"no such {kind}"),)
    )
