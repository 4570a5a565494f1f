"""The warehouse service through real gRPC on real Kafka and MongoDB.

The operator of every warehouse here calls through ``stub`` (a channel carrying its
token); exporters and officers through ``callers``, with their token on each call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

import warehouse.grpc_api
from chuhai.warehouse.v1 import resources_pb2 as res
from chuhai.warehouse.v1 import warehouse_service_pb2 as pb
from chuhai.warehouse.v1 import warehouse_service_pb2_grpc as pb_grpc
from runtime.adapters.events import decode_envelope
from runtime.adapters.grpc_errors import field_violations
from runtime.adapters.service import ServiceHost
from runtime.adapters.settings import Settings
from runtime.adapters.topics import WAREHOUSE_RESERVATIONS, WAREHOUSE_WAREHOUSES
from runtime.kernel.identity import Role
from tests.credit_codes import random_credit_code
from tests.identity import Identities, Metadata
from tests.kafka_reading import read_records

pytestmark = pytest.mark.integration

LAST_MILE = res.LOGISTICS_SERVICE_LAST_MILE_DELIVERY
STORAGE = res.LOGISTICS_SERVICE_STORAGE
CUSTOMS = res.LOGISTICS_SERVICE_CUSTOMS_CLEARANCE
FBA = res.LOGISTICS_SERVICE_FBA_TRANSFER
SHOWROOM = res.LOGISTICS_SERVICE_EXHIBITION_SHOWROOM
COLOGNE = res.GeoPoint(latitude=50.9375, longitude=6.9603)
OPERATOR_ID = "henan-overseas-logistics"


@dataclass(frozen=True)
class Callers:
    """The service for callers other than the operator: pass ``metadata=``."""

    stub: pb_grpc.WarehouseServiceStub
    identities: Identities

    def exporter(self, credit_code: str) -> Metadata:
        return self.identities.exporter(credit_code)

    def officer(self) -> Metadata:
        return self.identities.officer()


@pytest.fixture
async def address(settings: Settings) -> AsyncIterator[str]:
    host = ServiceHost("warehouse", warehouse.grpc_api.build, settings)
    await host.start()
    try:
        yield host.server.address
    finally:
        await host.stop()


@pytest.fixture
async def stub(address: str, identities: Identities) -> AsyncIterator[pb_grpc.WarehouseServiceStub]:
    """The operator of every warehouse these tests register."""
    async with identities.channel(address, Role.OPERATOR, OPERATOR_ID) as channel:
        yield pb_grpc.WarehouseServiceStub(channel)


@pytest.fixture
async def callers(address: str, identities: Identities) -> AsyncIterator[Callers]:
    async with grpc.aio.insecure_channel(address) as channel:
        yield Callers(pb_grpc.WarehouseServiceStub(channel), identities)


def first_of_next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def next_month() -> tuple[date, date]:
    start = first_of_next_month(datetime.now(UTC).date())
    return start, first_of_next_month(start)


def profile(
    country: str,
    city: str,
    latitude: float,
    longitude: float,
    services: Sequence[int],
    pallets: int,
    *,
    cubic_metres: int = 0,
    delivers_to: Sequence[str] = (),
) -> res.WarehouseProfile:
    return res.WarehouseProfile(
        name=f"Xuchang public warehouse {city}",
        operator=res.Operator(kind=res.OPERATOR_KIND_SERVICE_FIRM, name="Henan Overseas Logistics"),
        country_code=country,
        city=city,
        address=f"Logistics Park 1, {city}",
        location=res.GeoPoint(latitude=latitude, longitude=longitude),
        area_m2=pallets * 2.5 + cubic_metres / 8 + 1,
        capacity=res.Space(pallet_positions=pallets, cubic_metres=cubic_metres),
        services=services,
        recognition=res.PublicRecognition(
            recognised_by="Henan Provincial Department of Commerce", since="2023-05-01"
        ),
        delivery_countries=delivers_to,
    )


async def register(
    stub: pb_grpc.WarehouseServiceStub, code: str, warehouse_profile: res.WarehouseProfile
) -> res.Warehouse:
    response = await stub.RegisterWarehouse(
        pb.RegisterWarehouseRequest(
            request_id=f"register-{code}", code=code, profile=warehouse_profile
        ),
        timeout=10,
    )
    return response.warehouse


async def reserve(
    callers: Callers,
    code: str,
    start: date,
    end: date,
    *,
    pallets: int = 0,
    cubic_metres: int = 0,
    request_id: str = "",
    exporter: str = "",
) -> res.Reservation:
    """Reserve as ``exporter`` (a new one when not given)."""
    response = await callers.stub.ReserveCapacity(
        pb.ReserveCapacityRequest(
            request_id=request_id or f"reserve-{random_credit_code()}",
            warehouse_code=code,
            space=res.Space(pallet_positions=pallets, cubic_metres=cubic_metres),
            start_date=start.isoformat(),
            end_date=end.isoformat(),
        ),
        metadata=callers.exporter(exporter or random_credit_code()),
        timeout=10,
    )
    return response.reservation


async def utilisation(
    stub: pb_grpc.WarehouseServiceStub, code: str, start: date, end: date
) -> list[int]:
    response = await stub.GetUtilisation(
        pb.GetUtilisationRequest(
            warehouse_code=code, start_date=start.isoformat(), end_date=end.isoformat()
        ),
        timeout=10,
    )
    return [day.reserved.pallet_positions for day in response.days]


async def events(settings: Settings, topic: str, code: str, expected: int) -> list:
    records = await asyncio.to_thread(
        read_records,
        settings.kafka_bootstrap_servers,
        topic,
        expected=expected,
        keys={code.encode()},
        settle_seconds=1.0,
    )
    return [decode_envelope(record.value) for record in records]


async def test_acceptance_find_german_last_mile_space_next_month_and_book_until_full(
    stub: pb_grpc.WarehouseServiceStub, callers: Callers, unique: str
) -> None:
    tag = unique[:6].upper()
    hamburg, duisburg, munich = f"DE-HAM-{tag}", f"DE-DUI-{tag}", f"DE-MUC-{tag}"
    poznan = f"PL-POZ-{tag}"
    catalogue = {
        hamburg: profile("DE", "Hamburg", 53.5511, 9.9937, [LAST_MILE, STORAGE, CUSTOMS], 500),
        duisburg: profile("DE", "Duisburg", 51.4344, 6.7623, [LAST_MILE, STORAGE], 300),
        f"DE-FRA-{tag}": profile("DE", "Frankfurt", 50.1109, 8.6821, [STORAGE, SHOWROOM], 900),
        munich: profile("DE", "Munich", 48.1351, 11.5820, [LAST_MILE], 800),
        # Across the border, delivering into Germany: it serves Germany too.
        poznan: profile(
            "PL", "Poznan", 52.4064, 16.9252, [LAST_MILE, FBA], 400, delivers_to=["de"]
        ),
        f"NL-RTM-{tag}": profile(
            "NL", "Rotterdam", 51.9244, 4.4777, [LAST_MILE, CUSTOMS], 2000, delivers_to=["BE"]
        ),
        f"FR-LEH-{tag}": profile("FR", "Le Havre", 49.4944, 0.1079, [LAST_MILE], 600),
        f"ES-VLC-{tag}": profile("ES", "Valencia", 39.4699, -0.3763, [LAST_MILE], 600),
        f"IT-MIL-{tag}": profile("IT", "Milan", 45.4642, 9.19, [LAST_MILE, SHOWROOM], 300),
        f"GB-FXT-{tag}": profile("GB", "Felixstowe", 51.9617, 1.3513, [LAST_MILE, FBA], 700),
        f"US-LAX-{tag}": profile("US", "Los Angeles", 34.0522, -118.2437, [LAST_MILE, FBA], 3000),
        f"AE-JEA-{tag}": profile("AE", "Jebel Ali", 25.0118, 55.0611, [STORAGE, CUSTOMS], 900),
        f"TH-BKK-{tag}": profile("TH", "Bangkok", 13.7563, 100.5018, [LAST_MILE], 500),
        f"MY-PKG-{tag}": profile("MY", "Port Klang", 3.0, 101.4, [STORAGE], 500),
        f"KZ-ALA-{tag}": profile("KZ", "Almaty", 43.2389, 76.8897, [STORAGE, LAST_MILE], 500),
    }
    for code, warehouse_profile in catalogue.items():
        await register(stub, code, warehouse_profile)
    countries = {p.country_code for p in catalogue.values()}
    assert len(countries) == 12

    start, end = next_month()
    # Duisburg is mostly taken next month; Munich is closed.
    await reserve(
        callers, duisburg, start + timedelta(days=10), start + timedelta(days=12), pallets=250
    )
    await stub.SuspendWarehouse(
        pb.SuspendWarehouseRequest(request_id=f"s-{munich}", code=munich, reason="fire inspection"),
        timeout=10,
    )

    search = pb.SearchWarehousesRequest(
        serving_country="DE",
        services=[LAST_MILE],
        available_from=start.isoformat(),
        available_until=end.isoformat(),
        min_free=res.Space(pallet_positions=100),
        near=COLOGNE,
    )
    found = await stub.SearchWarehouses(search, timeout=10)
    assert [m.warehouse.code for m in found.matches] == [hamburg, poznan]
    assert found.total_size == 2
    assert found.matches[0].distance_km == pytest.approx(356, rel=0.01)
    assert found.matches[1].distance_km == pytest.approx(706, rel=0.01)
    assert [m.free.pallet_positions for m in found.matches] == [500, 400]

    # Book Hamburg for the whole of next month until it is full.
    for _ in range(5):
        await reserve(callers, hamburg, start, end, pallets=100)
    with pytest.raises(grpc.aio.AioRpcError) as full:
        await reserve(callers, hamburg, start, end, pallets=100)
    assert full.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert full.value.details() == (
        f"not enough space in warehouse {hamburg} on {start.isoformat()}: "
        "0 pallet positions free, 100 requested"
    )
    assert set(await utilisation(stub, hamburg, start, end)) == {500}

    found = await stub.SearchWarehouses(search, timeout=10)
    assert [m.warehouse.code for m in found.matches] == [poznan]


async def test_search_pages_through_every_match_in_distance_order(
    stub: pb_grpc.WarehouseServiceStub, unique: str
) -> None:
    tag = unique[:6].upper()
    # A line of warehouses eastward from Cologne, one every ~70 km.
    for index in range(11):
        await register(
            stub,
            f"DE-{index:02d}-{tag}",
            profile("DE", f"Town {index}", 50.9375, 7.0 + index, [STORAGE], 100),
        )
    request = pb.SearchWarehousesRequest(country_code="de", near=COLOGNE, page_size=4)
    codes: list[str] = []
    distances: list[float] = []
    pages = 0
    while True:
        page = await stub.SearchWarehouses(request, timeout=10)
        pages += 1
        assert page.total_size == 11
        codes.extend(m.warehouse.code for m in page.matches)
        distances.extend(m.distance_km for m in page.matches)
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token
    assert pages == 3
    assert codes == [f"DE-{index:02d}-{tag}" for index in range(11)]
    assert distances == sorted(distances)

    # A token is bound to its query.
    request.country_code = "PL"
    with pytest.raises(grpc.aio.AioRpcError) as wrong_query:
        await stub.SearchWarehouses(request, timeout=10)
    assert wrong_query.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(wrong_query.value)) == {"page_token"}


async def test_retries_return_the_first_answer_and_record_one_event(
    stub: pb_grpc.WarehouseServiceStub, callers: Callers, settings: Settings, unique: str
) -> None:
    code = f"FR-LEH-{unique[:6].upper()}"
    registration = pb.RegisterWarehouseRequest(
        request_id=f"register-{unique}",
        code=code,
        profile=profile("FR", "Le Havre", 49.4944, 0.1079, [STORAGE], 40, cubic_metres=300),
    )
    first = await stub.RegisterWarehouse(registration, timeout=10)
    retried = await stub.RegisterWarehouse(registration, timeout=10)
    assert retried == first
    assert first.warehouse.operator_id == OPERATOR_ID
    # Anyone may read the registry: here an exporter.
    exporter = random_credit_code()
    fetched = await callers.stub.GetWarehouse(
        pb.GetWarehouseRequest(code=code.lower()), metadata=callers.exporter(exporter), timeout=10
    )
    assert fetched.warehouse == first.warehouse

    start, _ = next_month()
    booking = pb.ReserveCapacityRequest(
        request_id=f"reserve-{unique}",
        warehouse_code=code,
        space=res.Space(pallet_positions=30, cubic_metres=200),
        start_date=start.isoformat(),
        end_date=(start + timedelta(days=3)).isoformat(),
    )
    answers = await asyncio.gather(
        *(
            callers.stub.ReserveCapacity(booking, metadata=callers.exporter(exporter), timeout=10)
            for _ in range(3)
        )
    )
    assert answers[0].reservation.exporter_credit_code == exporter
    assert len({answer.reservation.reservation_id for answer in answers}) == 1
    assert await utilisation(stub, code, start, start + timedelta(days=4)) == [30, 30, 30, 0]

    registered = await events(settings, WAREHOUSE_WAREHOUSES.name, code, 1)
    assert len(registered) == 1
    assert registered[0].aggregate_id == code
    assert registered[0].correlation_id == f"register-{unique}"
    # Schema version 2: the facts of the registration, no longer the Warehouse resource.
    assert registered[0].schema_version == 2
    snapshot = registered[0].warehouse_registered
    assert snapshot.code == code
    assert snapshot.country_code == "FR"
    assert (snapshot.capacity_pallet_positions, snapshot.capacity_cubic_metres) == (40, 300)
    assert snapshot.operator_id == OPERATOR_ID

    reserved = await events(settings, WAREHOUSE_RESERVATIONS.name, code, 1)
    assert len(reserved) == 1
    event = reserved[0].capacity_reserved
    assert event.reservation_id == answers[0].reservation.reservation_id
    assert (event.country_code, event.pallet_positions, event.cubic_metres, event.days) == (
        "FR",
        30,
        200,
        3,
    )
    assert event.exporter_credit_code == exporter
    # Told to the operator: 30 of 40 pallet positions is the fuller share (200 of 300 m³).
    assert (event.operator_id, event.peak_utilisation_percent) == (OPERATOR_ID, 75)


async def test_cancelling_frees_the_days_it_held(
    stub: pb_grpc.WarehouseServiceStub, callers: Callers, settings: Settings, unique: str
) -> None:
    code = f"IT-MIL-{unique[:6].upper()}"
    await register(stub, code, profile("IT", "Milan", 45.4642, 9.19, [SHOWROOM], 10))
    exporter = random_credit_code()
    start, _ = next_month()
    held = await reserve(
        callers,
        code,
        start + timedelta(days=1),
        start + timedelta(days=4),
        pallets=8,
        exporter=exporter,
    )
    # Overlapping only on day 3: refused there, with the day named.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await reserve(
            callers, code, start + timedelta(days=3), start + timedelta(days=6), pallets=5
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"on {(start + timedelta(days=3)).isoformat()}: 2 pallet positions free" in (
        refused.value.details()
    )
    assert await utilisation(stub, code, start, start + timedelta(days=6)) == [0, 8, 8, 8, 0, 0]

    cancel = pb.CancelReservationRequest(
        request_id=f"cancel-{unique}", reservation_id=held.reservation_id, reason="fair moved"
    )
    # Its exporter cancels; its warehouse's operator (stub) could too.
    as_exporter = callers.exporter(exporter)
    cancelled = await callers.stub.CancelReservation(cancel, metadata=as_exporter, timeout=10)
    assert cancelled.reservation.status == res.RESERVATION_STATUS_CANCELLED
    assert (
        await callers.stub.CancelReservation(cancel, metadata=as_exporter, timeout=10) == cancelled
    )
    assert set(await utilisation(stub, code, start, start + timedelta(days=6))) == {0}
    later = await reserve(
        callers,
        code,
        start + timedelta(days=3),
        start + timedelta(days=6),
        pallets=5,
        exporter=exporter,
    )

    with pytest.raises(grpc.aio.AioRpcError) as again:
        await stub.CancelReservation(
            pb.CancelReservationRequest(request_id="other", reservation_id=held.reservation_id),
            timeout=10,
        )
    assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "already cancelled" in again.value.details()

    listed = await callers.stub.ListReservations(
        pb.ListReservationsRequest(exporter_credit_code=exporter, page_size=1),
        metadata=as_exporter,
        timeout=10,
    )
    assert [r.reservation_id for r in listed.reservations] == [held.reservation_id]
    second = await callers.stub.ListReservations(
        pb.ListReservationsRequest(
            exporter_credit_code=exporter, page_size=1, page_token=listed.next_page_token
        ),
        metadata=as_exporter,
        timeout=10,
    )
    assert [r.reservation_id for r in second.reservations] == [later.reservation_id]
    assert second.next_page_token == ""
    confirmed = await stub.ListReservations(
        pb.ListReservationsRequest(warehouse_code=code, status=res.RESERVATION_STATUS_CONFIRMED),
        timeout=10,
    )
    assert [r.reservation_id for r in confirmed.reservations] == [later.reservation_id]

    booking_events = await events(settings, WAREHOUSE_RESERVATIONS.name, code, 3)
    assert [e.WhichOneof("payload") for e in booking_events] == [
        "capacity_reserved",
        "reservation_cancelled",
        "capacity_reserved",
    ]
    freed = booking_events[1].reservation_cancelled
    assert (freed.reservation_id, freed.pallet_positions, freed.days, freed.reason) == (
        held.reservation_id,
        8,
        3,
        "fair moved",
    )
    # Cancelled by its exporter, the operator is named all the same.
    assert freed.operator_id == OPERATOR_ID
    # 8 then 5 of 10 pallet positions: each booking's fullest day, the freed days not counted.
    assert [
        e.capacity_reserved.peak_utilisation_percent for e in (booking_events[0], booking_events[2])
    ] == [80, 50]


async def test_update_suspend_and_reactivate(
    stub: pb_grpc.WarehouseServiceStub, callers: Callers, settings: Settings, unique: str
) -> None:
    code = f"GB-FXT-{unique[:6].upper()}"
    await register(stub, code, profile("GB", "Felixstowe", 51.9617, 1.3513, [STORAGE], 100))
    start, _ = next_month()
    await reserve(callers, code, start, start + timedelta(days=2), pallets=60)

    async def update(pallets: int, request_id: str) -> pb.UpdateWarehouseResponse:
        return await stub.UpdateWarehouse(
            pb.UpdateWarehouseRequest(
                request_id=request_id,
                code=code,
                # Only the capacity is taken: the empty rest of this profile is ignored.
                profile=res.WarehouseProfile(capacity=res.Space(pallet_positions=pallets)),
                update_mask=FieldMask(paths=["capacity"]),
            ),
            timeout=10,
        )

    with pytest.raises(grpc.aio.AioRpcError) as too_small:
        await update(50, "shrink")
    assert too_small.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"60 pallet positions and 0 m³ already reserved on {start.isoformat()}" in (
        too_small.value.details()
    )
    grown = await update(150, "grow")
    assert grown.warehouse.profile.capacity.pallet_positions == 150
    assert grown.warehouse.profile.city == "Felixstowe"

    suspended = await stub.SuspendWarehouse(
        pb.SuspendWarehouseRequest(request_id="suspend", code=code, reason="customs audit"),
        timeout=10,
    )
    assert suspended.warehouse.status == res.WAREHOUSE_STATUS_SUSPENDED
    with pytest.raises(grpc.aio.AioRpcError) as closed:
        await reserve(callers, code, start, start + timedelta(days=1), pallets=1)
    assert closed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "suspended (customs audit)" in closed.value.details()
    search = pb.SearchWarehousesRequest(country_code="GB")
    assert code not in {
        m.warehouse.code for m in (await stub.SearchWarehouses(search, timeout=10)).matches
    }
    search.include_suspended = True
    assert code in {
        m.warehouse.code for m in (await stub.SearchWarehouses(search, timeout=10)).matches
    }

    await stub.ReactivateWarehouse(
        pb.ReactivateWarehouseRequest(request_id="reactivate", code=code), timeout=10
    )
    await reserve(callers, code, start, start + timedelta(days=1), pallets=90)

    registry_events = await events(settings, WAREHOUSE_WAREHOUSES.name, code, 4)
    assert [e.WhichOneof("payload") for e in registry_events] == [
        "warehouse_registered",
        "warehouse_updated",
        "warehouse_suspended",
        "warehouse_reactivated",
    ]
    updated = registry_events[1].warehouse_updated
    assert list(updated.changed_fields) == ["capacity"]
    assert updated.previous_capacity_pallet_positions == 100
    assert updated.capacity_pallet_positions == 150
    assert registry_events[2].warehouse_suspended.reason == "customs audit"


async def test_bad_requests_get_clear_status_codes_and_name_their_fields(
    stub: pb_grpc.WarehouseServiceStub, callers: Callers, unique: str
) -> None:
    code = f"ES-VLC-{unique[:6].upper()}"
    bad_profile = profile("Spain", "", 39.4699, -190, [0], -5)
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await stub.RegisterWarehouse(
            pb.RegisterWarehouseRequest(code="x", profile=bad_profile), timeout=10
        )
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(invalid.value)) == {
        "request_id",
        "code",
        "profile.country_code",
        "profile.city",
        "profile.location.longitude",
        "profile.area_m2",
        "profile.capacity.pallet_positions",
        "profile.capacity",
        "profile.services[0]",
    }

    await register(stub, code, profile("ES", "Valencia", 39.4699, -0.3763, [STORAGE], 50))
    with pytest.raises(grpc.aio.AioRpcError) as duplicate:
        await stub.RegisterWarehouse(
            pb.RegisterWarehouseRequest(
                request_id="another",
                code=code,
                profile=profile("ES", "Madrid", 40.4, -3.7, [STORAGE], 50),
            ),
            timeout=10,
        )
    assert duplicate.value.code() == grpc.StatusCode.ALREADY_EXISTS

    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.GetWarehouse(pb.GetWarehouseRequest(code="NO-SUCH-1"), timeout=10)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    start, end = next_month()
    with pytest.raises(grpc.aio.AioRpcError) as unknown_booking:
        await reserve(callers, "NO-SUCH-1", start, end, pallets=1)
    assert unknown_booking.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as unknown_reservation:
        await callers.stub.CancelReservation(
            pb.CancelReservationRequest(request_id="c", reservation_id="nope"),
            metadata=callers.exporter(random_credit_code()),
            timeout=10,
        )
    assert unknown_reservation.value.code() == grpc.StatusCode.NOT_FOUND

    with pytest.raises(grpc.aio.AioRpcError) as bad_booking:
        await callers.stub.ReserveCapacity(
            pb.ReserveCapacityRequest(
                request_id="r",
                warehouse_code=code,
                space=res.Space(),
                start_date=end.isoformat(),
                end_date=start.isoformat(),
            ),
            metadata=callers.exporter(random_credit_code()),
            timeout=10,
        )
    assert bad_booking.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(bad_booking.value)) == {"space", "end_date"}

    with pytest.raises(grpc.aio.AioRpcError) as too_long:
        await reserve(callers, code, start, start + timedelta(days=367), pallets=1)
    assert field_violations(too_long.value) == {"end_date": "a period spans at most 366 days"}
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    with pytest.raises(grpc.aio.AioRpcError) as past:
        await reserve(callers, code, yesterday, end, pallets=1)
    assert set(field_violations(past.value)) == {"start_date"}

    with pytest.raises(grpc.aio.AioRpcError) as no_period:
        await stub.SearchWarehouses(
            pb.SearchWarehousesRequest(min_free=res.Space(pallet_positions=1), page_size=1000),
            timeout=10,
        )
    assert set(field_violations(no_period.value)) == {"available_from", "page_size"}

    with pytest.raises(grpc.aio.AioRpcError) as nobody:
        await callers.stub.ListReservations(
            pb.ListReservationsRequest(), metadata=callers.officer(), timeout=10
        )
    assert set(field_violations(nobody.value)) == {"warehouse_code"}
