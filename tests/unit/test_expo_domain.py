"""The expo domain on its own: intent validation, RFQ matching, the state machine."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from expo.domain import (
    DEFAULT_MAX_QUOTES,
    Answer,
    BoothStanding,
    Buyer,
    BuyerDraft,
    BuyerType,
    Contact,
    Edition,
    EditionStatus,
    Exhibitor,
    ExhibitorKind,
    Incoterm,
    Intent,
    IntentClosed,
    IntentDeclined,
    IntentDraft,
    IntentExpired,
    IntentKind,
    IntentState,
    IntentSubmitted,
    Money,
    Product,
    ProductDraft,
    QuoteSent,
    RateLimit,
    Response,
    ResponseKind,
    RfqMatched,
    rate_window,
    rfq_recipients,
)
from runtime.kernel.errors import FailedPrecondition, InvalidArgument, NotFound
from runtime.kernel.validation import Validator, validated
from tests.credit_codes import random_credit_code

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
QUOTED, DECLINED = ResponseKind.QUOTED, ResponseKind.DECLINED


def terms(**changes):  # type: ignore[no-untyped-def]
    arguments = {
        "edition_id": "cloud-2026",
        "kind": IntentKind.RFQ,
        "exhibitor_credit_code": "",
        "product_id": "",
        "hs_code": "6704.20",
        "quantity": 500,
        "unit": "piece",
        "target_price": Money("USD", 12, 500_000_000),
        "incoterm": 9,
        "destination_country": "de",
        "destination_port": "",
        "deadline": NOW + timedelta(days=7),
        "max_quotes": 0,
    }
    arguments.update(changes)

    def build(check: Validator) -> IntentDraft:
        draft = IntentDraft.parse(check, **arguments)
        if arguments["deadline"] is not None:
            # Edition.admit_intent checks it against the moment of submission, here NOW.
            draft.check_deadline(check, NOW)
        return draft

    return validated(build)


def test_terms_are_normalised_and_defaulted() -> None:
    rfq = terms()
    assert (rfq.hs_code, rfq.destination_country, rfq.max_quotes) == (
        "670420",
        "DE",
        DEFAULT_MAX_QUOTES,
    )
    inquiry = terms(
        kind=IntentKind.INQUIRY, exhibitor_credit_code=random_credit_code(), max_quotes=9
    )
    assert inquiry.max_quotes == 1


def test_every_wrong_term_is_named() -> None:
    with pytest.raises(InvalidArgument) as error:
        terms(
            hs_code="67",
            quantity=0,
            unit=" ",
            target_price=Money("EURO", -1, 0),
            incoterm=12,
            destination_country="ZZ",
            deadline=NOW - timedelta(seconds=1),
            max_quotes=51,
        )
    assert {v.field for v in error.value.violations} == {
        "hs_code",
        "quantity",
        "unit",
        "target_price.currency",
        "target_price",
        "incoterm",
        "destination_country",
        "deadline",
        "max_quotes",
    }


def test_a_missing_or_too_distant_deadline_is_refused() -> None:
    for deadline in (None, NOW + timedelta(days=181)):
        with pytest.raises(InvalidArgument) as error:
            terms(deadline=deadline)
        assert [v.field for v in error.value.violations] == ["deadline"]


def test_enum_fields_are_named_in_the_apis_words() -> None:
    with pytest.raises(InvalidArgument) as error:
        terms(kind=7, incoterm=0)
    assert {(v.field, v.description) for v in error.value.violations} == {
        ("kind", "must be INTENT_KIND_INQUIRY or INTENT_KIND_RFQ"),
        ("incoterm", "must be one of the Incoterms 2020 rules"),
    }
    with pytest.raises(InvalidArgument) as buyer:
        validated(
            lambda check: BuyerDraft.parse(
                check,
                company="Haarmode",
                country="DE",
                buyer_type=0,
                contact_name="",
                contact_email="",
                contact_phone="",
                path="buyers[2].",
            )
        )
    assert [(v.field, v.description) for v in buyer.value.violations] == [
        ("buyers[2].buyer_type", "must be BUYER_TYPE_NEW or BUYER_TYPE_RETURNING")
    ]


def test_rfq_reaches_each_exhibitor_with_a_product_under_the_heading_once() -> None:
    listings = [("B", "670420"), ("A", "670490"), ("B", "670411"), ("C", "850152")]
    assert rfq_recipients("670420", listings) == ["A", "B"]
    assert rfq_recipients("090111", listings) == []
    assert terms().recipients(listings=listings) == ["A", "B"]
    with pytest.raises(FailedPrecondition, match="HS heading 0901"):
        terms(hs_code="090111").recipients(listings=listings)


def test_an_inquiry_reaches_its_exhibitor_about_its_own_product_only() -> None:
    code = random_credit_code()
    inquiry = terms(kind=IntentKind.INQUIRY, exhibitor_credit_code=code, product_id="p-1")
    exhibitor = Exhibitor("cloud-2026", code, "Rebecca", "hair", ExhibitorKind.BOOTH, "S-1", NOW)
    own = Product("p-1", "cloud-2026", code, "Wig", "670420", "", 1, "piece", None, None, ())
    assert inquiry.recipients(exhibitor=exhibitor, product=own) == [code]
    with pytest.raises(NotFound, match="showroom"):
        inquiry.recipients(exhibitor=exhibitor, product=replace(own, credit_code="other"))
    with pytest.raises(NotFound, match="showroom"):
        inquiry.recipients(exhibitor=exhibitor, product=None)
    with pytest.raises(NotFound, match="not an exhibitor of expo edition cloud-2026"):
        inquiry.recipients(exhibitor=None, product=own)
    # Listings do not matter to an inquiry.
    assert replace(inquiry, product_id="").recipients(exhibitor=exhibitor, listings=[]) == [code]


def intent(
    state: IntentState = IntentState.MATCHED,
    recipients: tuple[str, ...] = ("A", "B", "C"),
    responded: dict[str, ResponseKind] | None = None,
    max_quotes: int = 5,
) -> Intent:
    return Intent(
        intent_id="i-1",
        edition_id="cloud-2026",
        buyer_id="buyer-1",
        buyer_country="DE",
        kind=IntentKind.RFQ,
        exhibitor_credit_code="",
        product_id="",
        hs_code="670420",
        quantity=500,
        unit="piece",
        target_price=None,
        incoterm=Incoterm.FOB,
        destination_country="DE",
        destination_port="",
        deadline=NOW + timedelta(days=7),
        max_quotes=max_quotes,
        state=state,
        recipients=recipients,
        responses=tuple(Response(code, kind, NOW, 0) for code, kind in (responded or {}).items()),
        submitted_at=NOW - timedelta(hours=1),
    )


def answer(kind: ResponseKind) -> Answer:
    if kind == QUOTED:
        return Answer(
            "i-1",
            QUOTED,
            unit_price=Money("USD", 42, 0),
            incoterm=Incoterm.CIF,
            valid_until=NOW + timedelta(days=30),
        )
    return Answer("i-1", DECLINED, reason="no capacity")


def test_quotes_then_close_at_max_quotes() -> None:
    first, events = intent(max_quotes=2).respond("A", answer(QUOTED), NOW)
    assert (first.state, first.quotes) == (IntentState.QUOTED, 1)
    assert [type(e) for e in events] == [QuoteSent]  # not closed by quotes
    assert events[0].quote.response_seconds == 3600
    second, events = first.respond("C", answer(QUOTED), NOW)
    assert second.state == IntentState.CLOSED
    assert events[-1] == IntentClosed("i-1", "cloud-2026", quotes=2, reason="max_quotes")


def test_all_declined_is_declined_and_a_quote_outweighs_declines() -> None:
    recipients = ("A", "B")
    partly, events = intent(recipients=recipients).respond("A", answer(DECLINED), NOW)
    assert partly.state == IntentState.MATCHED
    assert [e.all_declined for e in events if isinstance(e, IntentDeclined)] == [False]
    last, events = partly.respond("B", answer(DECLINED), NOW)
    assert last.state == IntentState.DECLINED
    assert [e.all_declined for e in events if isinstance(e, IntentDeclined)] == [True]
    quoted, _ = partly.respond("B", answer(QUOTED), NOW)
    assert quoted.state == IntentState.QUOTED


@pytest.mark.parametrize(
    ("state", "responded", "responder", "message", "reason"),
    [
        (IntentState.CLOSED, {}, "A", "closed", "INTENT_NOT_OPEN"),
        (IntentState.EXPIRED, {}, "A", "expired", "INTENT_NOT_OPEN"),
        (IntentState.MATCHED, {}, "Z", "not addressed", "NOT_ADDRESSED"),
        (IntentState.QUOTED, {"A": QUOTED}, "A", "already responded", "ALREADY_RESPONDED"),
    ],
)
def test_forbidden_responses(state, responded, responder, message, reason) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FailedPrecondition, match=message) as refused:
        intent(state, ("A", "B"), responded).respond(responder, answer(QUOTED), NOW)
    assert refused.value.reason == reason


def test_a_response_past_the_deadline_is_refused() -> None:
    late = NOW + timedelta(days=8)
    with pytest.raises(FailedPrecondition, match="passed its deadline") as refused:
        intent().respond("A", answer(QUOTED), late)
    assert refused.value.reason == "INTENT_PAST_DEADLINE"


def test_deadline_closes_quoted_intents_and_expires_the_others() -> None:
    late = NOW + timedelta(days=8)
    closed, events = intent(IntentState.QUOTED, responded={"A": QUOTED}).settle_if_due(late)
    assert closed.state == IntentState.CLOSED
    assert events == [IntentClosed("i-1", "cloud-2026", quotes=1, reason="deadline")]
    expired, events = intent(IntentState.MATCHED).settle_if_due(late)
    assert expired.state == IntentState.EXPIRED
    assert events == [IntentExpired("i-1", "cloud-2026")]
    assert intent().settle_if_due(NOW) == (intent(), [])  # not due yet


def test_only_the_buyer_closes_its_open_intent() -> None:
    with pytest.raises(FailedPrecondition, match="another buyer") as refused:
        intent().close_by("buyer-2")
    assert refused.value.reason == "NOT_INTENT_OWNER"
    closed, event = intent().close_by("buyer-1")
    assert closed.state == IntentState.CLOSED and event.reason == "buyer"
    with pytest.raises(FailedPrecondition, match="closed already"):
        closed.close_by("buyer-1")


def test_rate_windows_are_fixed_and_aligned() -> None:
    hour = timedelta(hours=1)
    assert rate_window(NOW, hour) == rate_window(NOW + timedelta(minutes=59), hour)
    assert rate_window(NOW, hour) != rate_window(NOW + timedelta(hours=1), hour)
    limit = RateLimit(intents=2, window=hour)
    assert limit.slot("b", NOW) == limit.slot("b", NOW + timedelta(minutes=59))
    assert limit.slot("b", NOW) != limit.slot("c", NOW)


EDITION = Edition(
    edition_id="cloud-2026",
    name="Xuchang Digital Cloud Expo",
    fair_id="canton-2026",
    starts_on=date(2026, 12, 1),
    ends_on=date(2026, 12, 31),
    allow_online_only=False,
    status=EditionStatus.DRAFT,
)


def test_edition_opens_from_draft_or_closed_and_closes_only_when_open() -> None:
    opened, _ = EDITION.open()
    with pytest.raises(FailedPrecondition, match="cannot be opened"):
        opened.open()
    with pytest.raises(FailedPrecondition, match="cannot be closed"):
        EDITION.close()
    closed, _ = opened.close()
    assert closed.open()[0].status == EditionStatus.OPEN


def test_an_open_edition_admits_intents_whose_deadline_lies_ahead() -> None:
    opened, _ = EDITION.open()
    admission = opened.admit_intent(terms(), NOW)
    assert (admission.draft, admission.at) == (terms(), NOW)
    late = NOW + timedelta(days=7)
    with pytest.raises(InvalidArgument) as error:
        opened.admit_intent(terms(), late)
    assert [(v.field, v.description) for v in error.value.violations] == [
        ("deadline", "must be in the future")
    ]
    for edition in (EDITION, opened.close()[0]):
        with pytest.raises(FailedPrecondition, match="is not open"):
            edition.admit_intent(terms(), NOW)


def test_a_submitted_intent_names_the_exhibitors_it_reached() -> None:
    opened, _ = EDITION.open()
    buyer = Buyer("b-1", "Hamburg Hair GmbH", "DE", BuyerType.NEW, Contact("a", "a@b.de", ""), NOW)
    listings = [("B", "670420"), ("A", "670490"), ("C", "850152")]
    rfq = terms()
    _, events = Intent.submit(
        opened.admit_intent(rfq, NOW),
        intent_id="i-1",
        buyer=buyer,
        recipients=rfq.recipients(listings=listings),
        reached=(),
    )
    submitted, matched = events
    assert isinstance(submitted, IntentSubmitted) and isinstance(matched, RfqMatched)
    assert submitted.recipients == matched.recipients == ("A", "B")

    code = random_credit_code()
    exhibitor = Exhibitor("cloud-2026", code, "Rebecca", "hair", ExhibitorKind.BOOTH, "S-1", NOW)
    inquiry = terms(kind=IntentKind.INQUIRY, exhibitor_credit_code=code)
    _, [asked] = Intent.submit(
        opened.admit_intent(inquiry, NOW),
        intent_id="i-2",
        buyer=buyer,
        recipients=inquiry.recipients(exhibitor=exhibitor),
        reached=(exhibitor,),
    )
    assert isinstance(asked, IntentSubmitted)
    assert (asked.recipients, asked.industries) == ((code,), ("hair",))


def test_a_closed_edition_takes_no_exhibitor_and_no_product() -> None:
    opened, _ = EDITION.open()
    closed, _ = opened.close()
    exhibitor, _ = opened.admit("X", BoothStanding("R", "hair", True, "S-001"), NOW)
    draft = validated(
        lambda check: ProductDraft.parse(
            check,
            edition_id="cloud-2026",
            name="Wig",
            hs_code="670420",
            description="",
            moq=1,
            unit="piece",
            price_min=Money("", 0, 0),
            price_max=Money("", 0, 0),
            certifications=[],
        )
    )
    product, listed = exhibitor.list_product(EDITION, draft, "p-1")  # a draft edition takes it
    assert (listed.product_id, listed.credit_code, listed.hs_code) == ("p-1", "X", "670420")
    assert product.credit_code == "X"
    assert opened.fair_for_joining() == "canton-2026"
    with pytest.raises(FailedPrecondition, match="is closed"):
        exhibitor.list_product(closed, draft, "p-2")
    with pytest.raises(FailedPrecondition, match="is closed"):
        closed.fair_for_joining()


def test_a_booth_holder_exhibits_with_its_booth_others_online_only_if_admitted() -> None:
    holder = BoothStanding("Rebecca", "hair", has_booth=True, booth_number="S-001")
    outsider = BoothStanding("Other", "hair", has_booth=False, booth_number="")
    exhibitor, _ = EDITION.admit("X", holder, NOW)
    assert (exhibitor.kind, exhibitor.booth_number) == (ExhibitorKind.BOOTH, "S-001")
    with pytest.raises(FailedPrecondition, match="no online-only"):
        EDITION.admit("Y", outsider, NOW)
    online, _ = replace(EDITION, allow_online_only=True).admit("Y", outsider, NOW)
    assert online.kind == ExhibitorKind.ONLINE_ONLY
