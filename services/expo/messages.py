"""The expo service's protobuf: API requests into domain commands (every wrong field
reported at once, a mutating request's request_id with the others; who is calling is
never a request field but the token's principal), domain objects into
API messages, and domain events into the payloads of chuhai.expo.v1 events with their
topic and key."""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.message import Message

from chuhai.expo.v1 import events_pb2 as events
from chuhai.expo.v1 import expo_service_pb2 as pb
from chuhai.expo.v1 import resources_pb2 as res
from expo import domain
from expo.domain import (
    Answer,
    Buyer,
    BuyerDraft,
    Edition,
    Exhibitor,
    Intent,
    IntentDraft,
    IntentQuery,
    Money,
    NewEdition,
    Product,
    ProductDraft,
    ProductQuery,
    Response,
    Visit,
    WarehouseHint,
)
from runtime.adapters import topics
from runtime.adapters.pagination import PageRequest, page_request
from runtime.adapters.timestamps import moment, timestamp
from runtime.adapters.unit_of_work import OutgoingEvent
from runtime.kernel.validation import Validator

MAX_PAGE_SIZE = 100

# Requests -> commands --------------------------------------------------------------------


def _money(message: res.Money) -> Money:
    return Money(message.currency.strip().upper(), message.units, message.nanos)


def new_edition(request: pb.CreateEditionRequest) -> NewEdition:
    check = Validator()
    check.request_id(request.request_id)
    command = NewEdition.parse(
        check,
        edition_id=request.edition_id,
        name=request.name,
        fair_id=request.fair_id,
        starts_on=request.starts_on,
        ends_on=request.ends_on,
        allow_online_only=request.allow_online_only,
    )
    check.raise_if_invalid()
    return command


def edition_id(
    request: pb.OpenEditionRequest | pb.CloseEditionRequest | pb.JoinEditionRequest,
) -> str:
    check = Validator()
    check.request_id(request.request_id)
    value = check.identifier(request.edition_id, "edition_id")
    check.raise_if_invalid()
    return value


def product_draft(request: pb.PublishProductRequest) -> ProductDraft:
    check = Validator()
    check.request_id(request.request_id)
    command = ProductDraft.parse(
        check,
        edition_id=request.edition_id,
        name=request.name,
        hs_code=request.hs_code,
        description=request.description,
        moq=request.moq,
        unit=request.unit,
        price_min=_money(request.price_min),
        price_max=_money(request.price_max),
        certifications=request.certifications,
    )
    check.raise_if_invalid()
    return command


def _buyer_draft(
    check: Validator, buyer: pb.RegisterBuyerRequest | pb.NewBuyer, path: str
) -> BuyerDraft:
    return BuyerDraft.parse(
        check,
        company=buyer.company,
        country=buyer.country,
        buyer_type=buyer.buyer_type,
        contact_name=buyer.contact.name,
        contact_email=buyer.contact.email,
        contact_phone=buyer.contact.phone,
        path=path,
    )


def buyer_draft(request: pb.RegisterBuyerRequest) -> BuyerDraft:
    check = Validator()
    check.request_id(request.request_id)
    draft = _buyer_draft(check, request, "")
    check.raise_if_invalid()
    return draft


def buyer_drafts(request: pb.RegisterBuyersRequest) -> list[BuyerDraft]:
    check = Validator()
    check.request_id(request.request_id)
    limit = domain.BUYERS_PER_CALL
    check.require(0 < len(request.buyers) <= limit, "buyers", f"1 to {limit}")
    drafts = [
        _buyer_draft(check, buyer, f"buyers[{index}].")
        for index, buyer in enumerate(request.buyers)
    ]
    check.raise_if_invalid()
    return drafts


def visits(request: pb.RecordVisitsRequest) -> tuple[str, list[Visit]]:
    """The edition and its visits."""
    check = Validator()
    check.request_id(request.request_id)
    edition = check.identifier(request.edition_id, "edition_id")
    limit = domain.VISITS_PER_CALL
    check.require(0 < len(request.visits) <= limit, "visits", f"1 to {limit}")
    parsed = [
        Visit.parse(
            check,
            index,
            visit_id=visit.visit_id,
            buyer_id=visit.buyer_id,
            credit_code=visit.credit_code,
            product_id=visit.product_id,
        )
        for index, visit in enumerate(request.visits)
    ]
    check.raise_if_invalid()
    return edition, parsed


