"""The warehouse domain: the registry's rules and life cycle, booking periods, the
availability arithmetic and search ranking. Pure Python: no gRPC, MongoDB or Kafka.

Commands are built from raw values with the kernel Validator, which collects every
wrong field of a request before one INVALID_ARGUMENT names them all. The aggregates,
Warehouse and Reservation, are immutable: an operation returns the new state and the
past-tense events it caused; a refused change raises FailedPrecondition with a message
meant for the caller."""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import date, datetime, timedelta

from runtime.kernel.errors import FailedPrecondition, FieldViolation, InvalidArgument
from runtime.kernel.identity import Principal, Role
from runtime.kernel.validation import Validator
from warehouse.geo import GeoPoint, great_circle_km, validate_point

CODE_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,30}[A-Z0-9]$")
CODE_RULE = "must be 3 to 32 capital letters, digits and inner '-'"
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


# Values.


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
class Period:
    """The days [start, end): the end date is the first day not included."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def dates(self) -> list[date]:
        return [self.start + timedelta(days=offset) for offset in range(self.days)]


@dataclass(frozen=True)
class Operator:
    # An OperatorKind once validated; a request's draft may hold any number.
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


# Events: the facts the registry and the bookings announce, in the past tense.


@dataclass(frozen=True)
class WarehouseRegistered:
    code: str
    name: str
    country_code: str
    city: str
    capacity: Space
    services: tuple[LogisticsService, ...]
    publicly_recognised: bool
    operator_id: str


@dataclass(frozen=True)
class WarehouseUpdated:
    """The facts after the change, and the country and capacity before it."""

    code: str
    name: str
    country_code: str
    city: str
    capacity: Space
    services: tuple[LogisticsService, ...]
    publicly_recognised: bool
    changed_fields: tuple[str, ...]
    previous_country_code: str
    previous_capacity: Space


@dataclass(frozen=True)
class WarehouseSuspended:
    code: str
    country_code: str
    reason: str


@dataclass(frozen=True)
class WarehouseReactivated:
    code: str
    country_code: str


@dataclass(frozen=True)
class CapacityReserved:
    reservation_id: str
    warehouse_code: str
    country_code: str
    exporter_credit_code: str
    space: Space
    period: Period
    # The warehouse's operator; empty for a warehouse stored without one.
    operator_id: str
    # See peak_utilisation_percent().
    peak_utilisation_percent: int


@dataclass(frozen=True)
class ReservationCancelled:
    reservation_id: str
    warehouse_code: str
    country_code: str
    exporter_credit_code: str
    space: Space
    period: Period
    reason: str
    # The warehouse's operator; empty for a warehouse stored without one.
    operator_id: str


# Field validation. Each function records what is wrong in a Validator and returns the
# normalised value (or a placeholder the caller never uses, since it raises first), so
# a request learns about all its wrong fields at once.


def warehouse_code(value: str, check: Validator, field: str = "code") -> str:
    return check.identifier(value.upper(), field, pattern=CODE_PATTERN, rule=CODE_RULE)


def period(
    start_text: str, end_text: str, check: Validator, start_field: str, end_field: str
) -> Period | None:
    start = check.date(start_text, start_field)
    end = check.date(end_text, end_field)
    if start is None or end is None:
        return None
    if end <= start:
        check.require(False, end_field, "must be after the start date (it is exclusive)")
        return None
    if (end - start).days > MAX_PERIOD_DAYS:
        check.require(False, end_field, f"a period spans at most {MAX_PERIOD_DAYS} days")
        return None
    return Period(start, end)


def reason(value: str, check: Validator, *, required: bool) -> str:
    return check.text(value, "reason", required=required, max_length=REASON_MAX_LENGTH)


def reservation_id(value: str, check: Validator) -> str:
    return check.text(value, "reservation_id", max_length=RESERVATION_ID_MAX_LENGTH)


def _services(values: Sequence[int], check: Validator, field: str) -> tuple[LogisticsService, ...]:
    known = {
        check.member(value, LogisticsService, f"{field}[{index}]")
        for index, value in enumerate(values)
    }
    return tuple(sorted(service for service in known if service is not None))


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
    kind = check.member(operator.kind, OperatorKind, f"{field}.kind")
    name = check.text(operator.name, f"{field}.name", max_length=NAME_MAX_LENGTH)
    credit_code = ""
    # An exporter is known by its credit code; a foreign service firm has none.
    if kind == OperatorKind.EXPORTER or operator.credit_code.strip():
        credit_code = check.credit_code(operator.credit_code, f"{field}.credit_code")
    return Operator(operator.kind if kind is None else kind, name, credit_code)


def _recognition(
    recognition: PublicRecognition | None, today: date, check: Validator, field: str
) -> PublicRecognition | None:
    if recognition is None:
        return None
    by = check.text(recognition.recognised_by, f"{field}.recognised_by", max_length=NAME_MAX_LENGTH)
    since = check.date(recognition.since, f"{field}.since")
    if since is not None:
        check.require(since <= today, f"{field}.since", "must not be in the future")
    return PublicRecognition(by, recognition.since)


def validate_profile(
    draft: WarehouseProfile, today: date, check: Validator, prefix: str = "profile"
) -> WarehouseProfile:
    """Normalise an operator's description, recording every problem in ``check``."""
    country = check.country(draft.country_code, f"{prefix}.country_code")
    check.require(
        math.isfinite(draft.area_m2) and 0 < draft.area_m2 <= MAX_AREA_M2,
        f"{prefix}.area_m2",
        f"must be above 0 and at most {MAX_AREA_M2:.0f}",
    )
    _space_bounds(draft.capacity, check, f"{prefix}.capacity")
    check.require(bool(draft.services), f"{prefix}.services", "name at least one service")
    delivery = {
        check.country(code, f"{prefix}.delivery_countries[{index}]")
        for index, code in enumerate(draft.delivery_countries)
    }
    return WarehouseProfile(
        name=check.text(draft.name, f"{prefix}.name", max_length=NAME_MAX_LENGTH),
        operator=_operator(draft.operator, check, f"{prefix}.operator"),
        country_code=country,
        city=check.text(draft.city, f"{prefix}.city", max_length=CITY_MAX_LENGTH),
        address=check.text(draft.address, f"{prefix}.address", max_length=ADDRESS_MAX_LENGTH),
        location=validate_point(draft.location, check, f"{prefix}.location"),
        area_m2=draft.area_m2,
        capacity=draft.capacity,
        services=_services(draft.services, check, f"{prefix}.services"),
        recognition=_recognition(draft.recognition, today, check, f"{prefix}.recognition"),
        # A warehouse always serves its own country; listing it again changes nothing.
        delivery_countries=tuple(sorted(delivery - {country})),
    )


