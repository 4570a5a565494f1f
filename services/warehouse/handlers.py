"""The warehouse service's use cases: load through the repository, let the domain
decide, save, and record the domain's events. Each mutating use case runs in one unit
of work (one transaction with its events); the queries read the repository directly.

No pymongo and no protobuf here: unit tests run these over an in-memory repository."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runtime.adapters.pagination import PageRequest, keyset_slice
from runtime.adapters.unit_of_work import UnitOfWork
from runtime.kernel.errors import AlreadyExists, NotFound
from warehouse.domain import (
    Booking,
    Cancellation,
    Match,
    Period,
    ProfileUpdate,
    Registration,
    Reservation,
    ReservationFilter,
    SearchCriteria,
    Space,
    Suspension,
    Utilisation,
    Warehouse,
    rank,
)

if TYPE_CHECKING:
    from warehouse.storage import WarehouseStore


@dataclass(frozen=True)
class SearchPage:
    matches: list[Match]
    # Empty on the last page.
    next_page_token: str
    # Matches over all pages.
    total_size: int


@dataclass(frozen=True)
class ReservationPage:
    reservations: list[Reservation]
    next_page_token: str


async def _warehouse(store: WarehouseStore, code: str) -> Warehouse:
    warehouse = await store.warehouse(code)
    if warehouse is None:
        raise NotFound(f"no warehouse with code {code!r}")
    return warehouse


async def _reservation(store: WarehouseStore, reservation_id: str) -> Reservation:
    reservation = await store.reservation(reservation_id)
    if reservation is None:
        raise NotFound(f"no reservation with id {reservation_id!r}")
    return reservation


# The registry.


async def register_warehouse(uow: UnitOfWork[WarehouseStore], command: Registration) -> Warehouse:
    warehouse, events = Warehouse.register(command, uow.now)
    if not await uow.store.add_warehouse(warehouse):
        raise AlreadyExists(f"warehouse {warehouse.code} is already registered")
    uow.record(*events)
    return warehouse


async def update_warehouse(uow: UnitOfWork[WarehouseStore], command: ProfileUpdate) -> Warehouse:
    store = uow.store
    current = await _warehouse(store, command.code)
    change = current.update(command, uow.now)
    if "capacity" in change.changed_fields:
        today = uow.now.date()
        ahead = await store.reserved_by_day(command.code, start=today)
        change.warehouse.require_capacity_covers(ahead, today)
    if change.changed_fields:
        await store.save_warehouse(change.warehouse)
    uow.record(*change.events)
    return change.warehouse


async def suspend_warehouse(uow: UnitOfWork[WarehouseStore], command: Suspension) -> Warehouse:
    current = await _warehouse(uow.store, command.code)
    suspended, events = current.suspend(command.reason, uow.now)
    await uow.store.save_warehouse(suspended)
    uow.record(*events)
    return suspended


async def reactivate_warehouse(uow: UnitOfWork[WarehouseStore], code: str) -> Warehouse:
    current = await _warehouse(uow.store, code)
    active, events = current.reactivate(uow.now)
    await uow.store.save_warehouse(active)
    uow.record(*events)
    return active


async def get_warehouse(store: WarehouseStore, code: str) -> Warehouse:
    return await _warehouse(store, code)


async def search_warehouses(
    store: WarehouseStore, criteria: SearchCriteria, page: PageRequest
) -> SearchPage:
    """The database filters on its indexes; the domain measures distances and free
    space and ranks; the page is a slice of that computed order."""
    candidates = await store.find_candidates(criteria)
    peaks: dict[str, Space] = {}
    if criteria.period is not None:
        codes = [warehouse.code for warehouse in candidates]
        peaks = await store.peak_loads(codes, criteria.period)
    matches = rank(candidates, criteria, peaks)
    shown, token = keyset_slice(matches, lambda match: match.rank_key, page)
    return SearchPage(shown, token, len(matches))


# Bookings.


async def reserve_capacity(uow: UnitOfWork[WarehouseStore], command: Booking) -> Reservation:
    """Hold the space on every day of the period, or refuse and change nothing."""
    command.require_start_not_past(uow.now.date())
    store = uow.store
    warehouse = await _warehouse(store, command.warehouse_code)
    reserved = await store.reserved_by_day(
        warehouse.code, start=command.period.start, end=command.period.end
    )
    reservation, events = warehouse.reserve(str(uuid.uuid4()), command, reserved, uow.now)
    await store.add_load(warehouse, command.period, command.space, counted_days=reserved.keys())
    await store.insert_reservation(reservation)
    uow.record(*events)
    return reservation


async def cancel_reservation(uow: UnitOfWork[WarehouseStore], command: Cancellation) -> Reservation:
    """Cancel and free every day the reservation held."""
    store = uow.store
    current = await _reservation(store, command.reservation_id)
    cancelled, events = current.cancel(command.reason, uow.now)
    await store.remove_load(cancelled)
    await store.save_cancellation(cancelled)
    uow.record(*events)
    return cancelled


async def get_reservation(store: WarehouseStore, reservation_id: str) -> Reservation:
    return await _reservation(store, reservation_id)


async def list_reservations(
    store: WarehouseStore, which: ReservationFilter, page: PageRequest
) -> ReservationPage:
    reservations, token = await store.list_reservations(which, page)
    return ReservationPage(reservations, token)


async def utilisation(store: WarehouseStore, code: str, days: Period) -> Utilisation:
    warehouse = await _warehouse(store, code)
    reserved = await store.reserved_by_day(code, start=days.start, end=days.end)
    return warehouse.utilisation(reserved, days)
