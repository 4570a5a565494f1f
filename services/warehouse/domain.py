"""The warehouse domain: the registry's rules and life cycle, booking periods, the
availability arithmetic and search ranking. Pure Python: no gRPC, MongoDB or Kafka.

Validation raises InvalidArgument naming every wrong field of a request at once; a
refused state change raises FailedPrecondition with a message meant for the caller."""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import date, datetime, timedelta

from runtime.kernel.errors import FailedPrecondition, FieldViolation, InvalidArgument
from runtime.kernel.standards import is_country
from runtime.kernel.validation import Validator
from warehouse.geo import GeoPoint, great_circle_km, validate_point

CODE_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,30}[A-Z0-9]$")
DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
NAME_MAX_LENGTH = 200
CITY_MAX_LENGTH = 100
ADDRESS_MAX_LENGTH = 500
REASON_MAX_LENGTH = 500
RESERVATION_ID_MAX_LENGTH = 64
# Far above the largest real warehouses: they catch unit mistakes, not ambition.
MAX_PALLET_POSITIONS = 1_000_000
MAX_CUBIC_METRES = 10_000_000
MAX_AREA_M2 = 10_000_000.0
# A booking or a query touches one counter per day: a year bounds the work of one call.
MAX_PERIOD_DAYS = 366


class LogisticsService(enum.IntEnum):
    """Values match chuhai.warehouse.v1.LogisticsService."""

    CUSTOMS_CLEARANCE = 1
    STORAGE = 2
    LAST_MILE_DELIVERY = 3
    RETURNS = 4
    EXHIBITION_SHOWROOM = 5
    FBA_TRANSFER = 6
    PICK_AND_PACK = 7
    COLD_STORAGE = 8


class WarehouseStatus(enum.IntEnum):
    """Values match chuhai.warehouse.v1.WarehouseStatus."""

    ACTIVE = 1
    SUSPENDED = 2


class OperatorKind(enum.IntEnum):
    """Values match chuhai.warehouse.v1.OperatorKind."""

    EXPORTER = 1
    SERVICE_FIRM = 2


class ReservationStatus(enum.IntEnum):
    """Values match chuhai.warehouse.v1.ReservationStatus."""

    CONFIRMED = 1
    CANCELLED = 2


@dataclass(frozen=True)
class Space:
    """An amount of warehouse space in the two dimensions a warehouse sells."""

    pallet_positions: int = 0
    cubic_metres: int = 0

    def __add__(self, other: Space) -> Space:
        return Space(
            self.pallet_positions + other.pallet_positions,
            self.cubic_metres + other.cubic_metres,
        )

    def within(self, limit: Space) -> bool:
        return (
            self.pallet_positions <= limit.pallet_positions
            and self.cubic_metres <= limit.cubic_metres
        )

    def describe(self) -> str:
        return f"{self.pallet_positions} pallet positions and {self.cubic_metres} m³"


def free_of(capacity: Space, reserved: Space) -> Space:
    """What is left; never negative, even on a past day whose load exceeds a capacity
    lowered later."""
    return Space(
        max(0, capacity.pallet_positions - reserved.pallet_positions),
        max(0, capacity.cubic_metres - reserved.cubic_metres),
    )


@dataclass(frozen=True)
class Operator:
    kind: int
    name: str
    credit_code: str = ""


@dataclass(frozen=True)
class PublicRecognition:
    recognised_by: str
    # YYYY-MM-DD.
    since: str


@dataclass(frozen=True)
class WarehouseProfile:
    """What an operator describes. The field names are the update mask's paths.

    A profile built from a request is a draft until validate_profile() returned it:
    only a draft lacks a location or holds services outside the vocabulary.
    """

    name: str
    operator: Operator
    country_code: str
    city: str
    address: str
    location: GeoPoint | None
    area_m2: float
    capacity: Space
    services: tuple[int, ...]
    recognition: PublicRecognition | None = None
    delivery_countries: tuple[str, ...] = ()

    @property
    def served_countries(self) -> tuple[str, ...]:
        return (self.country_code, *self.delivery_countries)


PROFILE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(WarehouseProfile))


