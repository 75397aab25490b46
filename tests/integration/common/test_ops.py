"""The ops server on real sockets: liveness, readiness, Prometheus metrics and the port file
the process driver reads."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, Counter

from spool_common import metrics
from spool_common.messages import NotificationType
from spool_common.models import ExecutionStatus
from spool_common.ops import PORT_FILE, ops_from_settings, serve_ops
from spool_common.settings import CommonSettings

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"


async def _get(port: int, path: str) -> tuple[int, str, str]:
    """Status, content type and body of one GET, on a connection of its own."""
    async with aiohttp.ClientSession() as session, session.get(f"http://{HOST}:{port}{path}") as r:
        return r.status, r.headers["Content-Type"], await r.text()


async def _json(port: int, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"http://{HOST}:{port}{path}") as r:
        return r.status, await r.json()


async def _refused(port: int) -> bool:
    try:
        await _get(port, "/livez")
    except aiohttp.ClientConnectionError:
        return True
    return False


async def test_port_zero_binds_a_free_port_and_writes_it_to_the_port_file(tmp_path: Path) -> None:
    port_file = tmp_path / PORT_FILE
    async with serve_ops(HOST, 0, ready=lambda: True, port_file=port_file) as port:
        assert port > 0
        assert port_file.read_text() == f"{port}\n"
        # No temp file left behind. (A test listing its own temp dir; blocking is harmless.)
        assert [p.name for p in tmp_path.iterdir()] == [PORT_FILE]  # noqa: ASYNC240
        assert (await _get(port, "/livez"))[0] == 200
    assert not port_file.exists()


async def test_liveness_and_readiness_follow_the_callables() -> None:
    state = {"live": True, "ready": False}
    async with serve_ops(HOST, 0, ready=lambda: state["ready"], live=lambda: state["live"]) as port:
        assert await _json(port, "/livez") == (200, {"status": "ok"})
        assert await _json(port, "/readyz") == (503, {"status": "not ready"})
        state["ready"] = True
        assert await _json(port, "/readyz") == (200, {"status": "ok"})
        state["live"] = False
        assert await _json(port, "/livez") == (503, {"status": "failing"})


async def test_readiness_carries_the_extra_fields() -> None:
    state: dict[str, Any] = {"ready": True, "running": 2}

    def ready() -> tuple[bool, dict[str, Any]]:
        return state["ready"], {"running": state["running"], "status": "ignored"}

    async with serve_ops(HOST, 0, ready=ready) as port:
        assert await _json(port, "/readyz") == (200, {"running": 2, "status": "ok"})
        state.update(ready=False, running=0)  # draining: no new work, says how much it holds
        assert await _json(port, "/readyz") == (503, {"running": 0, "status": "not ready"})


async def test_metrics_exposes_a_counter_that_was_incremented() -> None:
    registry = CollectorRegistry()
    name = f"spool_test_{uuid.uuid4().hex[:8]}"
    counter = Counter(name, "A counter of this test's own.", ["service_id"], registry=registry)
    async with serve_ops(HOST, 0, ready=lambda: True, registry=registry) as port:
        counter.labels("svc-a").inc(3)
        status, content_type, body = await _get(port, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    assert f'{name}_total{{service_id="svc-a"}} 3.0' in body.splitlines()


async def test_the_shared_metrics_are_served_and_a_deleted_service_is_forgotten() -> None:
    service = f"svc-{uuid.uuid4().hex[:8]}"
    created = datetime.fromisoformat("2024-05-01T12:00:00+00:00")
    ended = datetime.fromisoformat("2024-05-01T12:00:00.300000+00:00")
    metrics.execution_changed(service, ExecutionStatus.CREATED, created, created)
    metrics.execution_changed(service, ExecutionStatus.SUCCESS, created, ended)
    metrics.set_queue(service, depth=7, in_flight=2)
    metrics.set_replicas(service, desired=3, ready=2, draining=1, starting=4)
    metrics.replica_restarted(service, NotificationType.OOM_KILLED)
    async with serve_ops(HOST, 0, ready=lambda: True) as port:
        lines = (await _get(port, "/metrics"))[2].splitlines()
        for line in (
            f'spool_executions_total{{service_id="{service}",status="created"}} 1.0',
            f'spool_executions_total{{service_id="{service}",status="success"}} 1.0',
            f'spool_execution_latency_seconds_bucket{{le="0.25",service_id="{service}"}} 0.0',
            f'spool_execution_latency_seconds_bucket{{le="0.5",service_id="{service}"}} 1.0',
            f'spool_queue_depth{{service_id="{service}"}} 7.0',
            f'spool_executions_in_flight{{service_id="{service}"}} 2.0',
            f'spool_replicas{{service_id="{service}",state="draining"}} 1.0',
            f'spool_replicas{{service_id="{service}",state="starting"}} 4.0',
            f'spool_replica_restarts_total{{reason="OOMKilled",service_id="{service}"}} 1.0',
        ):
            assert line in lines, line
        metrics.forget_service(service)
        body = (await _get(port, "/metrics"))[2]
    assert service not in body


async def test_the_server_stops_on_exit_even_with_a_client_connected() -> None:
    async with aiohttp.ClientSession() as session:  # keeps its connection alive
        started = time.monotonic()
        async with (
            serve_ops(HOST, 0, ready=lambda: True) as port,
            session.get(f"http://{HOST}:{port}/livez") as r,
        ):
            assert r.status == 200
        assert time.monotonic() - started < 1.5
        assert await _refused(port)


async def test_requests_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with serve_ops(HOST, 0, ready=lambda: True) as port:
        for path in ("/livez", "/readyz", "/metrics"):
            await _get(port, path)
    assert not [r for r in caplog.records if r.name.startswith("aiohttp")]


async def test_settings_choose_whether_and_where_to_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with ops_from_settings(CommonSettings(ops_port=None), ready=lambda: True) as port:
        assert port is None
        assert not (tmp_path / PORT_FILE).exists()
    async with ops_from_settings(CommonSettings(ops_port=0), ready=lambda: False) as port:
        assert port is not None
        assert (tmp_path / PORT_FILE).read_text() == f"{port}\n"
        assert (await _json(port, "/readyz"))[0] == 503
