"""The warehouse context's figures: active overseas warehouses by country, their capacity
and the pallets reserved in them on a day; reservations by status and country."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date
from typing import Any, Self

from bureau.projections.base import Handler, Projection, Route, route
from chuhai.warehouse.v1 import events_pb2 as warehouse_events

# The country of a reservation whose event named none.
UNKNOWN_COUNTRY = "unknown"


@dataclass(frozen=True)
class WarehouseFigures:
    """One country's active warehouses on one day."""

    country: str
    warehouses: int
    capacity_pallets: int
    reserved_pallets: int
    utilisation: float


@dataclass(frozen=True)
class ReservationCounts:
    """One warehouse country's reservations by status."""

    country: str
    confirmed: int
    cancelled: int


@dataclass(frozen=True)
class ReservationFigures:
    """Reservations by status ("confirmed", "cancelled"), and the same per country of the
    warehouse when the capacity was reserved (as the reservation records it), sorted by
    country."""

    by_status: dict[str, int]
    by_country: list[ReservationCounts]


@dataclass(slots=True)
class _Warehouse:
    country: str
    capacity_pallets: int
    active: bool
    # occurred_at of the last event applied to it; see WarehouseProjection.
    version_us: int


@dataclass(slots=True)
class _Reservation:
    warehouse_code: str
    # Of the warehouse when reserved, as its events carry it (UNKNOWN_COUNTRY without).
    country: str
    pallets: int
    # Proleptic Gregorian ordinals of [start_date, end_date).
    start_day: int
    end_day: int
    cancelled: bool


@dataclass(slots=True)
class _CountryLoad:
    warehouses: int = 0
    capacity_pallets: int = 0
    reserved_pallets: int = 0