# Commands: what a request asks for, built by the functions below from raw values.


@dataclass(frozen=True)
class Registration:
    code: str
    profile: WarehouseProfile


def registration(code: str, draft: WarehouseProfile, today: date, check: Validator) -> Registration:
    """A registration is validated in full up front: its profile is all there is."""
    return Registration(warehouse_code(code, check), validate_profile(draft, today, check))


@dataclass(frozen=True)
class ProfileUpdate:
    """Take the fields named in ``paths`` (every field when empty) from ``draft``. The
    draft is validated once merged with the stored profile (Warehouse.update)."""

    code: str
    draft: WarehouseProfile
    paths: tuple[str, ...]


@dataclass(frozen=True)
class Suspension:
    code: str
    reason: str


def suspension(code: str, why: str, check: Validator) -> Suspension:
    return Suspension(warehouse_code(code, check), reason(why, check, required=True))


@dataclass(frozen=True)
class Booking:
    """A request to hold space on every day of a period, for the exporter calling."""

    warehouse_code: str
    space: Space
    period: Period

    def require_start_not_past(self, today: date) -> None:
        """Apart from the other checks because it must run after the idempotency lookup:
        a retry arriving after midnight gets its first answer back, not a refusal."""
        if self.period.start < today:
            raise InvalidArgument(
                FieldViolation(
                    "start_date", f"must not be in the past (today is {today.isoformat()})"
                )
            )


def booking(code: str, space: Space, start_date: str, end_date: str, check: Validator) -> Booking:
    """Everything about a booking request that does not depend on the day it arrives
    or on who asks; see Booking.require_start_not_past() and Warehouse.reserve()."""
    code = warehouse_code(code, check, "warehouse_code")
    _space_bounds(space, check, "space")
    held = period(start_date, end_date, check, "start_date", "end_date")
    # The placeholder period stands only beside a violation: the caller raises then.
    return Booking(code, space, held or Period(date.min, date.min))


@dataclass(frozen=True)
class Cancellation:
    reservation_id: str
    reason: str


def cancellation(reservation: str, why: str, check: Validator) -> Cancellation:
    return Cancellation(reservation_id(reservation, check), reason(why, check, required=False))


