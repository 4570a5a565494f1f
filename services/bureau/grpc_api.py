"""The bureau service's public gRPC API; its methods arrive with the bureau service issue."""

from __future__ import annotations

from chuhai.bureau.v1 import bureau_service_pb2 as pb
from chuhai.bureau.v1 import bureau_service_pb2_grpc as pb_grpc
from runtime.grpc_server import ServiceBinding
from runtime.service import ServiceContext


class BureauApi(pb_grpc.BureauServiceServicer):
    def __init__(self, context: ServiceContext) -> None:
        self._context = context


async def build(context: ServiceContext) -> list[ServiceBinding]:
    return [
        ServiceBinding(
            full_name=pb.DESCRIPTOR.services_by_name["BureauService"].full_name,
            servicer=BureauApi(context),
            add_to_server=pb_grpc.add_BureauServiceServicer_to_server,
        )
    ]
