"""Errors the HTTP API answers with: a status, a code, a sentence, and the fields at fault."""

from __future__ import annotations

from spool_common.errors import FieldError


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, details: tuple[FieldError, ...] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def not_found(kind: str, field: str, value: str) -> ApiError:
    return ApiError(
        404, "not_found", f"{kind} '{value}' not found", (FieldError(field, f"no such {kind}"),)
    )
