"""Reading back what the platform holds: the outboxes, the documents the history names,
the stored answers, the bureau's figures over its public gRPC API, and what notify made
(its collections, database ``<prefix>notify``) and the mail server kept."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from pymongo import AsyncMongoClient

from chuhai.bureau.v1 import bureau_service_pb2 as pb
from chuhai.bureau.v1 import bureau_service_pb2_grpc as pb_grpc
from runtime.adapters.events import decode_envelope
from runtime.adapters.idempotency import REQUESTS_COLLECTION
from runtime.adapters.outbox import OUTBOX_COLLECTION
from runtime.adapters.settings import Settings
from tests.identity import Metadata
from tests.reliability.checker import (
    NOTIFY_READS,
    CaughtMail,
    EmailDelivery,
    MadeNotification,
    NotifyObservation,
    Observation,
    OutboxEvent,
)
from tests.reliability.history import History, StateKey

PRODUCERS = ("booth", "expo", "warehouse")
PENDING = "PENDING"
EMAIL = "EMAIL"


async def outbox_events(mongo: AsyncMongoClient, settings: Settings) -> list[OutboxEvent]:
    events: list[OutboxEvent] = []
    for service in PRODUCERS:
        outbox = mongo.get_database(settings.database_name(service))[OUTBOX_COLLECTION]
        async for doc in outbox.find({}, {"envelope": 1, "type": 1}):
            envelope = decode_envelope(bytes(doc["envelope"]))
            kind = doc["type"].rsplit(".", 1)[-1]
            fields: dict[str, Any] = {}
            if kind in NOTIFY_READS:
                payload = getattr(envelope, envelope.WhichOneof("payload") or "")
                fields = MessageToDict(payload, preserving_proto_field_name=True)
            events.append(OutboxEvent(service, doc["_id"], kind, envelope.correlation_id, fields))
    return events


async def notify_reads(mongo: AsyncMongoClient, settings: Settings) -> list[str]:
    """The ids of the outboxes' events of the types notify reads."""
    ids: list[str] = []
    for service in PRODUCERS:
        outbox = mongo.get_database(settings.database_name(service))[OUTBOX_COLLECTION]
        async for doc in outbox.find({}, {"type": 1}):
            if doc["type"].rsplit(".", 1)[-1] in NOTIFY_READS:
                ids.append(doc["_id"])
    return ids


async def notify_handled(
    mongo: AsyncMongoClient, settings: Settings, ids: Iterable[str]
) -> set[str]:
    """Those of the events ``ids`` notify recorded as handled."""
    events = mongo.get_database(settings.database_name("notify"))["events"]
    return {doc["_id"] async for doc in events.find({"_id": {"$in": list(ids)}}, {"_id": 1})}


async def unpublished_among(mongo: AsyncMongoClient, settings: Settings, ids: Iterable[str]) -> int:
    """How many of the events ``ids`` their outbox has not published yet."""
    query = {"_id": {"$in": list(ids)}, "published_at": None}
    total = 0
    for service in PRODUCERS:
        db = mongo.get_database(settings.database_name(service))
        total += await db[OUTBOX_COLLECTION].count_documents(query)
    return total


async def pending_email(
    mongo: AsyncMongoClient, settings: Settings, *, attempted: bool = False
) -> set[str]:
    """The e-mail deliveries still waiting (only those tried before, with ``attempted``)."""
    query: dict[str, object] = {"channel": EMAIL, "status": PENDING}
    if attempted:
        query["attempts"] = {"$gte": 1}
    deliveries = mongo.get_database(settings.database_name("notify"))["deliveries"]
    return {doc["_id"] async for doc in deliveries.find(query, {"_id": 1})}


def caught_mail(directory: Path) -> list[CaughtMail]:
    """Every message the mail server kept: its envelope recipient and the delivery its
    Message-ID (``<delivery id@domain>``) names."""
    parser = BytesHeaderParser(policy=default_policy)
    caught = []
    for path in sorted(directory.glob("*.eml")):
        headers = parser.parsebytes(path.read_bytes())
        message_id = str(headers.get("Message-ID", "")).strip().strip("<>")
        caught.append(
            CaughtMail(message_id.partition("@")[0], str(headers.get("Delivered-To", "")))
        )
    return caught


