"""Reading older versions of event payloads as the current one (upcasting).

Version 1 of several payloads embedded an API resource message (the exporter, the fair,
the warehouse, an intent's response, ...) in a field that version 2 reserves, and
carries the facts it announces in fields of its own instead. The outboxes (the services'
durable logs, replayed into fresh brokers and read by `python -m bureau rebuild`) and the
bureau's journal still hold version-1 events, so the dispatcher upcasts every payload to
the newest version these steps reach before routing it: projections only ever see the
current version, and an old event yields the figures the bureau computed from it then.

A reserved field parses as an unknown field, which protobuf keeps, so version 1's
resource is still in the payload: it is read through protobuf's public unknown-fields
API and parsed as the resource message, which the APIs' resources.proto still define.
Each step takes one payload type from one version to the next and is registered by
(payload type, the version it reads).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from chuhai.booth.v1 import events_pb2 as booth_events
from chuhai.booth.v1 import resources_pb2 as booth_resources
from chuhai.expo.v1 import events_pb2 as expo_events
from chuhai.expo.v1 import resources_pb2 as expo_resources
from chuhai.warehouse.v1 import events_pb2 as warehouse_events
from chuhai.warehouse.v1 import resources_pb2 as warehouse_resources
from runtime.adapters.events import UndecodableEvent

M = TypeVar("M", bound=Message)
# One payload at one version -> the same event at the next version.
Upcaster = Callable[[Any], Message]

# The protobuf encoding's wire type of a length-delimited field, which an embedded
# message is.
_LENGTH_DELIMITED = 2

# (payload type's full name, the version a step reads) -> the step.
_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def upcast(payload: Message, version: int) -> tuple[Message, int]:
    """The payload at the newest version the registered steps reach from `version`, and
    that version; unchanged when no step reads this version of its type. The payload
    given is left as it is."""
    type_name = payload.DESCRIPTOR.full_name
    while (step := _UPCASTERS.get((type_name, version))) is not None:
        payload = step(payload)
        version += 1
    return payload, version


def _upcaster(payload_type: type[Message], *, reads: int) -> Callable[[Upcaster], Upcaster]:
    """Registers a step that reads version `reads` of `payload_type`."""

    def register(step: Upcaster) -> Upcaster:
        key = (payload_type.DESCRIPTOR.full_name, reads)
        if key in _UPCASTERS:
            raise ValueError(f"{key[0]} v{reads} has two upcasters")
        _UPCASTERS[key] = step
        return step

    return register


def _reserved_message(payload: Message, field_number: int, message_type: type[M]) -> M:
    """The message an older version carried in `field_number`, now reserved.

    Read as a parser of the older schema would have: occurrences of the field merge,
    one of another wire type is not the field, and an absent field reads as an empty
    message.
    """
    message = message_type()
    for field in UnknownFieldSet(payload):
        if field.field_number == field_number and field.wire_type == _LENGTH_DELIMITED:
            try:
                message.MergeFromString(field.data)
            except DecodeError as error:
                # What the older schema's parser would have refused, as the whole envelope.
                raise UndecodableEvent(
                    f"{payload.DESCRIPTOR.full_name} field {field_number} is not a "
                    f"{message_type.DESCRIPTOR.full_name}: {error}"
                ) from error
    return message


def _present(message: Message, field_name: str) -> Any:
    """The sub-message, or None (leaving the new field unset) when it was never set."""
    return getattr(message, field_name) if message.HasField(field_name) else None


# booth: the exporter (field 1) and the fair (field 1) ----------------------------------------


def _exporter_facts(exporter: booth_resources.Exporter) -> dict[str, Any]:
    return {
        "credit_code": exporter.credit_code,
        "name": exporter.name,
        "district": exporter.district,
        "industry": exporter.industry,
        "main_product_hs_codes": [product.hs_code for product in exporter.main_products],
    }


@_upcaster(booth_events.ExporterRegistered, reads=1)
def exporter_registered_v1(
    payload: booth_events.ExporterRegistered,
) -> booth_events.ExporterRegistered:
    exporter = _reserved_message(payload, 1, booth_resources.Exporter)
    return booth_events.ExporterRegistered(**_exporter_facts(exporter))


@_upcaster(booth_events.ExporterUpdated, reads=1)
def exporter_updated_v1(payload: booth_events.ExporterUpdated) -> booth_events.ExporterUpdated:
    exporter = _reserved_message(payload, 1, booth_resources.Exporter)
    return booth_events.ExporterUpdated(**_exporter_facts(exporter))


@_upcaster(booth_events.FairCreated, reads=1)
def fair_created_v1(payload: booth_events.FairCreated) -> booth_events.FairCreated:
    fair = _reserved_message(payload, 1, booth_resources.Fair)
    return booth_events.FairCreated(
        fair_id=fair.fair_id,
        name=fair.name,
        session=fair.session,
        opens_at=_present(fair, "opens_at"),
        quotas=[
            booth_events.FairCreated.Quota(
                booth_type=quota.booth_type,
                quota=quota.quota,
                application_deadline=_present(quota, "application_deadline"),
                allocation_deadline=_present(quota, "allocation_deadline"),
            )
            for quota in fair.booth_quotas
        ],
    )


# expo: the edition, exhibitor and product (field 1), the response (field 3) -----------------


@_upcaster(expo_events.ExpoOpened, reads=1)
def expo_opened_v1(payload: expo_events.ExpoOpened) -> expo_events.ExpoOpened:
    edition = _reserved_message(payload, 1, expo_resources.Edition)
    return expo_events.ExpoOpened(
        edition_id=edition.edition_id,
        name=edition.name,
        fair_id=edition.fair_id,
        starts_on=edition.starts_on,
        ends_on=edition.ends_on,
        allow_online_only=edition.allow_online_only,
    )


@_upcaster(expo_events.ExhibitorJoined, reads=1)
def exhibitor_joined_v1(payload: expo_events.ExhibitorJoined) -> expo_events.ExhibitorJoined:
    exhibitor = _reserved_message(payload, 1, expo_resources.Exhibitor)
    return expo_events.ExhibitorJoined(
        edition_id=exhibitor.edition_id,
        credit_code=exhibitor.credit_code,
        name=exhibitor.name,
        industry=exhibitor.industry,
        kind=exhibitor.kind,
        booth_number=exhibitor.booth_number,
    )


@_upcaster(expo_events.ProductListed, reads=1)
def product_listed_v1(payload: expo_events.ProductListed) -> expo_events.ProductListed:
    product = _reserved_message(payload, 1, expo_resources.Product)
    return expo_events.ProductListed(
        product_id=product.product_id,
        edition_id=product.edition_id,
        credit_code=product.credit_code,
        name=product.name,
        hs_code=product.hs_code,
    )


@_upcaster(expo_events.QuoteSent, reads=1)
def quote_sent_v1(payload: expo_events.QuoteSent) -> expo_events.QuoteSent:
    response = _reserved_message(payload, 3, expo_resources.Response)
    return expo_events.QuoteSent(
        intent_id=payload.intent_id,
        edition_id=payload.edition_id,
        credit_code=response.credit_code,
        unit_price=_present(response, "unit_price"),
        moq=response.moq,
        lead_time_days=response.lead_time_days,
        incoterm=response.incoterm,
        valid_until=_present(response, "valid_until"),
        responded_at=_present(response, "responded_at"),
        response_seconds=response.response_seconds,
    )


@_upcaster(expo_events.IntentDeclined, reads=1)
def intent_declined_v1(payload: expo_events.IntentDeclined) -> expo_events.IntentDeclined:
    response = _reserved_message(payload, 3, expo_resources.Response)
    return expo_events.IntentDeclined(
        intent_id=payload.intent_id,
        edition_id=payload.edition_id,
        all_declined=payload.all_declined,
        credit_code=response.credit_code,
        reason=response.reason,
        responded_at=_present(response, "responded_at"),
        response_seconds=response.response_seconds,
    )


# warehouse: the warehouse after the change (field 1), the capacity before it (field 4) ------
#
# Version 1 carried the whole warehouse, status included, in every registry event;
# version 2's Suspended and Reactivated carry its code and country, and Updated no status,
# so the projection takes capacity and status from the warehouse's earlier events. Read
# from its start (outbox or journal), a history gives the figures version 1 gave; only a
# warehouse whose registration the bureau never read would differ (capacity 0 until an
# update, active after an update).


def _warehouse_facts(warehouse: warehouse_resources.Warehouse) -> dict[str, Any]:
    profile = warehouse.profile
    return {
        "code": warehouse.code,
        "name": profile.name,
        "country_code": profile.country_code,
        "city": profile.city,
        "capacity_pallet_positions": profile.capacity.pallet_positions,
        "capacity_cubic_metres": profile.capacity.cubic_metres,
        "services": list(profile.services),
        "publicly_recognised": profile.HasField("recognition"),
    }


@_upcaster(warehouse_events.WarehouseRegistered, reads=1)
def warehouse_registered_v1(
    payload: warehouse_events.WarehouseRegistered,
) -> warehouse_events.WarehouseRegistered:
    warehouse = _reserved_message(payload, 1, warehouse_resources.Warehouse)
    return warehouse_events.WarehouseRegistered(**_warehouse_facts(warehouse))


@_upcaster(warehouse_events.WarehouseUpdated, reads=1)
def warehouse_updated_v1(
    payload: warehouse_events.WarehouseUpdated,
) -> warehouse_events.WarehouseUpdated:
    warehouse = _reserved_message(payload, 1, warehouse_resources.Warehouse)
    previous_capacity = _reserved_message(payload, 4, warehouse_resources.Space)
    return warehouse_events.WarehouseUpdated(
        **_warehouse_facts(warehouse),
        changed_fields=list(payload.changed_fields),
        previous_country_code=payload.previous_country_code,
        previous_capacity_pallet_positions=previous_capacity.pallet_positions,
        previous_capacity_cubic_metres=previous_capacity.cubic_metres,
    )


@_upcaster(warehouse_events.WarehouseSuspended, reads=1)
def warehouse_suspended_v1(
    payload: warehouse_events.WarehouseSuspended,
) -> warehouse_events.WarehouseSuspended:
    warehouse = _reserved_message(payload, 1, warehouse_resources.Warehouse)
    return warehouse_events.WarehouseSuspended(
        reason=payload.reason,
        code=warehouse.code,
        country_code=warehouse.profile.country_code,
    )


@_upcaster(warehouse_events.WarehouseReactivated, reads=1)
def warehouse_reactivated_v1(
    payload: warehouse_events.WarehouseReactivated,
) -> warehouse_events.WarehouseReactivated:
    warehouse = _reserved_message(payload, 1, warehouse_resources.Warehouse)
    return warehouse_events.WarehouseReactivated(
        code=warehouse.code, country_code=warehouse.profile.country_code
    )
