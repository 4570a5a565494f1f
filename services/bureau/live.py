"""The live figures every reader shares: the aggregates and a change signal that
WatchStats streams and the dashboard follow."""

from __future__ import annotations

import asyncio

from bureau.aggregates import Aggregates


class LiveStats:
    def __init__(self, aggregates: Aggregates) -> None:
        self.aggregates = aggregates
        self.version = 0
        self._changed = asyncio.Condition()

    async def changed(self) -> None:
        """Call after applying events: wakes every watcher."""
        async with self._changed:
            self.version += 1
            self._changed.notify_all()

    async def wait_past(self, version: int) -> int:
        """Wait until the figures moved beyond ``version``; return the new version."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.version > version)
            return self.version