def intent_draft(request: pb.SubmitIntentRequest) -> IntentDraft:
    """Whether the deadline lies ahead is the use case's question (Edition.admit_intent):
    asked here, a retry after the deadline would be refused instead of answered."""
    check = Validator()
    check.request_id(request.request_id)
    draft = IntentDraft.parse(
        check,
        edition_id=request.edition_id,
        kind=request.kind,
        exhibitor_credit_code=request.exhibitor_credit_code,
        product_id=request.product_id,
        hs_code=request.hs_code,
        quantity=request.quantity,
        unit=request.unit,
        target_price=_money(request.target_price),
        incoterm=request.incoterm,
        destination_country=request.destination_country,
        destination_port=request.destination_port,
        deadline=moment(request, "deadline"),
        max_quotes=request.max_quotes,
    )
    check.raise_if_invalid()
    return draft


def answer(request: pb.RespondToIntentRequest) -> Answer:
    check = Validator()
    check.request_id(request.request_id)
    command = Answer.parse(
        check,
        intent_id=request.intent_id,
        kind=request.kind,
        unit_price=_money(request.unit_price),
        moq=request.moq,
        lead_time_days=request.lead_time_days,
        incoterm=request.incoterm,
        valid_until=moment(request, "valid_until"),
        reason=request.reason,
    )
    check.raise_if_invalid()
    return command


def intent_closing(request: pb.CloseIntentRequest) -> str:
    """The intent its buyer closes."""
    check = Validator()
    check.request_id(request.request_id)
    intent_id = check.identifier(request.intent_id, "intent_id")
    check.raise_if_invalid()
    return intent_id


def _page(page_size: int, page_token: str, query: object) -> PageRequest:
    check = Validator()
    # Lists page in _id order (storage.BY_ID): a token carries that one key.
    page = page_request(page_size, page_token, query, check, key_length=1, maximum=MAX_PAGE_SIZE)
    check.raise_if_invalid()
    return page


def exhibitors_page(request: pb.ListExhibitorsRequest) -> tuple[str, PageRequest]:
    return request.edition_id, _page(
        request.page_size, request.page_token, ("exhibitors", request.edition_id)
    )


def products_page(request: pb.ListProductsRequest) -> tuple[ProductQuery, PageRequest]:
    query = ProductQuery(
        edition_id=request.edition_id,
        credit_code=request.credit_code.strip().upper(),
        hs_heading=request.hs_heading.strip(),
    )
    return query, _page(request.page_size, request.page_token, query)


def intents_page(request: pb.ListIntentsRequest) -> tuple[IntentQuery, PageRequest]:
    query = IntentQuery(
        edition_id=request.edition_id,
        buyer_id=request.buyer_id,
        recipient=request.recipient_credit_code.strip().upper(),
        state=request.state,
    )
    return query, _page(request.page_size, request.page_token, query)


# Domain -> API messages ------------------------------------------------------------------


def _money_message(money: Money | None) -> res.Money | None:
    if money is None:
        return None
    return res.Money(currency=money.currency, units=money.units, nanos=money.nanos)


def edition_message(edition: Edition) -> res.Edition:
    return res.Edition(
        edition_id=edition.edition_id,
        name=edition.name,
        fair_id=edition.fair_id,
        starts_on=edition.starts_on.isoformat(),
        ends_on=edition.ends_on.isoformat(),
        status=edition.status,
        allow_online_only=edition.allow_online_only,
    )


def exhibitor_message(exhibitor: Exhibitor) -> res.Exhibitor:
    return res.Exhibitor(
        edition_id=exhibitor.edition_id,
        credit_code=exhibitor.credit_code,
        name=exhibitor.name,
        industry=exhibitor.industry,
        kind=exhibitor.kind,
        booth_number=exhibitor.booth_number,
        joined_at=timestamp(exhibitor.joined_at),
    )


def product_message(product: Product) -> res.Product:
    return res.Product(
        product_id=product.product_id,
        edition_id=product.edition_id,
        credit_code=product.credit_code,
        name=product.name,
        hs_code=product.hs_code,
        description=product.description,
        moq=product.moq,
        unit=product.unit,
        price_min=_money_message(product.price_min),
        price_max=_money_message(product.price_max),
        certifications=product.certifications,
    )


def buyer_message(buyer: Buyer) -> res.Buyer:
    contact = buyer.contact
    return res.Buyer(
        buyer_id=buyer.buyer_id,
        company=buyer.company,
        country=buyer.country,
        buyer_type=buyer.buyer_type,
        contact=res.Contact(name=contact.name, email=contact.email, phone=contact.phone),
        registered_at=timestamp(buyer.registered_at),
    )


def response_message(response: Response) -> res.Response:
    return res.Response(
        credit_code=response.credit_code,
        kind=response.kind,
        unit_price=_money_message(response.unit_price),
        moq=response.moq,
        lead_time_days=response.lead_time_days,
        incoterm=response.incoterm or 0,
        valid_until=None if response.valid_until is None else timestamp(response.valid_until),
        reason=response.reason,
        responded_at=timestamp(response.responded_at),
        response_seconds=response.response_seconds,
    )


