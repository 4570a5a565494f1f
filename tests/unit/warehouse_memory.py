"""An in-memory warehouse.storage.WarehouseStore: the same methods over dicts, for unit
tests of the use cases (tests/unit/test_warehouse_handlers.py) without MongoDB."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime

from runtime.adapters.pagination import PageRequest, keyset_slice
from warehouse.domain import (
    Period,
    Reservation,
    ReservationFilter,
    SearchCriteria,
    Space,
    Warehouse,
    WarehouseStatus,
)
from warehouse.storage import LoadGuardTripped


class MemoryWarehouseStore:
    def __init__(self) -> None:
        self.warehouses: dict[str, Warehouse] = {}
        self.reservations: dict[str, Reservation] = {}
        # What each (warehouse code, day) holds; a day never booked has no entry.
        self.day_loads: dict[tuple[str, date], Space] = {}

    # Warehouses.

    async def add_warehouse(self, warehouse: Warehouse) -> bool:
        if warehouse.code in self.warehouses:
            return False
        self.warehouses[warehouse.code] = warehouse
        return True

    async def save_warehouse(self, warehouse: Warehouse) -> None:
        self.warehouses[warehouse.code] = warehouse

    async def warehouse(self, code: str) -> Warehouse | None:
        return self.warehouses.get(code)

    async def warehouses_operated_by(self, operator_id: str) -> list[str]:
        return [code for code, w in self.warehouses.items() if w.operator_id == operator_id]

    async def find_candidates(self, criteria: SearchCriteria) -> list[Warehouse]:
        return [
            warehouse
            for warehouse in self.warehouses.values()
            if (criteria.include_suspended or warehouse.status == WarehouseStatus.ACTIVE)
            and criteria.country_code in ("", warehouse.profile.country_code)
            and (
                not criteria.serving_country
                or criteria.serving_country in warehouse.profile.served_countries
            )
            and set(criteria.services) <= set(warehouse.profile.services)
        ]

    # Day loads.

    async def reserved_by_day(
        self, code: str, *, start: date, end: date | None = None
    ) -> dict[date, Space]:
        return {
            day: space
            for (owner, day), space in self.day_loads.items()
            if owner == code and start <= day and (end is None or day < end)
        }

    async def add_load(
        self,
        warehouse: Warehouse,
        period: Period,
        space: Space,
        counted_days: Collection[date],
    ) -> None:
        for day in period.dates():
            key = (warehouse.code, day)
            if (key in self.day_loads) != (day in counted_days):
                raise AssertionError(f"{day} was counted as {day in counted_days} by the caller")
            load = self.day_loads.get(key, Space()) + space
            # The guard MongoDB's conditional updates keep: never above the capacity.
            if not load.within(warehouse.profile.capacity):
                raise LoadGuardTripped(f"warehouse {warehouse.code} overbooked on {day}")
            self.day_loads[key] = load

    async def remove_load(self, reservation: Reservation) -> None:
        space = reservation.space
        for day in reservation.period.dates():
            key = (reservation.warehouse_code, day)
            load = self.day_loads[key] + Space(-space.pallet_positions, -space.cubic_metres)
            if load.pallet_positions < 0 or load.cubic_metres < 0:
                raise LoadGuardTripped(f"warehouse {reservation.warehouse_code} below 0 on {day}")
            self.day_loads[key] = load

    async def peak_loads(self, codes: Sequence[str], period: Period) -> dict[str, Space]:
        peaks: dict[str, Space] = {}
        for (code, day), load in self.day_loads.items():
            if code in codes and period.start <= day < period.end:
                peak = peaks.get(code, Space())
                peaks[code] = Space(
                    max(peak.pallet_positions, load.pallet_positions),
                    max(peak.cubic_metres, load.cubic_metres),
                )
        return peaks

    # Reservations.

    async def insert_reservation(self, reservation: Reservation) -> None:
        assert reservation.reservation_id not in self.reservations
        self.reservations[reservation.reservation_id] = reservation

    async def save_cancellation(self, reservation: Reservation) -> None:
        self.reservations[reservation.reservation_id] = reservation

    async def reservation(self, reservation_id: str) -> Reservation | None:
        return self.reservations.get(reservation_id)

    async def list_reservations(
        self, which: ReservationFilter, page: PageRequest
    ) -> tuple[list[Reservation], str]:
        chosen = [
            r
            for r in self.reservations.values()
            if which.warehouse_code in ("", r.warehouse_code)
            and (not which.among_warehouses or r.warehouse_code in which.among_warehouses)
            and which.exporter_credit_code in ("", r.exporter_credit_code)
            and which.status in (None, r.status)
        ]

        # Oldest first, as the database sorts.
        def key(reservation: Reservation) -> tuple[datetime, str]:
            return (reservation.reserved_at, reservation.reservation_id)

        return keyset_slice(sorted(chosen, key=key), key, page)
