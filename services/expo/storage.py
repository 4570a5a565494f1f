"""How the expo service keeps its state in MongoDB.

Collections: ``editions``, ``exhibitors`` (_id "<edition>:<credit code>"), ``products``,
``buyers`` (each with the intents its current rate window holds, read with the buyer in
one round trip) and ``intents`` (with their responses inline). Visits are events only.

SecantusDB: updates go by ``_id`` (a compare-and-set adds the state it expects), never
through find_one_and_*, which scans the collection under the write lock."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import date, datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from expo.domain import (
    Buyer,
    BuyerType,
    Contact,
    Edition,
    EditionStatus,
    Exhibitor,
    ExhibitorKind,
    Incoterm,
    Intent,
    IntentKind,
    IntentQuery,
    IntentState,
    Money,
    Product,
    ProductQuery,
    Response,
    ResponseKind,
    exhibitor_id,
)
from runtime.adapters.pagination import PageRequest, keyset_find
from runtime.kernel.errors import Aborted

EDITIONS = "editions"
EXHIBITORS = "exhibitors"
PRODUCTS = "products"
BUYERS = "buyers"
INTENTS = "intents"

BY_ID = [("_id", ASCENDING)]

Document = dict[str, Any]


async def ensure_indexes(db: AsyncDatabase) -> None:
    await db[EXHIBITORS].create_index([("edition_id", ASCENDING), ("credit_code", ASCENDING)])
    await db[PRODUCTS].create_index([("edition_id", ASCENDING), ("hs_heading", ASCENDING)])
    await db[PRODUCTS].create_index([("edition_id", ASCENDING), ("credit_code", ASCENDING)])
    await db[INTENTS].create_index([("state", ASCENDING), ("deadline", ASCENDING)])
    await db[INTENTS].create_index([("buyer_id", ASCENDING), ("recipients", ASCENDING)])
    await db[INTENTS].create_index([("edition_id", ASCENDING), ("_id", ASCENDING)])
    await db[BUYERS].create_index([("subject", ASCENDING)])


class ExpoStore:
    """The expo repository, inside a transaction (``session``) or, for queries, not."""

    def __init__(self, db: AsyncDatabase, session: AsyncClientSession | None) -> None:
        self._db = db
        self._session = session

    async def _find_one(self, collection: str, query: Document) -> Document | None:
        return await self._db[collection].find_one(query, session=self._session)

    async def _find(self, collection: str, query: Document) -> list[Document]:
        return [doc async for doc in self._db[collection].find(query, session=self._session)]

    async def _page(
        self, collection: str, query: Document, page: PageRequest
    ) -> tuple[list[Document], str]:
        return await keyset_find(self._db[collection], query, BY_ID, page, session=self._session)

    # Editions -------------------------------------------------------------------------

    async def edition(self, edition_id: str) -> Edition | None:
        doc = await self._find_one(EDITIONS, {"_id": edition_id})
        return None if doc is None else _edition(doc)

    async def add_edition(self, edition: Edition) -> bool:
        """False if an edition with its id exists already."""
        return await self._insert(EDITIONS, _edition_document(edition))

    async def save_edition_status(self, edition: Edition, expected: EditionStatus) -> None:
        await self._compare_and_set(
            EDITIONS,
            edition.edition_id,
            {"status": int(expected)},
            {"status": int(edition.status)},
        )

    async def count_exhibitors(self, edition_id: str) -> int:
        return await self._db[EXHIBITORS].count_documents(
            {"edition_id": edition_id}, session=self._session
        )

    # Exhibitors and showrooms -----------------------------------------------------------

    async def exhibitor(self, edition_id: str, credit_code: str) -> Exhibitor | None:
        doc = await self._find_one(EXHIBITORS, {"_id": exhibitor_id(edition_id, credit_code)})
        return None if doc is None else _exhibitor(doc)

    async def exhibitors(self, edition_id: str, credit_codes: Iterable[str]) -> list[Exhibitor]:
        ids = sorted({exhibitor_id(edition_id, code) for code in credit_codes})
        return [_exhibitor(doc) for doc in await self._find(EXHIBITORS, {"_id": {"$in": ids}})]

    async def add_exhibitor(self, exhibitor: Exhibitor) -> bool:
        """False if the exporter exhibits at the edition already."""
        return await self._insert(EXHIBITORS, _exhibitor_document(exhibitor))

    async def list_exhibitors(
        self, edition_id: str, page: PageRequest
    ) -> tuple[list[Exhibitor], str]:
        docs, token = await self._page(EXHIBITORS, {"edition_id": edition_id}, page)
        return [_exhibitor(doc) for doc in docs], token

    async def product(self, product_id: str) -> Product | None:
        doc = await self._find_one(PRODUCTS, {"_id": product_id})
        return None if doc is None else _product(doc)

    async def add_product(self, product: Product) -> None:
        await self._db[PRODUCTS].insert_one(_product_document(product), session=self._session)

    async def listings(self, edition_id: str, heading: str) -> list[tuple[str, str]]:
        """(credit code, HS code) of the edition's products under an HS heading."""
        cursor = self._db[PRODUCTS].find(
            {"edition_id": edition_id, "hs_heading": heading},
            {"credit_code": 1, "hs_code": 1},
            session=self._session,
        )
        return [(doc["credit_code"], doc["hs_code"]) async for doc in cursor]

    async def list_products(
        self, query: ProductQuery, page: PageRequest
    ) -> tuple[list[Product], str]:
        filters: Document = {"edition_id": query.edition_id}
        if query.credit_code:
            filters["credit_code"] = query.credit_code
        if query.hs_heading:
            filters["hs_heading"] = query.hs_heading
        docs, token = await self._page(PRODUCTS, filters, page)
        return [_product(doc) for doc in docs], token

    # Buyers -------------------------------------------------------------------------------

    async def buyer(self, buyer_id: str) -> Buyer | None:
        doc = await self._find_one(BUYERS, {"_id": buyer_id})
        return None if doc is None else _buyer(doc)

    async def buyer_and_rate(self, buyer_id: str, slot: str) -> tuple[Buyer | None, int]:
        """The buyer, and how many intents its rate window ``slot`` holds so far."""
        doc = await self._find_one(BUYERS, {"_id": buyer_id})
        if doc is None:
            return None, 0
        window = doc.get("rate_window") or {}
        return _buyer(doc), int(window["taken"]) if window.get("slot") == slot else 0

    async def take_rate_slot(self, buyer_id: str, slot: str, taken: int) -> None:
        """The buyer's rate window ``slot`` holds ``taken`` intents now. The transaction
        read the count with the buyer: two requests racing for the last slot write the
        same document, conflict, and one retries."""
        await self._db[BUYERS].update_one(
            {"_id": buyer_id},
            {"$set": {"rate_window": {"slot": slot, "taken": taken}}},
            session=self._session,
        )

    async def buyer_registered_by(self, subject: str) -> Buyer | None:
        """The buyer the identity provider's ``subject`` registered, if it did."""
        doc = await self._find_one(BUYERS, {"subject": subject})
        return None if doc is None else _buyer(doc)

    async def add_buyers(self, buyers: Collection[Buyer]) -> None:
        await self._db[BUYERS].insert_many(
            [_buyer_document(b) for b in buyers], session=self._session
        )

    async def buyer_countries(self, buyer_ids: Iterable[str]) -> dict[str, str]:
        """The country of each of these buyers that is registered."""
        docs = await self._find(BUYERS, {"_id": {"$in": sorted(set(buyer_ids))}})
        return {doc["_id"]: doc["country"] for doc in docs}

    async def has_addressed(self, buyer_id: str, credit_code: str) -> bool:
        """Whether an intent of the buyer reached the exhibitor."""
        found = await self._db[INTENTS].count_documents(
            {"buyer_id": buyer_id, "recipients": credit_code}, limit=1, session=self._session
        )
        return found > 0

    # Intents ------------------------------------------------------------------------------

    async def intent(self, intent_id: str) -> Intent | None:
        doc = await self._find_one(INTENTS, {"_id": intent_id})
        return None if doc is None else _intent(doc)

    async def add_intent(self, intent: Intent) -> None:
        await self._db[INTENTS].insert_one(_intent_document(intent), session=self._session)

    async def save_intent(self, intent: Intent, expected: IntentState) -> None:
        """Store the intent's state and responses, read in ``expected`` state."""
        changes: Document = {
            "state": int(intent.state),
            "responses": [_response_document(r) for r in intent.responses],
        }
        if intent.finished_reason:
            changes["finished_reason"] = intent.finished_reason
        await self._compare_and_set(INTENTS, intent.intent_id, {"state": int(expected)}, changes)

    async def due_intent_ids(
        self, states: Iterable[IntentState], now: datetime, limit: int
    ) -> list[str]:
        """Up to ``limit`` intents per state whose deadline is ``now`` or earlier."""
        due: list[str] = []
        # One equality query per state: SecantusDB uses the (state, deadline) index for
        # those but scans the collection for $in.
        for state in sorted(states):
            cursor = (
                self._db[INTENTS]
                .find(
                    {"state": int(state), "deadline": {"$lte": now}},
                    {"_id": 1},
                    session=self._session,
                )
                .limit(limit)
            )
            due += [doc["_id"] async for doc in cursor]
        return due

    async def list_intents(self, query: IntentQuery, page: PageRequest) -> tuple[list[Intent], str]:
        filters: Document = {"edition_id": query.edition_id}
        if query.buyer_id:
            filters["buyer_id"] = query.buyer_id
        if query.recipient:
            filters["recipients"] = query.recipient
        if query.state:
            filters["state"] = query.state
        docs, token = await self._page(INTENTS, filters, page)
        return [_intent(doc) for doc in docs], token

    async def _insert(self, collection: str, doc: Document) -> bool:
        try:
            await self._db[collection].insert_one(doc, session=self._session)
        except DuplicateKeyError:
            return False
        return True

    async def _compare_and_set(
        self, collection: str, doc_id: str, expected: Document, changes: Document
    ) -> None:
        """Update a document read in this transaction, if it still holds ``expected``.
        The transaction's read already guards it; a miss means the database isolated
        less than it promises, and the request is better refused than lost."""
        result = await self._db[collection].update_one(
            {"_id": doc_id, **expected}, {"$set": changes}, session=self._session
        )
        if result.matched_count != 1:
            raise Aborted(
                f"{doc_id} changed while this request ran; retry with the same request id",
                reason="TRANSACTION_CONFLICT",
            )


