"""The bureau's own MongoDB: a journal of every event applied and, now and then, a
snapshot of the figures with the journal position it covers.

Each batch's events are appended to the journal before Faust may commit the batch's
offsets, so nothing acknowledged to Kafka is ever lost; the snapshot (several MB at
the demo's scale) is rewritten only once a minute and at a graceful stop. A restart
restores the latest snapshot and applies the journal past it; the journal's ids are
the applied set."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bson.binary import Binary
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, PyMongoError

from bureau.figures import BureauFigures
from runtime.adapters.events import decode_envelope

log = logging.getLogger(__name__)

SNAPSHOTS = "snapshots"
JOURNAL = "journal"
HISTORY = "headline_history"
LIVE = "live"
DUPLICATE_KEY = 11000

# One applied event: its id and its envelope as received.
Entry = tuple[str, bytes]


class BureauStore:
    def __init__(
        self, client: AsyncMongoClient, db: AsyncDatabase, snapshot_every_seconds: float = 60.0
    ) -> None:
        self._client = client
        self._db = db
        self._snapshot_every = snapshot_every_seconds
        self._journal_seq = 0
        self._snapshot_seq = 0
        self._snapshot_at = 0.0

    async def load(self) -> BureauFigures:
        """The figures as of the last event journaled, or empty ones on first start."""
        await self._db[JOURNAL].create_index([("seq", ASCENDING)])
        doc = await self._db[SNAPSHOTS].find_one({"_id": LIVE})
        covered, figures = 0, BureauFigures()
        if doc is not None:
            ids = self._db[JOURNAL].find({"seq": {"$lte": doc["journal_seq"]}}, {"_id": 1})
            try:
                figures = BureauFigures.restore(doc["state"], [d["_id"] async for d in ids])
                covered = doc["journal_seq"]
            except ValueError as error:
                # A snapshot this version cannot read (an earlier format): the journal
                # holds every event it was taken of, so the figures are rebuilt from it.
                log.warning(
                    "snapshot unreadable, rebuilding the figures from the journal",
                    extra={"error": str(error)},
                )
        newer = self._db[JOURNAL].find({"seq": {"$gt": covered}}).sort("seq", ASCENDING)
        async for entry in newer:
            figures.apply(decode_envelope(bytes(entry["envelope"])))
        last = await self._db[JOURNAL].find_one({}, {"seq": 1}, sort=[("seq", DESCENDING)])
        self._journal_seq = last["seq"] if last else 0
        self._snapshot_seq = covered
        self._snapshot_at = time.monotonic()
        return figures

    async def append(self, entries: Sequence[Entry]) -> None:
        """Make a batch's applied events durable; retries until it sticks, because the
        stream must not acknowledge the batch before."""
        documents = [
            {"_id": event_id, "seq": self._journal_seq + offset, "envelope": Binary(raw)}
            for offset, (event_id, raw) in enumerate(entries, start=1)
        ]
        await _until_written(lambda: self._insert(documents))
        self._journal_seq += len(documents)

    async def _insert(self, documents: list[dict[str, Any]]) -> None:
        try:
            await self._db[JOURNAL].insert_many(documents, ordered=False)
        except BulkWriteError as error:
            # A retry after a partly written attempt finds its own earlier entries.
            if any(e["code"] != DUPLICATE_KEY for e in error.details["writeErrors"]):
                raise

    async def snapshot(self, figures: BureauFigures, *, force: bool = False) -> bool:
        """Rewrite the snapshot when it is due (or forced) and the journal moved; say
        whether it was rewritten."""
        due = time.monotonic() - self._snapshot_at >= self._snapshot_every
        if self._journal_seq == self._snapshot_seq or not (due or force):
            return False
        document = {
            "state": figures.snapshot(),
            "journal_seq": self._journal_seq,
            "saved_at": datetime.now(UTC),
        }
        await _until_written(
            lambda: self._db[SNAPSHOTS].replace_one({"_id": LIVE}, document, upsert=True)
        )
        self._snapshot_seq = self._journal_seq
        self._snapshot_at = time.monotonic()
        return True

    async def record_headline(self, headline: dict[str, Any]) -> None:
        """A periodic point of the headline history (for reports over time)."""
        await self._db[HISTORY].insert_one({**headline, "at": datetime.now(UTC)})


async def _until_written(write: Any) -> None:
    delay = 0.2
    while True:
        try:
            await write()
            return
        except PyMongoError as error:
            log.warning("bureau store write failed; retrying", extra={"error": str(error)})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
