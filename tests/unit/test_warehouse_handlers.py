"""The warehouse use cases over an in-memory repository: state and events, no MongoDB,
and who may do what to which warehouse and reservation (the object-level rules)."""

from __future__ import annotations

from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, timedelta

import pytest

from runtime.adapters.pagination import PageRequest, page_request
from runtime.kernel.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from runtime.kernel.identity import Principal, Role
from runtime.kernel.validation import Validator, validated
from tests.credit_codes import random_credit_code
from tests.fakes import DEFAULT_NOW, FakeUnitOfWork
from tests.unit.warehouse_memory import MemoryWarehouseStore
from warehouse import domain, handlers
from warehouse.domain import (
    Booking,
    Cancellation,
    CapacityReserved,
    LogisticsService,
    Operator,
    OperatorKind,
    Period,
    ProfileUpdate,
    Registration,
    Reservation,
    ReservationCancelled,
    ReservationFilter,
    ReservationStatus,
    Space,
    Suspension,
    Warehouse,
    WarehouseProfile,
    WarehouseReactivated,
    WarehouseRegistered,
    WarehouseStatus,
    WarehouseSuspended,
    WarehouseUpdated,
)
from warehouse.geo import GeoPoint

TODAY = DEFAULT_NOW.date()
EXPORTER = random_credit_code()
OTHER_EXPORTER = random_credit_code()
OPERATOR_ID = "henan-overseas-logistics"
# The principals the use cases run for.
OPERATOR = Principal("op-user-1", Role.OPERATOR, OPERATOR_ID)
OTHER_OPERATOR = Principal("op-user-2", Role.OPERATOR, "rotterdam-3pl")
OFFICER = Principal("officer-1", Role.OFFICER)
THE_EXPORTER = Principal("exporter-user", Role.EXPORTER, EXPORTER)
ANOTHER_EXPORTER = Principal("exporter-other", Role.EXPORTER, OTHER_EXPORTER)
BUYER = Principal("buyer-user", Role.BUYER, "buyer-1")
HAMBURG = GeoPoint(53.5511, 9.9937)
COLOGNE = GeoPoint(50.9375, 6.9603)

Uow = FakeUnitOfWork[MemoryWarehouseStore]


@pytest.fixture
def uow() -> Uow:
    # Most steps are the warehouse operator's; bookings are made as exporters.
    return FakeUnitOfWork(MemoryWarehouseStore(), actor=OPERATOR)


@contextmanager
def acting_as(uow: Uow, principal: Principal) -> Iterator[None]:
    """Run the use cases of the block for ``principal``."""
    before, uow.actor = uow.actor, principal
    try:
        yield
    finally:
        uow.actor = before


def profile(
    pallets: int = 10, *, country: str = "DE", location: GeoPoint = HAMBURG
) -> WarehouseProfile:
    return WarehouseProfile(
        name="Xuchang public warehouse",
        operator=Operator(OperatorKind.SERVICE_FIRM, "Henan Overseas Logistics"),
        country_code=country,
        city="Hamburg",
        address="Am Windhukkai 1, 20457 Hamburg",
        location=location,
        area_m2=1_000.0,
        capacity=Space(pallets, 0),
        services=(LogisticsService.STORAGE,),
    )


def registration(code: str, draft: WarehouseProfile) -> Registration:
    return validated(lambda check: domain.registration(code, draft, TODAY, check))


async def registered(
    uow: Uow, code: str = "DE-HAM-01", *, by: Principal = OPERATOR, **options: object
) -> Warehouse:
    with acting_as(uow, by):
        warehouse = await handlers.register_warehouse(uow, registration(code, profile(**options)))
    uow.take_events()
    return warehouse


def days(first_day: int, count: int) -> Period:
    start = TODAY + timedelta(days=first_day)
    return Period(start, start + timedelta(days=count))


def booking(first_day: int, count: int, pallets: int, *, code: str = "DE-HAM-01") -> Booking:
    return Booking(code, Space(pallets, 0), days(first_day, count))


async def reserve(
    uow: Uow,
    first_day: int,
    count: int,
    pallets: int,
    *,
    code: str = "DE-HAM-01",
    exporter: Principal = THE_EXPORTER,
) -> Reservation:
    with acting_as(uow, exporter):
        return await handlers.reserve_capacity(uow, booking(first_day, count, pallets, code=code))