# Documents: the field names are the stored schema; keep them when the domain moves.


def _money_document(money: Money | None) -> Document | None:
    if money is None:
        return None
    return {"currency": money.currency, "units": money.units, "nanos": money.nanos}


def _money(doc: Document | None) -> Money | None:
    if not doc:
        return None
    return Money(doc["currency"], doc["units"], doc["nanos"])


def _edition_document(edition: Edition) -> Document:
    return {
        "_id": edition.edition_id,
        "name": edition.name,
        "fair_id": edition.fair_id,
        "starts_on": edition.starts_on.isoformat(),
        "ends_on": edition.ends_on.isoformat(),
        "allow_online_only": edition.allow_online_only,
        "status": int(edition.status),
    }


def _edition(doc: Document) -> Edition:
    return Edition(
        edition_id=doc["_id"],
        name=doc["name"],
        fair_id=doc["fair_id"],
        starts_on=date.fromisoformat(doc["starts_on"]),
        ends_on=date.fromisoformat(doc["ends_on"]),
        allow_online_only=doc["allow_online_only"],
        status=EditionStatus(doc["status"]),
    )


def _exhibitor_document(exhibitor: Exhibitor) -> Document:
    return {
        "_id": exhibitor.exhibitor_id,
        "edition_id": exhibitor.edition_id,
        "credit_code": exhibitor.credit_code,
        "name": exhibitor.name,
        "industry": exhibitor.industry,
        "kind": int(exhibitor.kind),
        "booth_number": exhibitor.booth_number,
        "joined_at": exhibitor.joined_at,
    }