@dataclass(frozen=True)
class Warehouse:
    code: str
    profile: WarehouseProfile
    status: WarehouseStatus
    suspension_reason: str
    registered_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Period:
    """The days [start, end): the end date is the first day not included."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def dates(self) -> list[date]:
        return [self.start + timedelta(days=offset) for offset in range(self.days)]


# Field validation. Each function records what is wrong in a Validator and returns the
# normalised value, so a request learns about all its wrong fields at once.


def validate_code(code: str, check: Validator, field: str = "code") -> str:
    normalised = code.strip().upper()
    check.require(
        bool(CODE_PATTERN.match(normalised)),
        field,
        "must be 3 to 32 capital letters, digits and inner '-'",
    )
    return normalised


def validate_country(code: str, check: Validator, field: str) -> str:
    normalised = code.strip().upper()
    check.require(
        is_country(normalised), field, f"{code!r} is not an ISO 3166-1 alpha-2 country code"
    )
    return normalised


def parse_date(text: str, check: Validator, field: str) -> date | None:
    parsed = None
    # fromisoformat alone also takes "20250701" and week dates; the API promises one form.
    if DATE_PATTERN.match(text):
        try:
            parsed = date.fromisoformat(text)
        except ValueError:
            parsed = None
    check.require(parsed is not None, field, "must be a date as YYYY-MM-DD")
    return parsed


def parse_period(
    start_text: str, end_text: str, check: Validator, start_field: str, end_field: str
) -> Period | None:
    start = parse_date(start_text, check, start_field)
    end = parse_date(end_text, check, end_field)
    if start is None or end is None:
        return None
    if end <= start:
        check.require(False, end_field, "must be after the start date (it is exclusive)")
        return None
    if (end - start).days > MAX_PERIOD_DAYS:
        check.require(False, end_field, f"a period spans at most {MAX_PERIOD_DAYS} days")
        return None
    return Period(start, end)


def _text(value: str, check: Validator, field: str, max_length: int) -> str:
    text = value.strip()
    check.require(bool(text), field, "is required")
    check.require(len(text) <= max_length, field, f"at most {max_length} characters")
    return text


def _services(values: Sequence[int], check: Validator, field: str) -> tuple[LogisticsService, ...]:
    known: set[LogisticsService] = set()
    for index, value in enumerate(values):
        try:
            known.add(LogisticsService(value))
        except ValueError:
            check.require(False, f"{field}[{index}]", "is not a service of the vocabulary")
    return tuple(sorted(known))


def _space_bounds(space: Space, check: Validator, field: str) -> None:
    check.require(
        0 <= space.pallet_positions <= MAX_PALLET_POSITIONS,
        f"{field}.pallet_positions",
        f"must be between 0 and {MAX_PALLET_POSITIONS}",
    )
    check.require(
        0 <= space.cubic_metres <= MAX_CUBIC_METRES,
        f"{field}.cubic_metres",
        f"must be between 0 and {MAX_CUBIC_METRES}",
    )
    check.require(
        space.pallet_positions > 0 or space.cubic_metres > 0,
        field,
        "needs pallet positions or cubic metres above zero",
    )


def _operator(operator: Operator, check: Validator, field: str) -> Operator:
    check.require(
        operator.kind in {kind.value for kind in OperatorKind},
        f"{field}.kind",
        "must be an exporter or a service firm",
    )
    name = _text(operator.name, check, f"{field}.name", NAME_MAX_LENGTH)
    credit_code = ""
    # An exporter is known by its credit code; a foreign service firm has none.
    if operator.kind == OperatorKind.EXPORTER or operator.credit_code.strip():
        credit_code = check.credit_code(operator.credit_code, f"{field}.credit_code")
    return Operator(operator.kind, name, credit_code)


def _recognition(
    recognition: PublicRecognition | None, today: date, check: Validator, field: str
) -> PublicRecognition | None:
    if recognition is None:
        return None
    by = _text(recognition.recognised_by, check, f"{field}.recognised_by", NAME_MAX_LENGTH)
    since = parse_date(recognition.since, check, f"{field}.since")
    if since is not None:
        check.require(since <= today, f"{field}.since", "must not be in the future")
    return PublicRecognition(by, recognition.since)


def validate_profile(
    draft: WarehouseProfile, today: date, check: Validator, prefix: str = "profile"
) -> WarehouseProfile:
    """Normalise an operator's description, recording every problem in ``check``."""
    country = validate_country(draft.country_code, check, f"{prefix}.country_code")
    check.require(
        math.isfinite(draft.area_m2) and 0 < draft.area_m2 <= MAX_AREA_M2,
        f"{prefix}.area_m2",
        f"must be above 0 and at most {MAX_AREA_M2:.0f}",
    )
    _space_bounds(draft.capacity, check, f"{prefix}.capacity")
    check.require(bool(draft.services), f"{prefix}.services", "name at least one service")
    delivery = {
        validate_country(code, check, f"{prefix}.delivery_countries[{index}]")
        for index, code in enumerate(draft.delivery_countries)
    }
    return WarehouseProfile(
        name=_text(draft.name, check, f"{prefix}.name", NAME_MAX_LENGTH),
        operator=_operator(draft.operator, check, f"{prefix}.operator"),
        country_code=country,
        city=_text(draft.city, check, f"{prefix}.city", CITY_MAX_LENGTH),
        address=_text(draft.address, check, f"{prefix}.address", ADDRESS_MAX_LENGTH),
        location=validate_point(draft.location, check, f"{prefix}.location"),
        area_m2=draft.area_m2,
        capacity=draft.capacity,
        services=_services(draft.services, check, f"{prefix}.services"),
        recognition=_recognition(draft.recognition, today, check, f"{prefix}.recognition"),
        # A warehouse always serves its own country; listing it again changes nothing.
        delivery_countries=tuple(sorted(delivery - {country})),
    )


