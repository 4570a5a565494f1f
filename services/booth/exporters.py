"""Exporter storage in the booth database."""

from __future__ import annotations

from datetime import UTC, datetime

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from booth.domain import Exporter
from runtime.errors import AlreadyExists
from runtime.outbox import Transaction

COLLECTION = "exporters"


async def insert_exporter(tx: Transaction, exporter: Exporter) -> None:
    try:
        await tx.db[COLLECTION].insert_one(
            {
                "_id": exporter.credit_code,
                "name": exporter.name,
                "district": exporter.district,
                "industry": exporter.industry,
                "registered_at": datetime.now(UTC),
            },
            session=tx.session,
        )
    except DuplicateKeyError as error:
        raise AlreadyExists(f"exporter {exporter.credit_code} is already registered") from error


async def find_exporter(db: AsyncDatabase, credit_code: str) -> Exporter | None:
    doc = await db[COLLECTION].find_one({"_id": credit_code})
    if doc is None:
        return None
    return Exporter(doc["_id"], doc["name"], doc["district"], doc["industry"])
