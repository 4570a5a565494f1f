"""The booth service's public gRPC API: each call decodes its request (messages), runs one
use case (handlers) through the runner as its caller, and encodes the answer (messages).
Which roles may call each method is ACCESS; which objects they may touch, the handlers."""

from __future__ import annotations

import grpc

from booth import handlers, messages
from booth.domain import quota_key
from booth.storage import BoothStore, ensure_indexes
from chuhai.booth.v1 import booth_service_pb2 as pb
from chuhai.booth.v1 import booth_service_pb2_grpc as pb_grpc
from runtime.adapters.auth import EVERYONE, Access, caller, roles
from runtime.adapters.grpc_server import ServiceBinding
from runtime.adapters.service import ServiceContext
from runtime.adapters.unit_of_work import UseCaseRunner
from runtime.kernel.identity import Role

Context = grpc.aio.ServicerContext

EXPORTER, OFFICER, SERVICE = Role.EXPORTER, Role.OFFICER, Role.SERVICE

ACCESS: Access = {
    # An exporter registers and keeps its own firm; officers and the expo read firms.
    "RegisterExporter": roles(EXPORTER),
    "UpdateExporter": roles(EXPORTER),
    "GetExporter": roles(EXPORTER, OFFICER, SERVICE),
    "ListExporters": roles(OFFICER),
    # The bureau runs fairs; anyone may read them.
    "CreateFair": roles(OFFICER),
    "OpenFair": roles(OFFICER),
    "CloseFair": roles(OFFICER),
    "GetFair": EVERYONE,
    "ListFairs": EVERYONE,
    # Exporters apply and withdraw; the bureau rejects and allocates.
    "SubmitApplication": roles(EXPORTER),
    "WithdrawApplication": roles(EXPORTER),
    "RejectApplication": roles(OFFICER),
    "GetApplication": roles(EXPORTER, OFFICER),
    "ListApplications": roles(EXPORTER, OFFICER),
    "RunAllocation": roles(OFFICER),
    # The expo asks who holds a booth.
    "GetExhibitorStatus": roles(SERVICE),
}


