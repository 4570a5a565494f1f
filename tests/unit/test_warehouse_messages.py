"""The warehouse's protobuf boundary: requests decoded into commands naming every wrong
field, page tokens bound to their query, and domain events as the new payloads."""

from __future__ import annotations

import base64
from datetime import date

import pytest

from chuhai.warehouse.v1 import events_pb2
from chuhai.warehouse.v1 import resources_pb2 as res
from chuhai.warehouse.v1 import warehouse_service_pb2 as api
from runtime.adapters import topics
from runtime.adapters.events import envelope_for
from runtime.adapters.pagination import PageRequest
from runtime.kernel.errors import InvalidArgument
from tests.credit_codes import random_credit_code
from warehouse import domain, messages
from warehouse.domain import LogisticsService, Period, Space

EXPORTER = random_credit_code()
JULY = Period(date(2026, 7, 1), date(2026, 7, 4))


def violated(error: pytest.ExceptionInfo[InvalidArgument]) -> set[str]:
    return {v.field for v in error.value.violations}


# Requests.


def test_a_registration_names_a_missing_request_id_with_the_profile_fields() -> None:
    request = api.RegisterWarehouseRequest(
        code="x",
        profile=res.WarehouseProfile(
            name="Valencia",
            operator=res.Operator(kind=res.OPERATOR_KIND_SERVICE_FIRM, name="Firm"),
            country_code="Spain",
            city="Valencia",
            address="Port 1",
            location=res.GeoPoint(latitude=39.4, longitude=-0.37),
            area_m2=100,
            capacity=res.Space(pallet_positions=10),
            services=[res.LOGISTICS_SERVICE_STORAGE],
            recognition=res.PublicRecognition(recognised_by="Henan", since="2026-07-02"),
        ),
    )
    with pytest.raises(InvalidArgument) as error:
        messages.registration(request, today=date(2026, 7, 1))
    assert violated(error) == {
        "request_id",
        "code",
        "profile.country_code",
        "profile.recognition.since",
    }


def test_a_booking_request_becomes_a_booking_command() -> None:
    request = api.ReserveCapacityRequest(
        request_id="r-1",
        warehouse_code=" de-ham-01 ",
        space=res.Space(pallet_positions=3, cubic_metres=5),
        start_date="2026-07-01",
        end_date="2026-07-04",
    )
    # Who books is the caller, not a field: the use case takes it from its actor.
    assert "exporter_credit_code" not in api.ReserveCapacityRequest.DESCRIPTOR.fields_by_name
    assert messages.booking(request) == domain.Booking("DE-HAM-01", Space(3, 5), JULY)
    request.ClearField("request_id")
    request.end_date = "2026-06-30"
    with pytest.raises(InvalidArgument) as error:
        messages.booking(request)
    assert violated(error) == {"request_id", "end_date"}


def test_listing_needs_a_known_status() -> None:
    with pytest.raises(InvalidArgument) as error:
        messages.reservation_listing(api.ListReservationsRequest(status=7))
    # Whether it must name a warehouse or exporter depends on the caller (an officer
    # must): domain.visible_reservations decides.
    assert violated(error) == {"status"}
    which, page = messages.reservation_listing(
        api.ListReservationsRequest(exporter_credit_code=f" {EXPORTER.lower()} ")
    )
    assert which == domain.ReservationFilter("", EXPORTER, None)
    assert page.after is None


# Page tokens: a search pages through a computed ranking, so its tokens carry the last
# match's (distance, code); a list's carry (reserved_at, id).


def search_page(size: int = 0, token: str = "", country: str = "DE") -> PageRequest:
    request = api.SearchWarehousesRequest(country_code=country, page_size=size, page_token=token)
    return messages.search(request)[1]


def test_the_first_page_has_the_default_size_and_no_position() -> None:
    page = search_page()
    assert page.after is None
    assert 0 < page.size <= messages.MAX_PAGE_SIZE


def test_a_token_is_accepted_by_its_own_query_and_refused_by_another() -> None:
    token = search_page(5).token_after([356.2, "DE-HAM-01"])
    assert search_page(5, token).after == (356.2, "DE-HAM-01")
    with pytest.raises(InvalidArgument) as error:
        search_page(5, token, country="FR")
    assert violated(error) == {"page_token"}


@pytest.mark.parametrize(
    "token",
    [
        "not base64!",
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        base64.urlsafe_b64encode(b"{}").decode(),
        # The right query but not a search position (one key, not two).
        PageRequest(5, None, search_page().query_digest).token_after(["DE-HAM-01"]),
    ],
)
def test_forged_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        search_page(5, token)
    assert violated(error) == {"page_token"}


def test_page_size_above_the_maximum_is_refused() -> None:
    assert search_page(messages.MAX_PAGE_SIZE).size == messages.MAX_PAGE_SIZE
    with pytest.raises(InvalidArgument) as error:
        search_page(messages.MAX_PAGE_SIZE + 1)
    assert violated(error) == {"page_size"}


def test_a_list_token_is_bound_to_its_filter() -> None:
    _, page = messages.reservation_listing(api.ListReservationsRequest(warehouse_code="A-1"))
    token = page.token_after(["2026-07-01", "r-1"])
    request = api.ListReservationsRequest(warehouse_code="a-1", page_token=token)
    assert messages.reservation_listing(request)[1].after == ("2026-07-01", "r-1")
    request.status = res.RESERVATION_STATUS_CONFIRMED
    with pytest.raises(InvalidArgument) as error:
        messages.reservation_listing(request)
    assert violated(error) == {"page_token"}


