"""The bureau's own MongoDB: the aggregates' snapshot with the stream positions it
covers, and the ids of every event applied, written together in one transaction."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from bureau.aggregates import Aggregates
from runtime.errors import Aborted
from runtime.mongo import run_in_transaction

log = logging.getLogger(__name__)

SNAPSHOTS = "snapshots"
APPLIED_EVENTS = "applied_events"
HISTORY = "headline_history"
LIVE = "live"

# (topic, partition) -> the next offset to apply.
Positions = dict[tuple[str, int], int]


@dataclass
class Restored:
    aggregates: Aggregates
    positions: Positions


class BureauStore:
    def __init__(self, client: AsyncMongoClient, db: AsyncDatabase) -> None:
        self._client = client
        self._db = db

    async def load(self) -> Restored:
        """The last persisted state, or an empty one on first start."""
        doc = await self._db[SNAPSHOTS].find_one({"_id": LIVE})
        if doc is None:
            return Restored(Aggregates(), {})
        ids = [d["_id"] async for d in self._db[APPLIED_EVENTS].find({}, {"_id": 1})]
        positions = {(p["topic"], p["partition"]): p["offset"] for p in doc["positions"]}
        return Restored(Aggregates.restore(doc["state"], ids), positions)

    async def save(self, aggregates: Aggregates, positions: Positions) -> None:
        """Persist the state and the positions it covers, retrying until it sticks: the
        stream does not move on (nor commit its offsets) before this returns."""
        new_ids = aggregates.take_new_event_ids()
        document: dict[str, Any] = {
            "state": aggregates.snapshot(),
            "positions": [
                {"topic": topic, "partition": partition, "offset": offset}
                for (topic, partition), offset in sorted(positions.items())
            ],
            "saved_at": datetime.now(UTC),
        }

        async def write(session: AsyncClientSession) -> None:
            if new_ids:
                await self._db[APPLIED_EVENTS].insert_many(
                    [{"_id": event_id} for event_id in new_ids], session=session
                )
            await self._db[SNAPSHOTS].replace_one(
                {"_id": LIVE}, document, upsert=True, session=session
            )

        delay = 0.2
        while True:
            try:
                await run_in_transaction(self._client, write)
                return
            except (PyMongoError, Aborted) as error:
                log.warning("saving aggregates failed; retrying", extra={"error": str(error)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def record_headline(self, headline: dict[str, Any]) -> None:
        """A periodic point of the headline history (for reports over time)."""
        await self._db[HISTORY].insert_one({**headline, "at": datetime.now(UTC)})
