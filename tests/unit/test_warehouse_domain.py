"""The warehouse domain on its own: validation, life cycle, periods, the availability
arithmetic and search ranking."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from runtime.kernel.errors import FailedPrecondition, InvalidArgument
from runtime.kernel.identity import Principal, Role
from runtime.kernel.validation import Validator, validated
from tests.credit_codes import random_credit_code
from warehouse import domain
from warehouse.domain import (
    CapacityReserved,
    LogisticsService,
    Operator,
    OperatorKind,
    Period,
    ProfileUpdate,
    PublicRecognition,
    ReservationCancelled,
    ReservationStatus,
    SearchCriteria,
    Space,
    Warehouse,
    WarehouseProfile,
    WarehouseRegistered,
    WarehouseStatus,
    WarehouseSuspended,
    WarehouseUpdated,
)
from warehouse.geo import GeoPoint

TODAY = date(2026, 6, 15)
NOW = datetime(2026, 6, 15, 9, 30, tzinfo=UTC)
EXPORTER = random_credit_code()
OPERATOR_ID = "henan-overseas-logistics"
HAMBURG = GeoPoint(53.5511, 9.9937)
COLOGNE = GeoPoint(50.9375, 6.9603)
POZNAN = GeoPoint(52.4064, 16.9252)


def draft(**changes: object) -> WarehouseProfile:
    profile = WarehouseProfile(
        name="Xuchang Hair Products Hamburg Warehouse",
        operator=Operator(OperatorKind.EXPORTER, "Rebecca Hair Products", EXPORTER),
        country_code="de",
        city="Hamburg",
        address="Am Windhukkai 1, 20457 Hamburg",
        location=HAMBURG,
        area_m2=12_000.0,
        capacity=Space(500, 4_000),
        services=(LogisticsService.LAST_MILE_DELIVERY, LogisticsService.STORAGE),
        recognition=PublicRecognition("Henan Department of Commerce", "2023-03-01"),
        delivery_countries=("DK",),
    )
    return replace(profile, **changes)


def register(code: str, profile: WarehouseProfile) -> tuple[Warehouse, tuple[object, ...]]:
    command = validated(lambda check: domain.registration(code, profile, TODAY, check))
    return Warehouse.register(command, OPERATOR_ID, NOW)


def warehouse(code: str = "DE-HAM-01", **changes: object) -> Warehouse:
    return register(code, draft(**changes))[0]


def update(
    current: Warehouse, profile: WarehouseProfile, mask: list[str], now: datetime
) -> domain.ProfileChange:
    return current.update(ProfileUpdate(current.code, profile, tuple(mask)), now)


def lookup_period(start: str, end: str) -> Period:
    return validated(lambda check: domain.period(start, end, check, "start_date", "end_date"))


def search_criteria(**parts: object) -> SearchCriteria:
    return validated(lambda check: domain.search_criteria(check, **parts))


def validate_booking(code: str, space: Space, start: str, end: str) -> domain.Booking:
    return validated(lambda check: domain.booking(code, space, start, end, check))


def violated(error: pytest.ExceptionInfo[InvalidArgument]) -> set[str]:
    return {v.field for v in error.value.violations}


def period(first_day: int, days: int) -> Period:
    start = TODAY + timedelta(days=first_day)
    return Period(start, start + timedelta(days=days))


# Registry.


def test_registration_normalises_the_profile() -> None:
    registered, events = register(
        " de-ham-01 ",
        draft(
            services=(3, 2, 3),
            delivery_countries=("dk", "DE", "nl", "DK"),
            name="  Hamburg  ",
        ),
    )
    assert registered.code == "DE-HAM-01"
    assert registered.status == WarehouseStatus.ACTIVE
    profile = registered.profile
    assert profile.country_code == "DE"
    assert profile.name == "Hamburg"
    assert profile.services == (LogisticsService.STORAGE, LogisticsService.LAST_MILE_DELIVERY)
    # Its own country is always served, so it is not repeated among the delivery ones.
    assert profile.delivery_countries == ("DK", "NL")
    assert profile.served_countries == ("DE", "DK", "NL")
    assert events == (
        WarehouseRegistered(
            code="DE-HAM-01",
            name="Hamburg",
            country_code="DE",
            city="Hamburg",
            capacity=Space(500, 4_000),
            services=(LogisticsService.STORAGE, LogisticsService.LAST_MILE_DELIVERY),
            publicly_recognised=True,
            operator_id=OPERATOR_ID,
        ),
    )
    assert registered.operator_id == OPERATOR_ID


def test_registration_reports_every_wrong_field_at_once() -> None:
    bad = draft(
        name=" ",
        operator=Operator(0, "", ""),
        country_code="UK",
        city="",
        address="",
        location=GeoPoint(95, 0),
        area_m2=0.0,
        capacity=Space(-1, 0),
        services=(0, 42),
        recognition=PublicRecognition("", "2026-13-01"),
        delivery_countries=("XX",),
    )
    with pytest.raises(InvalidArgument) as error:
        register("a", bad)
    assert violated(error) == {
        "code",
        "profile.name",
        "profile.operator.kind",
        "profile.operator.name",
        "profile.country_code",
        "profile.city",
        "profile.address",
        "profile.location.latitude",
        "profile.area_m2",
        "profile.capacity.pallet_positions",
        "profile.capacity",
        "profile.services[0]",
        "profile.services[1]",
        "profile.recognition.recognised_by",
        "profile.recognition.since",
        "profile.delivery_countries[0]",
    }
    # The kernel's country check words the rule; the field names the wrong value.
    assert "'UK' is not an ISO 3166-1 alpha-2" in str(error.value)


@pytest.mark.parametrize("country", ["XX", "D", "DEU", "", "276"])
def test_only_iso_3166_alpha_2_countries_are_accepted(country: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        warehouse(country_code=country)
    assert violated(error) == {"profile.country_code"}


def test_a_missing_location_or_no_service_is_refused() -> None:
    with pytest.raises(InvalidArgument) as error:
        warehouse(location=None, services=())
    assert violated(error) == {"profile.location", "profile.services"}


def test_an_exporter_operator_needs_a_valid_credit_code_a_service_firm_none() -> None:
    with pytest.raises(InvalidArgument) as error:
        warehouse(operator=Operator(OperatorKind.EXPORTER, "Rebecca", ""))
    assert violated(error) == {"profile.operator.credit_code"}
    wrong_check = EXPORTER[:-1] + ("0" if EXPORTER[-1] != "0" else "1")
    with pytest.raises(InvalidArgument) as error:
        warehouse(operator=Operator(OperatorKind.SERVICE_FIRM, "DHL", wrong_check))
    assert "check character" in str(error.value)
    firm = warehouse(operator=Operator(OperatorKind.SERVICE_FIRM, "Rhenus Logistics", ""))
    assert firm.profile.operator.credit_code == ""


def test_recognition_cannot_start_in_the_future() -> None:
    tomorrow = (TODAY + timedelta(days=1)).isoformat()
    with pytest.raises(InvalidArgument) as error:
        warehouse(recognition=PublicRecognition("Henan Department of Commerce", tomorrow))
    assert violated(error) == {"profile.recognition.since"}
    assert warehouse(recognition=None).profile.recognition is None


def test_an_update_takes_only_the_masked_fields() -> None:
    current = warehouse()
    later = NOW + timedelta(hours=1)
    incoming = draft(capacity=Space(800, 6_000), name="renamed", city="")
    change = update(current, incoming, ["capacity"], later)
    assert change.changed_fields == ("capacity",)
    assert change.warehouse.profile.capacity == Space(800, 6_000)
    assert change.warehouse.profile.name == current.profile.name
    assert change.previous.capacity == Space(500, 4_000)
    assert change.warehouse.updated_at == later
    assert change.events == (
        WarehouseUpdated(
            code="DE-HAM-01",
            name=current.profile.name,
            country_code="DE",
            city="Hamburg",
            capacity=Space(800, 6_000),
            services=current.profile.services,
            publicly_recognised=True,
            changed_fields=("capacity",),
            previous_country_code="DE",
            previous_capacity=Space(500, 4_000),
        ),
    )


def test_an_empty_mask_replaces_the_whole_profile_and_validates_it() -> None:
    with pytest.raises(InvalidArgument) as error:
        update(warehouse(), draft(city=""), [], NOW)
    assert violated(error) == {"profile.city"}


def test_an_unknown_mask_path_is_refused() -> None:
    with pytest.raises(InvalidArgument) as error:
        update(warehouse(), draft(), ["capacity.pallet_positions", "code"], NOW)
    assert violated(error) == {"update_mask"}
    assert "capacity.pallet_positions, code" in str(error.value)


def test_an_update_that_changes_nothing_reports_no_change() -> None:
    current = warehouse()
    change = update(current, draft(), [], NOW + timedelta(hours=1))
    assert change.changed_fields == ()
    assert change.warehouse == current
    assert change.events == ()


def test_capacity_cannot_drop_below_a_day_already_reserved() -> None:
    ahead = {TODAY + timedelta(days=3): Space(300, 100), TODAY + timedelta(days=9): Space(450, 0)}
    warehouse(capacity=Space(450, 100)).require_capacity_covers(ahead, TODAY)
    with pytest.raises(FailedPrecondition) as error:
        warehouse(capacity=Space(400, 100)).require_capacity_covers(ahead, TODAY)
    assert error.value.reason == "CAPACITY_BELOW_RESERVED"
    assert (TODAY + timedelta(days=9)).isoformat() in error.value.message
    assert "450 pallet positions" in error.value.message


def test_days_before_today_bound_no_new_capacity() -> None:
    history = {TODAY - timedelta(days=1): Space(450, 0), TODAY: Space(300, 0)}
    warehouse(capacity=Space(300, 100)).require_capacity_covers(history, TODAY)
    with pytest.raises(FailedPrecondition):
        warehouse(capacity=Space(299, 100)).require_capacity_covers(history, TODAY)


def test_suspension_and_reactivation_alternate() -> None:
    suspended, events = warehouse().suspend("fire inspection", NOW)
    assert suspended.status == WarehouseStatus.SUSPENDED
    assert suspended.suspension_reason == "fire inspection"
    assert events == (WarehouseSuspended("DE-HAM-01", "DE", "fire inspection"),)
    with pytest.raises(FailedPrecondition, match="already suspended") as twice:
        suspended.suspend("again", NOW)
    assert twice.value.reason == "WAREHOUSE_ALREADY_SUSPENDED"
    active, events = suspended.reactivate(NOW)
    assert active.status == WarehouseStatus.ACTIVE
    assert active.suspension_reason == ""
    assert events == (domain.WarehouseReactivated("DE-HAM-01", "DE"),)
    with pytest.raises(FailedPrecondition, match="not suspended") as active_already:
        active.reactivate(NOW)
    assert active_already.value.reason == "WAREHOUSE_NOT_SUSPENDED"


def test_a_suspension_needs_a_reason() -> None:
    with pytest.raises(InvalidArgument) as error:
        validated(lambda check: domain.reason("  ", check, required=True))
    assert violated(error) == {"reason"}
    assert domain.reason("  ", Validator(), required=False) == ""


# Periods.


def test_a_period_excludes_its_end_date() -> None:
    july = lookup_period("2026-07-01", "2026-08-01")
    assert july.days == 31
    assert july.dates()[0] == date(2026, 7, 1)
    assert july.dates()[-1] == date(2026, 7, 31)


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        ("2026-07-01", "2026-07-01", "end_date"),
        ("2026-07-02", "2026-07-01", "end_date"),
        ("2026-01-01", "2027-01-03", "end_date"),
        ("2026-7-1", "2026-08-01", "start_date"),
        ("20260701", "2026-08-01", "start_date"),
        ("2026-W27-3", "2026-08-01", "start_date"),
        ("2026-07-01", "2026-02-30", "end_date"),
    ],
)
def test_bad_periods_name_the_wrong_date(start: str, end: str, field: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        lookup_period(start, end)
    assert violated(error) == {field}


def test_a_period_spans_at_most_366_days() -> None:
    assert lookup_period("2028-01-01", "2029-01-01").days == 366
    with pytest.raises(InvalidArgument):
        lookup_period("2027-01-01", "2028-01-03")


# Bookings.


def test_a_booking_request_reports_every_wrong_field() -> None:
    with pytest.raises(InvalidArgument) as error:
        validate_booking("?", Space(0, -1), "2026-07-01", "2026-06-01")
    assert violated(error) == {
        "warehouse_code",
        "space",
        "space.cubic_metres",
        "end_date",
    }


def test_a_booking_may_start_today_but_not_before() -> None:
    domain.Booking("DE-HAM-01", Space(1, 0), period(0, 1)).require_start_not_past(TODAY)
    with pytest.raises(InvalidArgument) as error:
        domain.Booking("DE-HAM-01", Space(1, 0), period(-1, 3)).require_start_not_past(TODAY)
    assert violated(error) == {"start_date"}


def test_space_that_exactly_fills_a_day_fits() -> None:
    loads = {TODAY: Space(400, 3_000)}
    assert domain.first_shortfall(Space(500, 4_000), loads, period(0, 1), Space(100, 1_000)) is None


def test_the_first_day_without_room_is_the_shortfall() -> None:
    capacity = Space(500, 4_000)
    loads = {
        TODAY + timedelta(days=1): Space(420, 0),
        TODAY + timedelta(days=2): Space(480, 0),
        TODAY + timedelta(days=3): Space(500, 0),
    }
    shortfall = domain.first_shortfall(capacity, loads, period(0, 5), Space(100, 0))
    assert shortfall is not None
    assert shortfall.day == TODAY + timedelta(days=1)
    assert shortfall.free == Space(80, 4_000)
    assert shortfall.requested == Space(100, 0)


def test_days_without_a_counter_are_empty() -> None:
    assert domain.first_shortfall(Space(10, 0), {}, period(0, 30), Space(10, 0)) is None
    shortfall = domain.first_shortfall(Space(10, 0), {}, period(0, 30), Space(11, 0))
    assert shortfall is not None and shortfall.day == TODAY


def test_cubic_metres_can_run_out_while_pallets_are_free() -> None:
    loads = {TODAY: Space(0, 3_990)}
    shortfall = domain.first_shortfall(Space(500, 4_000), loads, period(0, 1), Space(1, 20))
    assert shortfall is not None
    assert shortfall.describe() == f"on {TODAY.isoformat()}: 10 m³ free, 20 m³ requested"


def test_a_refused_booking_names_the_day_what_is_free_and_what_was_asked() -> None:
    booking = domain.Booking("DE-HAM-01", Space(100, 0), period(10, 30))
    full_day = TODAY + timedelta(days=17)
    with pytest.raises(FailedPrecondition) as error:
        warehouse().reserve("r-1", booking, EXPORTER, {full_day: Space(460, 0)}, NOW)
    assert error.value.message == (
        f"not enough space in warehouse DE-HAM-01 on {full_day.isoformat()}: "
        "40 pallet positions free, 100 requested"
    )
    assert error.value.reason == "INSUFFICIENT_CAPACITY"


def test_a_suspended_warehouse_takes_no_bookings() -> None:
    suspended, _ = warehouse().suspend("fire inspection", NOW)
    booking = domain.Booking("DE-HAM-01", Space(1, 0), period(1, 2))
    with pytest.raises(FailedPrecondition, match="suspended \\(fire inspection\\)") as refused:
        suspended.reserve("r-1", booking, EXPORTER, {}, NOW)
    assert refused.value.reason == "WAREHOUSE_SUSPENDED"


def test_a_reservation_copies_the_country_for_reporting() -> None:
    booking = domain.Booking("DE-HAM-01", Space(100, 50), period(1, 2))
    reservation, events = warehouse().reserve("r-1", booking, EXPORTER, {}, NOW)
    assert reservation.country_code == "DE"
    assert reservation.status == ReservationStatus.CONFIRMED
    # The operator is told, with the day's share: 100 of 500 pallet positions (50 of
    # 4,000 m³ is less).
    assert events == (
        CapacityReserved(
            "r-1", "DE-HAM-01", "DE", EXPORTER, Space(100, 50), period(1, 2), OPERATOR_ID, 20
        ),
    )


def test_the_peak_is_the_fullest_day_in_the_fuller_dimension_rounded_down() -> None:
    capacity = Space(500, 4_000)
    booking = Space(10, 100)
    days = period(1, 3)
    before, first, second, after = (TODAY + timedelta(days=n) for n in (0, 1, 2, 4))
    # Days outside the period do not count, however full.
    loads = {before: Space(500, 4_000), after: Space(500, 4_000)}
    # Day 2 is the fullest in pallets: (393 + 10) / 500 = 80.6 %.
    loads |= {first: Space(100, 3_000), second: Space(393, 0)}
    assert domain.peak_utilisation_percent(capacity, loads, days, booking) == 80
    # Fuller still in cubic metres on day 1: (3,530 + 100) / 4,000 = 90.75 %.
    loads[first] = Space(100, 3_530)
    assert domain.peak_utilisation_percent(capacity, loads, days, booking) == 90
    # Nothing held yet: the booking alone, 10 of 500 pallet positions.
    assert domain.peak_utilisation_percent(capacity, {}, days, booking) == 2
    # A dimension the warehouse does not sell is ignored, not divided by.
    assert domain.peak_utilisation_percent(Space(0, 4_000), {}, days, Space(0, 1_000)) == 25
    assert domain.peak_utilisation_percent(Space(500, 0), {}, days, Space(499, 0)) == 99


def test_a_booking_tells_the_peak_of_its_own_period_with_itself_included() -> None:
    partly_full = {TODAY + timedelta(days=2): Space(300, 0)}
    booking = domain.Booking("DE-HAM-01", Space(150, 0), period(1, 3))
    _, [reserved] = warehouse().reserve("r-1", booking, EXPORTER, partly_full, NOW)
    assert reserved.peak_utilisation_percent == 90  # (300 + 150) / 500 on the second day
    _, [exact] = warehouse().reserve(
        "r-2", replace(booking, space=Space(200, 0)), EXPORTER, partly_full, NOW
    )
    assert exact.peak_utilisation_percent == 100


def test_a_warehouse_without_an_operator_books_and_cancels_naming_none() -> None:
    older = replace(warehouse(), operator_id="")
    booking = domain.Booking("DE-HAM-01", Space(1, 0), period(1, 2))
    reservation, [reserved] = older.reserve("r-1", booking, EXPORTER, {}, NOW)
    _, [cancelled] = reservation.cancel("", older, NOW)
    assert reserved.operator_id == cancelled.operator_id == ""


def test_free_space_is_never_negative() -> None:
    assert domain.free_of(Space(100, 10), Space(120, 4)) == Space(0, 6)


def test_a_reservation_can_be_cancelled_once_and_only_before_it_starts() -> None:
    booking = domain.Booking("DE-HAM-01", Space(100, 0), period(1, 5))
    reservation, _ = warehouse().reserve("r-1", booking, EXPORTER, {}, NOW)
    cancelled, events = reservation.cancel("fair postponed", warehouse(), NOW)
    assert cancelled.status == ReservationStatus.CANCELLED
    assert cancelled.cancelled_at == NOW
    assert events == (
        ReservationCancelled(
            "r-1",
            "DE-HAM-01",
            "DE",
            EXPORTER,
            Space(100, 0),
            period(1, 5),
            "fair postponed",
            OPERATOR_ID,
        ),
    )
    with pytest.raises(FailedPrecondition, match="already cancelled") as twice:
        cancelled.cancel("", warehouse(), NOW)
    assert twice.value.reason == "RESERVATION_CANCELLED"
    with pytest.raises(FailedPrecondition, match="started on") as started:
        reservation.cancel("", warehouse(), NOW + timedelta(days=1))
    assert started.value.reason == "RESERVATION_STARTED"


def test_utilisation_reports_each_day_with_its_ratio() -> None:
    loads = {TODAY + timedelta(days=1): Space(125, 0)}
    days = warehouse(capacity=Space(500, 0)).utilisation(loads, period(0, 3)).days
    assert [d.day for d in days] == period(0, 3).dates()
    assert [d.pallet_ratio for d in days] == [0.0, 0.25, 0.0]
    assert days[1].free == Space(375, 0)
    # A warehouse that sells no cubic metres is not "0% used" of them: it has none.
    assert all(d.cubic_metre_ratio == 0.0 for d in days)


# Search.


def test_min_free_needs_a_period_and_within_km_a_destination() -> None:
    with pytest.raises(InvalidArgument) as error:
        search_criteria(min_free=Space(100, 0), within_km=50)
    assert violated(error) == {"available_from", "near"}


def test_search_criteria_normalise_countries_and_check_them() -> None:
    criteria = search_criteria(serving_country="de", services=[3])
    assert criteria.serving_country == "DE"
    assert criteria.services == (LogisticsService.LAST_MILE_DELIVERY,)
    with pytest.raises(InvalidArgument) as error:
        search_criteria(country_code="Germany", services=[99], near=GeoPoint(0, 200))
    assert violated(error) == {"country_code", "services[0]", "near.longitude"}


def test_ranking_puts_the_nearest_first_and_drops_what_is_too_far() -> None:
    candidates = [
        warehouse("PL-POZ-01", location=POZNAN, country_code="PL"),
        warehouse("DE-HAM-01"),
    ]
    criteria = search_criteria(near=COLOGNE)
    ranked = domain.rank(candidates, criteria, {})
    assert [m.warehouse.code for m in ranked] == ["DE-HAM-01", "PL-POZ-01"]
    assert ranked[0].distance_km == pytest.approx(356, rel=0.01)
    assert ranked[0].free is None
    near_only = domain.rank(candidates, search_criteria(near=COLOGNE, within_km=500), {})
    assert [m.warehouse.code for m in near_only] == ["DE-HAM-01"]


def test_ranking_without_destination_orders_by_code() -> None:
    candidates = [warehouse("NL-RTM-01"), warehouse("DE-HAM-01"), warehouse("FR-LEH-01")]
    ranked = domain.rank(candidates, search_criteria(), {})
    assert [m.warehouse.code for m in ranked] == ["DE-HAM-01", "FR-LEH-01", "NL-RTM-01"]
    assert ranked[0].distance_km is None


def test_ranking_keeps_warehouses_with_enough_space_free_on_every_day() -> None:
    candidates = [warehouse("DE-HAM-01"), warehouse("DE-DUI-01"), warehouse("DE-MUC-01")]
    criteria = search_criteria(
        available_from="2026-07-01", available_until="2026-08-01", min_free=Space(100, 0)
    )
    # Peaks: the highest load of each over the period.
    peaks = {"DE-HAM-01": Space(400, 3_999), "DE-DUI-01": Space(401, 0)}
    ranked = domain.rank(candidates, criteria, peaks)
    assert [m.warehouse.code for m in ranked] == ["DE-HAM-01", "DE-MUC-01"]
    assert ranked[0].free == Space(100, 1)
    assert ranked[1].free == Space(500, 4_000)


# Who may do what.


def test_only_its_operator_operates_a_warehouse_and_officers_supervise_it() -> None:
    operated = warehouse()
    operator = Principal("op-user", Role.OPERATOR, OPERATOR_ID)
    other = Principal("op-other", Role.OPERATOR, "another-operator")
    officer = Principal("officer-1", Role.OFFICER)
    # An exporter whose credit code happened to equal the operator id is no operator.
    impostor = Principal("x", Role.EXPORTER, OPERATOR_ID)
    assert operated.operated_by(operator)
    assert not any(operated.operated_by(p) for p in (other, officer, impostor))
    assert operated.supervised_by(operator) and operated.supervised_by(officer)
    assert not operated.supervised_by(other) and not operated.supervised_by(impostor)


def test_a_warehouse_stored_without_an_operator_is_operated_by_nobody() -> None:
    older = replace(warehouse(), operator_id="")
    assert not older.operated_by(Principal("op", Role.OPERATOR, ""))
    assert not older.operated_by(Principal("op", Role.OPERATOR, OPERATOR_ID))
    assert older.supervised_by(Principal("officer-1", Role.OFFICER))


def test_a_reservation_is_held_by_its_exporter_only() -> None:
    booking = domain.Booking("DE-HAM-01", Space(1, 0), period(1, 2))
    reservation, _ = warehouse().reserve("r-1", booking, EXPORTER, {}, NOW)
    assert reservation.exporter_credit_code == EXPORTER
    assert reservation.held_by(Principal("e", Role.EXPORTER, EXPORTER))
    assert not reservation.held_by(Principal("e", Role.EXPORTER, random_credit_code()))
    assert not reservation.held_by(Principal("b", Role.BUYER, EXPORTER))


def test_an_officer_sees_any_listing_but_must_name_a_warehouse_or_exporter() -> None:
    officer = Principal("officer-1", Role.OFFICER)
    which = domain.ReservationFilter("", EXPORTER, None)
    assert domain.visible_reservations(which, officer, ()) == which
    with pytest.raises(InvalidArgument) as error:
        domain.visible_reservations(domain.ReservationFilter("", "", None), officer, ())
    assert violated(error) == {"warehouse_code"}


def test_an_exporters_listing_is_forced_to_its_own_reservations() -> None:
    exporter = Principal("e", Role.EXPORTER, EXPORTER)
    others = domain.ReservationFilter("DE-HAM-01", random_credit_code(), None)
    assert domain.visible_reservations(others, exporter, ()) == domain.ReservationFilter(
        "DE-HAM-01", EXPORTER, None
    )


def test_an_operators_listing_is_limited_to_the_warehouses_it_operates() -> None:
    operator = Principal("op", Role.OPERATOR, OPERATOR_ID)
    mine = domain.ReservationFilter("DE-HAM-01", "", None)
    assert domain.visible_reservations(mine, operator, ["DE-HAM-01", "DE-DUI-01"]) == mine
    theirs = domain.ReservationFilter("PL-POZ-01", "", None)
    assert domain.visible_reservations(theirs, operator, ["DE-HAM-01"]) is None
    by_exporter = domain.ReservationFilter("", EXPORTER, None)
    assert domain.visible_reservations(by_exporter, operator, ["DE-HAM-01", "DE-DUI-01"]) == (
        domain.ReservationFilter("", EXPORTER, None, ("DE-DUI-01", "DE-HAM-01"))
    )
    assert domain.visible_reservations(by_exporter, operator, []) is None


def test_other_roles_see_no_reservations() -> None:
    which = domain.ReservationFilter("DE-HAM-01", EXPORTER, None)
    for principal in (
        Principal("b", Role.BUYER, "buyer-1"),
        Principal("s", Role.SERVICE, "expo"),
        Principal("e", Role.EXPORTER, ""),
    ):
        assert domain.visible_reservations(which, principal, ["DE-HAM-01"]) is None
