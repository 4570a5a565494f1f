"""The per-warehouse locks that keep one process's bookings of a warehouse in line."""

from __future__ import annotations

import asyncio
import gc

from warehouse.grpc_api import WarehouseLocks


async def test_calls_on_one_warehouse_run_one_at_a_time_others_in_parallel() -> None:
    locks = WarehouseLocks()
    inside: dict[str, int] = {"A": 0, "B": 0}
    most: dict[str, int] = {"A": 0, "B": 0}
    both_at_once = False

    async def call(code: str) -> None:
        nonlocal both_at_once
        async with locks.hold(code):
            inside[code] += 1
            most[code] = max(most[code], inside[code])
            both_at_once = both_at_once or (inside["A"] > 0 and inside["B"] > 0)
            await asyncio.sleep(0.01)
            inside[code] -= 1

    await asyncio.gather(*(call(code) for code in "AAAABBBB"))
    assert most == {"A": 1, "B": 1}
    assert both_at_once


async def test_a_lock_is_forgotten_once_nobody_holds_or_awaits_it() -> None:
    locks = WarehouseLocks()
    async with locks.hold("A"):
        assert list(locks._locks) == ["A"]
    gc.collect()
    assert list(locks._locks) == []