# Events: the topics and keys of today, payloads without the API's resources.


def test_registry_events_carry_the_facts_not_the_warehouse_resource() -> None:
    outgoing = messages.encode_event(
        domain.WarehouseRegistered(
            code="DE-HAM-01",
            name="Hamburg",
            country_code="DE",
            city="Hamburg",
            capacity=Space(500, 4_000),
            services=(LogisticsService.STORAGE, LogisticsService.LAST_MILE_DELIVERY),
            publicly_recognised=True,
            operator_id="henan-overseas-logistics",
        )
    )
    assert (outgoing.topic, outgoing.aggregate_id) == (topics.WAREHOUSE_WAREHOUSES, "DE-HAM-01")
    assert outgoing.payload == events_pb2.WarehouseRegistered(
        code="DE-HAM-01",
        name="Hamburg",
        country_code="DE",
        city="Hamburg",
        capacity_pallet_positions=500,
        capacity_cubic_metres=4_000,
        services=[res.LOGISTICS_SERVICE_STORAGE, res.LOGISTICS_SERVICE_LAST_MILE_DELIVERY],
        publicly_recognised=True,
        operator_id="henan-overseas-logistics",
    )
    for payload in (
        events_pb2.WarehouseRegistered,
        events_pb2.WarehouseUpdated,
        events_pb2.WarehouseSuspended,
        events_pb2.WarehouseReactivated,
    ):
        assert "warehouse" not in payload.DESCRIPTOR.fields_by_name


def test_an_update_carries_the_values_before_and_after() -> None:
    outgoing = messages.encode_event(
        domain.WarehouseUpdated(
            code="GB-FXT-01",
            name="Felixstowe",
            country_code="GB",
            city="Felixstowe",
            capacity=Space(150, 0),
            services=(LogisticsService.STORAGE,),
            publicly_recognised=False,
            changed_fields=("capacity",),
            previous_country_code="GB",
            previous_capacity=Space(100, 10),
        )
    )
    payload = outgoing.payload
    assert isinstance(payload, events_pb2.WarehouseUpdated)
    assert (outgoing.topic, outgoing.aggregate_id) == (topics.WAREHOUSE_WAREHOUSES, "GB-FXT-01")
    assert list(payload.changed_fields) == ["capacity"]
    assert (payload.capacity_pallet_positions, payload.capacity_cubic_metres) == (150, 0)
    assert payload.previous_country_code == "GB"
    assert (
        payload.previous_capacity_pallet_positions,
        payload.previous_capacity_cubic_metres,
    ) == (100, 10)


def test_suspension_and_reactivation_name_the_warehouse_and_its_country() -> None:
    suspended = messages.encode_event(domain.WarehouseSuspended("DE-HAM-01", "DE", "audit"))
    assert suspended.payload == events_pb2.WarehouseSuspended(
        code="DE-HAM-01", country_code="DE", reason="audit"
    )
    reactivated = messages.encode_event(domain.WarehouseReactivated("DE-HAM-01", "DE"))
    assert reactivated.payload == events_pb2.WarehouseReactivated(
        code="DE-HAM-01", country_code="DE"
    )
    assert {suspended.aggregate_id, reactivated.aggregate_id} == {"DE-HAM-01"}
    assert {suspended.topic, reactivated.topic} == {topics.WAREHOUSE_WAREHOUSES}


def test_booking_events_are_keyed_by_warehouse_not_reservation() -> None:
    reserved = messages.encode_event(
        domain.CapacityReserved(
            "r-1", "DE-HAM-01", "DE", EXPORTER, Space(8, 20), JULY, "henan-logistics", 87
        )
    )
    assert (reserved.topic, reserved.aggregate_id) == (topics.WAREHOUSE_RESERVATIONS, "DE-HAM-01")
    assert reserved.payload == events_pb2.CapacityReserved(
        reservation_id="r-1",
        warehouse_code="DE-HAM-01",
        country_code="DE",
        exporter_credit_code=EXPORTER,
        pallet_positions=8,
        cubic_metres=20,
        start_date="2026-07-01",
        end_date="2026-07-04",
        days=3,
        operator_id="henan-logistics",
        peak_utilisation_percent=87,
    )
    cancelled = messages.encode_event(
        domain.ReservationCancelled(
            "r-1", "DE-HAM-01", "DE", EXPORTER, Space(8, 20), JULY, "moved", "henan-logistics"
        )
    )
    assert (cancelled.topic, cancelled.aggregate_id) == (
        topics.WAREHOUSE_RESERVATIONS,
        "DE-HAM-01",
    )
    assert isinstance(cancelled.payload, events_pb2.ReservationCancelled)
    assert (cancelled.payload.days, cancelled.payload.reason) == (3, "moved")
    # What the notify service reads arrives in the envelope.
    booked = envelope_for(reserved.payload, aggregate_id="DE-HAM-01", producer="warehouse")
    freed = envelope_for(cancelled.payload, aggregate_id="DE-HAM-01", producer="warehouse")
    told = booked.capacity_reserved
    assert (told.operator_id, told.peak_utilisation_percent) == ("henan-logistics", 87)
    assert freed.reservation_cancelled.operator_id == "henan-logistics"


def test_anything_else_is_not_a_warehouse_event() -> None:
    with pytest.raises(TypeError):
        messages.encode_event(object())
