"""The expo service's use cases. Each mutating one runs in one unit of work: it loads
through the store, lets the domain decide, saves, and records the domain's events.
Reads take the store alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from expo.domain import (
    OPEN_STATES,
    Answer,
    BoothStanding,
    Buyer,
    BuyerDraft,
    Edition,
    Exhibitor,
    Intent,
    IntentDraft,
    IntentKind,
    IntentQuery,
    JoinRequest,
    NewEdition,
    Product,
    ProductDraft,
    ProductQuery,
    RateLimit,
    Visit,
    new_id,
    visit_event_id,
)
from expo.storage import ExpoStore
from runtime.adapters.pagination import PageRequest
from runtime.adapters.unit_of_work import UnitOfWork
from runtime.kernel.errors import AlreadyExists, NotFound

# Intents one expiry sweep settles at most, per open state. A backlog (the service was
# down past many deadlines) is worked off a batch per sweep: the list of due ids a sweep
# holds stays small and one sweep short, and the next sweep reads afresh what is still due.
EXPIRY_BATCH = 200


class BoothDirectory(Protocol):
    """The booth service, as the expo asks it about exhibitors."""

    async def check_exhibitor(self, credit_code: str, fair_id: str) -> BoothStanding: ...


async def _edition(store: ExpoStore, edition_id: str) -> Edition:
    edition = await store.edition(edition_id)
    if edition is None:
        raise NotFound(f"no expo edition {edition_id!r}")
    return edition


async def _exhibitor(store: ExpoStore, edition_id: str, credit_code: str) -> Exhibitor:
    exhibitor = await store.exhibitor(edition_id, credit_code)
    if exhibitor is None:
        raise NotFound(f"{credit_code} is not an exhibitor of expo edition {edition_id}")
    return exhibitor


async def _buyer(store: ExpoStore, buyer_id: str) -> Buyer:
    buyer = await store.buyer(buyer_id)
    if buyer is None:
        raise NotFound(f"no buyer {buyer_id!r}")
    return buyer


async def _intent(store: ExpoStore, intent_id: str) -> Intent:
    intent = await store.intent(intent_id)
    if intent is None:
        raise NotFound(f"no intent {intent_id!r}")
    return intent


# Editions ----------------------------------------------------------------------------------


async def create_edition(uow: UnitOfWork[ExpoStore], command: NewEdition) -> Edition:
    edition = Edition.create(command)
    if not await uow.store.add_edition(edition):
        raise AlreadyExists(f"expo edition {edition.edition_id} already exists")
    return edition


async def open_edition(uow: UnitOfWork[ExpoStore], edition_id: str) -> Edition:
    edition = await _edition(uow.store, edition_id)
    opened, event = edition.open()
    await uow.store.save_edition_status(opened, expected=edition.status)
    uow.record(event)
    return opened


async def close_edition(uow: UnitOfWork[ExpoStore], edition_id: str) -> Edition:
    edition = await _edition(uow.store, edition_id)
    closed, event = edition.close()
    await uow.store.save_edition_status(closed, expected=edition.status)
    uow.record(event)
    return closed


@dataclass(frozen=True)
class EditionSummary:
    edition: Edition
    exhibitors: int


async def get_edition(store: ExpoStore, edition_id: str) -> EditionSummary:
    edition = await _edition(store, edition_id)
    return EditionSummary(edition, await store.count_exhibitors(edition_id))


# Exhibitors and showrooms ------------------------------------------------------------------


async def booth_standing(
    store: ExpoStore, booth: BoothDirectory, command: JoinRequest
) -> BoothStanding:
    """What the booth service says of the exporter at the edition's fair: asked before
    joining's transaction, so that while the booth service is down nothing is written."""
    edition = await _edition(store, command.edition_id)
    return await booth.check_exhibitor(command.credit_code, edition.fair_for_joining())


async def join_edition(
    uow: UnitOfWork[ExpoStore], command: JoinRequest, standing: BoothStanding
) -> Exhibitor:
    """``standing`` is booth_standing's answer for this command."""
    edition = await _edition(uow.store, command.edition_id)
    exhibitor, event = edition.admit(command.credit_code, standing, uow.now)
    if not await uow.store.add_exhibitor(exhibitor):
        raise AlreadyExists(
            f"{exhibitor.credit_code} already exhibits at expo edition {exhibitor.edition_id}"
        )
    uow.record(event)
    return exhibitor


async def list_exhibitors(
    store: ExpoStore, edition_id: str, page: PageRequest
) -> tuple[list[Exhibitor], str]:
    return await store.list_exhibitors(edition_id, page)


async def publish_product(uow: UnitOfWork[ExpoStore], draft: ProductDraft) -> Product:
    edition = await _edition(uow.store, draft.edition_id)
    exhibitor = await _exhibitor(uow.store, draft.edition_id, draft.credit_code)
    product, event = exhibitor.list_product(edition, draft, new_id())
    await uow.store.add_product(product)
    uow.record(event)
    return product


async def list_products(
    store: ExpoStore, query: ProductQuery, page: PageRequest
) -> tuple[list[Product], str]:
    return await store.list_products(query, page)


