"""One platform per test module: its own namespace, schemas, port and state directory. A
module may override `platform` (other settings); `client` and `ledgers` follow it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from support.ledger import ledger_directory
from support.platform import LocalPlatform, running_platform


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(
    tmp_path_factory: pytest.TempPathFactory, servers: None
) -> AsyncIterator[LocalPlatform]:
    async with running_platform(tmp_path_factory.mktemp("platform")) as p:
        yield p


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(platform: LocalPlatform) -> AsyncIterator[httpx.AsyncClient]:
    async with platform.client() as c:
        yield c


@pytest.fixture(scope="module")
def ledgers() -> Iterator[Path]:
    """Where test functions record their runs (support/ledger.py)."""
    with ledger_directory() as path:
        yield path
