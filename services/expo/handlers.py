"""The expo service's use cases. Each mutating one runs in one unit of work: it loads
through the store, lets the domain decide, saves, and records the domain's events.
Reads take the store alone.

Who may call which use case is the access table's (grpc_api.ACCESS); which objects a
caller may see and change is decided here, from the principal: the unit of work's
actor for a change, the ``viewer`` of a read. Someone else's buyer or intent is "not
found", with the message a missing one gets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
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
from runtime.kernel.errors import AlreadyExists, FailedPrecondition, NotFound, PermissionDenied
from runtime.kernel.identity import Principal, Role

# Intents one expiry sweep settles at most, per open state. A backlog (the service was
# down past many deadlines) is worked off a batch per sweep: the list of due ids a sweep
# holds stays small and one sweep short, and the next sweep reads afresh what is still due.
EXPIRY_BATCH = 200


class BoothDirectory(Protocol):
    """The booth service, as the expo asks it about exhibitors."""

    async def check_exhibitor(self, credit_code: str, fair_id: str) -> BoothStanding: ...


# Who the caller is ----------------------------------------------------------------------


def _exporter(principal: Principal) -> str:
    """The credit code of the exporter calling."""
    if principal.role is not Role.EXPORTER or not principal.party:
        raise PermissionDenied(f"only an exporter acts as an exhibitor, not {principal.audit_name}")
    return principal.party


def _registered_buyer(principal: Principal) -> str:
    """The buyer id of the buyer calling, once it has registered."""
    if principal.role is not Role.BUYER:
        raise PermissionDenied(f"only a buyer sends intents, not {principal.audit_name}")
    if not principal.party:
        raise FailedPrecondition(
            "register as a buyer first (RegisterBuyer), then call with a token for the buyer "
            "id it gives",
            reason="NOT_REGISTERED",
        )
    return principal.party


def _missing_buyer(buyer_id: str) -> NotFound:
    return NotFound(f"no buyer {buyer_id!r}")


def _missing_intent(intent_id: str) -> NotFound:
    return NotFound(f"no intent {intent_id!r}")


def _may_see_intent(viewer: Principal, intent: Intent) -> bool:
    """Its buyer, the exhibitors it reached, and officers."""
    if viewer.is_officer:
        return True
    if viewer.role is Role.BUYER:
        return viewer.acts_for(Role.BUYER, intent.buyer_id)
    return viewer.role is Role.EXPORTER and bool(viewer.party) and viewer.party in intent.recipients


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
        raise _missing_buyer(buyer_id)
    return buyer


async def _intent(store: ExpoStore, intent_id: str) -> Intent:
    intent = await store.intent(intent_id)
    if intent is None:
        raise _missing_intent(intent_id)
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
    store: ExpoStore, booth: BoothDirectory, edition_id: str, exporter: Principal
) -> BoothStanding:
    """What the booth service says of the exporter calling at the edition's fair: asked
    before joining's transaction, so that while the booth service is down nothing is
    written."""
    credit_code = _exporter(exporter)
    edition = await _edition(store, edition_id)
    return await booth.check_exhibitor(credit_code, edition.fair_for_joining())


async def join_edition(
    uow: UnitOfWork[ExpoStore], edition_id: str, standing: BoothStanding
) -> Exhibitor:
    """The exporter calling joins; ``standing`` is booth_standing's answer for it."""
    credit_code = _exporter(uow.actor)
    edition = await _edition(uow.store, edition_id)
    exhibitor, event = edition.admit(credit_code, standing, uow.now)
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
    """In the showroom of the exhibitor calling."""
    credit_code = _exporter(uow.actor)
    edition = await _edition(uow.store, draft.edition_id)
    exhibitor = await _exhibitor(uow.store, draft.edition_id, credit_code)
    product, event = exhibitor.list_product(edition, draft, new_id())
    await uow.store.add_product(product)
    uow.record(event)
    return product


async def list_products(
    store: ExpoStore, query: ProductQuery, page: PageRequest
) -> tuple[list[Product], str]:
    return await store.list_products(query, page)


# Buyers and visits -------------------------------------------------------------------------


async def register_buyer(uow: UnitOfWork[ExpoStore], draft: BuyerDraft) -> Buyer:
    """The buyer calling registers itself, once: its token has no buyer id yet and its
    subject registered no buyer before (a token issued before the registration)."""
    actor = uow.actor
    if actor.role is not Role.BUYER:
        raise PermissionDenied(f"only a buyer registers itself, not {actor.audit_name}")
    if actor.party:
        raise FailedPrecondition(
            f"{actor.audit_name} is buyer {actor.party} already", reason="ALREADY_REGISTERED"
        )
    earlier = await uow.store.buyer_registered_by(actor.subject)
    if earlier is not None:
        raise FailedPrecondition(
            f"{actor.audit_name} registered buyer {earlier.buyer_id} already",
            reason="ALREADY_REGISTERED",
        )
    buyer, event = Buyer.register(draft, new_id(), uow.now, subject=actor.subject)
    await uow.store.add_buyers([buyer])
    uow.record(event)
    return buyer


