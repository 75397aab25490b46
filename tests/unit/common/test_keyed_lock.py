import asyncio

import pytest

from spool_common.keyed_lock import KeyedLocks


async def test_same_key_runs_in_arrival_order_and_other_keys_run_alongside() -> None:
    locks = KeyedLocks()
    order: list[str] = []
    release = asyncio.Event()

    async def work(key: str, name: str, wait: bool) -> None:
        async with locks.hold(key):
            order.append(f"start {name}")
            if wait:
                await release.wait()
            order.append(f"end {name}")

    first = asyncio.create_task(work("a", "a1", wait=True))
    second = asyncio.create_task(work("a", "a2", wait=False))
    other = asyncio.create_task(work("b", "b1", wait=False))
    await other
    assert order == ["start a1", "start b1", "end b1"]
    release.set()
    await asyncio.gather(first, second)
    assert order[3:] == ["end a1", "start a2", "end a2"]
    assert len(locks) == 0


async def test_an_error_inside_releases_the_key() -> None:
    locks = KeyedLocks()

    async def boom() -> None:
        async with locks.hold("k"):
            raise ValueError("x")

    with pytest.raises(ValueError, match="x"):
        await boom()
    async with locks.hold("k"):
        assert len(locks) == 1
    assert len(locks) == 0
