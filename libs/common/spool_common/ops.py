"""The ops endpoints every Spool process serves: liveness `/livez`, readiness `/readyz` and
Prometheus metrics `/metrics`, on a small aiohttp server of their own.

The process says how it is with two callables (no I/O in them; they read its state):
`live()` is false only when it should be restarted; `ready()` is false while it should get
no work (starting, draining) and may add fields to the JSON body, e.g. `{"running": 2}`.
With port 0 the server takes any free port and writes it to a port file (`ops.port` in the
working directory, for the process driver), atomically, and removes it on exit.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from spool_common.logging import get_logger
from spool_common.settings import CommonSettings

log = get_logger(__name__)

PORT_FILE: Final = "ops.port"
SHUTDOWN_GRACE: Final = 2.0  # seconds an in-flight probe or scrape may finish on exit

Readiness = bool | tuple[bool, Mapping[str, Any]]


def _always_live() -> bool:
    return True


@asynccontextmanager
async def serve_ops(
    host: str,
    port: int,
    *,
    ready: Callable[[], Readiness],
    live: Callable[[], bool] = _always_live,
    registry: CollectorRegistry = REGISTRY,
    port_file: Path | None = None,
) -> AsyncIterator[int]:
    """Serve the ops endpoints on `host:port` (0: any free port) and yield the bound port.

    `host` should be an address ("127.0.0.1", "0.0.0.0"): a name that resolves to several
    addresses would bind several sockets, each on its own port when `port` is 0.
    """
    runner = web.AppRunner(
        _app(ready, live, registry), access_log=None, shutdown_timeout=SHUTDOWN_GRACE
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound = int(runner.addresses[0][1])
        if port_file is not None:
            _write_atomically(port_file, f"{bound}\n")
        log.info("ops_serving", host=host, port=bound)
        try:
            yield bound
        finally:
            if port_file is not None:
                # One tiny unlink at shutdown (as the write at start): not worth a thread.
                port_file.unlink(missing_ok=True)  # noqa: ASYNC240
    finally:
        await runner.cleanup()


def ops_from_settings(
    settings: CommonSettings,
    *,
    ready: Callable[[], Readiness],
    live: Callable[[], bool] = _always_live,
    port_file: Path | None = None,
) -> AbstractAsyncContextManager[int | None]:
    """`serve_ops` as the settings say: not at all when `ops_port` is None (yields None);
    with port 0, the bound port written to `port_file` (default: `ops.port` in the working
    directory, which is an agent's own; control-plane processes name theirs)."""
    if settings.ops_port is None:
        return contextlib.nullcontext(None)
    if settings.ops_port != 0:
        port_file = None
    elif port_file is None:
        port_file = Path.cwd() / PORT_FILE
    return serve_ops(
        settings.ops_host, settings.ops_port, ready=ready, live=live, port_file=port_file
    )


def _app(
    ready: Callable[[], Readiness], live: Callable[[], bool], registry: CollectorRegistry
) -> web.Application:
    async def livez(_: web.Request) -> web.Response:
        ok = live()
        return web.json_response({"status": "ok" if ok else "failing"}, status=_code(ok))

    async def readyz(_: web.Request) -> web.Response:
        ok, extra = _readiness(ready())
        body = {**extra, "status": "ok" if ok else "not ready"}
        return web.json_response(body, status=_code(ok))

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


def _readiness(result: Readiness) -> tuple[bool, Mapping[str, Any]]:
    if isinstance(result, tuple):
        return bool(result[0]), result[1]
    return bool(result), {}


def _code(ok: bool) -> int:
    return 200 if ok else 503


def _write_atomically(path: Path, text: str) -> None:
    """Readers see the old file or the whole new one, never a half-written port."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