def intent_message(intent: Intent) -> res.Intent:
    return res.Intent(
        intent_id=intent.intent_id,
        edition_id=intent.edition_id,
        buyer_id=intent.buyer_id,
        buyer_country=intent.buyer_country,
        kind=intent.kind,
        exhibitor_credit_code=intent.exhibitor_credit_code,
        product_id=intent.product_id,
        hs_code=intent.hs_code,
        quantity=intent.quantity,
        unit=intent.unit,
        target_price=_money_message(intent.target_price),
        incoterm=intent.incoterm,
        destination_country=intent.destination_country,
        destination_port=intent.destination_port,
        deadline=timestamp(intent.deadline),
        max_quotes=intent.max_quotes,
        state=intent.state,
        recipients=intent.recipients,
        responses=[response_message(r) for r in intent.responses],
        submitted_at=timestamp(intent.submitted_at),
    )


def warehouse_hint_message(hint: WarehouseHint) -> pb.WarehouseHint:
    return pb.WarehouseHint(
        code=hint.code, name=hint.name, country=hint.country, city=hint.city, services=hint.services
    )


# Responses of the RPCs.


def create_edition_response(edition: Edition) -> pb.CreateEditionResponse:
    return pb.CreateEditionResponse(edition=edition_message(edition))


def open_edition_response(edition: Edition) -> pb.OpenEditionResponse:
    return pb.OpenEditionResponse(edition=edition_message(edition))


def close_edition_response(edition: Edition) -> pb.CloseEditionResponse:
    return pb.CloseEditionResponse(edition=edition_message(edition))


def get_edition_response(edition: Edition, exhibitors: int) -> pb.GetEditionResponse:
    return pb.GetEditionResponse(edition=edition_message(edition), exhibitors=exhibitors)


def join_edition_response(exhibitor: Exhibitor) -> pb.JoinEditionResponse:
    return pb.JoinEditionResponse(exhibitor=exhibitor_message(exhibitor))


def list_exhibitors_response(
    exhibitors: Sequence[Exhibitor], token: str
) -> pb.ListExhibitorsResponse:
    return pb.ListExhibitorsResponse(
        exhibitors=[exhibitor_message(e) for e in exhibitors], next_page_token=token
    )


def publish_product_response(product: Product) -> pb.PublishProductResponse:
    return pb.PublishProductResponse(product=product_message(product))


def list_products_response(products: Sequence[Product], token: str) -> pb.ListProductsResponse:
    return pb.ListProductsResponse(
        products=[product_message(p) for p in products], next_page_token=token
    )


def register_buyer_response(buyer: Buyer) -> pb.RegisterBuyerResponse:
    return pb.RegisterBuyerResponse(buyer=buyer_message(buyer))


def register_buyers_response(buyers: Sequence[Buyer]) -> pb.RegisterBuyersResponse:
    return pb.RegisterBuyersResponse(buyers=[buyer_message(b) for b in buyers])


def get_buyer_response(buyer: Buyer) -> pb.GetBuyerResponse:
    return pb.GetBuyerResponse(buyer=buyer_message(buyer))


def record_visits_response(recorded: int) -> pb.RecordVisitsResponse:
    return pb.RecordVisitsResponse(recorded=recorded)


def submit_intent_response(intent: Intent) -> pb.SubmitIntentResponse:
    return pb.SubmitIntentResponse(intent=intent_message(intent))


def with_warehouse_hints(
    response: pb.SubmitIntentResponse, hints: Sequence[WarehouseHint] | None
) -> pb.SubmitIntentResponse:
    """The fulfilment hint, or ``warehouses_available`` false without one (None)."""
    if hints is not None:
        response.warehouses.extend(warehouse_hint_message(h) for h in hints)
        response.warehouses_available = True
    return response


def respond_to_intent_response(intent: Intent) -> pb.RespondToIntentResponse:
    return pb.RespondToIntentResponse(intent=intent_message(intent))


def close_intent_response(intent: Intent) -> pb.CloseIntentResponse:
    return pb.CloseIntentResponse(intent=intent_message(intent))


def get_intent_response(intent: Intent) -> pb.GetIntentResponse:
    return pb.GetIntentResponse(intent=intent_message(intent))


def list_intents_response(intents: Sequence[Intent], token: str) -> pb.ListIntentsResponse:
    return pb.ListIntentsResponse(
        intents=[intent_message(i) for i in intents], next_page_token=token
    )


# Domain events -> outgoing events --------------------------------------------------------


def _intent_event(intent_id: str, payload: Message) -> OutgoingEvent:
    return OutgoingEvent(topics.EXPO_INTENTS, payload, aggregate_id=intent_id)


