"""Version 1 of the payloads that stopped embedding API resources, read by upcasting:
each step gives the version-2 payload, and old events give the figures the bureau
computed from them before (alone, and in a history mixed with version-2 events)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import pytest
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.protobuf.timestamp_pb2 import Timestamp

from bureau.figures import BureauFigures
from bureau.projections.booth import BoothFigures
from bureau.projections.expo import ResponseFigures
from bureau.projections.upcast import upcast
from bureau.projections.warehouse import WarehouseFigures
from chuhai.booth.v1 import booth_service_pb2 as booth_api
from chuhai.booth.v1 import events_pb2 as booth
from chuhai.booth.v1 import resources_pb2 as booth_resources
from chuhai.events.v1.envelope_pb2 import EventEnvelope
from chuhai.expo.v1 import events_pb2 as expo
from chuhai.expo.v1 import resources_pb2 as expo_resources
from chuhai.warehouse.v1 import events_pb2 as warehouse
from chuhai.warehouse.v1 import resources_pb2 as warehouse_resources
from chuhai.warehouse.v1 import warehouse_service_pb2 as warehouse_api
from runtime.adapters.events import UndecodableEvent, schema_version
from tests.unit.test_bureau_aggregates import (
    BRAND,
    STANDARD,
    T0,
    Application,
    applied,
    capacity_reserved,
    event,
    exporter_registered,
    fair_created,
    intent_declined,
    intent_submitted,
    rfq_matched,
    warehouse_reactivated,
    warehouse_registered,
    warehouse_updated,
)

M = TypeVar("M", bound=Message)
T1 = T0 + timedelta(hours=1)
T2 = T0 + timedelta(hours=2)
DAY = T0.date()
ACTIVE = warehouse_resources.WarehouseStatus.WAREHOUSE_STATUS_ACTIVE
SUSPENDED = warehouse_resources.WarehouseStatus.WAREHOUSE_STATUS_SUSPENDED
STORAGE = warehouse_resources.LogisticsService.LOGISTICS_SERVICE_STORAGE
RETURNS = warehouse_resources.LogisticsService.LOGISTICS_SERVICE_RETURNS
QUOTED = expo_resources.ResponseKind.RESPONSE_KIND_QUOTED
DECLINED = expo_resources.ResponseKind.RESPONSE_KIND_DECLINED
FOB = expo_resources.Incoterm.INCOTERM_FOB
BOOTH = expo_resources.ExhibitorKind.EXHIBITOR_KIND_BOOTH


# Writing version 1 as the old producers did --------------------------------------------------


def varint(value: int) -> bytes:
    """A non-negative integer as the protobuf encoding writes it: 7 bits a byte, low first."""
    encoded = bytearray()
    while value > 0x7F:
        encoded.append(value & 0x7F | 0x80)
        value >>= 7
    encoded.append(value)
    return bytes(encoded)


def embedded(field_number: int, message: Message) -> bytes:
    """A message-typed field: its tag (field number, wire type 2), its length, its bytes."""
    body = message.SerializeToString()
    return varint(field_number << 3 | 2) + varint(len(body)) + body


def version_one(payload_type: type[M], resources: dict[int, Message], **fields: Any) -> M:
    """A version-1 payload: the fields version 2 kept, plus the resource messages in the
    fields version 2 reserves (the encoding of a message is the concatenation of its
    fields' encodings)."""
    raw = payload_type(**fields).SerializeToString()
    raw += b"".join(embedded(number, resource) for number, resource in resources.items())
    return payload_type.FromString(raw)


def recorded(
    payload: Message, aggregate_id: str, at: datetime = T0, *, version: int = 1
) -> EventEnvelope:
    """The envelope as the outbox and the journal hold it, read back from its bytes:
    stamped 1, as the runtime stamped every event before payloads were versioned one
    by one, or 0 (an envelope written before it had the field)."""
    envelope = event(payload, aggregate_id, at)
    envelope.schema_version = version
    return EventEnvelope.FromString(envelope.SerializeToString())


def moment(at: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return stamp


# Version 1 resources ------------------------------------------------------------------------


def exporter_resource(credit_code: str) -> booth_resources.Exporter:
    return booth_resources.Exporter(
        credit_code=credit_code,
        name="Xuchang Hair Co",
        district="Jian'an",
        industry="hair products",
        main_products=[
            booth_resources.Product(name="wigs", hs_code="670420"),
            booth_resources.Product(name="lashes", hs_code="670490"),
        ],
        export_turnover_usd=12_000_000,
        brand_owner=True,
        past_fairs=["Canton Fair 135"],
        registered_at=moment(T0),
    )


def fair_resource(fair_id: str, standard: int, brand: int) -> booth_resources.Fair:
    def quota(booth_type: int, count: int) -> booth_resources.BoothQuota:
        return booth_resources.BoothQuota(
            booth_type=booth_type,
            quota=count,
            application_deadline=moment(T0 + timedelta(days=10)),
            allocation_deadline=moment(T0 + timedelta(days=20)),
            fee_fen=1_000_000,
        )

    return booth_resources.Fair(
        fair_id=fair_id,
        name="China Import and Export Fair",
        organiser="MOFCOM",
        session="139th",
        venue="Pazhou",
        booth_quotas=[quota(STANDARD, standard), quota(BRAND, brand)],
        status=booth_resources.FairStatus.FAIR_STATUS_DRAFT,
        opens_at=moment(T0 + timedelta(days=30)),
    )


def quote_resource(credit_code: str, seconds: int) -> expo_resources.Response:
    return expo_resources.Response(
        credit_code=credit_code,
        kind=QUOTED,
        unit_price=expo_resources.Money(currency="USD", units=12, nanos=500_000_000),
        moq=100,
        lead_time_days=30,
        incoterm=FOB,
        valid_until=moment(T0 + timedelta(days=14)),
        responded_at=moment(T0 + timedelta(seconds=seconds)),
        response_seconds=seconds,
    )


def decline_resource(credit_code: str, seconds: int) -> expo_resources.Response:
    return expo_resources.Response(
        credit_code=credit_code,
        kind=DECLINED,
        reason="out of stock",
        responded_at=moment(T0 + timedelta(seconds=seconds)),
        response_seconds=seconds,
    )


def warehouse_resource(
    code: str, country: str, pallets: int, status: int = ACTIVE
) -> warehouse_resources.Warehouse:
    return warehouse_resources.Warehouse(
        code=code,
        profile=warehouse_resources.WarehouseProfile(
            name=f"{code} Overseas",
            operator=warehouse_resources.Operator(name="Henan Logistics"),
            country_code=country,
            city="Hamburg",
            capacity=warehouse_resources.Space(pallet_positions=pallets, cubic_metres=pallets * 2),
            services=[STORAGE, RETURNS],
            recognition=warehouse_resources.PublicRecognition(
                recognised_by="Henan DOFCOM", since="2021-06-01"
            ),
        ),
        status=status,
        suspension_reason="audit" if status == SUSPENDED else "",
        registered_at=moment(T0),
    )


# Version 1 events ---------------------------------------------------------------------------


def exporter_registered_v1(credit_code: str, *, version: int = 1) -> EventEnvelope:
    payload = version_one(booth.ExporterRegistered, {1: exporter_resource(credit_code)})
    return recorded(payload, credit_code, version=version)


def fair_created_v1(fair_id: str, standard: int, brand: int, *, version: int = 1) -> EventEnvelope:
    payload = version_one(booth.FairCreated, {1: fair_resource(fair_id, standard, brand)})
    return recorded(payload, fair_id, version=version)


def quote_sent_v1(intent_id: str, credit_code: str, seconds: int) -> EventEnvelope:
    payload = version_one(
        expo.QuoteSent,
        {3: quote_resource(credit_code, seconds)},
        intent_id=intent_id,
        edition_id="cloud-2022",
    )
    return recorded(payload, intent_id)


def intent_declined_v1(
    intent_id: str, credit_code: str, seconds: int, *, all_declined: bool = False
) -> EventEnvelope:
    payload = version_one(
        expo.IntentDeclined,
        {3: decline_resource(credit_code, seconds)},
        intent_id=intent_id,
        edition_id="cloud-2022",
        all_declined=all_declined,
    )
    return recorded(payload, intent_id)


def warehouse_registered_v1(
    code: str, country: str, pallets: int, at: datetime = T0
) -> EventEnvelope:
    payload = version_one(
        warehouse.WarehouseRegistered, {1: warehouse_resource(code, country, pallets)}
    )
    return recorded(payload, code, at)


def warehouse_updated_v1(
    code: str,
    country: str,
    pallets: int,
    at: datetime,
    previous: tuple[str, int],
    status: int = ACTIVE,
) -> EventEnvelope:
    payload = version_one(
        warehouse.WarehouseUpdated,
        {
            1: warehouse_resource(code, country, pallets, status),
            4: warehouse_resources.Space(
                pallet_positions=previous[1], cubic_metres=previous[1] * 2
            ),
        },
        changed_fields=["country_code", "capacity"],
        previous_country_code=previous[0],
    )
    return recorded(payload, code, at)


def warehouse_suspended_v1(code: str, country: str, pallets: int, at: datetime) -> EventEnvelope:
    payload = version_one(
        warehouse.WarehouseSuspended,
        {1: warehouse_resource(code, country, pallets, SUSPENDED)},
        reason="audit",
    )
    return recorded(payload, code, at)


def warehouse_reactivated_v1(code: str, country: str, pallets: int, at: datetime) -> EventEnvelope:
    payload = version_one(
        warehouse.WarehouseReactivated, {1: warehouse_resource(code, country, pallets)}
    )
    return recorded(payload, code, at)


def test_the_test_encoder_writes_what_protobuf_writes() -> None:
    """These messages' only field is number 1, the resource, as in version 1's payloads."""
    exporter = exporter_resource("firm-a")
    house = warehouse_resource("WH-1", "DE", 300)

    assert embedded(1, exporter) == (
        booth_api.RegisterExporterResponse(exporter=exporter).SerializeToString()
    )
    assert embedded(1, house) == (
        warehouse_api.RegisterWarehouseResponse(warehouse=house).SerializeToString()
    )
    assert varint(300) == b"\xac\x02"


# Each step gives the version-2 payload ------------------------------------------------------

EXPORTER_V2 = {
    "credit_code": "firm-a",
    "name": "Xuchang Hair Co",
    "district": "Jian'an",
    "industry": "hair products",
    "main_product_hs_codes": ["670420", "670490"],
}


def fair_created_v2() -> booth.FairCreated:
    def quota(booth_type: int, count: int) -> booth.FairCreated.Quota:
        return booth.FairCreated.Quota(
            booth_type=booth_type,
            quota=count,
            application_deadline=moment(T0 + timedelta(days=10)),
            allocation_deadline=moment(T0 + timedelta(days=20)),
        )

    return booth.FairCreated(
        fair_id="canton-139",
        name="China Import and Export Fair",
        session="139th",
        opens_at=moment(T0 + timedelta(days=30)),
        quotas=[quota(STANDARD, 4), quota(BRAND, 2)],
    )


WAREHOUSE_V2 = {
    "code": "WH-1",
    "name": "WH-1 Overseas",
    "country_code": "DE",
    "city": "Hamburg",
    "capacity_pallet_positions": 300,
    "capacity_cubic_metres": 600,
    "services": [STORAGE, RETURNS],
    "publicly_recognised": True,
}

# (version-1 event, the version-2 payload it stands for), one per upcaster.
UPCASTS: dict[str, tuple[EventEnvelope, Message]] = {
    "ExporterRegistered": (
        exporter_registered_v1("firm-a"),
        booth.ExporterRegistered(**EXPORTER_V2),
    ),
    "ExporterUpdated": (
        recorded(
            version_one(booth.ExporterUpdated, {1: exporter_resource("firm-a")}), "firm-a", T1
        ),
        booth.ExporterUpdated(**EXPORTER_V2),
    ),
    "FairCreated": (fair_created_v1("canton-139", 4, 2), fair_created_v2()),
    "ExpoOpened": (
        recorded(
            version_one(
                expo.ExpoOpened,
                {
                    1: expo_resources.Edition(
                        edition_id="cloud-2022",
                        name="Cloud expo",
                        fair_id="canton-139",
                        starts_on="2022-10-15",
                        ends_on="2022-11-15",
                        status=expo_resources.EditionStatus.EDITION_STATUS_OPEN,
                        allow_online_only=True,
                    )
                },
            ),
            "cloud-2022",
        ),
        expo.ExpoOpened(
            edition_id="cloud-2022",
            name="Cloud expo",
            fair_id="canton-139",
            starts_on="2022-10-15",
            ends_on="2022-11-15",
            allow_online_only=True,
        ),
    ),
    "ExhibitorJoined": (
        recorded(
            version_one(
                expo.ExhibitorJoined,
                {
                    1: expo_resources.Exhibitor(
                        edition_id="cloud-2022",
                        credit_code="firm-a",
                        name="Xuchang Hair Co",
                        industry="hair products",
                        kind=BOOTH,
                        booth_number="12.1-A03",
                        joined_at=moment(T0),
                    )
                },
            ),
            "cloud-2022/firm-a",
        ),
        expo.ExhibitorJoined(
            edition_id="cloud-2022",
            credit_code="firm-a",
            name="Xuchang Hair Co",
            industry="hair products",
            kind=BOOTH,
            booth_number="12.1-A03",
        ),
    ),
    "ProductListed": (
        recorded(
            version_one(
                expo.ProductListed,
                {
                    1: expo_resources.Product(
                        product_id="p-1",
                        edition_id="cloud-2022",
                        credit_code="firm-a",
                        name="Lace front wig",
                        hs_code="670420",
                        moq=50,
                        unit="piece",
                        certifications=["CE"],
                    )
                },
            ),
            "cloud-2022/firm-a",
        ),
        expo.ProductListed(
            product_id="p-1",
            edition_id="cloud-2022",
            credit_code="firm-a",
            name="Lace front wig",
            hs_code="670420",
        ),
    ),
    "QuoteSent": (
        quote_sent_v1("intent-1", "firm-a", 600),
        expo.QuoteSent(
            intent_id="intent-1",
            edition_id="cloud-2022",
            credit_code="firm-a",
            unit_price=expo_resources.Money(currency="USD", units=12, nanos=500_000_000),
            moq=100,
            lead_time_days=30,
            incoterm=FOB,
            valid_until=moment(T0 + timedelta(days=14)),
            responded_at=moment(T0 + timedelta(seconds=600)),
            response_seconds=600,
        ),
    ),
    "IntentDeclined": (
        intent_declined_v1("intent-1", "firm-b", 900, all_declined=True),
        expo.IntentDeclined(
            intent_id="intent-1",
            edition_id="cloud-2022",
            all_declined=True,
            credit_code="firm-b",
            reason="out of stock",
            responded_at=moment(T0 + timedelta(seconds=900)),
            response_seconds=900,
        ),
    ),
    "WarehouseRegistered": (
        warehouse_registered_v1("WH-1", "DE", 300),
        warehouse.WarehouseRegistered(**WAREHOUSE_V2),
    ),
    "WarehouseUpdated": (
        warehouse_updated_v1("WH-1", "DE", 300, T1, previous=("PL", 250)),
        warehouse.WarehouseUpdated(
            **WAREHOUSE_V2,
            changed_fields=["country_code", "capacity"],
            previous_country_code="PL",
            previous_capacity_pallet_positions=250,
            previous_capacity_cubic_metres=500,
        ),
    ),
    "WarehouseSuspended": (
        warehouse_suspended_v1("WH-1", "DE", 300, T1),
        warehouse.WarehouseSuspended(code="WH-1", country_code="DE", reason="audit"),
    ),
    "WarehouseReactivated": (
        warehouse_reactivated_v1("WH-1", "DE", 300, T1),
        warehouse.WarehouseReactivated(code="WH-1", country_code="DE"),
    ),
}


def payload_of(envelope: EventEnvelope) -> Message:
    return getattr(envelope, envelope.WhichOneof("payload"))


@pytest.mark.parametrize("payload_type", UPCASTS)
def test_version_one_upcasts_to_the_version_two_payload_and_its_figures(
    payload_type: str,
) -> None:
    old, new_payload = UPCASTS[payload_type]

    assert upcast(payload_of(old), 1) == (new_payload, 2)

    # The figures of the old event are those of the new one, to the last record.
    new = event(new_payload, old.aggregate_id, old.occurred_at.ToDatetime(tzinfo=UTC))
    from_old, from_new = applied(old), applied(new)
    assert from_old.headline().events_applied == 1
    assert from_old.events_skipped() == 0
    assert from_old.snapshot() == from_new.snapshot()


def test_every_changed_payload_type_is_upcast_from_version_one_to_its_current_version() -> None:
    payloads = EventEnvelope.DESCRIPTOR.oneofs_by_name["payload"].fields
    changed = {
        field.message_type.name: GetMessageClass(field.message_type)
        for field in payloads
        if schema_version(GetMessageClass(field.message_type)) > 1
    }

    assert set(changed) == set(UPCASTS)
    for payload_type in changed.values():
        assert upcast(payload_type(), 1)[1] == schema_version(payload_type)


def test_a_payload_already_at_its_version_is_left_as_it_is() -> None:
    current = booth.ExporterRegistered(**EXPORTER_V2)
    unchanged_type = expo.ExhibitorVisited(visit_id="v-1", buyer_id="b-1")

    assert upcast(current, 2) == (current, 2)
    assert upcast(unchanged_type, 1) == (unchanged_type, 1)
    assert upcast(current, 3) == (current, 3)


def test_applying_an_old_event_leaves_its_envelope_as_received() -> None:
    """The journal keeps what was delivered; upcasting happens on every read."""
    old = fair_created_v1("canton-139", 4, 2)
    received = old.SerializeToString()

    applied(old)

    assert old.SerializeToString() == received


def test_a_version_one_resource_that_does_not_parse_is_undecodable() -> None:
    """As the old schema's parser would have refused the envelope, so the stream dead-
    letters it instead of counting it."""
    broken = booth.FairCreated.FromString(b"\x0a\x04\x0a\x09ab")

    with pytest.raises(UndecodableEvent, match=r"chuhai\.booth\.v1\.Fair"):
        BureauFigures().apply(recorded(broken, "canton-139"))


# The figures the old bureau computed ----------------------------------------------------------


def test_version_one_firms_and_quotas_are_counted() -> None:
    bureau = applied(
        exporter_registered_v1("firm-a"),
        exporter_registered_v1("firm-b", version=0),
        fair_created_v1("canton-139", standard=4, brand=2),
    )

    assert bureau.headline().firms_served == 2
    assert bureau.booths() == [
        BoothFigures("canton-139", "standard", 4, 0, 0, 0, 0),
        BoothFigures("canton-139", "brand", 2, 0, 0, 0, 0),
    ]


def test_version_one_answers_count_in_response_times() -> None:
    bureau = applied(
        intent_submitted("intent-1"),
        rfq_matched("intent-1", ["firm-a", "firm-b", "firm-c"]),
        quote_sent_v1("intent-1", "firm-a", 600),
        intent_declined_v1("intent-1", "firm-b", 1_200),
        # An answer counts once per exhibitor, whatever the version of its copy.
        quote_sent_v1("intent-1", "firm-a", 700),
    )

    assert bureau.responses() == ResponseFigures(
        addressed=3,
        answered=2,
        response_rate=2 / 3,
        median_response_seconds=900.0,
        answered_within_24h_share=1.0,
    )


def test_version_one_warehouses_follow_updates_suspensions_and_reactivations() -> None:
    bureau = applied(
        warehouse_registered_v1("WH-1", "DE", 300),
        warehouse_registered_v1("WH-2", "DE", 100),
        warehouse_registered_v1("WH-3", "NL", 80),
        warehouse_updated_v1("WH-2", "PL", 120, T1, previous=("DE", 100)),
        warehouse_suspended_v1("WH-3", "NL", 80, T1),
    )
    assert bureau.warehouses(DAY) == [
        WarehouseFigures("DE", 1, 300, 0, 0.0),
        WarehouseFigures("PL", 1, 120, 0, 0.0),
    ]

    bureau.apply(warehouse_reactivated_v1("WH-3", "NL", 80, T2))

    assert [(w.country, w.capacity_pallets) for w in bureau.warehouses(DAY)] == [
        ("DE", 300),
        ("NL", 80),
        ("PL", 120),
    ]


# A history of both versions -----------------------------------------------------------------


def mixed_history() -> list[EventEnvelope]:
    """What an installation upgraded in place holds: version-1 events (some stamped 0,
    from before the envelope had the field), then version-2 events from the new
    producers, and events of the payload types that did not change."""
    kept = Application("app-kept", fair_id="canton-139", credit_code="firm-a")
    waiting = Application("app-waiting", fair_id="canton-139", credit_code="firm-b")
    brand = Application("app-brand", fair_id="canton-140", credit_code="firm-c", booth_type=BRAND)
    return [
        # Booth: firms and quotas of both versions, applications of unchanged types.
        exporter_registered_v1("firm-a", version=0),
        exporter_registered_v1("firm-b"),
        exporter_registered("firm-c"),
        fair_created_v1("canton-139", standard=1, brand=1),
        fair_created("canton-140", standard=5, brand=3),
        kept.submitted(),
        waiting.submitted(),
        kept.allocated(),
        waiting.waitlisted(),
        brand.submitted(),
        # Expo: one intent answered in both versions, one over a day late.
        intent_submitted("intent-1"),
        rfq_matched("intent-1", ["firm-a", "firm-b", "firm-c", "firm-d"]),
        quote_sent_v1("intent-1", "firm-a", 600),
        intent_declined_v1("intent-1", "firm-b", 1_800),
        intent_declined("intent-1", "firm-c", 3_000),
        intent_declined("intent-1", "firm-b", 60),
        quote_sent_v1("intent-1", "firm-d", 90_000),
        # Warehouses: registered in version 1, changed in version 2, and the reverse.
        warehouse_registered_v1("WH-1", "DE", 300),
        warehouse_updated("WH-1", "DE", 400, T1, previous=("DE", 300)),
        warehouse_registered_v1("WH-2", "DE", 100),
        warehouse_suspended_v1("WH-2", "DE", 100, T1),
        warehouse_reactivated("WH-2", "DE", T2),
        warehouse_registered("WH-3", "NL", 80),
        warehouse_updated_v1("WH-3", "NL", 90, T1, previous=("NL", 80)),
        warehouse_suspended_v1("WH-3", "NL", 90, T2),
        capacity_reserved("r-1", "WH-1", 100, DAY.isoformat(), "2030-01-01"),
        capacity_reserved("r-2", "WH-3", 10, DAY.isoformat(), "2030-01-01"),
    ]


def assert_figures_of_the_mixed_history(bureau: BureauFigures, day: date = DAY) -> None:
    """What the bureau of before computed from these events, by hand."""
    headline = bureau.headline()
    assert (headline.firms_served, headline.booths_allocated, headline.intents) == (3, 1, 1)
    assert headline.events_applied == len(mixed_history())
    assert bureau.events_skipped() == 0
    assert bureau.booths() == [
        BoothFigures("canton-139", "standard", 1, 2, 1, 1, 0),
        BoothFigures("canton-139", "brand", 1, 0, 0, 0, 0),
        BoothFigures("canton-140", "standard", 5, 0, 0, 0, 0),
        BoothFigures("canton-140", "brand", 3, 1, 0, 0, 0),
    ]
    # firm-b's first answer (1,800 s) counts, not its later copy in version 2.
    assert bureau.responses() == ResponseFigures(
        addressed=4,
        answered=4,
        response_rate=1.0,
        median_response_seconds=2_400.0,
        answered_within_24h_share=0.75,
    )
    # WH-3 is suspended, and its reservation leaves with it.
    assert bureau.warehouses(day) == [WarehouseFigures("DE", 2, 500, 100, 0.2)]


def test_a_history_of_both_versions_gives_exact_figures() -> None:
    assert_figures_of_the_mixed_history(applied(*mixed_history()))


def test_a_history_of_both_versions_survives_snapshot_and_restore() -> None:
    history = mixed_history()
    first = applied(*history[:15])
    restored = BureauFigures.restore(first.snapshot(), [e.event_id for e in history[:15]])
    for envelope in history[15:]:
        restored.apply(envelope)

    assert_figures_of_the_mixed_history(restored)
