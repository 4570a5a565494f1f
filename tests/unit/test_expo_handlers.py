"""The expo use cases on an in-memory store: state and the events they record."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, timedelta

import pytest

from expo import handlers
from expo.domain import (
    Answer,
    BoothStanding,
    Buyer,
    BuyerDraft,
    BuyerRegistered,
    EditionStatus,
    ExhibitorJoined,
    ExhibitorKind,
    ExhibitorVisited,
    ExpoClosed,
    ExpoOpened,
    Incoterm,
    Intent,
    IntentClosed,
    IntentDeclined,
    IntentDraft,
    IntentExpired,
    IntentKind,
    IntentQuery,
    IntentState,
    IntentSubmitted,
    Money,
    NewEdition,
    Product,
    ProductDraft,
    ProductListed,
    ProductQuery,
    QuoteSent,
    RateLimit,
    ResponseKind,
    RfqMatched,
    Visit,
)
from runtime.adapters.pagination import PageRequest, page_request
from runtime.kernel.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)
from runtime.kernel.identity import Principal, Role
from runtime.kernel.validation import Validator, validated
from tests.credit_codes import random_credit_code
from tests.fakes import DEFAULT_NOW, FakeUnitOfWork
from tests.unit.expo_memory import MemoryExpoStore

NOW = DEFAULT_NOW
EDITION = "cloud-2026"
FAIR = "canton-2026"
HAIR, WIGS_OTHER, MOTORS = "670420", "670490", "850152"
LIMIT = RateLimit(intents=3, window=timedelta(hours=1))

Uow = FakeUnitOfWork[MemoryExpoStore]

OFFICER = Principal("officer-1", Role.OFFICER)
# The expo front end, recording visits for every buyer.
FRONT_END = Principal("expo-web", Role.SERVICE, "expo-web")
OPERATOR = Principal("operator-1", Role.OPERATOR, "op-1")


def exporter(credit_code: str) -> Principal:
    return Principal(f"exporter-{credit_code}", Role.EXPORTER, credit_code)


def acting(uow: Uow, principal: Principal) -> Uow:
    """The unit of work, now run for ``principal`` (the runner's actor)."""
    uow.actor = principal
    return uow


def as_exporter(uow: Uow, credit_code: str) -> Uow:
    return acting(uow, exporter(credit_code))


def as_buyer(uow: Uow, buyer_id: str) -> Uow:
    return acting(uow, Principal(f"buyer-{buyer_id}", Role.BUYER, buyer_id))


def codes(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return sorted(random_credit_code(rng) for _ in range(n))


class FakeBooth:
    """handlers.BoothDirectory answering from a table; down when ``down`` is set."""

    def __init__(self, standings: dict[str, BoothStanding]) -> None:
        self.standings = standings
        self.asked: list[tuple[str, str]] = []
        self.down = False

    async def check_exhibitor(self, credit_code: str, fair_id: str) -> BoothStanding:
        if self.down:
            raise Unavailable("the booth service cannot confirm it right now")
        self.asked.append((credit_code, fair_id))
        return self.standings[credit_code]


def holder(industry: str = "hair products") -> BoothStanding:
    return BoothStanding("Exporter", industry, has_booth=True, booth_number="S-001")


def outsider() -> BoothStanding:
    return BoothStanding("Newcomer", "machinery", has_booth=False, booth_number="")


def first_page(size: int) -> PageRequest:
    return page_request(size, "", "test", Validator(), key_length=1)


def next_page(size: int, token: str) -> PageRequest:
    return page_request(size, token, "test", Validator(), key_length=1)


async def new_edition(uow: Uow, *, online_only: bool = False, edition_id: str = EDITION) -> None:
    command = validated(
        lambda check: NewEdition.parse(
            check,
            edition_id=edition_id,
            name="Xuchang Digital Cloud Expo",
            fair_id=FAIR,
            starts_on="2026-03-01",
            ends_on="2026-03-31",
            allow_online_only=online_only,
        )
    )
    await handlers.create_edition(uow, command)


async def open_edition(uow: Uow, *, online_only: bool = False) -> None:
    await new_edition(uow, online_only=online_only)
    await handlers.open_edition(uow, EDITION)


async def join(uow: Uow, code: str, standing: BoothStanding) -> None:
    await handlers.join_edition(as_exporter(uow, code), EDITION, standing)


def product_draft(hs_code: str, edition_id: str = EDITION) -> ProductDraft:
    return validated(
        lambda check: ProductDraft.parse(
            check,
            edition_id=edition_id,
            name="Human hair lace wig",
            hs_code=hs_code,
            description="",
            moq=50,
            unit="piece",
            price_min=Money("USD", 35, 0),
            price_max=Money("USD", 120, 500_000_000),
            certifications=["ISO 9001", " "],
        )
    )


async def publish(uow: Uow, code: str, hs_code: str) -> Product:
    return await handlers.publish_product(as_exporter(uow, code), product_draft(hs_code))


def buyer_draft(company: str, country: str) -> BuyerDraft:
    return validated(
        lambda check: BuyerDraft.parse(
            check,
            company=company,
            country=country,
            buyer_type=1,
            contact_name="Ada",
            contact_email=f"buy@{company.lower()}.example",
            contact_phone="+49 30 1",
        )
    )


async def register(uow: Uow, company: str = "Haarmode", country: str = "DE") -> Buyer:
    """A buyer registers itself: its token has a subject and no buyer id yet."""
    newcomer = Principal(f"idp|{company}-{len(uow.store.buyers)}", Role.BUYER)
    return await handlers.register_buyer(acting(uow, newcomer), buyer_draft(company, country))


def draft(**changes) -> IntentDraft:  # type: ignore[no-untyped-def]
    arguments = {
        "edition_id": EDITION,
        "kind": IntentKind.RFQ,
        "exhibitor_credit_code": "",
        "product_id": "",
        "hs_code": HAIR,
        "quantity": 2000,
        "unit": "piece",
        "target_price": Money("EUR", 40, 0),
        "incoterm": Incoterm.CIF,
        "destination_country": "DE",
        "destination_port": "Hamburg",
        "deadline": NOW + timedelta(days=14),
        "max_quotes": 2,
    }
    arguments.update(changes)
    return validated(lambda check: IntentDraft.parse(check, **arguments))


async def submit(uow: Uow, buyer_id: str, intent: IntentDraft) -> Intent:
    return await handlers.submit_intent(as_buyer(uow, buyer_id), intent, LIMIT)


async def respond(uow: Uow, code: str, answer: Answer) -> Intent:
    return await handlers.respond_to_intent(as_exporter(uow, code), answer)


def quote(intent: Intent) -> Answer:
    return Answer(
        intent.intent_id,
        ResponseKind.QUOTED,
        unit_price=Money("USD", 42, 0),
        moq=100,
        lead_time_days=21,
        incoterm=Incoterm.CIF,
        valid_until=NOW + timedelta(days=30),
    )


def decline(intent: Intent) -> Answer:
    return Answer(intent.intent_id, ResponseKind.DECLINED, reason="no capacity")


@pytest.fixture
def uow() -> Uow:
    return FakeUnitOfWork(MemoryExpoStore(), NOW)


async def hair_fair(uow: Uow) -> list[str]:
    """An open edition where three exhibitors list hair products (heading 6704) and a
    fourth lists motors; the codes in that order."""
    await open_edition(uow, online_only=True)
    exhibitors = codes(4, seed=1)
    industries = ["hair products", "wigs", "", "machinery"]
    for code, hs_code, industry in zip(
        exhibitors, [HAIR, WIGS_OTHER, HAIR, MOTORS], industries, strict=True
    ):
        await join(uow, code, holder(industry))
        await publish(uow, code, hs_code)
    uow.take_events()
    return exhibitors


# Editions ----------------------------------------------------------------------------------


async def test_an_edition_starts_as_a_draft_and_its_id_is_unique(uow: Uow) -> None:
    await new_edition(uow)
    assert uow.store.editions[EDITION].status == EditionStatus.DRAFT
    assert uow.events == []
    with pytest.raises(AlreadyExists):
        await new_edition(uow)


async def test_an_edition_opens_closes_and_reopens_with_its_events(uow: Uow) -> None:
    await new_edition(uow)
    await handlers.open_edition(uow, EDITION)
    closed = await handlers.close_edition(uow, EDITION)
    opened = ExpoOpened(
        EDITION,
        "Xuchang Digital Cloud Expo",
        FAIR,
        date(2026, 3, 1),
        date(2026, 3, 31),
        allow_online_only=False,
    )
    assert uow.take_events() == [opened, ExpoClosed(EDITION)]
    assert closed.status == uow.store.editions[EDITION].status == EditionStatus.CLOSED
    with pytest.raises(FailedPrecondition, match="cannot be closed"):
        await handlers.close_edition(uow, EDITION)
    await handlers.open_edition(uow, EDITION)
    assert uow.store.editions[EDITION].status == EditionStatus.OPEN
    with pytest.raises(NotFound):
        await handlers.open_edition(uow, "nowhere")


async def test_get_edition_counts_its_exhibitors(uow: Uow) -> None:
    exhibitors = await hair_fair(uow)
    summary = await handlers.get_edition(uow.store, EDITION)
    assert (summary.edition.edition_id, summary.exhibitors) == (EDITION, len(exhibitors))
    with pytest.raises(NotFound):
        await handlers.get_edition(uow.store, "nowhere")


# Exhibitors and showrooms ------------------------------------------------------------------


async def test_the_booth_service_is_asked_about_the_editions_fair(uow: Uow) -> None:
    await new_edition(uow)
    code = codes(1, seed=2)[0]
    booth = FakeBooth({code: holder()})
    standing = await handlers.booth_standing(uow.store, booth, EDITION, exporter(code))
    assert standing == holder() and booth.asked == [(code, FAIR)]
    booth.down = True
    with pytest.raises(Unavailable):
        await handlers.booth_standing(uow.store, booth, EDITION, exporter(code))


async def test_a_closed_edition_takes_no_exhibitor_and_asks_no_booth(uow: Uow) -> None:
    await open_edition(uow)
    await handlers.close_edition(uow, EDITION)
    code = codes(1, seed=3)[0]
    booth = FakeBooth({code: holder()})
    with pytest.raises(FailedPrecondition, match="is closed"):
        await handlers.booth_standing(uow.store, booth, EDITION, exporter(code))
    assert booth.asked == []
    with pytest.raises(FailedPrecondition, match="is closed"):
        await join(uow, code, holder())


async def test_booth_holders_join_with_their_booth_others_online_if_admitted(uow: Uow) -> None:
    await open_edition(uow, online_only=False)
    with_booth, without = codes(2, seed=4)
    uow.take_events()
    await join(uow, with_booth, holder())
    with pytest.raises(FailedPrecondition, match="admits no online-only exhibitors"):
        await join(uow, without, outsider())
    [joined] = uow.take_events()
    assert isinstance(joined, ExhibitorJoined)
    assert (joined.credit_code, joined.industry) == (with_booth, "hair products")
    assert (joined.kind, joined.booth_number) == (ExhibitorKind.BOOTH, "S-001")
    assert uow.store.exhibitors_by_id[f"{EDITION}:{with_booth}"].joined_at == NOW
    with pytest.raises(AlreadyExists):
        await join(uow, with_booth, holder())

    online = FakeUnitOfWork(MemoryExpoStore(), NOW)
    await open_edition(online, online_only=True)
    await join(online, without, outsider())
    exhibitor = online.store.exhibitors_by_id[f"{EDITION}:{without}"]
    assert (exhibitor.kind, exhibitor.booth_number) == (ExhibitorKind.ONLINE_ONLY, "")


async def test_exhibitors_are_listed_a_page_at_a_time_in_id_order(uow: Uow) -> None:
    exhibitors = await hair_fair(uow)
    first, token = await handlers.list_exhibitors(uow.store, EDITION, first_page(3))
    rest, last = await handlers.list_exhibitors(uow.store, EDITION, next_page(3, token))
    assert [e.credit_code for e in first + rest] == exhibitors
    assert (len(first), last) == (3, "")


async def test_a_product_is_listed_in_an_exhibitors_showroom_only(uow: Uow) -> None:
    await open_edition(uow)
    member, stranger = codes(2, seed=5)
    await join(uow, member, holder())
    uow.take_events()
    product = await publish(uow, member, "6704.20")
    assert uow.take_events() == [
        ProductListed(product.product_id, EDITION, member, "Human hair lace wig", HAIR)
    ]
    assert (product.hs_code, product.hs_heading, product.certifications) == (
        HAIR,
        "6704",
        ("ISO 9001",),
    )
    assert uow.store.products[product.product_id] == product
    with pytest.raises(NotFound, match="not an exhibitor"):
        await publish(uow, stranger, HAIR)
    await handlers.close_edition(uow, EDITION)
    with pytest.raises(FailedPrecondition, match="is closed"):
        await publish(uow, member, HAIR)


async def test_products_are_filtered_by_exhibitor_and_heading(uow: Uow) -> None:
    exhibitors = await hair_fair(uow)
    hair, _ = await handlers.list_products(
        uow.store, ProductQuery(EDITION, hs_heading="6704"), first_page(50)
    )
    assert sorted(p.credit_code for p in hair) == sorted(exhibitors[:3])
    own, _ = await handlers.list_products(
        uow.store, ProductQuery(EDITION, credit_code=exhibitors[3]), first_page(50)
    )
    assert [p.hs_code for p in own] == [MOTORS]


# Buyers and visits -------------------------------------------------------------------------


async def test_buyers_register_in_order_and_their_events_carry_no_contact(uow: Uow) -> None:
    drafts = [buyer_draft("Haarmode", "DE"), buyer_draft("Cabello", "ES")]
    buyers = await handlers.register_buyers(uow, drafts)
    assert [b.company for b in buyers] == ["Haarmode", "Cabello"]
    assert all(b.registered_at == NOW and b.contact is not None for b in buyers)
    assert uow.events == [
        BuyerRegistered(b.buyer_id, b.company, b.country, b.buyer_type) for b in buyers
    ]
    assert set(uow.store.buyers) == {b.buyer_id for b in buyers}


def visits(buyers: list[Buyer], code: str, ids: range) -> list[Visit]:
    return [Visit(f"v{n}", buyers[n % 2].buyer_id, code, "") for n in ids]


async def test_visits_reported_twice_are_recorded_once(uow: Uow) -> None:
    await open_edition(uow)
    code = codes(1, seed=7)[0]
    await join(uow, code, holder())
    buyers = [await register(uow, f"Buyer{n}", c) for n, c in enumerate(["US", "NG"])]
    uow.take_events()

    acting(uow, FRONT_END)
    assert await handlers.record_visits(uow, EDITION, visits(buyers, code, range(10))) == 10
    recorded = uow.take_events()
    assert all(isinstance(e, ExhibitorVisited) for e in recorded)
    assert {e.buyer_country for e in recorded} == {"US", "NG"}
    assert all(e.visited_at == NOW for e in recorded)
    # The outbox now holds their event ids.
    uow.recorded_ids |= {e.event_id for e in recorded}
    assert await handlers.record_visits(uow, EDITION, visits(buyers, code, range(5, 12))) == 2
    assert [e.visit_id for e in uow.take_events()] == ["v10", "v11"]
    # The same visit twice in one report counts once.
    twice = visits(buyers, code, range(20, 21)) * 2
    assert await handlers.record_visits(uow, EDITION, twice) == 1


async def test_every_unknown_buyer_and_non_exhibitor_of_a_visit_is_named(uow: Uow) -> None:
    await open_edition(uow)
    code, stranger = codes(2, seed=8)
    await join(uow, code, holder())
    buyer = await register(uow)
    with pytest.raises(InvalidArgument) as error:
        await handlers.record_visits(
            acting(uow, FRONT_END),
            EDITION,
            [Visit("a", buyer.buyer_id, code, ""), Visit("b", "nobody", stranger, "")],
        )
    assert {v.field for v in error.value.violations} == {
        "visits[1].buyer_id",
        "visits[1].credit_code",
    }


async def test_visits_only_while_the_edition_is_open(uow: Uow) -> None:
    await new_edition(uow)
    with pytest.raises(FailedPrecondition, match="is not open"):
        await handlers.record_visits(acting(uow, FRONT_END), EDITION, [Visit("a", "b", "c", "")])


# Intents -----------------------------------------------------------------------------------


async def test_an_rfq_reaches_the_exhibitors_under_its_heading_only(uow: Uow) -> None:
    exhibitors = await hair_fair(uow)
    buyer = await register(uow)
    uow.take_events()

    intent = await submit(uow, buyer.buyer_id, draft())

    assert intent.state == IntentState.MATCHED
    assert list(intent.recipients) == sorted(exhibitors[:3])
    assert (intent.buyer_country, intent.submitted_at) == ("DE", NOW)
    assert uow.store.intents[intent.intent_id] == intent
    assert uow.take_events() == [
        # Industries of the exhibitors reached; the empty one is left out.
        IntentSubmitted(
            intent.intent_id,
            EDITION,
            buyer.buyer_id,
            "DE",
            IntentKind.RFQ,
            HAIR,
            2000,
            "piece",
            Money("EUR", 40, 0),
            Incoterm.CIF,
            "DE",
            NOW + timedelta(days=14),
            ("hair products", "wigs"),
            tuple(sorted(exhibitors[:3])),
        ),
        RfqMatched(intent.intent_id, EDITION, intent.recipients),
    ]


async def test_an_rfq_nobody_would_receive_is_refused_and_takes_no_rate(uow: Uow) -> None:
    await hair_fair(uow)
    buyer = await register(uow)
    with pytest.raises(FailedPrecondition, match="heading 8504"):
        await submit(uow, buyer.buyer_id, draft(hs_code="850410"))
    assert not uow.store.rate_slots and not uow.store.intents


async def test_an_inquiry_reaches_its_exhibitor_about_its_own_product(uow: Uow) -> None:
    exhibitors = await hair_fair(uow)
    buyer = await register(uow)
    [own] = [p for p in uow.store.products.values() if p.credit_code == exhibitors[0]]
    inquiry = draft(
        kind=IntentKind.INQUIRY, exhibitor_credit_code=exhibitors[0], product_id=own.product_id
    )
    uow.take_events()
    intent = await submit(uow, buyer.buyer_id, inquiry)
    assert (intent.recipients, intent.max_quotes) == ((exhibitors[0],), 1)
    [submitted] = uow.take_events()  # no RFQ matching
    assert isinstance(submitted, IntentSubmitted)
    assert submitted.recipients == (exhibitors[0],)

    [foreign] = [p for p in uow.store.products.values() if p.credit_code == exhibitors[1]]
    with pytest.raises(NotFound, match="showroom"):
        await submit(uow, buyer.buyer_id, replace(inquiry, product_id=foreign.product_id))
    with pytest.raises(NotFound, match="not an exhibitor"):
        await submit(
            uow,
            buyer.buyer_id,
            draft(kind=IntentKind.INQUIRY, exhibitor_credit_code=codes(1, 9)[0]),
        )


async def test_intents_need_an_open_edition_and_a_known_buyer(uow: Uow) -> None:
    await new_edition(uow)
    with pytest.raises(FailedPrecondition, match="is not open"):
        await submit(uow, "nobody", draft())
    await handlers.open_edition(uow, EDITION)
    with pytest.raises(NotFound, match="no buyer"):
        await submit(uow, "nobody", draft())


async def test_the_deadline_must_lie_ahead_of_the_moment_the_intent_is_submitted(
    uow: Uow,
) -> None:
    """Checked in the use case, not when the request is decoded: a retry of an accepted
    intent after its deadline then gets its first answer (the runner's), and a first
    attempt still the same field violation."""
    await hair_fair(uow)
    buyer = await register(uow)
    uow.take_events()
    decoded = draft()  # valid when it was decoded, at NOW
    uow.advance(timedelta(days=14))
    with pytest.raises(InvalidArgument) as late:
        await submit(uow, buyer.buyer_id, decoded)
    assert [(v.field, v.description) for v in late.value.violations] == [
        ("deadline", "must be in the future")
    ]
    too_far = replace(decoded, deadline=uow.now + timedelta(days=181))
    with pytest.raises(InvalidArgument) as distant:
        await submit(uow, buyer.buyer_id, too_far)
    assert [(v.field, v.description) for v in distant.value.violations] == [
        ("deadline", "at most 180 days from now")
    ]
    assert not uow.store.intents and not uow.store.rate_slots and uow.events == []
    intent = await submit(
        uow, buyer.buyer_id, replace(decoded, deadline=uow.now + timedelta(days=1))
    )
    assert intent.submitted_at == uow.now


async def test_the_rate_limit_refuses_the_intent_past_it_until_the_next_window(uow: Uow) -> None:
    await hair_fair(uow)
    buyer = await register(uow)
    for _ in range(LIMIT.intents):
        await submit(uow, buyer.buyer_id, draft())
    with pytest.raises(ResourceExhausted):
        await submit(uow, buyer.buyer_id, draft())
    other = await register(uow, "Perucas", "BR")
    await submit(uow, other.buyer_id, draft())  # its own count
    uow.advance(LIMIT.window)
    await submit(uow, buyer.buyer_id, draft())


async def rfq_to_hair_makers(uow: Uow) -> tuple[Intent, list[str]]:
    exhibitors = await hair_fair(uow)
    buyer = await register(uow)
    intent = await submit(uow, buyer.buyer_id, draft())
    uow.take_events()
    return intent, sorted(exhibitors[:3])


async def test_quotes_and_declines_until_max_quotes_close_it(uow: Uow) -> None:
    intent, makers = await rfq_to_hair_makers(uow)
    uow.advance(timedelta(minutes=5))
    first = await respond(uow, makers[0], quote(intent))
    assert first.state == IntentState.QUOTED
    [sent] = uow.take_events()
    assert isinstance(sent, QuoteSent) and sent.quote.response_seconds == 300
    await respond(uow, makers[1], decline(intent))
    [declined] = uow.take_events()
    assert isinstance(declined, IntentDeclined) and not declined.all_declined
    closed = await respond(uow, makers[2], quote(intent))
    assert closed.state == uow.store.intents[intent.intent_id].state == IntentState.CLOSED
    assert [r.kind for r in closed.responses] == [
        ResponseKind.QUOTED,
        ResponseKind.DECLINED,
        ResponseKind.QUOTED,
    ]
    assert [type(e) for e in uow.take_events()] == [QuoteSent, IntentClosed]
    with pytest.raises(FailedPrecondition):
        await respond(uow, makers[0], decline(intent))
    with pytest.raises(NotFound):
        await respond(uow, makers[0], decline(replace(intent, intent_id="x")))


async def test_declined_by_every_recipient(uow: Uow) -> None:
    intent, makers = await rfq_to_hair_makers(uow)
    for code in makers:
        await respond(uow, code, decline(intent))
    assert uow.store.intents[intent.intent_id].state == IntentState.DECLINED
    assert [e.all_declined for e in uow.take_events()] == [False, False, True]


async def test_the_buyer_closes_its_intent(uow: Uow) -> None:
    intent, makers = await rfq_to_hair_makers(uow)
    await respond(uow, makers[0], quote(intent))
    uow.take_events()
    closed = await handlers.close_intent(as_buyer(uow, intent.buyer_id), intent.intent_id)
    assert closed.state == IntentState.CLOSED and closed.finished_reason == "buyer"
    assert uow.take_events() == [IntentClosed(intent.intent_id, EDITION, 1, "buyer")]


async def test_the_deadline_closes_quoted_intents_and_expires_the_others(uow: Uow) -> None:
    quoted, makers = await rfq_to_hair_makers(uow)
    await respond(uow, makers[0], quote(quoted))
    waiting = await submit(uow, quoted.buyer_id, draft())
    later = await submit(uow, quoted.buyer_id, draft(deadline=NOW + timedelta(days=30)))
    uow.take_events()
    assert await handlers.due_intents(uow.store, uow.now) == []

    assert not await handlers.is_due(uow.store, waiting.intent_id, uow.now)

    uow.advance(timedelta(days=15))
    due = await handlers.due_intents(uow.store, uow.now)
    assert sorted(due) == sorted([quoted.intent_id, waiting.intent_id])
    assert await handlers.is_due(uow.store, waiting.intent_id, uow.now)
    assert not await handlers.is_due(uow.store, later.intent_id, uow.now)
    assert not await handlers.is_due(uow.store, "unknown", uow.now)
    with pytest.raises(FailedPrecondition, match="passed its deadline"):
        await respond(uow, makers[1], quote(waiting))
    for intent_id in (quoted.intent_id, waiting.intent_id):
        assert await handlers.settle_if_due(uow, intent_id)
    assert uow.take_events() == [
        IntentClosed(quoted.intent_id, EDITION, 1, "deadline"),
        IntentExpired(waiting.intent_id, EDITION),
    ]
    states = {i: uow.store.intents[i].state for i in (quoted.intent_id, waiting.intent_id)}
    assert states == {
        quoted.intent_id: IntentState.CLOSED,
        waiting.intent_id: IntentState.EXPIRED,
    }
    # Settled already, not due yet, or unknown: nothing to do.
    for intent_id in (quoted.intent_id, later.intent_id, "unknown"):
        assert not await handlers.settle_if_due(uow, intent_id)
    assert uow.events == []
    assert await handlers.due_intents(uow.store, uow.now) == []


async def test_intents_are_read_one_and_listed_by_buyer_recipient_and_state(uow: Uow) -> None:
    intent, makers = await rfq_to_hair_makers(uow)
    other = await register(uow, "Perucas", "BR")
    inquiry = await submit(
        uow, other.buyer_id, draft(kind=IntentKind.INQUIRY, exhibitor_credit_code=makers[0])
    )
    await respond(uow, makers[0], quote(inquiry))

    assert await handlers.get_intent(uow.store, intent.intent_id, OFFICER) == intent
    with pytest.raises(NotFound):
        await handlers.get_intent(uow.store, "unknown", OFFICER)

    async def listed(query: IntentQuery) -> list[str]:
        found, _ = await handlers.list_intents(uow.store, query, first_page(50), OFFICER)
        return [i.intent_id for i in found]

    both = sorted([intent.intent_id, inquiry.intent_id])
    assert await listed(IntentQuery(EDITION)) == both
    assert await listed(IntentQuery(EDITION, buyer_id=other.buyer_id)) == [inquiry.intent_id]
    assert await listed(IntentQuery(EDITION, recipient=makers[1])) == [intent.intent_id]
    closed = IntentQuery(EDITION, state=IntentState.CLOSED)  # one quote closes an inquiry
    assert await listed(closed) == [inquiry.intent_id]
    assert await listed(IntentQuery("elsewhere")) == []


# Who may see and change what (object level) --------------------------------------------------


async def test_an_exporter_joins_and_publishes_as_itself_only(uow: Uow) -> None:
    await open_edition(uow)
    member, stranger = codes(2, seed=20)
    await handlers.join_edition(as_exporter(uow, member), EDITION, holder())
    assert f"{EDITION}:{member}" in uow.store.exhibitors_by_id
    product = await handlers.publish_product(as_exporter(uow, member), product_draft(HAIR))
    assert product.credit_code == member
    # Another exporter's token publishes in its own showroom, which it has not.
    with pytest.raises(NotFound, match="not an exhibitor"):
        await handlers.publish_product(as_exporter(uow, stranger), product_draft(HAIR))
    for other in (OFFICER, FRONT_END, Principal("buyer-1", Role.BUYER, "b-1")):
        with pytest.raises(PermissionDenied):
            await handlers.join_edition(acting(uow, other), EDITION, holder())
        with pytest.raises(PermissionDenied):
            await handlers.publish_product(acting(uow, other), product_draft(HAIR))
    assert len(uow.store.products) == 1


async def test_a_buyer_registers_itself_once_and_keeps_its_subject(uow: Uow) -> None:
    newcomer = Principal("idp|ada", Role.BUYER)
    buyer = await handlers.register_buyer(acting(uow, newcomer), buyer_draft("Haarmode", "DE"))
    assert uow.store.buyers[buyer.buyer_id].subject == "idp|ada"
    assert uow.take_events() == [
        BuyerRegistered(buyer.buyer_id, "Haarmode", "DE", buyer.buyer_type)
    ]
    registered = Principal("idp|ada", Role.BUYER, buyer.buyer_id)
    # Its token names its buyer id now; a token issued before does not, but the subject
    # registered already.
    for again in (registered, newcomer):
        with pytest.raises(FailedPrecondition) as refused:
            await handlers.register_buyer(acting(uow, again), buyer_draft("Twice", "DE"))
        assert refused.value.reason == "ALREADY_REGISTERED"
    with pytest.raises(PermissionDenied):
        await handlers.register_buyer(acting(uow, OFFICER), buyer_draft("Officer", "DE"))
    assert list(uow.store.buyers) == [buyer.buyer_id] and uow.events == []


async def test_get_buyer_shows_the_contact_to_whom_may_see_the_buyer_only(uow: Uow) -> None:
    await open_edition(uow)
    addressed, other = codes(2, seed=6)
    for code in (addressed, other):
        await join(uow, code, holder())
    cabello = await register(uow, "Cabello", "ES")
    rival = await register(uow, "Perucas", "BR")
    inquiry = draft(kind=IntentKind.INQUIRY, exhibitor_credit_code=addressed)
    await submit(uow, cabello.buyer_id, inquiry)

    itself = Principal("idp|cabello", Role.BUYER, cabello.buyer_id)
    for viewer in (exporter(addressed), itself, OFFICER):
        seen = await handlers.get_buyer(uow.store, cabello.buyer_id, viewer)
        assert seen.contact.email == "buy@cabello.example", viewer
    missing = f"no buyer {cabello.buyer_id!r}"
    for stranger in (
        exporter(other),  # never addressed
        Principal("idp|perucas", Role.BUYER, rival.buyer_id),
        Principal("idp|new", Role.BUYER),  # not registered
        OPERATOR,
        FRONT_END,
    ):
        with pytest.raises(NotFound) as hidden:
            await handlers.get_buyer(uow.store, cabello.buyer_id, stranger)
        assert str(hidden.value) == missing, stranger
    with pytest.raises(NotFound, match="no buyer 'nobody'"):
        await handlers.get_buyer(uow.store, "nobody", exporter(addressed))


async def test_a_buyer_records_only_its_own_visits(uow: Uow) -> None:
    await open_edition(uow)
    code = codes(1, seed=21)[0]
    await join(uow, code, holder())
    mine, theirs = [await register(uow, f"Buyer{n}", "US") for n in range(2)]
    uow.take_events()
    own = [Visit("v1", mine.buyer_id, code, "")]
    assert await handlers.record_visits(as_buyer(uow, mine.buyer_id), EDITION, own) == 1
    mixed = [Visit("v2", mine.buyer_id, code, ""), Visit("v3", theirs.buyer_id, code, "")]
    with pytest.raises(PermissionDenied, match=r"visits\[1\]"):
        await handlers.record_visits(as_buyer(uow, mine.buyer_id), EDITION, mixed)
    with pytest.raises(PermissionDenied):
        await handlers.record_visits(acting(uow, Principal("idp|x", Role.BUYER)), EDITION, own)
    assert [e.visit_id for e in uow.take_events()] == ["v1"]
    # The expo front end reports anyone's.
    assert await handlers.record_visits(acting(uow, FRONT_END), EDITION, mixed) == 2


async def test_intents_are_submitted_by_a_registered_buyer_for_itself(uow: Uow) -> None:
    await hair_fair(uow)
    buyer = await register(uow)
    with pytest.raises(FailedPrecondition) as unregistered:
        await handlers.submit_intent(acting(uow, Principal("idp|x", Role.BUYER)), draft(), LIMIT)
    assert unregistered.value.reason == "NOT_REGISTERED"
    with pytest.raises(PermissionDenied):
        await handlers.submit_intent(acting(uow, OFFICER), draft(), LIMIT)
    assert not uow.store.intents and not uow.store.rate_slots
    intent = await submit(uow, buyer.buyer_id, draft())
    assert intent.buyer_id == buyer.buyer_id


async def test_an_exhibitor_responds_only_to_intents_that_reached_it(uow: Uow) -> None:
    intent, makers = await rfq_to_hair_makers(uow)
    motors = sorted(set(codes(4, seed=1)) - set(makers))[0]  # an exhibitor not reached
    with pytest.raises(NotFound) as hidden:
        await respond(uow, motors, quote(intent))
    assert str(hidden.value) == f"no intent {intent.intent_id!r}"
    assert uow.store.intents[intent.intent_id] == intent and uow.events == []
    answered = await respond(uow, makers[0], quote(intent))
    assert [r.credit_code for r in answered.responses] == [makers[0]]


async def test_only_its_buyer_closes_an_intent(uow: Uow) -> None:
    intent, _ = await rfq_to_hair_makers(uow)
    rival = await register(uow, "Perucas", "BR")
    with pytest.raises(NotFound) as hidden:
        await handlers.close_intent(as_buyer(uow, rival.buyer_id), intent.intent_id)
    assert str(hidden.value) == f"no intent {intent.intent_id!r}"
    assert uow.store.intents[intent.intent_id].state == IntentState.MATCHED
    closed = await handlers.close_intent(as_buyer(uow, intent.buyer_id), intent.intent_id)
    assert closed.state == IntentState.CLOSED


async def test_an_intent_is_read_by_its_buyer_its_recipients_and_officers(uow: Uow) -> None:
    intent, makers = await rfq_to_hair_makers(uow)
    rival = await register(uow, "Perucas", "BR")
    motors = sorted(set(codes(4, seed=1)) - set(makers))[0]
    own_buyer = Principal("idp|h", Role.BUYER, intent.buyer_id)
    for viewer in (own_buyer, exporter(makers[1]), OFFICER):
        assert await handlers.get_intent(uow.store, intent.intent_id, viewer) == intent
    for stranger in (
        Principal("idp|p", Role.BUYER, rival.buyer_id),
        exporter(motors),
        Principal("idp|new", Role.BUYER),
        OPERATOR,
        FRONT_END,
    ):
        with pytest.raises(NotFound) as hidden:
            await handlers.get_intent(uow.store, intent.intent_id, stranger)
        assert str(hidden.value) == f"no intent {intent.intent_id!r}", stranger


async def test_listed_intents_are_the_callers_own_whatever_the_filter(uow: Uow) -> None:
    rfq, makers = await rfq_to_hair_makers(uow)
    rival = await register(uow, "Perucas", "BR")
    inquiry = await submit(
        uow, rival.buyer_id, draft(kind=IntentKind.INQUIRY, exhibitor_credit_code=makers[0])
    )

    async def listed(viewer: Principal, **filters: str) -> list[str]:
        query = IntentQuery(EDITION, **filters)  # type: ignore[arg-type]
        found, _ = await handlers.list_intents(uow.store, query, first_page(50), viewer)
        return [i.intent_id for i in found]

    buyer_of_rfq = Principal("idp|h", Role.BUYER, rfq.buyer_id)
    assert await listed(buyer_of_rfq) == [rfq.intent_id]
    assert await listed(buyer_of_rfq, buyer_id=rival.buyer_id) == [rfq.intent_id]
    # makers[1] got the RFQ only; naming makers[0] lists its own.
    assert await listed(exporter(makers[1]), recipient=makers[0]) == [rfq.intent_id]
    assert await listed(exporter(makers[0])) == sorted([rfq.intent_id, inquiry.intent_id])
    assert await listed(OFFICER, buyer_id=rival.buyer_id) == [inquiry.intent_id]
    for nobody in (Principal("idp|new", Role.BUYER), OPERATOR, FRONT_END):
        assert await listed(nobody) == []
