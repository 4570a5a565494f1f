"""Reading back what the platform holds: the outboxes, the documents the history names,
the stored answers, and the bureau's figures over its public gRPC API."""

from __future__ import annotations

from collections import defaultdict

import grpc
from pymongo import AsyncMongoClient

from chuhai.bureau.v1 import bureau_service_pb2 as pb
from chuhai.bureau.v1 import bureau_service_pb2_grpc as pb_grpc
from runtime.adapters.events import decode_envelope
from runtime.adapters.idempotency import REQUESTS_COLLECTION
from runtime.adapters.outbox import OUTBOX_COLLECTION
from runtime.adapters.settings import Settings
from tests.identity import Metadata
from tests.reliability.checker import Observation, OutboxEvent
from tests.reliability.history import History, StateKey

PRODUCERS = ("booth", "expo", "warehouse")


async def outbox_events(mongo: AsyncMongoClient, settings: Settings) -> list[OutboxEvent]:
    events: list[OutboxEvent] = []
    for service in PRODUCERS:
        outbox = mongo.get_database(settings.database_name(service))[OUTBOX_COLLECTION]
        async for doc in outbox.find({}, {"envelope": 1, "type": 1}):
            envelope = decode_envelope(bytes(doc["envelope"]))
            events.append(
                OutboxEvent(
                    service,
                    doc["_id"],
                    doc["type"].rsplit(".", 1)[-1],
                    envelope.correlation_id,
                )
            )
    return events


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
