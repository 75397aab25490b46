"""Server-side waits: a request parks until its execution ends, woken by the status consumer."""

from __future__ import annotations

import asyncio
from collections import defaultdict


class Waiters:
    def __init__(self) -> None:
        self._events: dict[str, set[asyncio.Event]] = defaultdict(set)

    async def wait(self, execution_id: str, timeout: float) -> bool:
        """Wait until `wake(execution_id)` or the timeout; True if woken."""
        event = asyncio.Event()
        self._events[execution_id].add(event)
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
            return True
        except TimeoutError:
            return False
        finally:
            waiting = self._events.get(execution_id)
            if waiting is not None:
                waiting.discard(event)
                if not waiting:
                    del self._events[execution_id]

    def wake(self, execution_id: str) -> None:
        for event in self._events.get(execution_id, ()):
            event.set()
