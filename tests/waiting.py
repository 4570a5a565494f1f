"""Waiting for asynchronous effects without fixed sleeps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]], *, equals: T, within_seconds: float, every: float = 0.1
) -> T:
    """Probe until it returns ``equals``; fail with the last value seen when time is up."""
    deadline = time.monotonic() + within_seconds
    value = await probe()
    while value != equals:
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"expected {equals!r} within {within_seconds} s, last saw {value!r}"
            )
        await asyncio.sleep(every)
        value = await probe()
    return value
