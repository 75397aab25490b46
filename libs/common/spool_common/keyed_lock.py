"""A lock per key that lives only while someone holds or waits for it."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager


class KeyedLocks:
    """Serialises work on the same key, first come, first served, and lets work on different
    keys run concurrently. `hold_many` takes several keys at once: its place in the line of
    every key is taken the moment it is called, so work that came first stays first on every
    key it shares with later work, and two holders can never wait for each other. Entries are
    dropped as soon as nobody uses them."""

    def __init__(self) -> None:
        self._lines: dict[str, deque[asyncio.Future[None]]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        async with self.hold_many((key,)):
            yield

    @asynccontextmanager
    async def hold_many(self, keys: Iterable[str]) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        tickets: list[tuple[str, asyncio.Future[None]]] = []
        for key in dict.fromkeys(keys):  # once each, in a stable order
            ticket: asyncio.Future[None] = loop.create_future()
            line = self._lines.setdefault(key, deque())
            if not line:
                ticket.set_result(None)  # nobody ahead: ours at once
            line.append(ticket)
            tickets.append((key, ticket))
        try:
            for _, ticket in tickets:
                await asyncio.shield(ticket)
            yield
        finally:
            for key, ticket in tickets:
                self._leave(key, ticket)

    def _leave(self, key: str, ticket: asyncio.Future[None]) -> None:
        line = self._lines[key]
        was_first = line[0] is ticket
        line.remove(ticket)
        ticket.cancel()  # a no-op once granted
        if not line:
            del self._lines[key]
        elif was_first and not line[0].done():
            line[0].set_result(None)  # the next in line goes

    def __len__(self) -> int:
        return len(self._lines)
