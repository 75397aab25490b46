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


async def test_hold_many_keeps_arrival_order_on_every_shared_key() -> None:
    """A holder of several keys that came first stays first on each of them, even while it
    waits for a key that a third holder has (sequential locking would let the later one
    overtake it on the free key)."""
    locks = KeyedLocks()
    order: list[str] = []
    release = asyncio.Event()

    async def work(keys: tuple[str, ...], name: str, wait: bool = False) -> None:
        async with locks.hold_many(keys):
            order.append(name)
            if wait:
                await release.wait()

    blocker = asyncio.create_task(work(("a",), "blocker", wait=True))
    await asyncio.sleep(0)
    first = asyncio.create_task(work(("a", "b"), "first"))
    await asyncio.sleep(0)
    later = asyncio.create_task(work(("b",), "later"))
    await asyncio.sleep(0.01)
    assert order == ["blocker"]  # `later` waits behind `first` on b
    release.set()
    await asyncio.gather(blocker, first, later)
    assert order == ["blocker", "first", "later"]
    assert len(locks) == 0


async def test_hold_many_holders_never_wait_for_each_other() -> None:
    locks = KeyedLocks()
    done: list[int] = []

    async def work(i: int, keys: tuple[str, ...]) -> None:
        async with locks.hold_many(keys):
            await asyncio.sleep(0)
            done.append(i)

    key_sets = [("a", "b"), ("b", "a"), ("c", "a"), ("b", "c"), ("a",), ("c", "b", "a")] * 20
    await asyncio.wait_for(
        asyncio.gather(*(work(i, keys) for i, keys in enumerate(key_sets))), timeout=5
    )
    assert sorted(done) == list(range(len(key_sets)))
    assert len(locks) == 0


async def test_a_cancelled_waiter_gives_its_place_up() -> None:
    locks = KeyedLocks()
    release = asyncio.Event()
    order: list[str] = []

    async def work(keys: tuple[str, ...], name: str, wait: bool = False) -> None:
        async with locks.hold_many(keys):
            order.append(name)
            if wait:
                await release.wait()

    holder = asyncio.create_task(work(("a",), "holder", wait=True))
    await asyncio.sleep(0)
    cancelled = asyncio.create_task(work(("a", "b"), "cancelled"))
    await asyncio.sleep(0)
    after = asyncio.create_task(work(("b",), "after"))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.wait_for(after, 1)  # b was only waiting for the cancelled holder
    release.set()
    await holder
    assert order == ["holder", "after"]
    assert len(locks) == 0
