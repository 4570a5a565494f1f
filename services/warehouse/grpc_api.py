"""The warehouse service's public gRPC API: registry, search and capacity bookings.

Each call decodes its request (messages), runs one use case (handlers) and encodes the
answer (messages). A mutating call runs through the UseCaseRunner: one transaction
that changes the state, records its events in the outbox and remembers the response
under the request id. The calls that change one warehouse's bookings or capacity take
turns in this process (one_at_a_time): they all write that warehouse's documents, and
taking turns spares the database a storm of transaction conflicts (measured: 240
concurrent bookings of one warehouse over two instances ran out of the transaction
retry budget without it). The transactions, not the turns, keep the counts exact.

ACCESS says which roles may call each method; the use cases then decide, warehouse by
warehouse and reservation by reservation, with the caller() each method passes on."""

from __future__ import annotations

import grpc

from chuhai.warehouse.v1 import warehouse_service_pb2 as pb
from chuhai.warehouse.v1 import warehouse_service_pb2_grpc as pb_grpc
from runtime.adapters.auth import EVERYONE, Access, caller, roles
from runtime.adapters.grpc_server import ServiceBinding
from runtime.adapters.service import ServiceContext
from runtime.adapters.unit_of_work import UseCaseRunner
from runtime.kernel.identity import Role
from warehouse import handlers, messages
from warehouse.storage import WarehouseStore, ensure_indexes

ACCESS: Access = {
    "RegisterWarehouse": roles(Role.OPERATOR),
    # Its own operator only (handlers).
    "UpdateWarehouse": roles(Role.OPERATOR),
    # Its operator, or an officer supervising the registry.
    "SuspendWarehouse": roles(Role.OPERATOR, Role.OFFICER),
    "ReactivateWarehouse": roles(Role.OPERATOR, Role.OFFICER),
    "GetWarehouse": EVERYONE,
    "SearchWarehouses": EVERYONE,
    # For the exporter calling.
    "ReserveCapacity": roles(Role.EXPORTER),
    # Its exporter or its warehouse's operator.
    "CancelReservation": roles(Role.EXPORTER, Role.OPERATOR),
    # Its exporter, its warehouse's operator or an officer.
    "GetReservation": roles(Role.EXPORTER, Role.OPERATOR, Role.OFFICER),
    # Officers any; exporters their own; operators those of their warehouses.
    "ListReservations": roles(Role.EXPORTER, Role.OPERATOR, Role.OFFICER),
    # Its operator or an officer.
    "GetUtilisation": roles(Role.OPERATOR, Role.OFFICER),
}


class WarehouseApi(pb_grpc.WarehouseServiceServicer):
    def __init__(self, runner: UseCaseRunner[WarehouseStore]) -> None:
        self._runner = runner

    # Registry.

    async def RegisterWarehouse(
        self, request: pb.RegisterWarehouseRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterWarehouseResponse:
        principal = caller()
        command = messages.registration(request, today=self._runner.clock.now().date())
        return await self._runner.run_once(
            "RegisterWarehouse",
            request,
            pb.RegisterWarehouseResponse,
            lambda uow: handlers.register_warehouse(uow, command),
            messages.registered,
            actor=principal,
        )

    async def UpdateWarehouse(
        self, request: pb.UpdateWarehouseRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateWarehouseResponse:
        principal = caller()
        command = messages.profile_update(request)
        return await self._runner.run_once(
            "UpdateWarehouse",
            request,
            pb.UpdateWarehouseResponse,
            lambda uow: handlers.update_warehouse(uow, command),
            messages.updated,
            actor=principal,
            one_at_a_time=command.code,
        )

    async def SuspendWarehouse(
        self, request: pb.SuspendWarehouseRequest, context: grpc.aio.ServicerContext
    ) -> pb.SuspendWarehouseResponse:
        principal = caller()
        command = messages.suspension(request)
        return await self._runner.run_once(
            "SuspendWarehouse",
            request,
            pb.SuspendWarehouseResponse,
            lambda uow: handlers.suspend_warehouse(uow, command),
            messages.suspended,
            actor=principal,
            one_at_a_time=command.code,
        )

    async def ReactivateWarehouse(
        self, request: pb.ReactivateWarehouseRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReactivateWarehouseResponse:
        principal = caller()
        code = messages.reactivation(request)
        return await self._runner.run_once(
            "ReactivateWarehouse",
            request,
            pb.ReactivateWarehouseResponse,
            lambda uow: handlers.reactivate_warehouse(uow, code),
            messages.reactivated,
            actor=principal,
            one_at_a_time=code,
        )

    async def GetWarehouse(
        self, request: pb.GetWarehouseRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetWarehouseResponse:
        code = messages.warehouse_lookup(request)
        warehouse = await handlers.get_warehouse(self._runner.reader(), code)
        return messages.found_warehouse(warehouse)

    async def SearchWarehouses(
        self, request: pb.SearchWarehousesRequest, context: grpc.aio.ServicerContext
    ) -> pb.SearchWarehousesResponse:
        criteria, page = messages.search(request)
        results = await handlers.search_warehouses(self._runner.reader(), criteria, page)
        return messages.search_results(results)

    # Bookings.

    async def ReserveCapacity(
        self, request: pb.ReserveCapacityRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReserveCapacityResponse:
        principal = caller()
        command = messages.booking(request)
        return await self._runner.run_once(
            "ReserveCapacity",
            request,
            pb.ReserveCapacityResponse,
            lambda uow: handlers.reserve_capacity(uow, command),
            messages.reserved,
            actor=principal,
            one_at_a_time=command.warehouse_code,
        )

    async def CancelReservation(
        self, request: pb.CancelReservationRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelReservationResponse:
        principal = caller()
        command = messages.cancellation(request)
        # Read outside the transaction only to learn whose turn to take: a reservation's
        # warehouse never changes. The use case checks the caller again in its
        # transaction.
        known = await handlers.get_reservation(
            self._runner.reader(), command.reservation_id, principal
        )
        return await self._runner.run_once(
            "CancelReservation",
            request,
            pb.CancelReservationResponse,
            lambda uow: handlers.cancel_reservation(uow, command),
            messages.cancelled,
            actor=principal,
            one_at_a_time=known.warehouse_code,
        )

    async def GetReservation(
        self, request: pb.GetReservationRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetReservationResponse:
        reservation_id = messages.reservation_lookup(request)
        reservation = await handlers.get_reservation(
            self._runner.reader(), reservation_id, caller()
        )
        return messages.found_reservation(reservation)

    async def ListReservations(
        self, request: pb.ListReservationsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListReservationsResponse:
        which, page = messages.reservation_listing(request)
        listed = await handlers.list_reservations(self._runner.reader(), which, page, caller())
        return messages.reservation_list(listed)

    async def GetUtilisation(
        self, request: pb.GetUtilisationRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetUtilisationResponse:
        code, days = messages.utilisation_query(request)
        usage = await handlers.utilisation(self._runner.reader(), code, days, caller())
        return messages.utilisation_report(usage)


async def build(context: ServiceContext) -> list[ServiceBinding]:
    await ensure_indexes(context.db)
    runner = UseCaseRunner(context.outbox, WarehouseStore, messages.encode_event, context.clock)
    return [
        ServiceBinding(
            full_name=pb.DESCRIPTOR.services_by_name["WarehouseService"].full_name,
            servicer=WarehouseApi(runner),
            add_to_server=pb_grpc.add_WarehouseServiceServicer_to_server,
            access=ACCESS,
        )
    ]
