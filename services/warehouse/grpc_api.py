"""The warehouse service's public gRPC API; its methods arrive with the warehouse service issue."""

from __future__ import annotations

from chuhai.warehouse.v1 import warehouse_service_pb2 as pb
from chuhai.warehouse.v1 import warehouse_service_pb2_grpc as pb_grpc
from runtime.grpc_server import ServiceBinding
from runtime.service import ServiceContext


class WarehouseApi(pb_grpc.WarehouseServiceServicer):
    def __init__(self, context: ServiceContext) -> None:
        self._context = context


async def build(context: ServiceContext) -> list[ServiceBinding]:
    return [
        ServiceBinding(
            full_name=pb.DESCRIPTOR.services_by_name["WarehouseService"].full_name,
            servicer=WarehouseApi(context),
            add_to_server=pb_grpc.add_WarehouseServiceServicer_to_server,
        )
    ]