def page(size: int, token: str = "", query: object = "query") -> PageRequest:
    check = Validator()
    request = page_request(size, token, query, check, key_length=2, maximum=100)
    check.raise_if_invalid()
    return request


def loads(uow: Uow, code: str = "DE-HAM-01") -> dict[date, int]:
    return {
        day: space.pallet_positions
        for (owner, day), space in uow.store.day_loads.items()
        if owner == code
    }


# The registry.


async def test_registering_stores_an_active_warehouse_and_announces_it(uow: Uow) -> None:
    warehouse = await handlers.register_warehouse(uow, registration("de-ham-01", profile(40)))
    assert warehouse.status == WarehouseStatus.ACTIVE
    assert warehouse.registered_at == warehouse.updated_at == DEFAULT_NOW
    assert uow.store.warehouses == {"DE-HAM-01": warehouse}
    assert uow.events == [
        WarehouseRegistered(
            code="DE-HAM-01",
            name="Xuchang public warehouse",
            country_code="DE",
            city="Hamburg",
            capacity=Space(40, 0),
            services=(LogisticsService.STORAGE,),
            publicly_recognised=False,
            operator_id=OPERATOR_ID,
        )
    ]
    assert warehouse.operator_id == OPERATOR_ID


async def test_a_taken_code_is_refused_and_records_nothing(uow: Uow) -> None:
    first = await registered(uow)
    with pytest.raises(AlreadyExists):
        await handlers.register_warehouse(uow, registration("DE-HAM-01", profile(99)))
    assert uow.store.warehouses == {"DE-HAM-01": first}
    assert uow.events == []


async def test_an_update_saves_the_change_and_announces_old_and_new_capacity(uow: Uow) -> None:
    await registered(uow, pallets=100)
    uow.advance(timedelta(hours=1))
    command = ProfileUpdate("DE-HAM-01", profile(150), ("capacity",))
    updated = await handlers.update_warehouse(uow, command)
    assert updated.profile.capacity == Space(150, 0)
    assert updated.updated_at == DEFAULT_NOW + timedelta(hours=1)
    assert uow.store.warehouses["DE-HAM-01"] == updated
    assert uow.events == [
        WarehouseUpdated(
            code="DE-HAM-01",
            name="Xuchang public warehouse",
            country_code="DE",
            city="Hamburg",
            capacity=Space(150, 0),
            services=(LogisticsService.STORAGE,),
            publicly_recognised=False,
            changed_fields=("capacity",),
            previous_country_code="DE",
            previous_capacity=Space(100, 0),
        )
    ]


async def test_an_update_that_shrinks_capacity_below_bookings_is_refused(uow: Uow) -> None:
    before = await registered(uow, pallets=100)
    await reserve(uow, 3, 2, 60)
    uow.take_events()
    with pytest.raises(FailedPrecondition) as refused:
        await handlers.update_warehouse(uow, ProfileUpdate("DE-HAM-01", profile(50), ("capacity",)))
    assert f"60 pallet positions and 0 m³ already reserved on {days(3, 1).start}" in (
        refused.value.message
    )
    assert uow.store.warehouses["DE-HAM-01"] == before
    assert uow.events == []
    # Down to what the busiest day holds is allowed.
    assert (
        await handlers.update_warehouse(uow, ProfileUpdate("DE-HAM-01", profile(60), ("capacity",)))
    ).profile.capacity == Space(60, 0)


async def test_bookings_of_days_gone_by_do_not_bound_a_new_capacity(uow: Uow) -> None:
    await registered(uow, pallets=100)
    await reserve(uow, 1, 2, 80)
    uow.advance(timedelta(days=3))
    shrunk = await handlers.update_warehouse(
        uow, ProfileUpdate("DE-HAM-01", profile(10), ("capacity",))
    )
    assert shrunk.profile.capacity == Space(10, 0)


async def test_an_update_that_changes_nothing_saves_and_records_nothing(uow: Uow) -> None:
    before = await registered(uow)
    uow.advance(timedelta(hours=1))
    same = await handlers.update_warehouse(uow, ProfileUpdate("DE-HAM-01", profile(), ()))
    assert same == before
    assert uow.store.warehouses["DE-HAM-01"].updated_at == DEFAULT_NOW
    assert uow.events == []


