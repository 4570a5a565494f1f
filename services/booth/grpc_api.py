"""The booth service's public gRPC API."""

from __future__ import annotations

import grpc

from booth import exporters
from booth.domain import Exporter, new_exporter
from chuhai.booth.v1 import booth_service_pb2 as pb
from chuhai.booth.v1 import booth_service_pb2_grpc as pb_grpc
from chuhai.booth.v1 import events_pb2
from runtime import topics
from runtime.errors import NotFound
from runtime.grpc_server import ServiceBinding
from runtime.idempotency import earlier_response, remember_response, require_request_id
from runtime.outbox import Outbox, Transaction
from runtime.service import ServiceContext


def _exporter_message(exporter: Exporter) -> pb.Exporter:
    return pb.Exporter(
        credit_code=exporter.credit_code,
        name=exporter.name,
        district=exporter.district,
        industry=exporter.industry,
    )


class BoothApi(pb_grpc.BoothServiceServicer):
    def __init__(self, context: ServiceContext) -> None:
        self._db = context.db
        self._outbox: Outbox = context.outbox

    async def RegisterExporter(
        self, request: pb.RegisterExporterRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterExporterResponse:
        request_id = require_request_id(request.request_id)
        exporter = new_exporter(
            request.credit_code, request.name, request.district, request.industry
        )

        async def register(tx: Transaction) -> pb.RegisterExporterResponse:
            earlier = await earlier_response(
                tx, "RegisterExporter", request_id, pb.RegisterExporterResponse
            )
            if earlier is not None:
                return earlier
            await exporters.insert_exporter(tx, exporter)
            await tx.record(
                topics.BOOTH_EXPORTERS,
                events_pb2.ExporterRegistered(
                    credit_code=exporter.credit_code,
                    name=exporter.name,
                    district=exporter.district,
                    industry=exporter.industry,
                ),
                aggregate_id=exporter.credit_code,
            )
            response = pb.RegisterExporterResponse(exporter=_exporter_message(exporter))
            await remember_response(tx, "RegisterExporter", request_id, response)
            return response

        return await self._outbox.transact(register, correlation_id=request_id)

    async def GetExporter(
        self, request: pb.GetExporterRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetExporterResponse:
        exporter = await exporters.find_exporter(self._db, request.credit_code.strip().upper())
        if exporter is None:
            raise NotFound(f"no exporter with credit code {request.credit_code!r}")
        return pb.GetExporterResponse(exporter=_exporter_message(exporter))


async def build(context: ServiceContext) -> list[ServiceBinding]:
    return [
        ServiceBinding(
            full_name=pb.DESCRIPTOR.services_by_name["BoothService"].full_name,
            servicer=BoothApi(context),
            add_to_server=pb_grpc.add_BoothServiceServicer_to_server,
        )
    ]
