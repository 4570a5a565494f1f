"""The expo service's public gRPC API; its methods arrive with the expo service issue."""

from __future__ import annotations

from chuhai.expo.v1 import expo_service_pb2 as pb
from chuhai.expo.v1 import expo_service_pb2_grpc as pb_grpc
from runtime.grpc_server import ServiceBinding
from runtime.service import ServiceContext


class ExpoApi(pb_grpc.ExpoServiceServicer):
    def __init__(self, context: ServiceContext) -> None:
        self._context = context


async def build(context: ServiceContext) -> list[ServiceBinding]:
    return [
        ServiceBinding(
            full_name=pb.DESCRIPTOR.services_by_name["ExpoService"].full_name,
            servicer=ExpoApi(context),
            add_to_server=pb_grpc.add_ExpoServiceServicer_to_server,
        )
    ]