async def test_an_invalid_merged_profile_is_refused_naming_its_fields(uow: Uow) -> None:
    await registered(uow)
    broken = replace(profile(), city="", capacity=Space(0, 0))
    with pytest.raises(InvalidArgument) as error:
        await handlers.update_warehouse(uow, ProfileUpdate("DE-HAM-01", broken, ()))
    assert {v.field for v in error.value.violations} == {"profile.city", "profile.capacity"}
    assert uow.events == []


async def test_updating_an_unknown_warehouse_is_not_found(uow: Uow) -> None:
    with pytest.raises(NotFound):
        await handlers.update_warehouse(uow, ProfileUpdate("NO-SUCH-1", profile(), ()))


async def test_suspension_blocks_booking_and_reactivation_reopens_it(uow: Uow) -> None:
    await registered(uow)
    suspended = await handlers.suspend_warehouse(uow, Suspension("DE-HAM-01", "customs audit"))
    assert suspended.status == WarehouseStatus.SUSPENDED
    assert uow.store.warehouses["DE-HAM-01"].suspension_reason == "customs audit"
    assert uow.take_events() == [WarehouseSuspended("DE-HAM-01", "DE", "customs audit")]

    with pytest.raises(FailedPrecondition, match=r"suspended \(customs audit\)"):
        await reserve(uow, 1, 2, 1)
    assert uow.events == []
    assert uow.store.reservations == {}
    assert loads(uow) == {}
    with pytest.raises(FailedPrecondition, match="already suspended"):
        await handlers.suspend_warehouse(uow, Suspension("DE-HAM-01", "again"))

    active = await handlers.reactivate_warehouse(uow, "DE-HAM-01")
    assert active.status == WarehouseStatus.ACTIVE
    assert active.suspension_reason == ""
    assert uow.take_events() == [WarehouseReactivated("DE-HAM-01", "DE")]
    await reserve(uow, 1, 2, 1)
    with pytest.raises(FailedPrecondition, match="not suspended"):
        await handlers.reactivate_warehouse(uow, "DE-HAM-01")


async def test_reads_find_what_was_stored_or_say_not_found(uow: Uow) -> None:
    warehouse = await registered(uow)
    reservation = await reserve(uow, 1, 2, 1)
    assert await handlers.get_warehouse(uow.store, "DE-HAM-01") == warehouse
    assert (
        await handlers.get_reservation(uow.store, reservation.reservation_id, OFFICER)
        == reservation
    )
    with pytest.raises(NotFound):
        await handlers.get_warehouse(uow.store, "NO-SUCH-1")
    with pytest.raises(NotFound):
        await handlers.get_reservation(uow.store, "nope", OFFICER)


# Bookings.


async def test_a_booking_holds_its_space_on_every_day_and_announces_it(uow: Uow) -> None:
    await registered(uow, pallets=10)
    reservation = await reserve(uow, 2, 3, 4)
    assert reservation.status == ReservationStatus.CONFIRMED
    assert reservation.country_code == "DE"
    assert reservation.reserved_at == DEFAULT_NOW
    assert uow.store.reservations == {reservation.reservation_id: reservation}
    assert loads(uow) == {day: 4 for day in days(2, 3).dates()}
    assert uow.events == [
        CapacityReserved(
            reservation.reservation_id,
            "DE-HAM-01",
            "DE",
            EXPORTER,
            Space(4, 0),
            days(2, 3),
            OPERATOR_ID,
            peak_utilisation_percent=40,
        )
    ]


async def test_a_booking_that_would_overbook_any_day_is_refused_and_records_nothing(
    uow: Uow,
) -> None:
    await registered(uow, pallets=10)
    held = await reserve(uow, 3, 3, 8)
    uow.take_events()
    before = loads(uow)
    # Fits on days 1 and 2, not on day 3, where only 2 pallet positions are free.
    with pytest.raises(FailedPrecondition) as refused:
        await reserve(uow, 1, 5, 5)
    assert refused.value.message == (
        f"not enough space in warehouse DE-HAM-01 on {days(3, 1).start.isoformat()}: "
        "2 pallet positions free, 5 requested"
    )
    assert uow.events == []
    assert loads(uow) == before
    assert list(uow.store.reservations) == [held.reservation_id]


