"""The expo service's protobuf edge: requests into commands, events into payloads."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from google.protobuf import descriptor_pb2

from chuhai.expo.v1 import expo_service_pb2 as pb
from chuhai.expo.v1 import resources_pb2 as res
from expo import domain, messages
from runtime.adapters import topics
from runtime.adapters.events import envelope_for
from runtime.adapters.timestamps import timestamp
from runtime.kernel.errors import InvalidArgument
from tests.credit_codes import random_credit_code

NOW = datetime(2026, 3, 1, 9, tzinfo=UTC)


def fields(error: pytest.ExceptionInfo[InvalidArgument]) -> set[str]:
    return {v.field for v in error.value.violations}


def test_every_wrong_field_of_a_new_edition_is_named() -> None:
    with pytest.raises(InvalidArgument) as error:
        messages.new_edition(
            pb.CreateEditionRequest(
                request_id="r", edition_id="X", starts_on="2026-13-01", ends_on="soon"
            )
        )
    assert fields(error) == {"edition_id", "name", "fair_id", "starts_on", "ends_on"}
    with pytest.raises(InvalidArgument) as reversed_dates:
        messages.new_edition(
            pb.CreateEditionRequest(
                request_id="r",
                edition_id="cloud-2026",
                name="Cloud",
                fair_id="canton",
                starts_on="2026-12-31",
                ends_on="2026-12-01",
            )
        )
    assert fields(reversed_dates) == {"ends_on"}


def test_every_wrong_field_of_an_intent_is_named() -> None:
    request = pb.SubmitIntentRequest(
        request_id="r",
        edition_id="cloud-2026",
        kind=res.INTENT_KIND_RFQ,
        hs_code="670420",
        quantity=0,
        unit="piece",
        target_price=res.Money(currency="EURO", units=40),
        destination_country="XX",
        deadline=timestamp(NOW + timedelta(days=7)),
    )
    with pytest.raises(InvalidArgument) as error:
        messages.intent_draft(request)
    assert fields(error) == {"destination_country", "target_price.currency", "quantity", "incoterm"}


def test_an_intent_draft_is_normalised() -> None:
    code = random_credit_code()
    request = pb.SubmitIntentRequest(
        request_id="r",
        edition_id=" cloud-2026 ",
        kind=res.INTENT_KIND_INQUIRY,
        exhibitor_credit_code=code.lower(),
        hs_code="6704.20",
        quantity=5,
        unit="piece",
        target_price=res.Money(currency=" eur", units=40),
        incoterm=res.INCOTERM_FOB,
        destination_country="es",
        deadline=timestamp(NOW + timedelta(days=7, microseconds=1500)),
    )
    draft = messages.intent_draft(request)
    assert (draft.edition_id, draft.exhibitor_credit_code, draft.hs_code) == (
        "cloud-2026",
        code,
        "670420",
    )
    assert draft.target_price == domain.Money("EUR", 40, 0)
    # Milliseconds, as stored: the response equals what a later read gives.
    assert draft.deadline == NOW + timedelta(days=7, milliseconds=1)


def test_every_wrong_visit_field_is_named_with_its_index() -> None:
    request = pb.RecordVisitsRequest(
        request_id="r",
        edition_id="cloud-2026",
        visits=[pb.Visit(visit_id=" ", buyer_id="", credit_code="nope")],
    )
    with pytest.raises(InvalidArgument) as error:
        messages.visits(request)
    assert fields(error) == {"visits[0].visit_id", "visits[0].buyer_id", "visits[0].credit_code"}
    with pytest.raises(InvalidArgument) as empty:
        messages.visits(pb.RecordVisitsRequest(request_id="r"))
    assert fields(empty) == {"edition_id", "visits"}


def test_a_quote_needs_its_terms_and_a_response_its_kind() -> None:
    with pytest.raises(InvalidArgument) as error:
        messages.answer(
            pb.RespondToIntentRequest(
                request_id="r",
                intent_id="i",
                kind=res.RESPONSE_KIND_QUOTED,
                lead_time_days=400,
            )
        )
    assert fields(error) == {
        "unit_price.currency",
        "lead_time_days",
        "incoterm",
        "valid_until",
    }
    with pytest.raises(InvalidArgument) as kindless:
        messages.answer(pb.RespondToIntentRequest(request_id="r", intent_id="i"))
    assert fields(kindless) == {"kind"}


def test_a_bad_request_id_is_named_with_the_other_wrong_fields() -> None:
    too_long = "r" * 129
    decoders = [
        (messages.new_edition, pb.CreateEditionRequest(request_id=too_long), "edition_id"),
        (messages.edition_id, pb.OpenEditionRequest(), "edition_id"),
        (messages.edition_id, pb.CloseEditionRequest(), "edition_id"),
        (messages.edition_id, pb.JoinEditionRequest(), "edition_id"),
        (messages.product_draft, pb.PublishProductRequest(), "hs_code"),
        (messages.buyer_draft, pb.RegisterBuyerRequest(), "company"),
        (messages.buyer_drafts, pb.RegisterBuyersRequest(), "buyers"),
        (messages.visits, pb.RecordVisitsRequest(), "visits"),
        (messages.intent_draft, pb.SubmitIntentRequest(), "deadline"),
        (messages.answer, pb.RespondToIntentRequest(), "kind"),
        (messages.intent_closing, pb.CloseIntentRequest(), "intent_id"),
    ]
    for decode, request, other in decoders:
        with pytest.raises(InvalidArgument) as error:
            decode(request)
        assert {"request_id", other} <= fields(error), type(request).__name__


@pytest.mark.parametrize(
    ("request_type", "field", "number"),
    [
        (pb.GetBuyerRequest, "viewer_credit_code", 2),
        (pb.SubmitIntentRequest, "buyer_id", 3),
        (pb.RespondToIntentRequest, "credit_code", 3),
        (pb.CloseIntentRequest, "buyer_id", 3),
        (pb.JoinEditionRequest, "credit_code", 3),
        (pb.PublishProductRequest, "credit_code", 3),
    ],
)
def test_no_request_names_its_caller(request_type, field, number) -> None:  # type: ignore[no-untyped-def]
    """Who calls comes from the token: the fields that named the caller are gone, their
    number and name reserved so that no new field reuses them."""
    descriptor = request_type.DESCRIPTOR
    assert field not in descriptor.fields_by_name
    proto = descriptor_pb2.DescriptorProto()
    descriptor.CopyToProto(proto)
    assert field in proto.reserved_name
    assert any(r.start <= number < r.end for r in proto.reserved_range)


def test_a_bad_page_token_or_size_is_refused() -> None:
    with pytest.raises(InvalidArgument) as error:
        messages.intents_page(pb.ListIntentsRequest(edition_id="e", page_token="garbage"))
    assert fields(error) == {"page_token"}
    with pytest.raises(InvalidArgument) as too_big:
        messages.products_page(pb.ListProductsRequest(edition_id="e", page_size=101))
    assert fields(too_big) == {"page_size"}


QUOTE = domain.Response(
    credit_code="C1",
    kind=domain.ResponseKind.QUOTED,
    responded_at=NOW,
    response_seconds=300,
    unit_price=domain.Money("USD", 42, 0),
    moq=100,
    lead_time_days=21,
    incoterm=domain.Incoterm.CIF,
    valid_until=NOW + timedelta(days=30),
)


def test_events_carry_their_facts_flat_on_their_topics() -> None:
    opened = messages.encode_event(
        domain.ExpoOpened(
            "cloud-2026",
            "Cloud Expo",
            "canton-2026",
            date(2026, 12, 1),
            date(2026, 12, 31),
            allow_online_only=True,
        )
    )
    assert (opened.topic, opened.aggregate_id) == (topics.EXPO_EDITIONS, "cloud-2026")
    assert opened.payload.starts_on == "2026-12-01" and opened.payload.allow_online_only

    joined = messages.encode_event(
        domain.ExhibitorJoined(
            "cloud-2026", "C1", "Rebecca", "hair", domain.ExhibitorKind.BOOTH, "S-001"
        )
    )
    assert (joined.topic, joined.aggregate_id) == (topics.EXPO_EXHIBITORS, "cloud-2026:C1")
    assert joined.payload.booth_number == "S-001"

    listed = messages.encode_event(
        domain.ProductListed("p-1", "cloud-2026", "C1", "Human hair lace wig", "670420")
    )
    assert (listed.topic, listed.aggregate_id) == (topics.EXPO_EXHIBITORS, "cloud-2026:C1")
    assert (listed.payload.product_id, listed.payload.hs_code) == ("p-1", "670420")

    submitted = messages.encode_event(
        domain.IntentSubmitted(
            "i-1",
            "cloud-2026",
            "b-1",
            "DE",
            domain.IntentKind.RFQ,
            "670420",
            2000,
            "piece",
            None,
            domain.Incoterm.CIF,
            "DE",
            NOW + timedelta(days=14),
            ("hair products", "wigs"),
            ("91411000MA0000001X", "91411000MA0000002X"),
        )
    )
    assert (submitted.topic, submitted.aggregate_id) == (topics.EXPO_INTENTS, "i-1")
    envelope = envelope_for(submitted.payload, aggregate_id="i-1", producer="expo")
    assert list(envelope.intent_submitted.recipients) == [
        "91411000MA0000001X",
        "91411000MA0000002X",
    ]
    assert (submitted.payload.buyer_country, submitted.payload.quantity) == ("DE", 2000)
    assert not submitted.payload.HasField("target_price")
    assert list(submitted.payload.industries) == ["hair products", "wigs"]
    assert submitted.payload.deadline.ToDatetime(UTC) == NOW + timedelta(days=14)

    sent = messages.encode_event(domain.QuoteSent("i-1", "cloud-2026", QUOTE))
    assert (sent.topic, sent.aggregate_id) == (topics.EXPO_INTENTS, "i-1")
    assert (sent.payload.credit_code, sent.payload.unit_price.units) == ("C1", 42)
    assert sent.payload.response_seconds == 300
    assert sent.payload.valid_until.ToDatetime(UTC) == NOW + timedelta(days=30)

    declined = messages.encode_event(
        domain.IntentDeclined(
            "i-1",
            "cloud-2026",
            domain.Response("C2", domain.ResponseKind.DECLINED, NOW, 60, reason="busy"),
            all_declined=True,
        )
    )
    assert (declined.payload.credit_code, declined.payload.reason) == ("C2", "busy")
    assert declined.payload.all_declined


def test_a_visit_keeps_the_event_id_derived_from_the_clients_visit_id() -> None:
    event_id = domain.visit_event_id("cloud-2026", "v1")
    visited = messages.encode_event(
        domain.ExhibitorVisited(event_id, "v1", "cloud-2026", "b-1", "US", "C1", "", NOW)
    )
    assert (visited.topic, visited.aggregate_id, visited.event_id) == (
        topics.EXPO_VISITS,
        "b-1",
        event_id,
    )
    assert (
        event_id
        == domain.visit_event_id("cloud-2026", "v1")
        != domain.visit_event_id("other", "v1")
    )


def test_a_decline_shows_no_quote_terms() -> None:
    decline = domain.Response("C2", domain.ResponseKind.DECLINED, NOW, 60, reason="busy")
    message = messages.response_message(decline)
    assert not message.HasField("unit_price") and not message.HasField("valid_until")
    assert messages.response_message(QUOTE).valid_until.ToDatetime(UTC) == QUOTE.valid_until
