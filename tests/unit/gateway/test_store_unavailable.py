"""While PostgreSQL is away (T17, T18): the API answers 503 with its JSON error and no stack
trace, and a bus handler waits with backoff before a delivery goes back to the queue."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from spool_common.bus.dispositions import Outcome
from spool_gateway.api import install_error_handlers
from spool_gateway.handlers import STORE_BACKOFF, STORE_RETRIES, patiently
from spool_gateway.openapi_errors import with_errors

DOWN: list[Exception] = [
    ConnectionRefusedError(111, "Connection refused"),
    asyncpg.CannotConnectNowError("the database system is shutting down"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.CrashShutdownError("terminating connection because of crash of another process"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.InternalClientError("cannot switch to state 11; another operation (2) is in progress"),
]


def _app(error: Exception) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/thing")
    async def thing() -> dict[str, str]:
        raise error

    return app


@pytest.fixture(params=DOWN, ids=lambda e: type(e).__name__)
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(request.param))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def test_a_store_outage_is_a_503_with_the_json_error_and_retry_after(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/thing")
    assert response.status_code == 503, response.text
    assert response.json() == {
        "error": "unavailable",
        "message": "the database is unavailable for now: retry later",
        "details": [],
    }
    assert response.headers["Retry-After"] == "1"


def test_every_operation_documents_the_503_and_its_retry_after() -> None:
    spec = with_errors({"paths": {"/api/v1/projects": {"get": {"responses": {}}}}})
    answer = spec["paths"]["/api/v1/projects"]["get"]["responses"]["503"]
    assert "database is unavailable" in answer["description"]
    assert "Retry-After" in answer["headers"]


class Flaky:
    """Fails transiently `failures` times, then answers HANDLED; records the waits."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.left = failures
        self.error = error or ConnectionRefusedError(111, "Connection refused")
        self.calls = 0
        self.waits: list[float] = []

    async def work(self) -> Outcome:
        self.calls += 1
        if self.left:
            self.left -= 1
            raise self.error
        return Outcome.HANDLED

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.mark.parametrize("failures", [0, 1, 3, STORE_RETRIES])
async def test_a_transient_failure_is_tried_again_after_the_backoff(failures: int) -> None:
    flaky = Flaky(failures)
    assert await patiently(flaky.work, rand=lambda: 0.5, sleep=flaky.sleep) is Outcome.HANDLED
    assert flaky.calls == failures + 1
    assert flaky.waits == [STORE_BACKOFF.delay(n, 0.5) for n in range(1, failures + 1)]


async def test_past_the_retries_the_failure_is_raised_for_the_delivery_to_be_requeued() -> None:
    flaky = Flaky(STORE_RETRIES + 1)
    with pytest.raises(ConnectionRefusedError):
        await patiently(flaky.work, rand=lambda: 0.5, sleep=flaky.sleep)
    assert flaky.calls == STORE_RETRIES + 1
    assert len(flaky.waits) == STORE_RETRIES


async def test_a_permanent_failure_is_raised_at_once() -> None:
    flaky = Flaky(1, ValueError("a bug, not an outage"))
    with pytest.raises(ValueError, match="a bug"):
        await patiently(flaky.work, rand=lambda: 0.5, sleep=flaky.sleep)
    assert (flaky.calls, flaky.waits) == (1, [])
