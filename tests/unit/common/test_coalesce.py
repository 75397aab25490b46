"""The adaptive micro-batcher: a lone item goes at once, items that arrive during a write go
together in the next one, errors reach every caller of their batch."""

import asyncio

import pytest

from spool_common.coalesce import Coalescer


class Writer:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_on: int | None = None

    async def flush(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        await self.gate.wait()
        if self.fail_on in items:
            raise ValueError(f"cannot write {self.fail_on}")
        return [i * 10 for i in items]


async def test_a_lone_item_is_written_at_once_alone() -> None:
    writer = Writer()
    coalescer = Coalescer(writer.flush)
    assert await coalescer.submit(1) == 10
    assert writer.batches == [[1]]


async def test_items_arriving_during_a_write_go_together_next_in_order() -> None:
    writer = Writer()
    coalescer = Coalescer(writer.flush)
    writer.gate.clear()
    first = asyncio.create_task(coalescer.submit(1))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(coalescer.submit(i)) for i in range(2, 7)]
    await asyncio.sleep(0)
    writer.gate.set()
    assert await asyncio.gather(first, *rest) == [10, 20, 30, 40, 50, 60]
    assert writer.batches == [[1], [2, 3, 4, 5, 6]]


async def test_batches_are_capped() -> None:
    writer = Writer()
    coalescer = Coalescer(writer.flush, max_batch=2)
    assert await coalescer.submit_many([1, 2, 3, 4, 5]) == [10, 20, 30, 40, 50]
    assert writer.batches == [[1, 2], [3, 4], [5]]


async def test_a_failed_write_fails_its_batch_only() -> None:
    writer = Writer()
    coalescer = Coalescer(writer.flush)
    writer.gate.clear()
    writer.fail_on = 3
    first = asyncio.create_task(coalescer.submit(1))
    await asyncio.sleep(0)
    second = [asyncio.create_task(coalescer.submit(i)) for i in (2, 3)]
    await asyncio.sleep(0)
    writer.gate.set()
    assert await first == 10
    for task in second:
        with pytest.raises(ValueError, match="cannot write 3"):
            await task
    assert await coalescer.submit(4) == 40  # the writer goes on


async def test_a_caller_that_stops_waiting_does_not_stop_the_others() -> None:
    writer = Writer()
    coalescer = Coalescer(writer.flush)
    writer.gate.clear()
    gone = asyncio.create_task(coalescer.submit(1))
    stays = asyncio.create_task(coalescer.submit(2))
    await asyncio.sleep(0)
    gone.cancel()
    writer.gate.set()
    assert await stays == 20
    assert writer.batches == [[1, 2]]  # submitted is written