# Buyers and visits -------------------------------------------------------------------------


async def register_buyers(uow: UnitOfWork[ExpoStore], drafts: Sequence[BuyerDraft]) -> list[Buyer]:
    """All or none, in the order given."""
    registered = [Buyer.register(draft, new_id(), uow.now) for draft in drafts]
    buyers = [buyer for buyer, _ in registered]
    await uow.store.add_buyers(buyers)
    uow.record(*(event for _, event in registered))
    return buyers


async def get_buyer(store: ExpoStore, buyer_id: str, viewer_credit_code: str) -> Buyer:
    """The buyer as ``viewer_credit_code`` (an exhibitor, or empty) may see it."""
    buyer = await _buyer(store, buyer_id)
    addressed = await store.has_addressed(buyer_id, viewer_credit_code)
    return buyer.seen_by(viewer_credit_code, addressed=addressed)


async def record_visits(
    uow: UnitOfWork[ExpoStore], edition_id: str, visits: Sequence[Visit]
) -> int:
    """How many of the visits were new (a visit reported before is not recorded again)."""
    edition = await _edition(uow.store, edition_id)
    recorded = await uow.already_recorded([visit_event_id(edition_id, v.visit_id) for v in visits])
    countries = await uow.store.buyer_countries(v.buyer_id for v in visits)
    exhibitors = await uow.store.exhibitors(edition_id, (v.credit_code for v in visits))
    events = edition.receive_visits(
        visits,
        buyer_countries=countries,
        exhibitors={e.credit_code for e in exhibitors},
        recorded=recorded,
        now=uow.now,
    )
    uow.record(*events)
    return len(events)


# Intents -----------------------------------------------------------------------------------


async def submit_intent(uow: UnitOfWork[ExpoStore], draft: IntentDraft, limit: RateLimit) -> Intent:
    """An inquiry reaches its exhibitor, an RFQ every exhibitor listing products under
    its HS heading; an intent nobody would receive takes none of the buyer's rate."""
    store = uow.store
    edition = await _edition(store, draft.edition_id)
    # The edition's answer comes before the buyer is looked up.
    admission = edition.admit_intent(draft, uow.now)
    buyer = await _buyer(store, draft.buyer_id)
    # Load what the domain chooses the recipients from: an inquiry's exhibitor and
    # product, or an RFQ's listings.
    exhibitor, product, listings = None, None, []
    if draft.kind == IntentKind.INQUIRY:
        exhibitor = await store.exhibitor(draft.edition_id, draft.exhibitor_credit_code)
        if draft.product_id:
            product = await store.product(draft.product_id)
    else:
        listings = await store.listings(draft.edition_id, draft.hs_heading)
    recipients = draft.recipients(exhibitor=exhibitor, product=product, listings=listings)
    slot = limit.slot(buyer.buyer_id, uow.now)
    limit.admit(buyer.buyer_id, await store.take_rate_slot(slot, uow.now))
    intent, events = Intent.submit(
        admission,
        intent_id=new_id(),
        buyer=buyer,
        recipients=recipients,
        reached=await store.exhibitors(draft.edition_id, recipients),
    )
    await store.add_intent(intent)
    uow.record(*events)
    return intent


async def respond_to_intent(uow: UnitOfWork[ExpoStore], answer: Answer) -> Intent:
    """The second of a response's two steps: settle_if_due on the intent comes first, in
    its own transaction (Intent.respond says why)."""
    intent = await _intent(uow.store, answer.intent_id)
    answered, events = intent.respond(answer, uow.now)
    await uow.store.save_intent(answered, expected=intent.state)
    uow.record(*events)
    return answered


async def close_intent(uow: UnitOfWork[ExpoStore], intent_id: str, buyer_id: str) -> Intent:
    intent = await _intent(uow.store, intent_id)
    closed, event = intent.close_by(buyer_id)
    await uow.store.save_intent(closed, expected=intent.state)
    uow.record(event)
    return closed


async def settle_if_due(uow: UnitOfWork[ExpoStore], intent_id: str) -> bool:
    """Close or expire the intent if its deadline passed (Intent.settle_if_due), before a
    response to it is considered or in the expiry sweep; False if that was not needed (or
    there is no such intent)."""
    intent = await uow.store.intent(intent_id)
    if intent is None:
        return False
    settled, events = intent.settle_if_due(uow.now)
    if not events:
        return False
    await uow.store.save_intent(settled, expected=intent.state)
    uow.record(*events)
    return True


async def due_intents(store: ExpoStore, now: datetime) -> list[str]:
    """Open intents past their deadline at ``now``, for settle_if_due one by one."""
    return await store.due_intent_ids(OPEN_STATES, now, EXPIRY_BATCH)


async def get_intent(store: ExpoStore, intent_id: str) -> Intent:
    return await _intent(store, intent_id)


async def list_intents(
    store: ExpoStore, query: IntentQuery, page: PageRequest
) -> tuple[list[Intent], str]:
    return await store.list_intents(query, page)
