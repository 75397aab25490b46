"""The throw-away PostgreSQL cluster of the T17/T18 tests (support/pg_cluster.py): it answers,
keeps its data through a fast and an immediate restart, kills other backends on request, and
leaves neither a process nor a directory behind."""

from __future__ import annotations

import asyncpg
import pytest
from support.ledger import is_alive
from support.pg_cluster import pg_cluster

pytestmark = pytest.mark.integration


@pytest.mark.timeout(180)
async def test_a_cluster_answers_survives_restarts_and_is_removed_after() -> None:
    async with pg_cluster() as cluster:
        conn = await asyncpg.connect(cluster.url)
        await conn.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (1)")
        assert await cluster.terminate_backends() == 1
        # The terminated backend is gone (how asyncpg says so depends on when it read the FATAL).
        gone = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)
        with pytest.raises(gone):
            await conn.fetchval("SELECT 1")
        await conn.close()

        for mode in ("fast", "immediate"):
            before = cluster.postmaster_pid()
            await cluster.restart(mode)
            assert cluster.postmaster_pid() not in (None, before)
            conn = await asyncpg.connect(cluster.url)
            assert await conn.fetchval("SELECT count(*) FROM kept") == 1, mode
            await conn.close()
        pids = cluster.pids()
        directory = cluster.directory
    assert pids
    assert not [p for p in pids if is_alive(p)], "a process of the cluster survived"
    assert not directory.exists()
