"""The bureau's own MongoDB: the aggregates' snapshot and the ids of every event it
holds, written together in one transaction."""

from __future__ import annotations

import asyncio
import logging
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


class BureauStore:
    def __init__(self, client: AsyncMongoClient, db: AsyncDatabase) -> None:
        self._client = client
        self._db = db

    async def load(self) -> Aggregates:
        """The last persisted state, or an empty one on first start."""
        doc = await self._db[SNAPSHOTS].find_one({"_id": LIVE})
        if doc is None:
            return Aggregates()
        ids = [d["_id"] async for d in self._db[APPLIED_EVENTS].find({}, {"_id": 1})]
        return Aggregates.restore(doc["state"], ids)

    async def save(self, aggregates: Aggregates) -> None:
        """Persist the state with the ids it holds, retrying until it sticks: the stream
        does not move on (nor commit its offsets) before this returns."""
        new_ids = aggregates.take_new_event_ids()
        document: dict[str, Any] = {"state": aggregates.snapshot(), "saved_at": datetime.now(UTC)}

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
