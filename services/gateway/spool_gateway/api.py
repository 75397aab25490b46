"""HTTP edge: the FastAPI app, bearer-token authentication and the JSON error shape.

Every error is `{"error": <code>, "message": <sentence>, "details": [{"field", "reason"}]}`
with a 4xx status, raised before anything is written; or a 503 with `Retry-After` while
PostgreSQL is unreachable (restarting, failing over, backends killed), never a stack trace.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from spool_common.errors import FieldError, ValidationFailure, from_pydantic
from spool_common.logging import get_logger
from spool_common.store.pg import TRANSIENT_ERRORS
from spool_gateway.catalog import Principal
from spool_gateway.core import Gateway, hash_token
from spool_gateway.http_errors import ApiError, error_body

log = get_logger(__name__)

API_PREFIX = "/api/v1"
_CACHE_SECONDS = 5.0
STORE_RETRY_AFTER = 1  # seconds: a restarting PostgreSQL is usually back within a few


class _OneError:
    """One error of a RequestValidationError, in the shape from_pydantic reads."""

    def __init__(self, error: Any) -> None:
        self._error = error

    def errors(self) -> list[Any]:
        return [self._error]


def _field_error(error: Any) -> FieldError:
    if error.get("type") == "json_invalid":
        position = error["loc"][-1] if error.get("loc") else "?"
        reason = error.get("ctx", {}).get("error", "JSON decode error")
        return FieldError("body", f"is not valid JSON: {reason} at character {position}")
    return from_pydantic(_OneError(error)).errors[0]


def install_error_handlers(app: FastAPI) -> None:
    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        headers = None if exc.retry_after is None else {"Retry-After": str(exc.retry_after)}
        body = error_body(exc.code, exc.message, exc.details)
        return JSONResponse(body, status_code=exc.status, headers=headers)

    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ValidationFailure)
        return JSONResponse(error_body("invalid_request", str(exc), exc.errors), status_code=400)

    async def request_invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = tuple(_field_error(e) for e in exc.errors())
        message = "; ".join(f"{d.field}: {d.reason}" for d in details)
        return JSONResponse(error_body("invalid_request", message, details), status_code=400)

    async def store_unavailable(request: Request, exc: Exception) -> JSONResponse:
        """PostgreSQL is away for now (T17): what failed here was not committed, so the caller
        may retry. (A connection lost after its COMMIT was sent is the one exception: that
        execution is recorded and will run, though its creator heard 503.)"""
        log.warning("store_unavailable", path=request.url.path, error=str(exc))
        body = error_body("unavailable", "the database is unavailable for now: retry later", ())
        headers = {"Retry-After": str(STORE_RETRY_AFTER)}
        return JSONResponse(body, status_code=503, headers=headers)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(ValidationFailure, invalid)
    app.add_exception_handler(RequestValidationError, request_invalid)
    for transient in TRANSIENT_ERRORS:
        app.add_exception_handler(transient, store_unavailable)


class Authenticator:
    """Bearer tokens, looked up by hash, cached briefly (revocation takes effect in ≤5 s)."""

    def __init__(self, lookup: Callable[[bytes], Awaitable[Principal | None]]) -> None:
        self._lookup = lookup
        self._cache: dict[bytes, tuple[float, Principal | None]] = {}

    def forget(self, *digests: bytes) -> None:
        """Revoked here: effective at once in this process (other gateways: within the TTL)."""
        for digest in digests:
            self._cache.pop(digest, None)

    async def __call__(self, request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401,
                "unauthenticated",
                "missing bearer token",
                (FieldError("Authorization", "expected 'Bearer <token>'"),),
            )
        digest = hash_token(token.strip())
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is None or cached[0] < now:
            cached = (now + _CACHE_SECONDS, await self._lookup(digest))
            self._cache[digest] = cached
        if cached[1] is None:
            raise ApiError(
                401,
                "unauthenticated",
                "unknown, expired or revoked token",
                (FieldError("Authorization", "token not accepted"),),
            )
        return cached[1]


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def principal_of(request: Request) -> Principal:
    authenticate: Authenticator = request.app.state.authenticate
    return await authenticate(request)


GatewayDep = Annotated[Gateway, Depends(gateway_of)]
PrincipalDep = Annotated[Principal, Depends(principal_of)]


def create_app(gateway: Gateway) -> FastAPI:
    from spool_gateway.execution_routes import router as executions
    from spool_gateway.identity_routes import router as identity
    from spool_gateway.limits import install_limits
    from spool_gateway.load_routes import router as load
    from spool_gateway.notification_routes import router as notifications
    from spool_gateway.openapi_errors import document_errors
    from spool_gateway.package_routes import router as packages
    from spool_gateway.routes import router
    from spool_gateway.secret_routes import router as secrets
    from spool_gateway.service_routes import router as services
    from spool_gateway.trigger_routes import router as triggers
    from spool_gateway.web import install_dashboard

    app = FastAPI(
        title="Spool",
        version="0.1.0",
        description="Functions as a service for data and ML teams.",
    )
    app.state.gateway = gateway
    app.state.authenticate = Authenticator(gateway.catalog.principal)
    install_error_handlers(app)
    install_limits(app, gateway.settings)  # limits.py: 413, 400 (depth, NUL), 431
    document_errors(app)  # openapi_errors.py: the error answers in /openapi.json
    # `load` before `services`: GET /services/load is not a service id.
    for routes in (executions, router, packages, load, services, notifications, triggers):
        app.include_router(routes, prefix=API_PREFIX)
    app.include_router(secrets, prefix=API_PREFIX)
    app.include_router(identity, prefix=API_PREFIX)
    install_dashboard(app)

    @app.get("/livez", include_in_schema=False)
    async def livez() -> JSONResponse:
        """The process answers and none of its consumers was cancelled by the broker for
        good (bus/consumers.py): Kubernetes restarts it otherwise."""
        ok = gateway.bus.consuming
        return JSONResponse({"status": "ok" if ok else "failing"}, status_code=200 if ok else 503)

    @app.get("/readyz", include_in_schema=False)
    @app.get("/healthz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        """Ready to take requests: the bus is connected (the pool reconnects per query)."""
        ok = gateway.bus.is_connected
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "ok": ok}, status_code=200 if ok else 503
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus metrics of this process."""
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return app