async def observe_notify(
    mongo: AsyncMongoClient, settings: Settings, mail: Path, addresses: dict[str, str]
) -> NotifyObservation:
    db = mongo.get_database(settings.database_name("notify"))
    notifications = []
    async for doc in db["notifications"].find(
        {}, {"kind": 1, "event_id": 1, "reader": 1, "facts": 1}
    ):
        source = doc["event_id"]
        if doc["kind"] == "QUOTA_FILLED":
            # Its natural key: said once for the fair and booth type.
            source = f"quota:{doc['facts']['fair_id']}:{doc['facts']['booth_type']}"
        notifications.append(MadeNotification(doc["_id"], doc["kind"], source, doc["reader"]))
    email = [
        EmailDelivery(doc["_id"], doc["notification_id"], doc["target"], doc["status"])
        async for doc in db["deliveries"].find({"channel": EMAIL})
    ]
    return NotifyObservation(
        notifications, email, await asyncio.to_thread(caught_mail, mail), dict(addresses)
    )


async def outbox_total(mongo: AsyncMongoClient, settings: Settings) -> int:
    total = 0
    for service in PRODUCERS:
        db = mongo.get_database(settings.database_name(service))
        total += await db[OUTBOX_COLLECTION].count_documents({})
    return total


async def unpublished(mongo: AsyncMongoClient, settings: Settings, service: str) -> int:
    db = mongo.get_database(settings.database_name(service))
    return await db[OUTBOX_COLLECTION].count_documents({"published_at": None})


async def bureau_figures(target: str, officer: Metadata, fair_id: str) -> dict[str, int]:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.BureauServiceStub(channel)
        reply = await stub.QueryStats(
            pb.QueryStatsRequest(fair_id=fair_id), metadata=officer, timeout=10
        )
    h = reply.headline
    figures = {
        "firms_served": h.firms_served,
        "booths_allocated": h.booths_allocated,
        "countries": h.countries,
        "buyers": h.buyers,
        "intents": h.intents,
        "events_applied": h.events_applied,
    }
    for booth in reply.booths:
        where = f"{booth.fair_id}:{booth.booth_type}"
        figures[f"booths_quota:{where}"] = booth.quota
        figures[f"booths_applied:{where}"] = booth.applied
        figures[f"booths_allocated:{where}"] = booth.allocated
    for warehouse in reply.warehouses:
        figures[f"warehouses:{warehouse.country}"] = warehouse.warehouses
        figures[f"capacity_pallets:{warehouse.country}"] = warehouse.capacity_pallets
        figures[f"reserved_pallets:{warehouse.country}"] = warehouse.reserved_pallets
    return {k: int(v) for k, v in figures.items() if v}


async def events_applied(target: str, officer: Metadata) -> int:
    async with grpc.aio.insecure_channel(target) as channel:
        reply = await pb_grpc.BureauServiceStub(channel).GetStats(
            pb.GetStatsRequest(), metadata=officer, timeout=5
        )
    return reply.headline.events_applied


async def observe(
    mongo: AsyncMongoClient, settings: Settings, history: History, bureau: dict[str, int]
) -> Observation:
    wanted: dict[tuple[str, str], set[str]] = defaultdict(set)
    answered_keys: dict[str, set[str]] = defaultdict(set)
    for request in history.requests:
        for service, collection, doc_id in (*request.expect.state, *request.own_state):
            wanted[service, collection].add(doc_id)
        answered_keys[request.service].add(request.answered_key)
    state: set[StateKey] = set()
    for (service, collection), ids in wanted.items():
        db = mongo.get_database(settings.database_name(service))
        async for doc in db[collection].find({"_id": {"$in": sorted(ids)}}, {"_id": 1}):
            state.add((service, collection, str(doc["_id"])))
    answered: set[tuple[str, str]] = set()
    for service, keys in answered_keys.items():
        db = mongo.get_database(settings.database_name(service))
        async for doc in db[REQUESTS_COLLECTION].find({"_id": {"$in": sorted(keys)}}, {"_id": 1}):
            answered.add((service, doc["_id"]))
    return Observation(
        events=await outbox_events(mongo, settings), answered=answered, state=state, bureau=bureau
    )
