"""Fixtures shared by the integration tests: a connected bus in a namespace of the test's own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from spool_common.bus.amqp import Bus
from spool_common.bus.topology import Topology


@pytest.fixture
async def bus(amqp_url: str, namespace: str, broker_cleanup: list[str]) -> AsyncIterator[Bus]:
    """Connected, with the static topology applied; service queues for the service ids
    `s1` and `svc` are removed afterwards too."""
    b = Bus(amqp_url, Topology(namespace), name=f"test-{namespace}", publish_timeout=5)
    await b.connect()
    broker_cleanup.extend(b.topology.service_queue(s).name for s in ("s1", "svc"))
    yield b
    await b.close()
