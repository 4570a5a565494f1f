"""The warehouse service's use cases: load through the repository, let the domain
decide, save, and record the domain's events. Each mutating use case runs in one unit
of work (one transaction with its events) for its actor; the queries read the
repository directly for their viewer. A warehouse or reservation the caller may not
see is NotFound with the same message as a missing one: its existence is not told.

No pymongo and no protobuf here: unit tests run these over an in-memory repository."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runtime.adapters.pagination import PageRequest, keyset_slice
from runtime.adapters.unit_of_work import UnitOfWork
from runtime.kernel.errors import AlreadyExists, NotFound, PermissionDenied
from runtime.kernel.identity import Principal, Role
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
    visible_reservations,
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


def _no_warehouse(code: str) -> NotFound:
    return NotFound(f"no warehouse with code {code!r}")


async def _warehouse(store: WarehouseStore, code: str) -> Warehouse:
    warehouse = await store.warehouse(code)
    if warehouse is None:
        raise _no_warehouse(code)
    return warehouse


async def _operated(store: WarehouseStore, code: str, actor: Principal) -> Warehouse:
    """The warehouse, when ``actor`` operates it."""
    warehouse = await _warehouse(store, code)
    if not warehouse.operated_by(actor):
        raise _no_warehouse(code)
    return warehouse


async def _supervised(store: WarehouseStore, code: str, actor: Principal) -> Warehouse:
    """The warehouse, when ``actor`` operates it or is an officer."""
    warehouse = await _warehouse(store, code)
    if not warehouse.supervised_by(actor):
        raise _no_warehouse(code)
    return warehouse


async def _reservation(
    store: WarehouseStore, reservation_id: str, viewer: Principal, *, officers: bool
) -> Reservation:
    """The reservation, when ``viewer`` is its exporter, its warehouse's operator or
    (with ``officers``) an officer."""
    reservation = await store.reservation(reservation_id)
    if reservation is not None and not (
        reservation.held_by(viewer) or (officers and viewer.is_officer)
    ):
        warehouse = await store.warehouse(reservation.warehouse_code)
        if warehouse is None or not warehouse.operated_by(viewer):
            reservation = None
    if reservation is None:
        raise NotFound(f"no reservation with id {reservation_id!r}")
    return reservation


# The registry.


async def register_warehouse(uow: UnitOfWork[WarehouseStore], command: Registration) -> Warehouse:
    """Register for the operator calling, who operates the warehouse from then on."""
    operator = uow.actor
    if operator.role is not Role.OPERATOR or not operator.party:
        # A warehouse nobody could ever change is no use to anybody.
        raise PermissionDenied("a warehouse is registered by an operator whose token names it")
    warehouse, events = Warehouse.register(command, operator.party, uow.now)
    if not await uow.store.add_warehouse(warehouse):
        raise AlreadyExists(f"warehouse {warehouse.code} is already registered")
    uow.record(*events)
    return warehouse


async def update_warehouse(uow: UnitOfWork[WarehouseStore], command: ProfileUpdate) -> Warehouse:
    store = uow.store
    current = await _operated(store, command.code, uow.actor)
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
    current = await _supervised(uow.store, command.code, uow.actor)
    suspended, events = current.suspend(command.reason, uow.now)
    await uow.store.save_warehouse(suspended)
    uow.record(*events)
    return suspended


async def reactivate_warehouse(uow: UnitOfWork[WarehouseStore], code: str) -> Warehouse:
    current = await _supervised(uow.store, code, uow.actor)
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
    """Hold the space on every day of the period for the exporter calling, or refuse
    and change nothing."""
    exporter = uow.actor
    if exporter.role is not Role.EXPORTER or not exporter.party:
        raise PermissionDenied("space is reserved by an exporter whose token names it")
    command.require_start_not_past(uow.now.date())
    store = uow.store
    warehouse = await _warehouse(store, command.warehouse_code)
    reserved = await store.reserved_by_day(
        warehouse.code, start=command.period.start, end=command.period.end
    )
    reservation, events = warehouse.reserve(
        str(uuid.uuid4()), command, exporter.party, reserved, uow.now
    )
    await store.add_load(warehouse, command.period, command.space, counted_days=reserved.keys())
    await store.insert_reservation(reservation)
    uow.record(*events)
    return reservation


async def cancel_reservation(uow: UnitOfWork[WarehouseStore], command: Cancellation) -> Reservation:
    """Cancel and free every day the reservation held: its exporter or its warehouse's
    operator may."""
    store = uow.store
    current = await _reservation(store, command.reservation_id, uow.actor, officers=False)
    warehouse = await _warehouse(store, current.warehouse_code)
    cancelled, events = current.cancel(command.reason, warehouse, uow.now)
    await store.remove_load(cancelled)
    await store.save_cancellation(cancelled)
    uow.record(*events)
    return cancelled


async def get_reservation(
    store: WarehouseStore, reservation_id: str, viewer: Principal
) -> Reservation:
    return await _reservation(store, reservation_id, viewer, officers=True)


async def list_reservations(
    store: WarehouseStore, which: ReservationFilter, page: PageRequest, viewer: Principal
) -> ReservationPage:
    operated: list[str] = []
    if viewer.role is Role.OPERATOR and viewer.party:
        operated = await store.warehouses_operated_by(viewer.party)
    visible = visible_reservations(which, viewer, operated)
    if visible is None:
        return ReservationPage([], "")
    reservations, token = await store.list_reservations(visible, page)
    return ReservationPage(reservations, token)


async def utilisation(
    store: WarehouseStore, code: str, days: Period, viewer: Principal
) -> Utilisation:
    warehouse = await _supervised(store, code, viewer)
    reserved = await store.reserved_by_day(code, start=days.start, end=days.end)
    return warehouse.utilisation(reserved, days)