def _exhibitor(doc: Document) -> Exhibitor:
    return Exhibitor(
        edition_id=doc["edition_id"],
        credit_code=doc["credit_code"],
        name=doc["name"],
        industry=doc["industry"],
        kind=ExhibitorKind(doc["kind"]),
        booth_number=doc["booth_number"],
        joined_at=doc["joined_at"],
    )


def _product_document(product: Product) -> Document:
    return {
        "_id": product.product_id,
        "edition_id": product.edition_id,
        "credit_code": product.credit_code,
        "name": product.name,
        "hs_code": product.hs_code,
        # What RFQ matching and the heading filter look up.
        "hs_heading": product.hs_heading,
        "description": product.description,
        "moq": product.moq,
        "unit": product.unit,
        "price_min": _money_document(product.price_min),
        "price_max": _money_document(product.price_max),
        "certifications": list(product.certifications),
    }


def _product(doc: Document) -> Product:
    return Product(
        product_id=doc["_id"],
        edition_id=doc["edition_id"],
        credit_code=doc["credit_code"],
        name=doc["name"],
        hs_code=doc["hs_code"],
        description=doc["description"],
        moq=doc["moq"],
        unit=doc["unit"],
        price_min=_money(doc["price_min"]),
        price_max=_money(doc["price_max"]),
        certifications=tuple(doc["certifications"]),
    )