@dataclass(frozen=True)
class ReservationFilter:
    """Which reservations to list: of a warehouse, of an exporter, or both."""

    warehouse_code: str
    exporter_credit_code: str
    status: ReservationStatus | None
    # When not empty: only reservations of these warehouses (an operator's own).
    among_warehouses: tuple[str, ...] = ()


def reservation_filter(
    code: str, exporter_credit_code: str, status: int, check: Validator
) -> ReservationFilter:
    """What a request asks for; visible_reservations() narrows it to what its caller
    may see."""
    return ReservationFilter(
        code.strip().upper(),
        exporter_credit_code.strip().upper(),
        check.member(status, ReservationStatus, "status", required=False),
    )


def visible_reservations(
    which: ReservationFilter, viewer: Principal, operated: Collection[str]
) -> ReservationFilter | None:
    """The part of ``which`` that ``viewer`` may see, given the codes of the
    warehouses it operates; None when that is nothing. An exporter sees its own
    reservations whatever exporter it names, an operator those of its warehouses."""
    if viewer.is_officer:
        # Listing every reservation of every warehouse is the bureau's job, from the
        # events.
        if not (which.warehouse_code or which.exporter_credit_code):
            raise InvalidArgument(
                FieldViolation("warehouse_code", "name a warehouse or an exporter_credit_code")
            )
        return which
    if viewer.role is Role.EXPORTER and viewer.party:
        return replace(which, exporter_credit_code=viewer.party)
    if viewer.role is Role.OPERATOR and viewer.party and operated:
        if which.warehouse_code:
            return which if which.warehouse_code in operated else None
        return replace(which, among_warehouses=tuple(sorted(operated)))
    return None


# The registry.


@dataclass(frozen=True)
class ProfileChange:
    warehouse: Warehouse
    previous: WarehouseProfile
    # Profile fields whose value changed; empty when the update changed nothing.
    changed_fields: tuple[str, ...]

    @property
    def events(self) -> tuple[WarehouseUpdated, ...]:
        """An update that changed nothing announces nothing."""
        if not self.changed_fields:
            return ()
        profile = self.warehouse.profile
        return (
            WarehouseUpdated(
                code=self.warehouse.code,
                name=profile.name,
                country_code=profile.country_code,
                city=profile.city,
                capacity=profile.capacity,
                services=_known_services(profile),
                publicly_recognised=profile.recognition is not None,
                changed_fields=self.changed_fields,
                previous_country_code=self.previous.country_code,
                previous_capacity=self.previous.capacity,
            ),
        )


def _known_services(profile: WarehouseProfile) -> tuple[LogisticsService, ...]:
    return tuple(LogisticsService(service) for service in profile.services)


