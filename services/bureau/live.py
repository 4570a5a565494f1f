"""The live figures every reader shares, and a change signal that WatchStats streams
and the dashboard follow."""

from __future__ import annotations

import asyncio

from bureau.figures import BureauFigures


class LiveStats:
    def __init__(self, figures: BureauFigures) -> None:
        self.figures = figures
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