def lookup_code(code: str, field: str = "code") -> str:
    """A warehouse code to look up; INVALID_ARGUMENT when it cannot be one."""
    check = Validator()
    normalised = validate_code(code, check, field)
    check.raise_if_invalid()
    return normalised


def lookup_reservation_id(reservation_id: str) -> str:
    check = Validator()
    text = _text(reservation_id, check, "reservation_id", RESERVATION_ID_MAX_LENGTH)
    check.raise_if_invalid()
    return text


def lookup_period(start_date: str, end_date: str) -> Period:
    """The period [start_date, end_date) of a query; INVALID_ARGUMENT when it is none."""
    check = Validator()
    period = parse_period(start_date, end_date, check, "start_date", "end_date")
    check.raise_if_invalid()
    # parse_period() returns None only after recording a violation: period is set here.
    return period


def validate_reason(reason: str, *, required: bool) -> str:
    check = Validator()
    text = reason.strip()
    check.require(bool(text) or not required, "reason", "is required")
    check.require(
        len(text) <= REASON_MAX_LENGTH, "reason", f"at most {REASON_MAX_LENGTH} characters"
    )
    check.raise_if_invalid()
    return text


# The registry's life cycle.


def register(code: str, draft: WarehouseProfile, today: date, now: datetime) -> Warehouse:
    check = Validator()
    code = validate_code(code, check)
    profile = validate_profile(draft, today, check)
    check.raise_if_invalid()
    return Warehouse(code, profile, WarehouseStatus.ACTIVE, "", now, now)


@dataclass(frozen=True)
class ProfileChange:
    warehouse: Warehouse
    previous: WarehouseProfile
    # Profile fields whose value changed; empty when the update changed nothing.
    changed_fields: tuple[str, ...]


def update(
    warehouse: Warehouse,
    draft: WarehouseProfile,
    mask: Sequence[str],
    today: date,
    now: datetime,
) -> ProfileChange:
    """Take the fields named in ``mask`` (every field for an empty mask) from ``draft``."""
    check = Validator()
    unknown = sorted(set(mask) - set(PROFILE_FIELDS))
    check.require(
        not unknown,
        "update_mask",
        f"unknown paths {', '.join(unknown)}; known: {', '.join(PROFILE_FIELDS)}",
    )
    paths = [path for path in mask if path in PROFILE_FIELDS] if mask else PROFILE_FIELDS
    merged = replace(warehouse.profile, **{path: getattr(draft, path) for path in paths})
    profile = validate_profile(merged, today, check)
    check.raise_if_invalid()
    before = warehouse.profile
    changed = tuple(f for f in PROFILE_FIELDS if getattr(profile, f) != getattr(before, f))
    updated = replace(warehouse, profile=profile, updated_at=now) if changed else warehouse
    return ProfileChange(updated, before, changed)


def require_capacity_covers(
    code: str, capacity: Space, reserved_by_day: Mapping[date, Space]
) -> None:
    """Refuse a capacity below what a day already holds: those bookings were confirmed
    and stand. ``reserved_by_day`` holds the days from today on."""
    for day in sorted(reserved_by_day):
        reserved = reserved_by_day[day]
        if not reserved.within(capacity):
            raise FailedPrecondition(
                f"warehouse {code}: the new capacity of {capacity.describe()} is below the "
                f"{reserved.describe()} already reserved on {day.isoformat()}"
            )