@dataclass(frozen=True)
class Warehouse:
    code: str
    profile: WarehouseProfile
    status: WarehouseStatus
    suspension_reason: str
    registered_at: datetime
    updated_at: datetime
    # The operator id that registered it; empty for a warehouse stored before
    # operators were identified, which no operator may change: officers can still
    # suspend and reactivate it (and read its utilisation) until it is handed over.
    operator_id: str = ""

    @classmethod
    def register(
        cls, command: Registration, operator_id: str, now: datetime
    ) -> tuple[Warehouse, tuple[WarehouseRegistered]]:
        """A new warehouse, operated by ``operator_id``, takes bookings at once."""
        warehouse = cls(
            command.code, command.profile, WarehouseStatus.ACTIVE, "", now, now, operator_id
        )
        profile = command.profile
        registered = WarehouseRegistered(
            code=command.code,
            name=profile.name,
            country_code=profile.country_code,
            city=profile.city,
            capacity=profile.capacity,
            services=_known_services(profile),
            publicly_recognised=profile.recognition is not None,
            operator_id=operator_id,
        )
        return warehouse, (registered,)

    def operated_by(self, principal: Principal) -> bool:
        """Whether ``principal`` is this warehouse's operator."""
        return principal.acts_for(Role.OPERATOR, self.operator_id)

    def supervised_by(self, principal: Principal) -> bool:
        """Whether ``principal`` may suspend, reactivate and watch this warehouse: its
        operator, or an officer supervising the registry."""
        return self.operated_by(principal) or principal.is_officer

    def update(self, command: ProfileUpdate, now: datetime) -> ProfileChange:
        """Merge the masked fields of the draft into the profile and validate the result,
        naming every wrong field. See require_capacity_covers() for a new capacity."""
        check = Validator()
        unknown = sorted(set(command.paths) - set(PROFILE_FIELDS))
        check.require(
            not unknown,
            "update_mask",
            f"unknown paths {', '.join(unknown)}; known: {', '.join(PROFILE_FIELDS)}",
        )
        paths = (
            [path for path in command.paths if path in PROFILE_FIELDS]
            if command.paths
            else PROFILE_FIELDS
        )
        merged = replace(self.profile, **{path: getattr(command.draft, path) for path in paths})
        profile = validate_profile(merged, now.date(), check)
        check.raise_if_invalid()
        before = self.profile
        changed = tuple(f for f in PROFILE_FIELDS if getattr(profile, f) != getattr(before, f))
        updated = replace(self, profile=profile, updated_at=now) if changed else self
        return ProfileChange(updated, before, changed)

    def require_capacity_covers(self, reserved_by_day: Mapping[date, Space], today: date) -> None:
        """Refuse a capacity below what a day from ``today`` on already holds: those
        bookings were confirmed and stand. Days before today are history and bound
        nothing."""
        capacity = self.profile.capacity
        for day in sorted(d for d in reserved_by_day if d >= today):
            reserved = reserved_by_day[day]
            if not reserved.within(capacity):
                raise FailedPrecondition(
                    f"warehouse {self.code}: the new capacity of {capacity.describe()} is "
                    f"below the {reserved.describe()} already reserved on {day.isoformat()}",
                    reason="CAPACITY_BELOW_RESERVED",
                )

    def suspend(self, why: str, now: datetime) -> tuple[Warehouse, tuple[WarehouseSuspended]]:
        """Suspend for a reason the Validator accepted; existing reservations stand."""
        if self.status == WarehouseStatus.SUSPENDED:
            raise FailedPrecondition(
                f"warehouse {self.code} is already suspended",
                reason="WAREHOUSE_ALREADY_SUSPENDED",
            )
        suspended = replace(
            self, status=WarehouseStatus.SUSPENDED, suspension_reason=why, updated_at=now
        )
        return suspended, (WarehouseSuspended(self.code, self.profile.country_code, why),)

    def reactivate(self, now: datetime) -> tuple[Warehouse, tuple[WarehouseReactivated]]:
        if self.status == WarehouseStatus.ACTIVE:
            raise FailedPrecondition(
                f"warehouse {self.code} is active, not suspended",
                reason="WAREHOUSE_NOT_SUSPENDED",
            )
        active = replace(self, status=WarehouseStatus.ACTIVE, suspension_reason="", updated_at=now)
        return active, (WarehouseReactivated(self.code, self.profile.country_code),)

    def require_bookable(self) -> None:
        if self.status == WarehouseStatus.SUSPENDED:
            raise FailedPrecondition(
                f"warehouse {self.code} is suspended ({self.suspension_reason}) "
                "and takes no bookings",
                reason="WAREHOUSE_SUSPENDED",
            )

    def reserve(
        self,
        reservation_id: str,
        request: Booking,
        exporter_credit_code: str,
        reserved_by_day: Mapping[date, Space],
        now: datetime,
    ) -> tuple[Reservation, tuple[CapacityReserved]]:
        """The exporter's reservation, when the warehouse takes bookings and has the
        space on every day of the period given what ``reserved_by_day`` says those days
        hold."""
        self.require_bookable()
        shortfall = first_shortfall(
            self.profile.capacity, reserved_by_day, request.period, request.space
        )
        if shortfall is not None:
            raise FailedPrecondition(
                f"not enough space in warehouse {self.code} {shortfall.describe()}",
                reason="INSUFFICIENT_CAPACITY",
            )
        reservation = Reservation(
            reservation_id=reservation_id,
            warehouse_code=self.code,
            country_code=self.profile.country_code,
            exporter_credit_code=exporter_credit_code,
            space=request.space,
            period=request.period,
            status=ReservationStatus.CONFIRMED,
            reserved_at=now,
        )
        reserved = CapacityReserved(
            reservation_id=reservation_id,
            warehouse_code=self.code,
            country_code=reservation.country_code,
            exporter_credit_code=reservation.exporter_credit_code,
            space=reservation.space,
            period=reservation.period,
            operator_id=self.operator_id,
            peak_utilisation_percent=peak_utilisation_percent(
                self.profile.capacity, reserved_by_day, request.period, request.space
            ),
        )
        return reservation, (reserved,)

    def utilisation(self, reserved_by_day: Mapping[date, Space], days: Period) -> Utilisation:
        capacity = self.profile.capacity
        uses = []
        for day in days.dates():
            reserved = reserved_by_day.get(day, Space())
            uses.append(
                DayUse(
                    day=day,
                    reserved=reserved,
                    free=free_of(capacity, reserved),
                    pallet_ratio=_ratio(reserved.pallet_positions, capacity.pallet_positions),
                    cubic_metre_ratio=_ratio(reserved.cubic_metres, capacity.cubic_metres),
                )
            )
        return Utilisation(self.code, capacity, tuple(uses))