class BoothApi(pb_grpc.BoothServiceServicer):
    def __init__(self, runner: UseCaseRunner[BoothStore]) -> None:
        self._runner = runner

    # Exporters -------------------------------------------------------------------------

    async def RegisterExporter(
        self, request: pb.RegisterExporterRequest, context: Context
    ) -> pb.RegisterExporterResponse:
        principal = caller()
        command = messages.register_exporter_command(request)
        return await self._runner.run_once(
            "RegisterExporter",
            request,
            pb.RegisterExporterResponse,
            lambda uow: handlers.register_exporter(uow, command),
            lambda e: pb.RegisterExporterResponse(exporter=messages.exporter_message(e)),
            actor=principal,
        )

    async def UpdateExporter(
        self, request: pb.UpdateExporterRequest, context: Context
    ) -> pb.UpdateExporterResponse:
        principal = caller()
        command = messages.update_exporter_command(request)
        return await self._runner.run_once(
            "UpdateExporter",
            request,
            pb.UpdateExporterResponse,
            lambda uow: handlers.update_exporter(uow, command),
            lambda e: pb.UpdateExporterResponse(exporter=messages.exporter_message(e)),
            actor=principal,
        )

    async def GetExporter(
        self, request: pb.GetExporterRequest, context: Context
    ) -> pb.GetExporterResponse:
        principal = caller()
        exporter = await handlers.get_exporter(
            self._runner.reader(), messages.exporter_key(request), principal
        )
        return pb.GetExporterResponse(exporter=messages.exporter_message(exporter))

    async def ListExporters(
        self, request: pb.ListExportersRequest, context: Context
    ) -> pb.ListExportersResponse:
        district, page = messages.list_exporters_query(request)
        found = await handlers.list_exporters(self._runner.reader(), district, page)
        return messages.list_exporters_response(found)

    # Fairs -----------------------------------------------------------------------------

    async def CreateFair(
        self, request: pb.CreateFairRequest, context: Context
    ) -> pb.CreateFairResponse:
        principal = caller()
        command = messages.create_fair_command(request)
        return await self._runner.run_once(
            "CreateFair",
            request,
            pb.CreateFairResponse,
            lambda uow: handlers.create_fair(uow, command),
            lambda fair: pb.CreateFairResponse(fair=messages.fair_message(fair)),
            actor=principal,
        )

    async def OpenFair(self, request: pb.OpenFairRequest, context: Context) -> pb.OpenFairResponse:
        principal = caller()
        fair_id = messages.fair_key(request)
        return await self._runner.run_once(
            "OpenFair",
            request,
            pb.OpenFairResponse,
            lambda uow: handlers.open_fair(uow, fair_id),
            lambda fair: pb.OpenFairResponse(fair=messages.fair_message(fair)),
            actor=principal,
        )

    async def CloseFair(
        self, request: pb.CloseFairRequest, context: Context
    ) -> pb.CloseFairResponse:
        principal = caller()
        fair_id = messages.fair_key(request)
        return await self._runner.run_once(
            "CloseFair",
            request,
            pb.CloseFairResponse,
            lambda uow: handlers.close_fair(uow, fair_id),
            lambda fair: pb.CloseFairResponse(fair=messages.fair_message(fair)),
            actor=principal,
        )

    async def GetFair(self, request: pb.GetFairRequest, context: Context) -> pb.GetFairResponse:
        view = await handlers.get_fair(self._runner.reader(), request.fair_id)
        return messages.get_fair_response(view)

    async def ListFairs(
        self, request: pb.ListFairsRequest, context: Context
    ) -> pb.ListFairsResponse:
        page = messages.list_fairs_query(request)
        return messages.list_fairs_response(await handlers.list_fairs(self._runner.reader(), page))

    # Applications ----------------------------------------------------------------------

    async def SubmitApplication(
        self, request: pb.SubmitApplicationRequest, context: Context
    ) -> pb.SubmitApplicationResponse:
        principal = caller()
        command = messages.submit_application_command(request)
        return await self._runner.run_once(
            "SubmitApplication",
            request,
            pb.SubmitApplicationResponse,
            lambda uow: handlers.submit_application(uow, command),
            lambda a: pb.SubmitApplicationResponse(application=messages.application_message(a)),
            actor=principal,
        )

    async def WithdrawApplication(
        self, request: pb.WithdrawApplicationRequest, context: Context
    ) -> pb.WithdrawApplicationResponse:
        principal = caller()
        command = messages.withdraw_application_command(request)
        # Read first, outside the transaction: the lock is per fair and booth type.
        found = await handlers.find_application(
            self._runner.reader(), command.application_id, principal
        )
        return await self._runner.run_once(
            "WithdrawApplication",
            request,
            pb.WithdrawApplicationResponse,
            lambda uow: handlers.withdraw_application(uow, command),
            messages.withdrawal_response,
            # Withdrawals, promotions and allocations of one booth type all write its quota
            # counter: this process runs them in turn rather than in conflict.
            one_at_a_time=quota_key(found.fair_id, found.booth_type),
            actor=principal,
        )

    async def RejectApplication(
        self, request: pb.RejectApplicationRequest, context: Context
    ) -> pb.RejectApplicationResponse:
        principal = caller()
        command = messages.reject_application_command(request)
        return await self._runner.run_once(
            "RejectApplication",
            request,
            pb.RejectApplicationResponse,
            lambda uow: handlers.reject_application(uow, command),
            lambda a: pb.RejectApplicationResponse(application=messages.application_message(a)),
            actor=principal,
        )

    async def GetApplication(
        self, request: pb.GetApplicationRequest, context: Context
    ) -> pb.GetApplicationResponse:
        principal = caller()
        view = await handlers.get_application(
            self._runner.reader(), request.application_id, principal
        )
        return pb.GetApplicationResponse(application=messages.view_message(view))

    async def ListApplications(
        self, request: pb.ListApplicationsRequest, context: Context
    ) -> pb.ListApplicationsResponse:
        principal = caller()
        query, page = messages.list_applications_query(request)
        found = await handlers.list_applications(self._runner.reader(), query, page, principal)
        return messages.list_applications_response(found)

    async def RunAllocation(
        self, request: pb.RunAllocationRequest, context: Context
    ) -> pb.RunAllocationResponse:
        principal = caller()
        command = messages.run_allocation_command(request)
        return await self._runner.run_once(
            "RunAllocation",
            request,
            pb.RunAllocationResponse,
            lambda uow: handlers.run_allocation(uow, command),
            messages.allocation_response,
            one_at_a_time=quota_key(command.fair_id, command.booth_type),
            actor=principal,
            # Over every application of the fair: batch-mates would wait for it.
            alone=True,
        )

    async def GetExhibitorStatus(
        self, request: pb.GetExhibitorStatusRequest, context: Context
    ) -> pb.GetExhibitorStatusResponse:
        credit_code, fair_id = messages.exhibitor_status_query(request)
        holder = await handlers.get_exhibitor_status(self._runner.reader(), credit_code, fair_id)
        return messages.exhibitor_status_response(holder)


async def build(context: ServiceContext) -> list[ServiceBinding]:
    await ensure_indexes(context.db)
    runner = UseCaseRunner(context.outbox, BoothStore, messages.encode_event, context.clock)
    return [
        ServiceBinding(
            full_name=pb.DESCRIPTOR.services_by_name["BoothService"].full_name,
            servicer=BoothApi(runner),
            add_to_server=pb_grpc.add_BoothServiceServicer_to_server,
            access=ACCESS,
        )
    ]
