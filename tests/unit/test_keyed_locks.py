"""The keyed locks the use-case runner takes turns on (one_at_a_time): requests on one
key, such as one warehouse's bookings, run one at a time; other keys in parallel."""

from __future__ import annotations

import asyncio
import gc

from runtime.adapters.locks import KeyedLocks


async def test_calls_on_one_key_run_one_at_a_time_others_in_parallel() -> None:
    locks = KeyedLocks()
    inside: dict[str, int] = {"A": 0, "B": 0}
    most: dict[str, int] = {"A": 0, "B": 0}
    both_at_once = False
    # Each holder waits inside its lock until a second call is inside too. With one lock
    # per key that partner can only hold the other key; two holders of one key would
    # meet here instead and show in ``most``; one lock shared by both keys would never
    # let a partner in (the timeout below turns that into a failure, not a hang).
    partners = asyncio.Barrier(2)

    async def call(key: str) -> None:
        nonlocal both_at_once
        async with locks.hold(key):
            inside[key] += 1
            most[key] = max(most[key], inside[key])
            both_at_once = both_at_once or (inside["A"] > 0 and inside["B"] > 0)
            await partners.wait()
            inside[key] -= 1

    async with asyncio.timeout(5):
        await asyncio.gather(*(call(key) for key in "AAAABBBB"))
    assert most == {"A": 1, "B": 1}
    assert both_at_once


async def test_a_waiting_call_enters_as_soon_as_the_holder_leaves() -> None:
    locks = KeyedLocks()
    holding, release = asyncio.Event(), asyncio.Event()
    order: list[str] = []

    async def holder() -> None:
        async with locks.hold("A"):
            holding.set()
            await release.wait()
            order.append("holder leaves")

    async def waiter() -> None:
        async with locks.hold("A"):
            order.append("waiter enters")

    first = asyncio.create_task(holder())
    await holding.wait()
    second = asyncio.create_task(waiter())
    # Another key is free meanwhile.
    async with asyncio.timeout(5), locks.hold("B"):
        pass
    release.set()
    async with asyncio.timeout(5):
        await asyncio.gather(first, second)
    assert order == ["holder leaves", "waiter enters"]


async def test_a_lock_is_forgotten_once_nobody_holds_or_awaits_it() -> None:
    locks = KeyedLocks()
    async with locks.hold("A"):
        assert list(locks._locks) == ["A"]
    gc.collect()
    assert list(locks._locks) == []