async def test_a_booking_that_exactly_fills_every_day_is_taken(uow: Uow) -> None:
    await registered(uow, pallets=10)
    await reserve(uow, 1, 3, 6)
    await reserve(uow, 0, 5, 4)
    assert loads(uow) == {TODAY: 4, **dict.fromkeys(days(1, 3).dates(), 10), days(4, 1).start: 4}
    # The second booking's peak counts what the first holds on the days they share.
    assert [e.peak_utilisation_percent for e in uow.take_events()] == [60, 100]
    with pytest.raises(FailedPrecondition, match="0 pallet positions free, 1 requested"):
        await reserve(uow, 2, 1, 1)


async def test_a_booking_may_start_today_but_not_before(uow: Uow) -> None:
    await registered(uow)
    await reserve(uow, 0, 1, 1)
    uow.take_events()
    with pytest.raises(InvalidArgument) as past:
        await reserve(uow, -1, 3, 1)
    assert {v.field for v in past.value.violations} == {"start_date"}
    assert uow.events == []
    assert len(uow.store.reservations) == 1


async def test_booking_an_unknown_warehouse_is_not_found(uow: Uow) -> None:
    with pytest.raises(NotFound):
        await reserve(uow, 1, 1, 1, code="NO-SUCH-1")
    assert uow.events == []


async def test_cancelling_frees_the_days_and_announces_it(uow: Uow) -> None:
    await registered(uow, pallets=10)
    held = await reserve(uow, 1, 3, 8)
    uow.take_events()
    uow.advance(timedelta(hours=2))
    cancelled = await handlers.cancel_reservation(
        uow, Cancellation(held.reservation_id, "fair moved")
    )
    assert cancelled.status == ReservationStatus.CANCELLED
    assert cancelled.cancelled_at == DEFAULT_NOW + timedelta(hours=2)
    assert uow.store.reservations[held.reservation_id] == cancelled
    assert set(loads(uow).values()) == {0}
    assert uow.take_events() == [
        ReservationCancelled(
            held.reservation_id,
            "DE-HAM-01",
            "DE",
            EXPORTER,
            Space(8, 0),
            days(1, 3),
            "fair moved",
            OPERATOR_ID,
        )
    ]
    # The freed space takes a booking that did not fit before.
    await reserve(uow, 1, 3, 10)


async def test_a_reservation_is_cancelled_once_and_only_before_it_starts(uow: Uow) -> None:
    await registered(uow)
    first = await reserve(uow, 1, 2, 1)
    second = await reserve(uow, 1, 2, 1)
    await handlers.cancel_reservation(uow, Cancellation(first.reservation_id, ""))
    uow.take_events()
    with pytest.raises(FailedPrecondition, match="already cancelled"):
        await handlers.cancel_reservation(uow, Cancellation(first.reservation_id, ""))
    uow.advance(timedelta(days=1))
    with pytest.raises(FailedPrecondition, match="started on"):
        await handlers.cancel_reservation(uow, Cancellation(second.reservation_id, ""))
    assert uow.events == []
    assert uow.store.reservations[second.reservation_id] == second
    with pytest.raises(NotFound):
        await handlers.cancel_reservation(uow, Cancellation("nope", ""))


async def test_listing_pages_oldest_first_and_filters(uow: Uow) -> None:
    await registered(uow)
    await registered(uow, "DE-DUI-01")
    made = []
    for index in range(5):
        uow.advance(timedelta(minutes=1))
        exporter = THE_EXPORTER if index != 2 else ANOTHER_EXPORTER
        made.append(await reserve(uow, 1, 1, 1, exporter=exporter))
    await reserve(uow, 1, 1, 1, code="DE-DUI-01")
    await handlers.cancel_reservation(uow, Cancellation(made[3].reservation_id, ""))

    mine = ReservationFilter("DE-HAM-01", EXPORTER, None)
    seen, token, pages = [], "", 0
    while True:
        listed = await handlers.list_reservations(uow.store, mine, page(3, token, mine), OFFICER)
        pages += 1
        seen.extend(r.reservation_id for r in listed.reservations)
        token = listed.next_page_token
        if not token:
            break
    assert pages == 2
    assert seen == [made[i].reservation_id for i in (0, 1, 3, 4)]

    confirmed = ReservationFilter("DE-HAM-01", "", ReservationStatus.CONFIRMED)
    listed = await handlers.list_reservations(
        uow.store, confirmed, page(10, "", confirmed), OFFICER
    )
    assert [r.reservation_id for r in listed.reservations] == [
        made[i].reservation_id for i in (0, 1, 2, 4)
    ]
    assert listed.next_page_token == ""