# Bookings.


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


def peak_utilisation_percent(
    capacity: Space, reserved_by_day: Mapping[date, Space], days: Period, added: Space
) -> int:
    """The highest share of ``capacity`` a day of ``days`` holds once ``added`` is on top
    of what ``reserved_by_day`` says it holds, in pallet positions or cubic metres,
    whichever is higher, in percent rounded down. Integer arithmetic, so that a day
    exactly at a threshold is at it; a dimension the warehouse does not sell (capacity
    0) counts for nothing."""
    peak = 0
    for day in days.dates():
        load = reserved_by_day.get(day, Space()) + added
        for part, whole in (
            (load.pallet_positions, capacity.pallet_positions),
            (load.cubic_metres, capacity.cubic_metres),
        ):
            if whole > 0:
                peak = max(peak, part * 100 // whole)
    return peak


def first_shortfall(
    capacity: Space, reserved_by_day: Mapping[date, Space], days: Period, requested: Space
) -> Shortfall | None:
    """The first day of ``days`` where ``requested`` on top of what is reserved would
    exceed ``capacity``; None when it fits every day. A day absent holds nothing."""
    for day in days.dates():
        reserved = reserved_by_day.get(day, Space())
        if not (reserved + requested).within(capacity):
            return Shortfall(day, free_of(capacity, reserved), requested)
    return None


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

    def held_by(self, principal: Principal) -> bool:
        """Whether ``principal`` is the exporter holding this reservation."""
        return principal.acts_for(Role.EXPORTER, self.exporter_credit_code)

    def cancel(
        self, why: str, warehouse: Warehouse, now: datetime
    ) -> tuple[Reservation, tuple[ReservationCancelled]]:
        """Cancel, for a reason the Validator accepted, before the first day: once a
        reservation has started its space was used. ``warehouse`` is the one it is in:
        the event names its operator."""
        if self.status == ReservationStatus.CANCELLED:
            raise FailedPrecondition(
                f"reservation {self.reservation_id} is already cancelled",
                reason="RESERVATION_CANCELLED",
            )
        if self.period.start <= now.date():
            raise FailedPrecondition(
                f"reservation {self.reservation_id} started on "
                f"{self.period.start.isoformat()}; only one that has not started can be "
                "cancelled",
                reason="RESERVATION_STARTED",
            )
        cancelled = replace(
            self, status=ReservationStatus.CANCELLED, cancelled_at=now, cancellation_reason=why
        )
        event = ReservationCancelled(
            reservation_id=self.reservation_id,
            warehouse_code=self.warehouse_code,
            country_code=self.country_code,
            exporter_credit_code=self.exporter_credit_code,
            space=self.space,
            period=self.period,
            reason=why,
            operator_id=warehouse.operator_id,
        )
        return cancelled, (event,)


@dataclass(frozen=True)
class DayUse:
    day: date
    reserved: Space
    free: Space
    # reserved / capacity per dimension; 0 where the warehouse has none of it.
    pallet_ratio: float
    cubic_metre_ratio: float


@dataclass(frozen=True)
class Utilisation:
    warehouse_code: str
    capacity: Space
    # One per day of the period, in date order.
    days: tuple[DayUse, ...]


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


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
    check: Validator,
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
    available = None
    if available_from or available_until:
        available = period(
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
    return SearchCriteria(
        country_code=check.country(country_code, "country_code", required=False),
        serving_country=check.country(serving_country, "serving_country", required=False),
        services=_services(services, check, "services"),
        period=available,
        min_free=min_free,
        near=near,
        within_km=within_km,
        include_suspended=include_suspended,
    )


@dataclass(frozen=True)
class Match:
    warehouse: Warehouse
    # Set when the search had a destination.
    distance_km: float | None
    # Set when the search had a period: free on every day of it.
    free: Space | None

    @property
    def rank_key(self) -> tuple[float, str]:
        """The order of rank(): nearest first, then by code (unique)."""
        return (self.distance_km or 0.0, self.warehouse.code)


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
    matches.sort(key=lambda match: match.rank_key)
    return matches
