"""The warehouse service's public gRPC API: registry, search and capacity bookings.

Every mutating call runs in one transaction that changes the state, records its event
in the outbox and remembers the response under the request id (runtime.adapters.idempotency)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from chuhai.warehouse.v1 import warehouse_service_pb2 as pb
from chuhai.warehouse.v1 import warehouse_service_pb2_grpc as pb_grpc
from runtime.adapters import topics
from runtime.adapters.grpc_server import ServiceBinding
from runtime.adapters.idempotency import earlier_response, remember_response, require_request_id
from runtime.adapters.outbox import Outbox, Transaction
from runtime.adapters.service import ServiceContext
from runtime.kernel.errors import FieldViolation, InvalidArgument
from warehouse import domain, messages, paging, storage
from warehouse.domain import ReservationStatus

M = TypeVar("M", bound=Message)


class WarehouseLocks:
    """One asyncio.Lock per warehouse: this process runs the bookings, cancellations and
    changes of one warehouse one at a time.

    Correctness does not depend on it (the transactions do that, across processes
    too); it avoids the retry storm SecantusDB shows when many transactions write the
    same documents at once (ARCHITECTURE.md: 100 concurrent read-modify-write
    transactions on one document, 1,772 TransientTransactionError retries). Measured
    here without it: 240 concurrent bookings of one warehouse over two instances, and
    some ran out of the 30 s transaction retry budget. A lock lives only while some
    call holds or awaits it.
    """

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    @contextlib.asynccontextmanager
    async def hold(self, code: str) -> AsyncIterator[None]:
        lock = self._locks.get(code)
        if lock is None:
            lock = self._locks[code] = asyncio.Lock()
        async with lock:
            yield


def _now() -> datetime:
    # MongoDB keeps milliseconds: a response built from this instant must equal the one
    # built later from the stored document.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _validated(*steps: Callable[[], Any]) -> list[Any]:
    """Run every validation step, then raise one INVALID_ARGUMENT naming the wrong
    fields all of them found; otherwise return their results in order."""
    results: list[Any] = []
    violations: list[FieldViolation] = []
    for step in steps:
        try:
            results.append(step())
        except InvalidArgument as error:
            violations.extend(error.violations)
    if violations:
        raise InvalidArgument(violations)
    return results


class WarehouseApi(pb_grpc.WarehouseServiceServicer):
    def __init__(self, context: ServiceContext) -> None:
        self._db = context.db
        self._outbox: Outbox = context.outbox
        self._locks = WarehouseLocks()

    async def _once(
        self,
        method: str,
        request_id: str,
        kind: type[M],
        act: Callable[[Transaction], Awaitable[M]],
    ) -> M:
        """Run ``act`` in a transaction unless this request id already has a response."""

        async def work(tx: Transaction) -> M:
            earlier = await earlier_response(tx, method, request_id, kind)
            if earlier is not None:
                return earlier
            response = await act(tx)
            await remember_response(tx, method, request_id, response)
            return response

        return await self._outbox.transact(work, correlation_id=request_id)

    # Registry.

    async def RegisterWarehouse(
        self, request: pb.RegisterWarehouseRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterWarehouseResponse:
        now = _now()
        _, warehouse = _validated(
            lambda: require_request_id(request.request_id),
            lambda: domain.register(
                request.code, messages.profile_draft(request.profile), now.date(), now
            ),
        )

        async def register(tx: Transaction) -> pb.RegisterWarehouseResponse:
            await storage.insert_warehouse(tx, warehouse)
            await tx.record(
                topics.WAREHOUSE_WAREHOUSES,
                messages.warehouse_registered(warehouse),
                aggregate_id=warehouse.code,
            )
            return pb.RegisterWarehouseResponse(warehouse=messages.warehouse_message(warehouse))

        return await self._once(
            "RegisterWarehouse", request.request_id, pb.RegisterWarehouseResponse, register
        )

    async def UpdateWarehouse(
        self, request: pb.UpdateWarehouseRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateWarehouseResponse:
        _, code = _validated(
            lambda: require_request_id(request.request_id),
            lambda: domain.lookup_code(request.code),
        )
        draft = messages.profile_draft(request.profile)

        async def update(tx: Transaction) -> pb.UpdateWarehouseResponse:
            now = _now()
            current = await storage.load_warehouse(tx.db, code, tx.session)
            change = domain.update(current, draft, request.update_mask.paths, now.date(), now)
            if change.changed_fields:
                if "capacity" in change.changed_fields:
                    ahead = await storage.reserved_by_day(
                        tx.db, code, start=now.date(), session=tx.session
                    )
                    domain.require_capacity_covers(code, change.warehouse.profile.capacity, ahead)
                await storage.save_warehouse(tx, change.warehouse)
                await tx.record(
                    topics.WAREHOUSE_WAREHOUSES,
                    messages.warehouse_updated(change),
                    aggregate_id=code,
                )
            return pb.UpdateWarehouseResponse(
                warehouse=messages.warehouse_message(change.warehouse)
            )

        async with self._locks.hold(code):
            return await self._once(
                "UpdateWarehouse", request.request_id, pb.UpdateWarehouseResponse, update
            )

    async def SuspendWarehouse(
        self, request: pb.SuspendWarehouseRequest, context: grpc.aio.ServicerContext
    ) -> pb.SuspendWarehouseResponse:
        _, code, reason = _validated(
            lambda: require_request_id(request.request_id),
            lambda: domain.lookup_code(request.code),
            lambda: domain.validate_reason(request.reason, required=True),
        )

        async def suspend(tx: Transaction) -> pb.SuspendWarehouseResponse:
            current = await storage.load_warehouse(tx.db, code, tx.session)
            suspended = domain.suspend(current, reason, _now())
            await storage.save_warehouse(tx, suspended)
            await tx.record(
                topics.WAREHOUSE_WAREHOUSES,
                messages.warehouse_suspended(suspended),
                aggregate_id=code,
            )
            return pb.SuspendWarehouseResponse(warehouse=messages.warehouse_message(suspended))

        async with self._locks.hold(code):
            return await self._once(
                "SuspendWarehouse", request.request_id, pb.SuspendWarehouseResponse, suspend
            )

    async def ReactivateWarehouse(
        self, request: pb.ReactivateWarehouseRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReactivateWarehouseResponse:
        _, code = _validated(
            lambda: require_request_id(request.request_id),
            lambda: domain.lookup_code(request.code),
        )

        async def reactivate(tx: Transaction) -> pb.ReactivateWarehouseResponse:
            current = await storage.load_warehouse(tx.db, code, tx.session)
            active = domain.reactivate(current, _now())
            await storage.save_warehouse(tx, active)
            await tx.record(
                topics.WAREHOUSE_WAREHOUSES,
                messages.warehouse_reactivated(active),
                aggregate_id=code,
            )
            return pb.ReactivateWarehouseResponse(warehouse=messages.warehouse_message(active))

        async with self._locks.hold(code):
            return await self._once(
                "ReactivateWarehouse",
                request.request_id,
                pb.ReactivateWarehouseResponse,
                reactivate,
            )

    async def GetWarehouse(
        self, request: pb.GetWarehouseRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetWarehouseResponse:
        warehouse = await storage.load_warehouse(self._db, domain.lookup_code(request.code))
        return pb.GetWarehouseResponse(warehouse=messages.warehouse_message(warehouse))

    async def SearchWarehouses(
        self, request: pb.SearchWarehousesRequest, context: grpc.aio.ServicerContext
    ) -> pb.SearchWarehousesResponse:
        # A page token is bound to everything in the request but the paging itself.
        query = pb.SearchWarehousesRequest()
        query.CopyFrom(request)
        query.ClearField("page_size")
        query.ClearField("page_token")
        criteria, page = _validated(
            lambda: domain.search_criteria(
                country_code=request.country_code,
                serving_country=request.serving_country,
                services=request.services,
                available_from=request.available_from,
                available_until=request.available_until,
                min_free=messages.space(request.min_free),
                near=messages.point(request.near) if request.HasField("near") else None,
                within_km=request.within_km,
                include_suspended=request.include_suspended,
            ),
            lambda: paging.page_request(
                request.page_size,
                request.page_token,
                query.SerializeToString(deterministic=True),
            ),
        )
        candidates = await storage.find_candidates(self._db, criteria)
        peaks = {}
        if criteria.period is not None:
            codes = [warehouse.code for warehouse in candidates]
            peaks = await storage.peak_loads(self._db, codes, criteria.period)
        matches = domain.rank(candidates, criteria, peaks)
        return pb.SearchWarehousesResponse(
            matches=[
                messages.match_message(match)
                for match in matches[page.offset : page.offset + page.size]
            ],
            next_page_token=page.next_token(len(matches)),
            total_size=len(matches),
        )

    # Bookings.

    async def ReserveCapacity(
        self, request: pb.ReserveCapacityRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReserveCapacityResponse:
        _, booking = _validated(
            lambda: require_request_id(request.request_id),
            lambda: domain.validate_booking(
                request.warehouse_code,
                request.exporter_credit_code,
                messages.space(request.space),
                request.start_date,
                request.end_date,
            ),
        )
        reservation_id = str(uuid.uuid4())

        async def reserve(tx: Transaction) -> pb.ReserveCapacityResponse:
            now = _now()
            domain.require_start_not_past(booking.period, now.date())
            warehouse = await storage.load_warehouse(tx.db, booking.warehouse_code, tx.session)
            reserved = await storage.reserved_by_day(
                tx.db,
                warehouse.code,
                start=booking.period.start,
                end=booking.period.end,
                session=tx.session,
            )
            reservation = domain.reserve(reservation_id, warehouse, booking, reserved, now)
            await storage.add_load(tx, warehouse, booking.period, booking.space, reserved.keys())
            await storage.insert_reservation(tx, reservation)
            await tx.record(
                topics.WAREHOUSE_RESERVATIONS,
                messages.capacity_reserved(reservation),
                aggregate_id=warehouse.code,
            )
            return pb.ReserveCapacityResponse(reservation=messages.reservation_message(reservation))

        async with self._locks.hold(booking.warehouse_code):
            return await self._once(
                "ReserveCapacity", request.request_id, pb.ReserveCapacityResponse, reserve
            )

    async def CancelReservation(
        self, request: pb.CancelReservationRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelReservationResponse:
        _, reservation_id, reason = _validated(
            lambda: require_request_id(request.request_id),
            lambda: domain.lookup_reservation_id(request.reservation_id),
            lambda: domain.validate_reason(request.reason, required=False),
        )
        # Read outside the transaction only to pick the lock: a warehouse code never changes.
        known = await storage.load_reservation(self._db, reservation_id)

        async def cancel(tx: Transaction) -> pb.CancelReservationResponse:
            now = _now()
            current = await storage.load_reservation(tx.db, reservation_id, tx.session)
            cancelled = domain.cancel(current, reason, now.date(), now)
            await storage.remove_load(tx, cancelled)
            await storage.save_cancellation(tx, cancelled)
            await tx.record(
                topics.WAREHOUSE_RESERVATIONS,
                messages.reservation_cancelled(cancelled),
                aggregate_id=cancelled.warehouse_code,
            )
            return pb.CancelReservationResponse(reservation=messages.reservation_message(cancelled))

        async with self._locks.hold(known.warehouse_code):
            return await self._once(
                "CancelReservation", request.request_id, pb.CancelReservationResponse, cancel
            )

    async def GetReservation(
        self, request: pb.GetReservationRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetReservationResponse:
        reservation_id = domain.lookup_reservation_id(request.reservation_id)
        reservation = await storage.load_reservation(self._db, reservation_id)
        return pb.GetReservationResponse(reservation=messages.reservation_message(reservation))

    async def ListReservations(
        self, request: pb.ListReservationsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListReservationsResponse:
        query = (request.warehouse_code, request.exporter_credit_code, request.status)
        _, status, page = _validated(
            lambda: _require_owner(request),
            lambda: _status_filter(request.status),
            lambda: paging.page_request(request.page_size, request.page_token, query),
        )
        # One more than the page tells whether another page follows.
        found = await storage.list_reservations(
            self._db,
            warehouse_code=request.warehouse_code.strip().upper(),
            exporter_credit_code=request.exporter_credit_code.strip().upper(),
            status=status,
            offset=page.offset,
            limit=page.size + 1,
        )
        return pb.ListReservationsResponse(
            reservations=[messages.reservation_message(r) for r in found[: page.size]],
            next_page_token=page.next_token(page.offset + len(found)),
        )

    async def GetUtilisation(
        self, request: pb.GetUtilisationRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetUtilisationResponse:
        code, period = _validated(
            lambda: domain.lookup_code(request.warehouse_code, "warehouse_code"),
            lambda: domain.lookup_period(request.start_date, request.end_date),
        )
        warehouse = await storage.load_warehouse(self._db, code)
        reserved = await storage.reserved_by_day(self._db, code, start=period.start, end=period.end)
        capacity = warehouse.profile.capacity
        return pb.GetUtilisationResponse(
            warehouse_code=code,
            capacity=messages.space_message(capacity),
            days=[
                messages.day_use_message(use)
                for use in domain.utilisation(capacity, reserved, period)
            ],
        )


def _require_owner(request: pb.ListReservationsRequest) -> None:
    # Listing every reservation of every warehouse is the bureau's job, from the events.
    if not (request.warehouse_code.strip() or request.exporter_credit_code.strip()):
        raise InvalidArgument(
            FieldViolation("warehouse_code", "name a warehouse or an exporter_credit_code")
        )


def _status_filter(status: int) -> ReservationStatus | None:
    if status == 0:
        return None
    try:
        return ReservationStatus(status)
    except ValueError as error:
        raise InvalidArgument(FieldViolation("status", "is not a reservation status")) from error


async def build(context: ServiceContext) -> list[ServiceBinding]:
    await storage.ensure_indexes(context.db)
    return [
        ServiceBinding(
            full_name=pb.DESCRIPTOR.services_by_name["WarehouseService"].full_name,
            servicer=WarehouseApi(context),
            add_to_server=pb_grpc.add_WarehouseServiceServicer_to_server,
        )
    ]