class WarehouseProjection(Projection):
    """Each warehouse's country, capacity and status, and each reservation.

    Registered and Updated carry a warehouse's country and capacity, Suspended and
    Reactivated flip its status. One warehouse's registry events are in order on one
    partition, so an event older than the last one applied to its warehouse can only be
    an old event recorded again (under a new id): it is ignored, or it would undo what
    came after it. A reservation stays cancelled once cancelled.
    """

    name = "warehouse"

    def __init__(self) -> None:
        self._warehouses: dict[str, _Warehouse] = {}
        self._reservations: dict[str, _Reservation] = {}

    def routes(self) -> list[Route]:
        return [
            route(warehouse_events.WarehouseRegistered, self._on_registered, versions=[2]),
            route(warehouse_events.WarehouseUpdated, self._on_updated, versions=[2]),
            route(warehouse_events.WarehouseSuspended, self._setting_active(False), versions=[2]),
            route(warehouse_events.WarehouseReactivated, self._setting_active(True), versions=[2]),
            route(warehouse_events.CapacityReserved, self._on_capacity_reserved, versions=[1]),
            route(
                warehouse_events.ReservationCancelled, self._on_reservation_cancelled, versions=[1]
            ),
        ]

    # Applying events ----------------------------------------------------------------------

    def _is_stale(self, code: str, occurred_us: int) -> bool:
        current = self._warehouses.get(code)
        return current is not None and current.version_us > occurred_us

    def _on_registered(self, event: warehouse_events.WarehouseRegistered, occurred_us: int) -> None:
        if self._is_stale(event.code, occurred_us):
            return
        # A warehouse enters the registry active.
        self._warehouses[event.code] = _Warehouse(
            country=event.country_code.upper(),
            capacity_pallets=event.capacity_pallet_positions,
            active=True,
            version_us=occurred_us,
        )

    def _on_updated(self, event: warehouse_events.WarehouseUpdated, occurred_us: int) -> None:
        if self._is_stale(event.code, occurred_us):
            return
        current = self._warehouses.get(event.code)
        self._warehouses[event.code] = _Warehouse(
            country=event.country_code.upper(),
            capacity_pallets=event.capacity_pallet_positions,
            # An update leaves the status as it is; without a registration seen, the
            # warehouse is as registered: active.
            active=True if current is None else current.active,
            version_us=occurred_us,
        )

    def _setting_active(self, active: bool) -> Handler:
        """A handler for WarehouseSuspended (False) or WarehouseReactivated (True)."""

        def handle(
            event: warehouse_events.WarehouseSuspended | warehouse_events.WarehouseReactivated,
            occurred_us: int,
        ) -> None:
            if self._is_stale(event.code, occurred_us):
                return
            current = self._warehouses.get(event.code)
            if current is None:
                # Only when its registration was never applied (say, skipped as an
                # unreadable version): keep what this event tells, capacity unknown.
                current = _Warehouse(event.country_code.upper(), 0, active, occurred_us)
                self._warehouses[event.code] = current
            current.active = active
            current.version_us = occurred_us

        return handle

    def _on_capacity_reserved(self, event: warehouse_events.CapacityReserved, _: int) -> None:
        # A cancellation seen first (or a copy of this event) already made the record.
        if event.reservation_id not in self._reservations:
            self._reservations[event.reservation_id] = _reservation_from(event, cancelled=False)

    def _on_reservation_cancelled(
        self, event: warehouse_events.ReservationCancelled, _: int
    ) -> None:
        self._reservations[event.reservation_id] = _reservation_from(event, cancelled=True)

    # Figures ------------------------------------------------------------------------------

    def reservations(self) -> ReservationFigures:
        """Every reservation once, confirmed or cancelled. A scan of the records the
        pallet figures keep anyway: a cancellation replaces its reservation's record
        whichever came first, so the status needs no state of its own."""
        confirmed: Counter[str] = Counter()
        cancelled: Counter[str] = Counter()
        for reservation in self._reservations.values():
            (cancelled if reservation.cancelled else confirmed)[reservation.country] += 1
        by_country = [
            ReservationCounts(country, confirmed[country], cancelled[country])
            for country in sorted(confirmed.keys() | cancelled.keys())
        ]
        return ReservationFigures(
            by_status={
                "confirmed": sum(c.confirmed for c in by_country),
                "cancelled": sum(c.cancelled for c in by_country),
            },
            by_country=by_country,
        )

    def warehouses(self, day: date) -> list[WarehouseFigures]:
        """Active warehouses by country on `day`, sorted by country.

        A suspended warehouse leaves its country's capacity, and so do its reservations:
        they stand, but counting them against capacity that no longer counts would push
        utilisation past what is really in use. Reservations follow their warehouse's
        current country, like its capacity does.
        """
        loads: dict[str, _CountryLoad] = {}
        for warehouse in self._warehouses.values():
            if warehouse.active:
                load = loads.setdefault(warehouse.country, _CountryLoad())
                load.warehouses += 1
                load.capacity_pallets += warehouse.capacity_pallets
        day_number = day.toordinal()
        for reservation in self._reservations.values():
            if reservation.cancelled or not (
                reservation.start_day <= day_number < reservation.end_day
            ):
                continue
            warehouse = self._warehouses.get(reservation.warehouse_code)
            if warehouse is not None and warehouse.active:
                loads[warehouse.country].reserved_pallets += reservation.pallets
        return [
            WarehouseFigures(
                country=country,
                warehouses=load.warehouses,
                capacity_pallets=load.capacity_pallets,
                reserved_pallets=load.reserved_pallets,
                utilisation=(
                    load.reserved_pallets / load.capacity_pallets if load.capacity_pallets else 0.0
                ),
            )
            for country, load in sorted(loads.items())
        ]

    # Persistence --------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "warehouses": [
                {
                    "code": code,
                    "country": record.country,
                    "capacity_pallets": record.capacity_pallets,
                    "active": record.active,
                    "version_us": record.version_us,
                }
                for code, record in self._warehouses.items()
            ],
            "reservations": [
                {
                    "reservation_id": reservation_id,
                    "warehouse_code": record.warehouse_code,
                    "country": record.country,
                    "pallets": record.pallets,
                    "start_date": date.fromordinal(record.start_day).isoformat(),
                    "end_date": date.fromordinal(record.end_day).isoformat(),
                    "cancelled": record.cancelled,
                }
                for reservation_id, record in self._reservations.items()
            ],
        }

    @classmethod
    def restore(cls, snapshot: dict[str, Any]) -> Self:
        restored = cls()
        restored._warehouses = {
            warehouse["code"]: _Warehouse(
                country=warehouse["country"],
                capacity_pallets=warehouse["capacity_pallets"],
                active=warehouse["active"],
                version_us=warehouse["version_us"],
            )
            for warehouse in snapshot["warehouses"]
        }
        restored._reservations = {
            reservation["reservation_id"]: _Reservation(
                warehouse_code=reservation["warehouse_code"],
                country=reservation["country"],
                pallets=reservation["pallets"],
                start_day=date.fromisoformat(reservation["start_date"]).toordinal(),
                end_day=date.fromisoformat(reservation["end_date"]).toordinal(),
                cancelled=reservation["cancelled"],
            )
            for reservation in snapshot["reservations"]
        }
        return restored


def _reservation_from(
    event: warehouse_events.CapacityReserved | warehouse_events.ReservationCancelled,
    *,
    cancelled: bool,
) -> _Reservation:
    return _Reservation(
        warehouse_code=event.warehouse_code,
        country=event.country_code.upper() or UNKNOWN_COUNTRY,
        pallets=event.pallet_positions,
        start_day=date.fromisoformat(event.start_date).toordinal(),
        end_day=date.fromisoformat(event.end_date).toordinal(),
        cancelled=cancelled,
    )
