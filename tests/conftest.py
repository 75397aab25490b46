"""Shared fixtures. Integration and end-to-end tests use the real RabbitMQ and PostgreSQL on
127.0.0.1; when either is missing the run fails (never skips): `make test` starts them first."""

from __future__ import annotations

import asyncio
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support.servers import AMQP_URL, DATABASE_URL


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def servers() -> None:
    missing = [
        name for name, port in (("RabbitMQ", 5672), ("PostgreSQL", 5432)) if not _answers(port)
    ]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not answering on 127.0.0.1; run `make test`, which starts "
            "them (scripts/ensure-servers.sh). Integration tests never skip.",
            pytrace=False,
        )


_NAMESPACES: set[str] = set()  # every test namespace of this session, swept at its end


@pytest.fixture
def namespace() -> str:
    """A bus namespace and schema suffix of this test's own."""
    name = f"t{uuid.uuid4().hex[:10]}"
    _NAMESPACES.add(name)
    return name


@pytest.fixture(scope="session", autouse=True)
def sweep_test_queues() -> Iterator[None]:
    """After the session, delete the queues any test namespace left on the shared broker:
    `broker_cleanup` knows a namespace's static queues, not the per-service ones a gateway
    declared. One listing for the whole session."""
    yield
    if not _NAMESPACES or not _answers(5672):
        return
    from support.broker import delete_queues, queues_with_prefix

    left = [q for q in queues_with_prefix("t") if q.split(".", 1)[0] in _NAMESPACES]
    asyncio.run(delete_queues(AMQP_URL, left))


@pytest.fixture
def amqp_url(servers: None) -> str:
    return AMQP_URL


@pytest.fixture
def database_url(servers: None) -> str:
    return DATABASE_URL


@pytest.fixture
async def broker_cleanup(amqp_url: str, namespace: str) -> AsyncIterator[list[str]]:
    """Queues and exchanges named `<namespace>.*` are deleted after the test."""
    from support.broker import delete_namespace

    extra: list[str] = []
    yield extra
    await delete_namespace(amqp_url, namespace, extra)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line per fault run of the reliability suite (support/faults.py); under `make
    reliability` also the markdown table, written where SPOOL_RELIABILITY_REPORT says."""
    import os

    from support.faults import RECORDED, REPORT_ENV, table

    if not RECORDED:
        return
    terminalreporter.section("fault runs (reliability suite)")
    for run in RECORDED:
        terminalreporter.write_line(run.line())
    target = os.environ.get(REPORT_ENV)
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_text(table(RECORDED))
        terminalreporter.write_line(f"table written to {target}")
