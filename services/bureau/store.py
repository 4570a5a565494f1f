"""The bureau's own MongoDB: a journal of every event applied and, now and then, a
snapshot of the figures with the journal position it covers.

Each batch's events are appended to the journal before Faust may commit the batch's
offsets, so nothing acknowledged to Kafka is ever lost; the snapshot (several MB at
the demo's scale) is rewritten only once a minute and at a graceful stop. A restart
restores the latest snapshot and applies the journal past it; the journal's ids are
the applied set.

A batch is journaled as few documents, each holding a run of consecutive events (their
ids and envelopes), not one document per event: the embedded server's cost is per
document and per index entry, and a batch of 2,000 events took 0.6 s one by one. Each
run's ``_id`` is the journal position of its first event, so a retried write finds its
own earlier runs; ``seq`` is the position of its last, and a snapshot, taken between
batches, never covers part of a run. Journals written one document per event (``_id``
the event id, ``seq`` and ``envelope``) are still read."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

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
# A run's envelopes stay under this many bytes: far below MongoDB's 16 MiB document limit.
RUN_BYTES = 4 * 1024 * 1024


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
            runs = self._db[JOURNAL].find({"seq": {"$lte": doc["journal_seq"]}}, {"event_ids": 1})
            ids = [
                event_id async for run in runs for event_id in run.get("event_ids", (run["_id"],))
            ]
            try:
                figures = BureauFigures.restore(doc["state"], ids)
                covered = doc["journal_seq"]
            except ValueError as error:
                # A snapshot this version cannot read (an earlier format): the journal
                # holds every event it was taken of, so the figures are rebuilt from it.
                log.warning(
                    "snapshot unreadable, rebuilding the figures from the journal",
                    extra={"error": str(error)},
                )
        newer = self._db[JOURNAL].find({"seq": {"$gt": covered}}).sort("seq", ASCENDING)
        async for run in newer:
            for envelope in run.get("envelopes", (run.get("envelope"),)):
                figures.apply(decode_envelope(bytes(envelope)))
        last = await self._db[JOURNAL].find_one({}, {"seq": 1}, sort=[("seq", DESCENDING)])
        self._journal_seq = last["seq"] if last else 0
        self._snapshot_seq = covered
        self._snapshot_at = time.monotonic()
        return figures

    async def append(self, entries: Sequence[Entry]) -> None:
        """Make a batch's applied events durable; retries until it sticks, because the
        stream must not acknowledge the batch before."""
        documents = list(journal_runs(entries, self._journal_seq))
        await _until_written(lambda: self._insert(documents))
        self._journal_seq += len(entries)

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


def journal_runs(entries: Sequence[Entry], journal_seq: int) -> Iterator[dict[str, Any]]:
    """The journal documents of ``entries`` appended after position ``journal_seq``."""
    start, size = 0, 0
    for end, (_, raw) in enumerate(entries):
        if size and size + len(raw) > RUN_BYTES:
            yield _run(entries[start:end], journal_seq + start)
            start, size = end, 0
        size += len(raw)
    if start < len(entries):
        yield _run(entries[start:], journal_seq + start)


def _run(entries: Sequence[Entry], before: int) -> dict[str, Any]:
    # bytes are stored as BSON binary (subtype 0) and read back as bytes.
    return {
        "_id": before + 1,
        "seq": before + len(entries),
        "event_ids": [event_id for event_id, _ in entries],
        "envelopes": [raw for _, raw in entries],
    }


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