async def test_utilisation_reports_each_day_of_the_period(uow: Uow) -> None:
    await registered(uow, pallets=8)
    await reserve(uow, 1, 2, 2)
    usage = await handlers.utilisation(uow.store, "DE-HAM-01", days(0, 4), OPERATOR)
    assert usage.warehouse_code == "DE-HAM-01"
    assert usage.capacity == Space(8, 0)
    assert [d.reserved.pallet_positions for d in usage.days] == [0, 2, 2, 0]
    assert [d.free.pallet_positions for d in usage.days] == [8, 6, 6, 8]
    assert [d.pallet_ratio for d in usage.days] == [0.0, 0.25, 0.25, 0.0]
    with pytest.raises(NotFound):
        await handlers.utilisation(uow.store, "NO-SUCH-1", days(0, 4), OFFICER)


# Search.


def criteria(**parts: object) -> domain.SearchCriteria:
    return validated(lambda check: domain.search_criteria(check, **parts))


async def test_search_ranks_nearest_first_and_keeps_enough_free_space(uow: Uow) -> None:
    await registered(uow, "DE-HAM-01", pallets=10)
    await registered(uow, "PL-POZ-01", pallets=10, country="PL", location=GeoPoint(52.4, 16.9))
    await registered(uow, "DE-DUI-01", pallets=10, location=GeoPoint(51.4344, 6.7623))
    await reserve(uow, 5, 1, 6, code="DE-DUI-01")
    near_cologne = criteria(near=COLOGNE)
    found = await handlers.search_warehouses(uow.store, near_cologne, page(0))
    assert [m.warehouse.code for m in found.matches] == ["DE-DUI-01", "DE-HAM-01", "PL-POZ-01"]
    assert found.total_size == 3
    assert found.next_page_token == ""

    free = criteria(
        near=COLOGNE,
        country_code="DE",
        available_from=days(0, 10).start.isoformat(),
        available_until=days(0, 10).end.isoformat(),
        min_free=Space(5, 0),
    )
    found = await handlers.search_warehouses(uow.store, free, page(0))
    assert [(m.warehouse.code, m.free) for m in found.matches] == [("DE-HAM-01", Space(10, 0))]


async def test_search_pages_walk_every_match_once_in_order_and_stop_after_the_last(
    uow: Uow,
) -> None:
    # A line of warehouses eastward from Cologne.
    for index in range(12):
        location = GeoPoint(50.9375, 7.0 + index / 2)
        await registered(uow, f"DE-{index:02d}", location=location)
    query = criteria(near=COLOGNE)
    seen, sizes, token = [], [], ""
    while True:
        found = await handlers.search_warehouses(uow.store, query, page(5, token, query))
        assert found.total_size == 12
        sizes.append(len(found.matches))
        seen.extend(m.warehouse.code for m in found.matches)
        token = found.next_page_token
        if not token:
            break
    assert sizes == [5, 5, 2]
    assert seen == [f"DE-{index:02d}" for index in range(12)]


async def test_a_page_that_ends_exactly_at_the_last_match_has_no_next_token(uow: Uow) -> None:
    for index in range(4):
        await registered(uow, f"DE-{index:02d}")
    found = await handlers.search_warehouses(uow.store, criteria(), page(4))
    assert len(found.matches) == 4
    assert found.next_page_token == ""


# Who may do what: someone else's warehouse or reservation is NotFound, told exactly as
# a missing one is.


async def not_found_message(call: Awaitable[object]) -> str:
    with pytest.raises(NotFound) as error:
        await call
    return error.value.message


async def test_a_warehouse_is_registered_for_the_operator_calling(uow: Uow) -> None:
    warehouse = await registered(uow, by=OTHER_OPERATOR)
    assert warehouse.operator_id == "rotterdam-3pl"
    assert uow.store.warehouses["DE-HAM-01"].operator_id == "rotterdam-3pl"
    for nobody in (Principal("op", Role.OPERATOR, ""), OFFICER):
        with acting_as(uow, nobody), pytest.raises(PermissionDenied):
            await handlers.register_warehouse(uow, registration("DE-DUI-01", profile()))
    assert list(uow.store.warehouses) == ["DE-HAM-01"]
    assert uow.events == []


