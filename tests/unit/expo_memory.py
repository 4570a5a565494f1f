"""An in-memory expo.storage.ExpoStore: the same methods over dicts, for unit tests of
the use cases (tests/unit/test_expo_handlers.py) without MongoDB."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import replace
from datetime import datetime
from typing import TypeVar

from expo.domain import (
    Buyer,
    Edition,
    EditionStatus,
    Exhibitor,
    Intent,
    IntentQuery,
    IntentState,
    Product,
    ProductQuery,
    exhibitor_id,
)
from runtime.adapters.pagination import PageRequest, keyset_slice
from runtime.kernel.errors import Aborted

T = TypeVar("T")


def _page_by_id(items: dict[str, T], keep: Iterable[str], page: PageRequest) -> tuple[list[T], str]:
    """One page of ``items`` whose ids are in ``keep``, in id order as storage pages."""
    pairs = [(key, items[key]) for key in sorted(keep)]
    page_pairs, token = keyset_slice(pairs, lambda pair: (pair[0],), page)
    return [item for _, item in page_pairs], token


class MemoryExpoStore:
    def __init__(self) -> None:
        self.editions: dict[str, Edition] = {}
        # By exhibitor id ("<edition>:<credit code>").
        self.exhibitors_by_id: dict[str, Exhibitor] = {}
        self.products: dict[str, Product] = {}
        self.buyers: dict[str, Buyer] = {}
        self.intents: dict[str, Intent] = {}
        self.rate_slots: Counter[str] = Counter()

    # Editions.

    async def edition(self, edition_id: str) -> Edition | None:
        return self.editions.get(edition_id)

    async def add_edition(self, edition: Edition) -> bool:
        if edition.edition_id in self.editions:
            return False
        self.editions[edition.edition_id] = edition
        return True

    async def save_edition_status(self, edition: Edition, expected: EditionStatus) -> None:
        if self.editions[edition.edition_id].status != expected:
            raise Aborted(f"{edition.edition_id} changed", reason="TRANSACTION_CONFLICT")
        self.editions[edition.edition_id] = replace(
            self.editions[edition.edition_id], status=edition.status
        )

    async def count_exhibitors(self, edition_id: str) -> int:
        return sum(1 for e in self.exhibitors_by_id.values() if e.edition_id == edition_id)

    # Exhibitors and showrooms.

    async def exhibitor(self, edition_id: str, credit_code: str) -> Exhibitor | None:
        return self.exhibitors_by_id.get(exhibitor_id(edition_id, credit_code))

    async def exhibitors(self, edition_id: str, credit_codes: Iterable[str]) -> list[Exhibitor]:
        ids = sorted({exhibitor_id(edition_id, code) for code in credit_codes})
        return [self.exhibitors_by_id[i] for i in ids if i in self.exhibitors_by_id]

    async def add_exhibitor(self, exhibitor: Exhibitor) -> bool:
        if exhibitor.exhibitor_id in self.exhibitors_by_id:
            return False
        self.exhibitors_by_id[exhibitor.exhibitor_id] = exhibitor
        return True

    async def list_exhibitors(
        self, edition_id: str, page: PageRequest
    ) -> tuple[list[Exhibitor], str]:
        keep = [k for k, e in self.exhibitors_by_id.items() if e.edition_id == edition_id]
        return _page_by_id(self.exhibitors_by_id, keep, page)

    async def product(self, product_id: str) -> Product | None:
        return self.products.get(product_id)

    async def add_product(self, product: Product) -> None:
        self.products[product.product_id] = product

    async def listings(self, edition_id: str, heading: str) -> list[tuple[str, str]]:
        return [
            (p.credit_code, p.hs_code)
            for p in self.products.values()
            if p.edition_id == edition_id and p.hs_heading == heading
        ]

    async def list_products(
        self, query: ProductQuery, page: PageRequest
    ) -> tuple[list[Product], str]:
        keep = [
            k
            for k, p in self.products.items()
            if p.edition_id == query.edition_id
            and query.credit_code in ("", p.credit_code)
            and query.hs_heading in ("", p.hs_heading)
        ]
        return _page_by_id(self.products, keep, page)

    # Buyers.

    async def buyer(self, buyer_id: str) -> Buyer | None:
        return self.buyers.get(buyer_id)

    async def buyer_and_rate(self, buyer_id: str, slot: str) -> tuple[Buyer | None, int]:
        return self.buyers.get(buyer_id), self.rate_slots[slot]

    async def take_rate_slot(self, buyer_id: str, slot: str, taken: int) -> None:
        self.rate_slots[slot] = taken

    async def buyer_registered_by(self, subject: str) -> Buyer | None:
        return next((b for b in self.buyers.values() if b.subject == subject), None)

    async def add_buyers(self, buyers: Collection[Buyer]) -> None:
        for buyer in buyers:
            self.buyers[buyer.buyer_id] = buyer

    async def buyer_countries(self, buyer_ids: Iterable[str]) -> dict[str, str]:
        return {i: self.buyers[i].country for i in set(buyer_ids) if i in self.buyers}

    async def has_addressed(self, buyer_id: str, credit_code: str) -> bool:
        return any(
            i.buyer_id == buyer_id and credit_code in i.recipients for i in self.intents.values()
        )

    # Intents.

    async def intent(self, intent_id: str) -> Intent | None:
        return self.intents.get(intent_id)

    async def add_intent(self, intent: Intent) -> None:
        self.intents[intent.intent_id] = intent

    async def save_intent(self, intent: Intent, expected: IntentState) -> None:
        if self.intents[intent.intent_id].state != expected:
            raise Aborted(f"{intent.intent_id} changed", reason="TRANSACTION_CONFLICT")
        self.intents[intent.intent_id] = intent

    async def due_intent_ids(
        self, states: Iterable[IntentState], now: datetime, limit: int
    ) -> list[str]:
        due: list[str] = []
        for state in sorted(states):
            due += [
                i.intent_id for i in self.intents.values() if i.state == state and i.deadline <= now
            ][:limit]
        return due

    async def list_intents(self, query: IntentQuery, page: PageRequest) -> tuple[list[Intent], str]:
        keep = [
            k
            for k, i in self.intents.items()
            if i.edition_id == query.edition_id
            and query.buyer_id in ("", i.buyer_id)
            and (not query.recipient or query.recipient in i.recipients)
            and query.state in (0, i.state)
        ]
        return _page_by_id(self.intents, keep, page)
