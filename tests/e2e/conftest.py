"""One platform per test module: its own namespace, schemas, port and state directory."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from support.platform import LocalPlatform, running_platform


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(
    tmp_path_factory: pytest.TempPathFactory, servers: None
) -> AsyncIterator[LocalPlatform]:
    async with running_platform(tmp_path_factory.mktemp("platform")) as p:
        yield p