async def test_update_warehouse_only_by_its_operator(uow: Uow) -> None:
    before = await registered(uow)
    command = ProfileUpdate("DE-HAM-01", profile(99), ("capacity",))
    missing = await not_found_message(
        handlers.update_warehouse(uow, replace(command, code="NO-SUCH-1"))
    )
    for stranger in (OTHER_OPERATOR, OFFICER):
        with acting_as(uow, stranger):
            told = await not_found_message(handlers.update_warehouse(uow, command))
        assert told == missing.replace("NO-SUCH-1", "DE-HAM-01")
    assert uow.store.warehouses["DE-HAM-01"] == before
    assert uow.events == []
    updated = await handlers.update_warehouse(uow, command)
    assert updated.profile.capacity == Space(99, 0)
    assert updated.operator_id == OPERATOR_ID


async def test_suspend_and_reactivate_by_its_operator_or_an_officer(uow: Uow) -> None:
    await registered(uow)
    refused = pytest.raises(NotFound, match="no warehouse with code 'DE-HAM-01'")
    with acting_as(uow, OTHER_OPERATOR), refused:
        await handlers.suspend_warehouse(uow, Suspension("DE-HAM-01", "hostile"))
    assert uow.store.warehouses["DE-HAM-01"].status == WarehouseStatus.ACTIVE
    with acting_as(uow, OFFICER):
        await handlers.suspend_warehouse(uow, Suspension("DE-HAM-01", "customs audit"))
    with acting_as(uow, OTHER_OPERATOR), pytest.raises(NotFound):
        await handlers.reactivate_warehouse(uow, "DE-HAM-01")
    assert uow.store.warehouses["DE-HAM-01"].status == WarehouseStatus.SUSPENDED
    await handlers.reactivate_warehouse(uow, "DE-HAM-01")
    await handlers.suspend_warehouse(uow, Suspension("DE-HAM-01", "own maintenance"))
    with acting_as(uow, OFFICER):
        await handlers.reactivate_warehouse(uow, "DE-HAM-01")
    assert uow.store.warehouses["DE-HAM-01"].status == WarehouseStatus.ACTIVE


async def test_a_warehouse_stored_without_an_operator_is_changed_by_officers_only(
    uow: Uow,
) -> None:
    older = replace(await registered(uow), operator_id="")
    uow.store.warehouses["DE-HAM-01"] = older
    with pytest.raises(NotFound):
        await handlers.update_warehouse(uow, ProfileUpdate("DE-HAM-01", profile(99), ()))
    with pytest.raises(NotFound):
        await handlers.suspend_warehouse(uow, Suspension("DE-HAM-01", "mine"))
    with acting_as(uow, OFFICER):
        await handlers.suspend_warehouse(uow, Suspension("DE-HAM-01", "unclaimed"))
        await handlers.reactivate_warehouse(uow, "DE-HAM-01")
    # Bookings go on; their events name no operator, so no operator is told.
    held = await reserve(uow, 1, 2, 1)
    with acting_as(uow, THE_EXPORTER):
        await handlers.cancel_reservation(uow, Cancellation(held.reservation_id, ""))
    booked, cancelled = uow.take_events()[-2:]
    assert isinstance(booked, CapacityReserved) and isinstance(cancelled, ReservationCancelled)
    assert booked.operator_id == cancelled.operator_id == ""


async def test_reserve_capacity_holds_space_for_the_exporter_calling(uow: Uow) -> None:
    await registered(uow)
    held = await reserve(uow, 1, 2, 1, exporter=ANOTHER_EXPORTER)
    assert held.exporter_credit_code == OTHER_EXPORTER
    assert uow.take_events()[0].exporter_credit_code == OTHER_EXPORTER
    for not_an_exporter in (OPERATOR, Principal("e", Role.EXPORTER, "")):
        with pytest.raises(PermissionDenied):
            await reserve(uow, 1, 2, 1, exporter=not_an_exporter)
    assert list(uow.store.reservations) == [held.reservation_id]


