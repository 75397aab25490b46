"""The error answers and the authentication in the OpenAPI document: every operation lists
the API's error shape (`{"error", "message", "details": [{"field", "reason"}]}`) for the
statuses the edge answers with (503 with `Retry-After` while the database is unavailable),
the operations that create executions list 429 and 503 with `Retry-After` for admission too,
and every operation takes a bearer token (the `token` security scheme).

FastAPI documents a 422 "HTTPValidationError" for every operation with parameters; the
gateway answers a bad request with 400 instead (api.py), so that 422 is replaced. The
framework's own errors (a body it cannot parse, an unknown path or method) are answered in
the same shape.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error", "message", "details"],
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "details": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "reason"],
                "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
    },
}

COMMON: dict[int, str] = {
    400: "Invalid request: each field at fault and why",
    401: "Missing, unknown, expired or revoked token",
    403: "The token may not do this",
    404: "No such object (or not visible to this token)",
    409: "Conflicts with the object's current state",
    413: "The body is larger than the limit",
    431: "The headers are larger than the limit",
    503: "The database is unavailable for now: retry after Retry-After seconds",
}
ADMISSION: dict[int, str] = {
    429: "The project's rate limit is reached: retry after Retry-After seconds",
    503: "The service's queue is full, or the database is unavailable for now: retry after "
    "Retry-After seconds",
}
_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer", "minimum": 1}}
}
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
SECURITY_SCHEMES: dict[str, Any] = {
    "token": {
        "type": "http",
        "scheme": "bearer",
        "description": "a user's or bot's token (spl_...), or the admin token",
    }
}


def _response(description: str, retry: bool) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ERROR_REF}},
    }
    if retry:
        response["headers"] = _RETRY_AFTER
    return response


def creates_executions(method: str, path: str) -> bool:
    return method == "post" and path.startswith("/api/v1/executions/{service_id}")


def with_errors(spec: dict[str, Any]) -> dict[str, Any]:
    """`spec` with the error responses added to every operation and a bearer token required
    by all of them (changed in place)."""
    components = spec.setdefault("components", {})
    components.setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    components["securitySchemes"] = SECURITY_SCHEMES
    spec["security"] = [{"token": []}]
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            if "HTTPValidationError" in str(responses.get("422", "")):
                del responses["422"]
            statuses = {**COMMON, **(ADMISSION if creates_executions(method, path) else {})}
            for status, description in statuses.items():
                responses.setdefault(str(status), _response(description, status in ADMISSION))
    return spec


_FRAMEWORK = {400: ("invalid_request", "body"), 404: ("not_found", "path")}


def framework_error(status: int, detail: str, cause: BaseException | None) -> dict[str, Any]:
    """The API's error body for an error FastAPI or Starlette raised itself."""
    code, field = _FRAMEWORK.get(status, ("http_error", "request"))
    if status == 405:
        code, field = "method_not_allowed", "method"
    reason = f"{detail}: {cause}" if cause is not None else detail
    return {"error": code, "message": reason, "details": [{"field": field, "reason": reason}]}


def document_errors(app: FastAPI) -> None:
    """Serve the OpenAPI document with the error responses (built once, on first use), and
    answer the framework's own errors in the documented shape."""
    build = app.openapi

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        body = framework_error(exc.status_code, str(exc.detail), exc.__cause__)
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = with_errors(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
    app.add_exception_handler(HTTPException, http_error)
