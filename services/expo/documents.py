"""How expo aggregates are stored in MongoDB and shown as API messages."""

from __future__ import annotations

from typing import Any

from chuhai.expo.v1 import resources_pb2 as pb
from expo.domain import Money
from runtime.adapters.timestamps import timestamp

Document = dict[str, Any]


def money_document(money: Money) -> Document | None:
    if not money.currency and money.is_zero:
        return None
    return {"currency": money.currency, "units": money.units, "nanos": money.nanos}


def money_from(message: pb.Money) -> Money:
    return Money(message.currency.strip().upper(), message.units, message.nanos)


def money_message(doc: Document | None) -> pb.Money | None:
    if doc is None:
        return None
    return pb.Money(currency=doc["currency"], units=doc["units"], nanos=doc["nanos"])


def edition_message(doc: Document) -> pb.Edition:
    return pb.Edition(
        edition_id=doc["_id"],
        name=doc["name"],
        fair_id=doc["fair_id"],
        starts_on=doc["starts_on"],
        ends_on=doc["ends_on"],
        status=doc["status"],
        allow_online_only=doc["allow_online_only"],
    )


def exhibitor_message(doc: Document) -> pb.Exhibitor:
    return pb.Exhibitor(
        edition_id=doc["edition_id"],
        credit_code=doc["credit_code"],
        name=doc["name"],
        industry=doc["industry"],
        kind=doc["kind"],
        booth_number=doc["booth_number"],
        joined_at=timestamp(doc["joined_at"]),
    )


def product_message(doc: Document) -> pb.Product:
    return pb.Product(
        product_id=doc["_id"],
        edition_id=doc["edition_id"],
        credit_code=doc["credit_code"],
        name=doc["name"],
        hs_code=doc["hs_code"],
        description=doc["description"],
        moq=doc["moq"],
        unit=doc["unit"],
        price_min=money_message(doc["price_min"]),
        price_max=money_message(doc["price_max"]),
        certifications=doc["certifications"],
    )


def buyer_message(doc: Document, *, with_contact: bool) -> pb.Buyer:
    buyer = pb.Buyer(
        buyer_id=doc["_id"],
        company=doc["company"],
        country=doc["country"],
        buyer_type=doc["buyer_type"],
        registered_at=timestamp(doc["registered_at"]),
    )
    if with_contact:
        buyer.contact.CopyFrom(pb.Contact(**doc["contact"]))
    return buyer


def response_message(doc: Document) -> pb.Response:
    response = pb.Response(
        credit_code=doc["credit_code"],
        kind=doc["kind"],
        moq=doc.get("moq", 0),
        lead_time_days=doc.get("lead_time_days", 0),
        incoterm=doc.get("incoterm", 0),
        reason=doc.get("reason", ""),
        responded_at=timestamp(doc["responded_at"]),
        response_seconds=doc["response_seconds"],
    )
    if doc.get("unit_price"):
        response.unit_price.CopyFrom(money_message(doc["unit_price"]))
    if doc.get("valid_until"):
        response.valid_until.CopyFrom(timestamp(doc["valid_until"]))
    return response


def intent_message(doc: Document) -> pb.Intent:
    intent = pb.Intent(
        intent_id=doc["_id"],
        edition_id=doc["edition_id"],
        buyer_id=doc["buyer_id"],
        buyer_country=doc["buyer_country"],
        kind=doc["kind"],
        exhibitor_credit_code=doc["exhibitor_credit_code"],
        product_id=doc["product_id"],
        hs_code=doc["hs_code"],
        quantity=doc["quantity"],
        unit=doc["unit"],
        incoterm=doc["incoterm"],
        destination_country=doc["destination_country"],
        destination_port=doc["destination_port"],
        deadline=timestamp(doc["deadline"]),
        max_quotes=doc["max_quotes"],
        state=doc["state"],
        recipients=doc["recipients"],
        responses=[response_message(r) for r in doc["responses"]],
        submitted_at=timestamp(doc["submitted_at"]),
    )
    if doc["target_price"]:
        intent.target_price.CopyFrom(money_message(doc["target_price"]))
    return intent