async def register_buyers(uow: UnitOfWork[ExpoStore], drafts: Sequence[BuyerDraft]) -> list[Buyer]:
    """A delegation an officer imports: all or none, in the order given. Each buyer gets
    its tokens (bound to its id) from the identity provider later."""
    registered = [Buyer.register(draft, new_id(), uow.now) for draft in drafts]
    buyers = [buyer for buyer, _ in registered]
    await uow.store.add_buyers(buyers)
    uow.record(*(event for _, event in registered))
    return buyers


async def get_buyer(store: ExpoStore, buyer_id: str, viewer: Principal) -> Buyer:
    """The buyer with its contact, for the buyer itself, officers and the exhibitors it
    sent an intent to; not found for anyone else."""
    buyer = await _buyer(store, buyer_id)
    if viewer.is_officer or viewer.acts_for(Role.BUYER, buyer_id):
        return buyer
    exporter = viewer.role is Role.EXPORTER and bool(viewer.party)
    if exporter and await store.has_addressed(buyer_id, viewer.party):
        return buyer
    raise _missing_buyer(buyer_id)


async def record_visits(
    uow: UnitOfWork[ExpoStore], edition_id: str, visits: Sequence[Visit]
) -> int:
    """How many of the visits were new (a visit reported before is not recorded again).
    The expo front end (a service) reports anyone's visits; a buyer only its own."""
    actor = uow.actor
    if actor.role is not Role.SERVICE:
        others = [f"visits[{i}]" for i, v in enumerate(visits) if v.buyer_id != actor.party]
        if others:
            raise PermissionDenied(
                f"{actor.audit_name} records only its own visits, not {', '.join(others)}"
            )
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
    """The buyer calling asks: an inquiry reaches its exhibitor, an RFQ every exhibitor
    listing products under its HS heading; an intent nobody would receive takes none of
    the buyer's rate."""
    store = uow.store
    buyer_id = _registered_buyer(uow.actor)
    edition = await _edition(store, draft.edition_id)
    # The edition's answer comes before the buyer is looked up.
    admission = edition.admit_intent(draft, uow.now)
    slot = limit.slot(buyer_id, uow.now)
    buyer, taken = await store.buyer_and_rate(buyer_id, slot)
    if buyer is None:
        raise _missing_buyer(buyer_id)
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
    # Refused before anything is written: a refusal leaves its batch-mates committing.
    limit.admit(buyer.buyer_id, taken + 1)
    await store.take_rate_slot(buyer.buyer_id, slot, taken + 1)
    # An inquiry reaches the exhibitor loaded above: not read a second time.
    reached = (
        [exhibitor]
        if exhibitor is not None
        else await store.exhibitors(draft.edition_id, recipients)
    )
    intent, events = Intent.submit(
        admission, intent_id=new_id(), buyer=buyer, recipients=recipients, reached=reached
    )
    await store.add_intent(intent)
    uow.record(*events)
    return intent


async def respond_to_intent(uow: UnitOfWork[ExpoStore], answer: Answer) -> Intent:
    """The exhibitor calling answers an intent that reached it. The second of a
    response's two steps: settle_if_due on the intent comes first, in its own
    transaction (Intent.respond says why)."""
    responder = _exporter(uow.actor)
    intent = await _intent(uow.store, answer.intent_id)
    if responder not in intent.recipients:
        raise _missing_intent(answer.intent_id)
    answered, events = intent.respond(responder, answer, uow.now)
    await uow.store.save_intent(answered, expected=intent.state)
    uow.record(*events)
    return answered


async def close_intent(uow: UnitOfWork[ExpoStore], intent_id: str) -> Intent:
    """The buyer calling closes its own intent."""
    intent = await _intent(uow.store, intent_id)
    if not uow.actor.acts_for(Role.BUYER, intent.buyer_id):
        raise _missing_intent(intent_id)
    closed, event = intent.close_by(uow.actor.party)
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


async def is_due(store: ExpoStore, intent_id: str, now: datetime) -> bool:
    """Whether the intent, as stored now, would be closed or expired at ``now``: read
    outside a transaction, so an answer to an intent that is not due (nearly every one)
    opens no settling transaction."""
    intent = await store.intent(intent_id)
    return intent is not None and bool(intent.settle_if_due(now)[1])


async def due_intents(store: ExpoStore, now: datetime) -> list[str]:
    """Open intents past their deadline at ``now``, for settle_if_due one by one."""
    return await store.due_intent_ids(OPEN_STATES, now, EXPIRY_BATCH)


async def get_intent(store: ExpoStore, intent_id: str, viewer: Principal) -> Intent:
    intent = await _intent(store, intent_id)
    if not _may_see_intent(viewer, intent):
        raise _missing_intent(intent_id)
    return intent


async def list_intents(
    store: ExpoStore, query: IntentQuery, page: PageRequest, viewer: Principal
) -> tuple[list[Intent], str]:
    """Officers list any intents; a buyer only its own and an exhibitor only those that
    reached it, whatever the query names."""
    if viewer.is_officer:
        return await store.list_intents(query, page)
    if viewer.role is Role.BUYER and viewer.party:
        return await store.list_intents(replace(query, buyer_id=viewer.party), page)
    if viewer.role is Role.EXPORTER and viewer.party:
        return await store.list_intents(replace(query, recipient=viewer.party), page)
    # Nobody else has intents of its own (an unregistered buyer among them).
    return [], ""
