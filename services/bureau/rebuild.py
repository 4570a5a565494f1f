"""Recompute every figure from the services' outboxes (the durable event logs),
without Kafka: what the live figures must equal."""

from __future__ import annotations

from pymongo import ASCENDING, AsyncMongoClient

from bureau.figures import BureauFigures
from runtime.adapters.events import decode_envelope
from runtime.adapters.outbox import OUTBOX_COLLECTION
from runtime.adapters.settings import Settings

PRODUCERS = ("booth", "expo", "warehouse")


async def rebuild_from_outboxes(mongo: AsyncMongoClient, settings: Settings) -> BureauFigures:
    figures = BureauFigures()
    for service in PRODUCERS:
        outbox = mongo.get_database(settings.database_name(service))[OUTBOX_COLLECTION]
        # Log order per service keeps every aggregate's own order, which is all the
        # figures depend on.
        async for doc in outbox.find({}, {"envelope": 1}).sort("position", ASCENDING):
            figures.apply(decode_envelope(bytes(doc["envelope"])))
    return figures
