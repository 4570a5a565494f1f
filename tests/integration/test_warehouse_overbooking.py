"""No warehouse is ever overbooked, however many bookings race for it.

240 overlapping bookings of one warehouse are sent at once, split over two service
instances on the same database. Each instance serialises the bookings of a warehouse
with an in-process lock, but the two do not share one: only the transactions keep
them from overbooking, so this is what the test proves."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import grpc
import pytest
from pymongo import AsyncMongoClient

import warehouse.grpc_api
from chuhai.warehouse.v1 import resources_pb2 as res
from chuhai.warehouse.v1 import warehouse_service_pb2 as pb
from chuhai.warehouse.v1 import warehouse_service_pb2_grpc as pb_grpc
from runtime.adapters.events import decode_envelope
from runtime.adapters.outbox import OUTBOX_COLLECTION
from runtime.adapters.service import ServiceHost
from runtime.adapters.settings import Settings
from runtime.adapters.topics import WAREHOUSE_RESERVATIONS
from tests.credit_codes import random_credit_code
from tests.identity import Identities, Metadata
from tests.kafka_reading import read_records
from tests.waiting import eventually

pytestmark = pytest.mark.integration

BOOKINGS = 240
CAPACITY = res.Space(pallet_positions=60, cubic_metres=400)
LARGEST = res.Space(pallet_positions=6, cubic_metres=30)
# Bookings start within the first 20 days of next month and last up to a week.
WINDOW_DAYS = 27
RESERVED = res.DESCRIPTOR.package + ".CapacityReserved"


@dataclass(frozen=True)
class Accepted:
    reservation_id: str
    start: date
    end: date
    pallets: int
    cubic_metres: int


@pytest.fixture
async def two_instances(settings: Settings) -> AsyncIterator[list[pb_grpc.WarehouseServiceStub]]:
    hosts = [ServiceHost("warehouse", warehouse.grpc_api.build, settings) for _ in range(2)]
    channels: list[grpc.aio.Channel] = []
    try:
        for host in hosts:
            await host.start()
            channels.append(grpc.aio.insecure_channel(host.server.address))
        yield [pb_grpc.WarehouseServiceStub(channel) for channel in channels]
    finally:
        for channel in channels:
            await channel.close()
        for host in hosts:
            await host.stop()


async def test_concurrent_bookings_never_overbook_any_day(
    two_instances: list[pb_grpc.WarehouseServiceStub],
    settings: Settings,
    mongo: AsyncMongoClient,
    unique: str,
    identities: Identities,
) -> None:
    operator = identities.operator("maasvlakte-bv")
    code = f"NL-RTM-{unique[:6].upper()}"
    await two_instances[0].RegisterWarehouse(
        pb.RegisterWarehouseRequest(
            request_id=f"register-{code}",
            code=code,
            profile=res.WarehouseProfile(
                name="Rotterdam public warehouse",
                operator=res.Operator(kind=res.OPERATOR_KIND_SERVICE_FIRM, name="Maasvlakte BV"),
                country_code="NL",
                city="Rotterdam",
                address="Maasvlakte Plaza 1",
                location=res.GeoPoint(latitude=51.9244, longitude=4.4777),
                area_m2=900,
                capacity=CAPACITY,
                services=[res.LOGISTICS_SERVICE_STORAGE],
            ),
        ),
        metadata=operator,
        timeout=10,
    )
    today = datetime.now(UTC).date()
    first_day = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
    rng = random.Random(unique)
    # Each booking is made by its own exporter (whose token names it).
    requests = []
    for index in range(BOOKINGS):
        start = first_day + timedelta(days=rng.randrange(20))
        exporter = identities.exporter(random_credit_code(rng))
        requests.append(
            (
                exporter,
                pb.ReserveCapacityRequest(
                    request_id=f"race-{unique}-{index}",
                    warehouse_code=code,
                    space=res.Space(
                        pallet_positions=rng.randint(1, LARGEST.pallet_positions),
                        cubic_metres=rng.randint(0, LARGEST.cubic_metres),
                    ),
                    start_date=start.isoformat(),
                    end_date=(start + timedelta(days=rng.randint(1, 7))).isoformat(),
                ),
            )
        )

    async def book(
        index: int, exporter: Metadata, request: pb.ReserveCapacityRequest
    ) -> Accepted | None:
        try:
            response = await two_instances[index % 2].ReserveCapacity(
                request, metadata=exporter, timeout=60
            )
        except grpc.aio.AioRpcError as error:
            # Refused for lack of space is the only acceptable failure.
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
            assert "not enough space" in error.details()
            return None
        return Accepted(
            response.reservation.reservation_id,
            date.fromisoformat(request.start_date),
            date.fromisoformat(request.end_date),
            request.space.pallet_positions,
            request.space.cubic_metres,
        )

    outcomes = await asyncio.gather(*(book(i, e, r) for i, (e, r) in enumerate(requests)))
    accepted = [outcome for outcome in outcomes if outcome is not None]
    # Demand is about three times the capacity: there was a real race for space.
    assert 0 < len(accepted) < BOOKINGS

    expected_pallets: Counter[date] = Counter()
    expected_cubic_metres: Counter[date] = Counter()
    for booking in accepted:
        for offset in range((booking.end - booking.start).days):
            expected_pallets[booking.start + timedelta(days=offset)] += booking.pallets
            expected_cubic_metres[booking.start + timedelta(days=offset)] += booking.cubic_metres
    usage = await two_instances[1].GetUtilisation(
        pb.GetUtilisationRequest(
            warehouse_code=code,
            start_date=first_day.isoformat(),
            end_date=(first_day + timedelta(days=WINDOW_DAYS)).isoformat(),
        ),
        metadata=operator,
        timeout=10,
    )
    for day in usage.days:
        on = date.fromisoformat(day.date)
        assert day.reserved.pallet_positions <= CAPACITY.pallet_positions, day
        assert day.reserved.cubic_metres <= CAPACITY.cubic_metres, day
        # The stored counters are exactly the sum of the bookings that were confirmed.
        assert day.reserved.pallet_positions == expected_pallets[on], day
        assert day.reserved.cubic_metres == expected_cubic_metres[on], day
    # Some day was filled to within one booking of its capacity: the limit was reached.
    assert any(
        day.free.pallet_positions < LARGEST.pallet_positions
        or day.free.cubic_metres < LARGEST.cubic_metres
        for day in usage.days
    )

    # One event recorded per confirmed booking, none for a refused one.
    outbox = mongo.get_database(settings.database_name("warehouse"))[OUTBOX_COLLECTION]
    recorded = await outbox.find({"key": code, "type": RESERVED}).to_list()
    assert len(recorded) == len(accepted)

    # Each instance runs a relay over the same outbox, so an event may reach Kafka twice
    # (at least once delivery; consumers deduplicate on event_id): count distinct events.
    async def reservations_on_kafka() -> list[str]:
        records = await asyncio.to_thread(
            read_records,
            settings.kafka_bootstrap_servers,
            WAREHOUSE_RESERVATIONS.name,
            expected=len(accepted),
            keys={code.encode()},
            within_seconds=10,
        )
        envelopes = (decode_envelope(record.value) for record in records)
        distinct = {e.event_id: e.capacity_reserved.reservation_id for e in envelopes}
        return sorted(distinct.values())

    await eventually(
        reservations_on_kafka,
        equals=sorted(booking.reservation_id for booking in accepted),
        within_seconds=30,
    )
