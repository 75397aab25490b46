"""One platform per test module: its own namespace, schemas, port and state directory."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from support.broker import delete_namespace, queues_with_prefix
from support.platform import LocalPlatform
from support.servers import AMQP_URL, DATABASE_URL


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(
    tmp_path_factory: pytest.TempPathFactory, servers: None
) -> AsyncIterator[LocalPlatform]:
    namespace = f"e{uuid.uuid4().hex[:10]}"
    p = LocalPlatform(tmp_path_factory.mktemp("platform"), namespace, AMQP_URL, DATABASE_URL)
    try:
        await p.start()
        yield p
    finally:
        await p.stop()
        queues = await asyncio.to_thread(queues_with_prefix, f"{namespace}.")
        await delete_namespace(AMQP_URL, namespace, queues)