def encode_event(event: object) -> OutgoingEvent:
    """An expo domain event as the outbox takes it: topic, payload, Kafka key."""
    match event:
        case domain.ExpoOpened():
            return OutgoingEvent(
                topics.EXPO_EDITIONS,
                events.ExpoOpened(
                    edition_id=event.edition_id,
                    name=event.name,
                    fair_id=event.fair_id,
                    starts_on=event.starts_on.isoformat(),
                    ends_on=event.ends_on.isoformat(),
                    allow_online_only=event.allow_online_only,
                ),
                aggregate_id=event.edition_id,
            )
        case domain.ExpoClosed(edition_id=edition_id):
            return OutgoingEvent(
                topics.EXPO_EDITIONS,
                events.ExpoClosed(edition_id=edition_id),
                aggregate_id=edition_id,
            )
        case domain.ExhibitorJoined():
            return OutgoingEvent(
                topics.EXPO_EXHIBITORS,
                events.ExhibitorJoined(
                    edition_id=event.edition_id,
                    credit_code=event.credit_code,
                    name=event.name,
                    industry=event.industry,
                    kind=event.kind,
                    booth_number=event.booth_number,
                ),
                aggregate_id=domain.exhibitor_id(event.edition_id, event.credit_code),
            )
        case domain.ProductListed():
            return OutgoingEvent(
                topics.EXPO_EXHIBITORS,
                events.ProductListed(
                    product_id=event.product_id,
                    edition_id=event.edition_id,
                    credit_code=event.credit_code,
                    name=event.name,
                    hs_code=event.hs_code,
                ),
                aggregate_id=domain.exhibitor_id(event.edition_id, event.credit_code),
            )
        case domain.BuyerRegistered():
            return OutgoingEvent(
                topics.EXPO_BUYERS,
                events.BuyerRegistered(
                    buyer_id=event.buyer_id,
                    company=event.company,
                    country=event.country,
                    buyer_type=event.buyer_type,
                ),
                aggregate_id=event.buyer_id,
            )
        case domain.ExhibitorVisited():
            return OutgoingEvent(
                topics.EXPO_VISITS,
                events.ExhibitorVisited(
                    visit_id=event.visit_id,
                    edition_id=event.edition_id,
                    buyer_id=event.buyer_id,
                    buyer_country=event.buyer_country,
                    credit_code=event.credit_code,
                    product_id=event.product_id,
                    visited_at=timestamp(event.visited_at),
                ),
                aggregate_id=event.buyer_id,
                event_id=event.event_id,
            )
        case domain.IntentSubmitted():
            return _intent_event(
                event.intent_id,
                events.IntentSubmitted(
                    intent_id=event.intent_id,
                    edition_id=event.edition_id,
                    buyer_id=event.buyer_id,
                    buyer_country=event.buyer_country,
                    kind=event.kind,
                    hs_code=event.hs_code,
                    quantity=event.quantity,
                    unit=event.unit,
                    target_price=_money_message(event.target_price),
                    incoterm=event.incoterm,
                    destination_country=event.destination_country,
                    deadline=timestamp(event.deadline),
                    industries=event.industries,
                    recipients=event.recipients,
                ),
            )
        case domain.RfqMatched():
            return _intent_event(
                event.intent_id,
                events.RfqMatched(
                    intent_id=event.intent_id,
                    edition_id=event.edition_id,
                    recipients=event.recipients,
                ),
            )
        case domain.QuoteSent(quote=quote):
            return _intent_event(
                event.intent_id,
                events.QuoteSent(
                    intent_id=event.intent_id,
                    edition_id=event.edition_id,
                    credit_code=quote.credit_code,
                    unit_price=_money_message(quote.unit_price),
                    moq=quote.moq,
                    lead_time_days=quote.lead_time_days,
                    incoterm=quote.incoterm or 0,
                    valid_until=None if quote.valid_until is None else timestamp(quote.valid_until),
                    responded_at=timestamp(quote.responded_at),
                    response_seconds=quote.response_seconds,
                ),
            )
        case domain.IntentDeclined(decline=decline):
            return _intent_event(
                event.intent_id,
                events.IntentDeclined(
                    intent_id=event.intent_id,
                    edition_id=event.edition_id,
                    all_declined=event.all_declined,
                    credit_code=decline.credit_code,
                    reason=decline.reason,
                    responded_at=timestamp(decline.responded_at),
                    response_seconds=decline.response_seconds,
                ),
            )
        case domain.IntentClosed():
            return _intent_event(
                event.intent_id,
                events.IntentClosed(
                    intent_id=event.intent_id,
                    edition_id=event.edition_id,
                    quotes=event.quotes,
                    reason=event.reason,
                ),
            )
        case domain.IntentExpired():
            return _intent_event(
                event.intent_id,
                events.IntentExpired(intent_id=event.intent_id, edition_id=event.edition_id),
            )
    raise TypeError(f"not an expo domain event: {event!r}")