async def test_cancel_reservation_by_its_exporter_or_its_warehouses_operator(uow: Uow) -> None:
    await registered(uow)
    first = await reserve(uow, 1, 2, 1)
    second = await reserve(uow, 1, 2, 1)
    missing = await not_found_message(handlers.cancel_reservation(uow, Cancellation("nope", "")))
    for stranger in (ANOTHER_EXPORTER, OTHER_OPERATOR, OFFICER, BUYER):
        with acting_as(uow, stranger):
            told = await not_found_message(
                handlers.cancel_reservation(uow, Cancellation(first.reservation_id, ""))
            )
        assert told == missing.replace("nope", first.reservation_id)
    assert uow.store.reservations[first.reservation_id].status == ReservationStatus.CONFIRMED
    with acting_as(uow, THE_EXPORTER):
        await handlers.cancel_reservation(uow, Cancellation(first.reservation_id, "mine"))
    # The warehouse's operator, here the default actor.
    await handlers.cancel_reservation(uow, Cancellation(second.reservation_id, "overbooked"))
    assert {r.status for r in uow.store.reservations.values()} == {ReservationStatus.CANCELLED}


async def test_get_reservation_by_its_exporter_its_warehouses_operator_or_an_officer(
    uow: Uow,
) -> None:
    await registered(uow)
    held = await reserve(uow, 1, 2, 1)
    for allowed in (THE_EXPORTER, OPERATOR, OFFICER):
        assert await handlers.get_reservation(uow.store, held.reservation_id, allowed) == held
    missing = await not_found_message(handlers.get_reservation(uow.store, "nope", OFFICER))
    for stranger in (ANOTHER_EXPORTER, OTHER_OPERATOR, BUYER):
        told = await not_found_message(
            handlers.get_reservation(uow.store, held.reservation_id, stranger)
        )
        assert told == missing.replace("nope", held.reservation_id)


async def test_list_reservations_of_an_exporter_is_forced_to_its_own(uow: Uow) -> None:
    await registered(uow)
    mine = await reserve(uow, 1, 1, 1)
    await reserve(uow, 1, 1, 1, exporter=ANOTHER_EXPORTER)
    for asked in (
        ReservationFilter("", OTHER_EXPORTER, None),
        ReservationFilter("DE-HAM-01", "", None),
    ):
        listed = await handlers.list_reservations(uow.store, asked, page(10), THE_EXPORTER)
        assert [r.reservation_id for r in listed.reservations] == [mine.reservation_id]


async def test_list_reservations_of_an_operator_covers_only_its_warehouses(uow: Uow) -> None:
    await registered(uow, "DE-HAM-01")
    await registered(uow, "DE-DUI-01")
    await registered(uow, "NL-RTM-01", by=OTHER_OPERATOR)
    ours = [await reserve(uow, 1, 1, 1, code=code) for code in ("DE-HAM-01", "DE-DUI-01")]
    theirs = await reserve(uow, 1, 1, 1, code="NL-RTM-01")

    async def listed(which: ReservationFilter, viewer: Principal) -> list[str]:
        found = await handlers.list_reservations(uow.store, which, page(10), viewer)
        # Made at the same moment, they are listed in id order.
        return sorted(r.reservation_id for r in found.reservations)

    by_exporter = ReservationFilter("", EXPORTER, None)
    assert await listed(by_exporter, OPERATOR) == sorted(r.reservation_id for r in ours)
    assert await listed(by_exporter, OTHER_OPERATOR) == [theirs.reservation_id]
    assert await listed(ReservationFilter("NL-RTM-01", "", None), OPERATOR) == []
    assert await listed(ReservationFilter("DE-DUI-01", "", None), OPERATOR) == [
        ours[1].reservation_id
    ]
    # An operator without a warehouse, and any other role, sees nothing.
    nothing = Principal("op", Role.OPERATOR, "no-warehouses")
    for viewer in (nothing, BUYER, Principal("s", Role.SERVICE, "expo")):
        assert await listed(by_exporter, viewer) == []
    assert len(await listed(by_exporter, OFFICER)) == 3


async def test_get_utilisation_by_its_operator_or_an_officer(uow: Uow) -> None:
    await registered(uow, pallets=8)
    await reserve(uow, 1, 1, 2)
    for allowed in (OPERATOR, OFFICER):
        usage = await handlers.utilisation(uow.store, "DE-HAM-01", days(0, 2), allowed)
        assert [d.reserved.pallet_positions for d in usage.days] == [0, 2]
    missing = await not_found_message(
        handlers.utilisation(uow.store, "NO-SUCH-1", days(0, 2), OFFICER)
    )
    for stranger in (OTHER_OPERATOR, THE_EXPORTER):
        told = await not_found_message(
            handlers.utilisation(uow.store, "DE-HAM-01", days(0, 2), stranger)
        )
        assert told == missing.replace("NO-SUCH-1", "DE-HAM-01")