def _buyer_document(buyer: Buyer) -> Document:
    contact = buyer.contact
    return {
        "_id": buyer.buyer_id,
        "company": buyer.company,
        "country": buyer.country,
        "buyer_type": int(buyer.buyer_type),
        "contact": {"name": contact.name, "email": contact.email, "phone": contact.phone},
        "registered_at": buyer.registered_at,
        "subject": buyer.subject,
    }


def _buyer(doc: Document) -> Buyer:
    return Buyer(
        buyer_id=doc["_id"],
        company=doc["company"],
        country=doc["country"],
        buyer_type=BuyerType(doc["buyer_type"]),
        contact=Contact(**doc["contact"]),
        registered_at=doc["registered_at"],
        # Buyers stored before self-registration kept a subject have none.
        subject=doc.get("subject", ""),
    )


def _response_document(response: Response) -> Document:
    common = {
        "kind": int(response.kind),
        "credit_code": response.credit_code,
        "responded_at": response.responded_at,
        "response_seconds": response.response_seconds,
    }
    if response.kind == ResponseKind.DECLINED:
        return {**common, "reason": response.reason}
    return {
        **common,
        "unit_price": _money_document(response.unit_price),
        "moq": response.moq,
        "lead_time_days": response.lead_time_days,
        "incoterm": int(response.incoterm or 0),
        "valid_until": response.valid_until,
    }


def _response(doc: Document) -> Response:
    incoterm = doc.get("incoterm", 0)
    return Response(
        credit_code=doc["credit_code"],
        kind=ResponseKind(doc["kind"]),
        responded_at=doc["responded_at"],
        response_seconds=doc["response_seconds"],
        unit_price=_money(doc.get("unit_price")),
        moq=doc.get("moq", 0),
        lead_time_days=doc.get("lead_time_days", 0),
        incoterm=Incoterm(incoterm) if incoterm else None,
        valid_until=doc.get("valid_until"),
        reason=doc.get("reason", ""),
    )


def _intent_document(intent: Intent) -> Document:
    doc: Document = {
        "_id": intent.intent_id,
        "edition_id": intent.edition_id,
        "buyer_id": intent.buyer_id,
        "buyer_country": intent.buyer_country,
        "kind": int(intent.kind),
        "exhibitor_credit_code": intent.exhibitor_credit_code,
        "product_id": intent.product_id,
        "hs_code": intent.hs_code,
        "quantity": intent.quantity,
        "unit": intent.unit,
        "target_price": _money_document(intent.target_price),
        "incoterm": int(intent.incoterm),
        "destination_country": intent.destination_country,
        "destination_port": intent.destination_port,
        "deadline": intent.deadline,
        "max_quotes": intent.max_quotes,
        "state": int(intent.state),
        "recipients": list(intent.recipients),
        "responses": [_response_document(r) for r in intent.responses],
        "submitted_at": intent.submitted_at,
    }
    if intent.finished_reason:
        doc["finished_reason"] = intent.finished_reason
    return doc


def _intent(doc: Document) -> Intent:
    return Intent(
        intent_id=doc["_id"],
        edition_id=doc["edition_id"],
        buyer_id=doc["buyer_id"],
        buyer_country=doc["buyer_country"],
        kind=IntentKind(doc["kind"]),
        exhibitor_credit_code=doc["exhibitor_credit_code"],
        product_id=doc["product_id"],
        hs_code=doc["hs_code"],
        quantity=doc["quantity"],
        unit=doc["unit"],
        target_price=_money(doc["target_price"]),
        incoterm=Incoterm(doc["incoterm"]),
        destination_country=doc["destination_country"],
        destination_port=doc["destination_port"],
        deadline=doc["deadline"],
        max_quotes=doc["max_quotes"],
        state=IntentState(doc["state"]),
        recipients=tuple(doc["recipients"]),
        responses=tuple(_response(r) for r in doc["responses"]),
        submitted_at=doc["submitted_at"],
        finished_reason=doc.get("finished_reason", ""),
    )
