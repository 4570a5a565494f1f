"""The expo service's use cases, each inside one transaction with its events."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from chuhai.expo.v1 import events_pb2 as events
from expo.documents import (
    Document,
    edition_message,
    exhibitor_message,
    intent_message,
    product_message,
)
from expo.domain import (
    OPEN_STATES,
    IntentKind,
    IntentState,
    IntentTerms,
    ResponseKind,
    after_response,
    rate_window,
    rfq_recipients,
    state_at_deadline,
)
from runtime.adapters import topics
from runtime.adapters.outbox import Transaction
from runtime.kernel.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from runtime.kernel.standards import hs_heading

EDITIONS = "editions"
EXHIBITORS = "exhibitors"
PRODUCTS = "products"
BUYERS = "buyers"
INTENTS = "intents"
INTENT_RATE = "intent_rate"

DRAFT, OPEN, CLOSED = 1, 2, 3
_VISIT_NAMESPACE = uuid.UUID("5d0b7c52-4c1e-4d5a-9f0e-6b1f3e0a2c11")


async def ensure_indexes(db: Any) -> None:
    await db[EXHIBITORS].create_index([("edition_id", ASCENDING), ("credit_code", ASCENDING)])
    await db[PRODUCTS].create_index([("edition_id", ASCENDING), ("hs_heading", ASCENDING)])
    await db[PRODUCTS].create_index([("edition_id", ASCENDING), ("credit_code", ASCENDING)])
    await db[INTENTS].create_index([("state", ASCENDING), ("deadline", ASCENDING)])
    await db[INTENTS].create_index([("buyer_id", ASCENDING), ("recipients", ASCENDING)])
    await db[INTENTS].create_index([("edition_id", ASCENDING), ("_id", ASCENDING)])


def exhibitor_id(edition_id: str, credit_code: str) -> str:
    return f"{edition_id}:{credit_code}"


async def load_edition(tx: Transaction, edition_id: str) -> Document:
    doc = await tx.db[EDITIONS].find_one({"_id": edition_id}, session=tx.session)
    if doc is None:
        raise NotFound(f"no expo edition {edition_id!r}")
    return doc


# Editions ------------------------------------------------------------------------------


async def create_edition(tx: Transaction, edition: Document) -> Document:
    doc = {**edition, "status": DRAFT}
    try:
        await tx.db[EDITIONS].insert_one(doc, session=tx.session)
    except DuplicateKeyError as error:
        raise AlreadyExists(f"expo edition {edition['_id']} already exists") from error
    return doc


async def set_edition_status(tx: Transaction, edition_id: str, target: int) -> Document:
    doc = await load_edition(tx, edition_id)
    allowed = {OPEN: {DRAFT, CLOSED}, CLOSED: {OPEN}}[target]
    if doc["status"] not in allowed:
        verb = "opened" if target == OPEN else "closed"
        raise FailedPrecondition(f"expo edition {edition_id} cannot be {verb} now")
    doc = await tx.db[EDITIONS].find_one_and_update(
        {"_id": edition_id},
        {"$set": {"status": target}},
        return_document=ReturnDocument.AFTER,
        session=tx.session,
    )
    if target == OPEN:
        event: Any = events.ExpoOpened(edition=edition_message(doc))
    else:
        event = events.ExpoClosed(edition_id=edition_id)
    await tx.record(topics.EXPO_EDITIONS, event, aggregate_id=edition_id)
    return doc


# Exhibitors and showrooms ----------------------------------------------------------------


async def join_edition(
    tx: Transaction,
    edition: Document,
    credit_code: str,
    name: str,
    industry: str,
    kind: int,
    booth_number: str,
    now: datetime,
) -> Document:
    doc = {
        "_id": exhibitor_id(edition["_id"], credit_code),
        "edition_id": edition["_id"],
        "credit_code": credit_code,
        "name": name,
        "industry": industry,
        "kind": kind,
        "booth_number": booth_number,
        "joined_at": now,
    }
    try:
        await tx.db[EXHIBITORS].insert_one(doc, session=tx.session)
    except DuplicateKeyError as error:
        raise AlreadyExists(
            f"{credit_code} already exhibits at expo edition {edition['_id']}"
        ) from error
    await tx.record(
        topics.EXPO_EXHIBITORS,
        events.ExhibitorJoined(exhibitor=exhibitor_message(doc)),
        aggregate_id=doc["_id"],
    )
    return doc


async def load_exhibitor(tx: Transaction, edition_id: str, credit_code: str) -> Document:
    doc = await tx.db[EXHIBITORS].find_one(
        {"_id": exhibitor_id(edition_id, credit_code)}, session=tx.session
    )
    if doc is None:
        raise NotFound(f"{credit_code} is not an exhibitor of expo edition {edition_id}")
    return doc


async def publish_product(tx: Transaction, product: Document) -> Document:
    edition = await load_edition(tx, product["edition_id"])
    if edition["status"] == CLOSED:
        raise FailedPrecondition(f"expo edition {edition['_id']} is closed")
    await load_exhibitor(tx, product["edition_id"], product["credit_code"])
    doc = {**product, "_id": uuid.uuid4().hex, "hs_heading": hs_heading(product["hs_code"])}
    await tx.db[PRODUCTS].insert_one(doc, session=tx.session)
    await tx.record(
        topics.EXPO_EXHIBITORS,
        events.ProductListed(product=product_message(doc)),
        aggregate_id=exhibitor_id(doc["edition_id"], doc["credit_code"]),
    )
    return doc


# Buyers and visits ------------------------------------------------------------------------


async def register_buyers(tx: Transaction, buyers: list[Document]) -> list[Document]:
    docs = [{**buyer, "_id": uuid.uuid4().hex} for buyer in buyers]
    await tx.db[BUYERS].insert_many(docs, session=tx.session)
    for doc in docs:
        await tx.record(
            topics.EXPO_BUYERS,
            events.BuyerRegistered(
                buyer_id=doc["_id"],
                company=doc["company"],
                country=doc["country"],
                buyer_type=doc["buyer_type"],
            ),
            aggregate_id=doc["_id"],
        )
    return docs


async def may_see_contact(db: Any, buyer_id: str, viewer_credit_code: str) -> bool:
    """Only an exhibitor the buyer addressed (an intent reached it) sees the contact."""
    if not viewer_credit_code:
        return False
    return (
        await db[INTENTS].count_documents(
            {"buyer_id": buyer_id, "recipients": viewer_credit_code}, limit=1
        )
        > 0
    )


@dataclass(frozen=True)
class VisitInput:
    visit_id: str
    buyer_id: str
    credit_code: str
    product_id: str


async def record_visits(
    tx: Transaction, edition_id: str, visits: list[VisitInput], now: datetime
) -> int:
    edition = await load_edition(tx, edition_id)
    if edition["status"] != OPEN:
        raise FailedPrecondition(f"expo edition {edition_id} is not open")
    # A visit's event id derives from the client's visit id: the outbox itself tells
    # which visits were recorded before, with no second write per visit.
    keys = [visit_event_id(edition_id, v.visit_id) for v in visits]
    seen = await tx.already_recorded(keys)
    buyers = {
        d["_id"]: d["country"]
        async for d in tx.db[BUYERS].find(
            {"_id": {"$in": sorted({v.buyer_id for v in visits})}}, session=tx.session
        )
    }
    exhibitors = {
        d["credit_code"]
        async for d in tx.db[EXHIBITORS].find(
            {"_id": {"$in": sorted({exhibitor_id(edition_id, v.credit_code) for v in visits})}},
            session=tx.session,
        )
    }
    fresh: list[tuple[str, VisitInput]] = []
    for index, (key, visit) in enumerate(zip(keys, visits, strict=True)):
        if visit.buyer_id not in buyers:
            raise InvalidArgument(FieldViolation(f"visits[{index}].buyer_id", "unknown buyer"))
        if visit.credit_code not in exhibitors:
            raise InvalidArgument(
                FieldViolation(f"visits[{index}].credit_code", "not an exhibitor of this edition")
            )
        if key not in seen:
            seen.add(key)
            fresh.append((key, visit))
    for key, visit in fresh:
        event = events.ExhibitorVisited(
            visit_id=visit.visit_id,
            edition_id=edition_id,
            buyer_id=visit.buyer_id,
            buyer_country=buyers[visit.buyer_id],
            credit_code=visit.credit_code,
            product_id=visit.product_id,
        )
        event.visited_at.FromDatetime(now)
        await tx.record(topics.EXPO_VISITS, event, aggregate_id=visit.buyer_id, event_id=key)
    return len(fresh)


def visit_event_id(edition_id: str, visit_id: str) -> str:
    return str(uuid.uuid5(_VISIT_NAMESPACE, f"{edition_id}:{visit_id}"))


# Intents ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IntentRequest:
    edition_id: str
    buyer_id: str
    kind: IntentKind
    exhibitor_credit_code: str
    product_id: str
    terms: IntentTerms
    target_price: Document | None
    incoterm: int
    destination_port: str


@dataclass(frozen=True)
class RateLimit:
    intents: int
    window: timedelta


async def _take_rate_slot(tx: Transaction, buyer_id: str, limit: RateLimit, now: datetime) -> None:
    key = f"{buyer_id}:{rate_window(now, limit.window)}"
    slot = await tx.db[INTENT_RATE].find_one_and_update(
        {"_id": key},
        {"$inc": {"n": 1}, "$setOnInsert": {"window_start": now}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
        session=tx.session,
    )
    if slot["n"] > limit.intents:
        raise ResourceExhausted(
            f"buyer {buyer_id} may submit {limit.intents} intents per "
            f"{int(limit.window.total_seconds())} s; try again later"
        )


async def submit_intent(
    tx: Transaction, request: IntentRequest, limit: RateLimit, now: datetime
) -> Document:
    edition = await load_edition(tx, request.edition_id)
    if edition["status"] != OPEN:
        raise FailedPrecondition(f"expo edition {request.edition_id} is not open")
    buyer = await tx.db[BUYERS].find_one({"_id": request.buyer_id}, session=tx.session)
    if buyer is None:
        raise NotFound(f"no buyer {request.buyer_id!r}")
    terms = request.terms
    if request.kind == IntentKind.INQUIRY:
        await load_exhibitor(tx, request.edition_id, request.exhibitor_credit_code)
        if request.product_id:
            product = await tx.db[PRODUCTS].find_one(
                {"_id": request.product_id, "credit_code": request.exhibitor_credit_code},
                session=tx.session,
            )
            if product is None:
                raise NotFound(
                    f"no product {request.product_id!r} in the showroom of "
                    f"{request.exhibitor_credit_code}"
                )
        recipients = [request.exhibitor_credit_code]
    else:
        listings = tx.db[PRODUCTS].find(
            {"edition_id": request.edition_id, "hs_heading": hs_heading(terms.hs_code)},
            {"credit_code": 1, "hs_code": 1},
            session=tx.session,
        )
        recipients = rfq_recipients(
            terms.hs_code, [(p["credit_code"], p["hs_code"]) async for p in listings]
        )
        if not recipients:
            raise FailedPrecondition(
                f"no exhibitor of {request.edition_id} lists products under HS heading "
                f"{hs_heading(terms.hs_code)}"
            )
    await _take_rate_slot(tx, request.buyer_id, limit, now)
    industries = sorted(
        {
            e["industry"]
            async for e in tx.db[EXHIBITORS].find(
                {"_id": {"$in": [exhibitor_id(request.edition_id, r) for r in recipients]}},
                session=tx.session,
            )
            if e["industry"]
        }
    )
    doc = {
        "_id": uuid.uuid4().hex,
        "edition_id": request.edition_id,
        "buyer_id": request.buyer_id,
        "buyer_country": buyer["country"],
        "kind": int(request.kind),
        "exhibitor_credit_code": request.exhibitor_credit_code,
        "product_id": request.product_id,
        "hs_code": terms.hs_code,
        "quantity": terms.quantity,
        "unit": terms.unit,
        "target_price": request.target_price,
        "incoterm": request.incoterm,
        "destination_country": terms.destination_country,
        "destination_port": request.destination_port,
        "deadline": terms.deadline,
        "max_quotes": terms.max_quotes,
        "state": int(IntentState.MATCHED),
        "recipients": recipients,
        "responses": [],
        "submitted_at": now,
    }
    await tx.db[INTENTS].insert_one(doc, session=tx.session)
    submitted = events.IntentSubmitted(
        intent_id=doc["_id"],
        edition_id=doc["edition_id"],
        buyer_id=doc["buyer_id"],
        buyer_country=doc["buyer_country"],
        kind=doc["kind"],
        hs_code=doc["hs_code"],
        quantity=doc["quantity"],
        unit=doc["unit"],
        incoterm=doc["incoterm"],
        destination_country=doc["destination_country"],
        industries=industries,
    )
    message = intent_message(doc)
    if message.HasField("target_price"):
        submitted.target_price.CopyFrom(message.target_price)
    submitted.deadline.CopyFrom(message.deadline)
    await tx.record(topics.EXPO_INTENTS, submitted, aggregate_id=doc["_id"])
    if request.kind == IntentKind.RFQ:
        await tx.record(
            topics.EXPO_INTENTS,
            events.RfqMatched(
                intent_id=doc["_id"], edition_id=doc["edition_id"], recipients=recipients
            ),
            aggregate_id=doc["_id"],
        )
    return doc


async def load_intent(tx: Transaction, intent_id: str) -> Document:
    doc = await tx.db[INTENTS].find_one({"_id": intent_id}, session=tx.session)
    if doc is None:
        raise NotFound(f"no intent {intent_id!r}")
    return doc


async def _finish(tx: Transaction, doc: Document, target: IntentState, reason: str) -> Document:
    """Close or expire an open intent, with its event. ``doc`` was read in this
    transaction; a concurrent change to it conflicts and retries the transaction (by
    _id alone: SecantusDB plans _id plus other predicates as a collection scan)."""
    updated = await tx.db[INTENTS].find_one_and_update(
        {"_id": doc["_id"]},
        {"$set": {"state": int(target), "finished_reason": reason}},
        return_document=ReturnDocument.AFTER,
        session=tx.session,
    )
    if target == IntentState.EXPIRED:
        event: Any = events.IntentExpired(intent_id=doc["_id"], edition_id=doc["edition_id"])
    else:
        quotes = sum(1 for r in updated["responses"] if r["kind"] == int(ResponseKind.QUOTED))
        event = events.IntentClosed(
            intent_id=doc["_id"], edition_id=doc["edition_id"], quotes=quotes, reason=reason
        )
    await tx.record(topics.EXPO_INTENTS, event, aggregate_id=doc["_id"])
    return updated


async def respond(
    tx: Transaction, intent_id: str, credit_code: str, response: Document, now: datetime
) -> Document:
    doc = await load_intent(tx, intent_id)
    state = IntentState(doc["state"])
    if state in OPEN_STATES and doc["deadline"] <= now:
        raise FailedPrecondition(f"intent {intent_id} passed its deadline")
    kind = ResponseKind(response["kind"])
    progress = after_response(
        state,
        doc["recipients"],
        {r["credit_code"]: ResponseKind(r["kind"]) for r in doc["responses"]},
        credit_code,
        kind,
        doc["max_quotes"],
    )
    entry = {
        **response,
        "credit_code": credit_code,
        "responded_at": now,
        "response_seconds": int((now - doc["submitted_at"]).total_seconds()),
    }
    # Closing by quotes is its own step below, so the intent passes through QUOTED.
    stored_state = IntentState.QUOTED if progress.closed_by_quotes else progress.state
    updated = await tx.db[INTENTS].find_one_and_update(
        {"_id": intent_id},
        {"$set": {"state": int(stored_state)}, "$push": {"responses": entry}},
        return_document=ReturnDocument.AFTER,
        session=tx.session,
    )
    answer = intent_message(updated).responses[-1]
    if kind == ResponseKind.QUOTED:
        await tx.record(
            topics.EXPO_INTENTS,
            events.QuoteSent(intent_id=intent_id, edition_id=doc["edition_id"], response=answer),
            aggregate_id=intent_id,
        )
    else:
        await tx.record(
            topics.EXPO_INTENTS,
            events.IntentDeclined(
                intent_id=intent_id,
                edition_id=doc["edition_id"],
                response=answer,
                all_declined=progress.all_declined,
            ),
            aggregate_id=intent_id,
        )
    if progress.closed_by_quotes:
        updated = await _finish(tx, updated, IntentState.CLOSED, "max_quotes")
    return updated


async def close_by_buyer(tx: Transaction, intent_id: str, buyer_id: str) -> Document:
    doc = await load_intent(tx, intent_id)
    if doc["buyer_id"] != buyer_id:
        raise FailedPrecondition(f"intent {intent_id} belongs to another buyer")
    if IntentState(doc["state"]) not in OPEN_STATES:
        raise FailedPrecondition(
            f"intent {intent_id} is {IntentState(doc['state']).name.lower()} already"
        )
    return await _finish(tx, doc, IntentState.CLOSED, "buyer")


async def expire_due(tx: Transaction, intent_id: str, now: datetime) -> bool:
    """Close or expire one intent whose deadline passed; False if it needs nothing."""
    doc = await load_intent(tx, intent_id)
    state = IntentState(doc["state"])
    if state not in OPEN_STATES or doc["deadline"] > now:
        return False
    await _finish(tx, doc, state_at_deadline(state), "deadline")
    return True
