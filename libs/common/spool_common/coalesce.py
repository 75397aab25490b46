"""Adaptive micro-batching: many concurrent callers, one write.

A `Coalescer` runs at most one flush at a time. A caller whose item arrives while the writer
is idle is flushed at once, alone, so a lone request pays no batching window; items that
arrive while a flush is in flight wait for it and then go together in the next. Under load the
batches grow by themselves (up to `max_batch`), which is what turns one statement per row into
one statement per batch (see docs/benchmarks.md).

`flush(items)` returns one result per item, in order, or raises: then every caller of that
batch gets the exception. A caller that stops waiting does not take its item back: once
submitted it is written (as a request cancelled after its commit would be).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    def __init__(
        self, flush: Callable[[list[T]], Awaitable[Sequence[R]]], max_batch: int = 500
    ) -> None:
        self._flush = flush
        self.max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.flushes = 0  # batches written, for tests and metrics

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())
        return await future

    async def submit_many(self, items: Sequence[T]) -> list[R]:
        """Several items of one caller, kept in order (they may span batches)."""
        return list(await asyncio.gather(*(self.submit(item) for item in items)))

    async def _write(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                self.flushes += 1
                await self._write_batch(batch)
        except BaseException:  # cancelled (shutdown): nobody is left to write the rest
            _settle(self._pending, RuntimeError("the writer was stopped"))
            self._pending.clear()
            raise

    async def _write_batch(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._flush([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"flush returned {len(results)} results for {len(batch)}")
        except Exception as e:
            _settle(batch, e)  # every caller of the batch learns why
            return
        except BaseException:
            _settle(batch, RuntimeError("the writer was stopped"))
            raise
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


def _settle(waiting: list[tuple[T, asyncio.Future[R]]], error: BaseException) -> None:
    for _, future in waiting:
        if not future.done():
            future.set_exception(error)
