"""Process entry helper: uvloop, logging, and a clean exit on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

import uvloop

from spool_common.logging import configure_logging
from spool_common.settings import CommonSettings

T = TypeVar("T")
S = TypeVar("S", bound=CommonSettings)


def run_service(name: str, main: Callable[[asyncio.Event, S], Awaitable[T]], settings: S) -> T:
    """Run `main(stop, settings)` on uvloop and return its result; `stop` is set on SIGTERM
    or SIGINT. Logging is configured here, once per process."""
    configure_logging(name, settings.log_level, settings.log_format)

    async def _entry() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await main(stop, settings)

    return uvloop.run(_entry())