def suspend(warehouse: Warehouse, reason: str, now: datetime) -> Warehouse:
    """Suspend for a reason validate_reason() accepted."""
    if warehouse.status == WarehouseStatus.SUSPENDED:
        raise FailedPrecondition(f"warehouse {warehouse.code} is already suspended")
    return replace(
        warehouse, status=WarehouseStatus.SUSPENDED, suspension_reason=reason, updated_at=now
    )


def reactivate(warehouse: Warehouse, now: datetime) -> Warehouse:
    if warehouse.status == WarehouseStatus.ACTIVE:
        raise FailedPrecondition(f"warehouse {warehouse.code} is active, not suspended")
    return replace(warehouse, status=WarehouseStatus.ACTIVE, suspension_reason="", updated_at=now)


# Bookings.


@dataclass(frozen=True)
class Booking:
    """A validated request to hold space on every day of a period."""

    warehouse_code: str
    exporter_credit_code: str
    space: Space
    period: Period


def validate_booking(
    warehouse_code: str,
    exporter_credit_code: str,
    space: Space,
    start_date: str,
    end_date: str,
) -> Booking:
    """Everything about a booking request that does not depend on the day it arrives;
    see require_start_not_past() for the rest."""
    check = Validator()
    code = validate_code(warehouse_code, check, "warehouse_code")
    exporter = check.credit_code(exporter_credit_code, "exporter_credit_code")
    _space_bounds(space, check, "space")
    period = parse_period(start_date, end_date, check, "start_date", "end_date")
    check.raise_if_invalid()
    # parse_period() returns None only after recording a violation: period is set here.
    return Booking(code, exporter, space, period)


def require_start_not_past(period: Period, today: date) -> None:
    """Apart from validate_booking() because it must run after the idempotency lookup:
    a retry arriving after midnight gets its first answer back, not a refusal."""
    if period.start < today:
        raise InvalidArgument(
            FieldViolation("start_date", f"must not be in the past (today is {today.isoformat()})")
        )


@dataclass(frozen=True)
class Shortfall:
    """The first day a booking does not fit, and by how much."""

    day: date
    free: Space
    requested: Space

    def describe(self) -> str:
        parts = []
        if self.requested.pallet_positions > self.free.pallet_positions:
            parts.append(
                f"{self.free.pallet_positions} pallet positions free, "
                f"{self.requested.pallet_positions} requested"
            )
        if self.requested.cubic_metres > self.free.cubic_metres:
            parts.append(
                f"{self.free.cubic_metres} m³ free, {self.requested.cubic_metres} m³ requested"
            )
        return f"on {self.day.isoformat()}: {'; '.join(parts)}"


def first_shortfall(
    capacity: Space, reserved_by_day: Mapping[date, Space], period: Period, requested: Space
) -> Shortfall | None:
    """The first day of ``period`` where ``requested`` on top of what is reserved would
    exceed ``capacity``; None when it fits every day. A day absent holds nothing."""
    for day in period.dates():
        reserved = reserved_by_day.get(day, Space())
        if not (reserved + requested).within(capacity):
            return Shortfall(day, free_of(capacity, reserved), requested)
    return None


def require_bookable(warehouse: Warehouse) -> None:
    if warehouse.status == WarehouseStatus.SUSPENDED:
        raise FailedPrecondition(
            f"warehouse {warehouse.code} is suspended ({warehouse.suspension_reason}) "
            "and takes no bookings"
        )


@dataclass(frozen=True)
class Reservation:
    reservation_id: str
    warehouse_code: str
    country_code: str
    exporter_credit_code: str
    space: Space
    period: Period
    status: ReservationStatus
    reserved_at: datetime
    cancelled_at: datetime | None = None
    cancellation_reason: str = ""


def reserve(
    reservation_id: str,
    warehouse: Warehouse,
    booking: Booking,
    reserved_by_day: Mapping[date, Space],
    now: datetime,
) -> Reservation:
    """The reservation, when the warehouse takes bookings and has the space every day."""
    require_bookable(warehouse)
    shortfall = first_shortfall(
        warehouse.profile.capacity, reserved_by_day, booking.period, booking.space
    )
    if shortfall is not None:
        raise FailedPrecondition(
            f"not enough space in warehouse {warehouse.code} {shortfall.describe()}"
        )
    return Reservation(
        reservation_id=reservation_id,
        warehouse_code=warehouse.code,
        country_code=warehouse.profile.country_code,
        exporter_credit_code=booking.exporter_credit_code,
        space=booking.space,
        period=booking.period,
        status=ReservationStatus.CONFIRMED,
        reserved_at=now,
    )


def cancel(reservation: Reservation, reason: str, today: date, now: datetime) -> Reservation:
    """Cancel, for a reason validate_reason() accepted, before the first day: once a
    reservation has started its space was used."""
    if reservation.status == ReservationStatus.CANCELLED:
        raise FailedPrecondition(f"reservation {reservation.reservation_id} is already cancelled")
    if reservation.period.start <= today:
        raise FailedPrecondition(
            f"reservation {reservation.reservation_id} started on "
            f"{reservation.period.start.isoformat()}; only one that has not started can be "
            "cancelled"
        )
    return replace(
        reservation,
        status=ReservationStatus.CANCELLED,
        cancelled_at=now,
        cancellation_reason=reason,
    )


@dataclass(frozen=True)
class DayUse:
    day: date
    reserved: Space
    free: Space
    # reserved / capacity per dimension; 0 where the warehouse has none of it.
    pallet_ratio: float
    cubic_metre_ratio: float


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def utilisation(
    capacity: Space, reserved_by_day: Mapping[date, Space], period: Period
) -> list[DayUse]:
    days = []
    for day in period.dates():
        reserved = reserved_by_day.get(day, Space())
        days.append(
            DayUse(
                day=day,
                reserved=reserved,
                free=free_of(capacity, reserved),
                pallet_ratio=_ratio(reserved.pallet_positions, capacity.pallet_positions),
                cubic_metre_ratio=_ratio(reserved.cubic_metres, capacity.cubic_metres),
            )
        )
    return days


# Search.


@dataclass(frozen=True)
class SearchCriteria:
    """A validated search; every part is optional and the parts combine."""

    country_code: str = ""
    serving_country: str = ""
    services: tuple[LogisticsService, ...] = ()
    period: Period | None = None
    min_free: Space = Space()
    near: GeoPoint | None = None
    within_km: float = 0.0
    include_suspended: bool = False


def search_criteria(
    *,
    country_code: str = "",
    serving_country: str = "",
    services: Sequence[int] = (),
    available_from: str = "",
    available_until: str = "",
    min_free: Space = Space(),
    near: GeoPoint | None = None,
    within_km: float = 0.0,
    include_suspended: bool = False,
) -> SearchCriteria:
    check = Validator()
    if country_code.strip():
        country_code = validate_country(country_code, check, "country_code")
    if serving_country.strip():
        serving_country = validate_country(serving_country, check, "serving_country")
    period = None
    if available_from or available_until:
        period = parse_period(
            available_from, available_until, check, "available_from", "available_until"
        )
    check.require(
        min_free.pallet_positions >= 0 and min_free.cubic_metres >= 0,
        "min_free",
        "must not be negative",
    )
    check.require(
        min_free == Space() or bool(available_from or available_until),
        "available_from",
        "is required with min_free: space is free for a period",
    )
    if near is not None:
        validate_point(near, check, "near")
    check.require(math.isfinite(within_km) and within_km >= 0, "within_km", "must not be negative")
    check.require(within_km == 0 or near is not None, "near", "is required with within_km")
    criteria = SearchCriteria(
        country_code=country_code.strip(),
        serving_country=serving_country.strip(),
        services=_services(services, check, "services"),
        period=period,
        min_free=min_free,
        near=near,
        within_km=within_km,
        include_suspended=include_suspended,
    )
    check.raise_if_invalid()
    return criteria


@dataclass(frozen=True)
class Match:
    warehouse: Warehouse
    # Set when the search had a destination.
    distance_km: float | None
    # Set when the search had a period: free on every day of it.
    free: Space | None


def rank(
    candidates: Iterable[Warehouse], criteria: SearchCriteria, peaks: Mapping[str, Space]
) -> list[Match]:
    """Apply the distance and free-space parts of a search and order the matches:
    nearest first when there is a destination, by code otherwise.

    ``candidates`` already satisfy the other parts (country, services, status), which
    the database filters on its indexes; ``peaks`` holds each candidate's highest load
    per dimension over the search period (absent: nothing reserved).
    """
    matches = []
    for warehouse in candidates:
        distance = None
        if criteria.near is not None and warehouse.profile.location is not None:
            distance = great_circle_km(criteria.near, warehouse.profile.location)
            if criteria.within_km and distance > criteria.within_km:
                continue
        free = None
        if criteria.period is not None:
            free = free_of(warehouse.profile.capacity, peaks.get(warehouse.code, Space()))
            if not criteria.min_free.within(free):
                continue
        matches.append(Match(warehouse, distance, free))
    matches.sort(key=lambda match: (match.distance_km or 0.0, match.warehouse.code))
    return matches
