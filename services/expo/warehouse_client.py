"""What the expo service asks the warehouse service: public overseas warehouses that
serve a buyer's destination country (the fulfilment hint of an intent)."""

from __future__ import annotations

import logging

import grpc

from chuhai.warehouse.v1 import resources_pb2 as warehouse_resources
from chuhai.warehouse.v1 import warehouse_service_pb2 as pb
from chuhai.warehouse.v1 import warehouse_service_pb2_grpc as pb_grpc
from expo.domain import WarehouseHint

log = logging.getLogger(__name__)

CALL_DEADLINE_SECONDS = 2.0
HINTS_PER_INTENT = 10
_SERVICE_PREFIX = "LOGISTICS_SERVICE_"


def _service_name(value: int) -> str:
    return warehouse_resources.LogisticsService.Name(value).removeprefix(_SERVICE_PREFIX).lower()


class WarehouseDirectory:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = pb_grpc.WarehouseServiceStub(channel)

    async def serving(self, country: str) -> list[WarehouseHint] | None:
        """Active warehouses serving ``country``; None when the warehouse service could not
        answer in time (the hint is optional: an intent never fails for want of it)."""
        try:
            reply = await self._stub.SearchWarehouses(
                pb.SearchWarehousesRequest(serving_country=country, page_size=HINTS_PER_INTENT),
                timeout=CALL_DEADLINE_SECONDS,
            )
        except grpc.aio.AioRpcError as error:
            log.warning(
                "no fulfilment hint: warehouse service did not answer",
                extra={"country": country, "code": error.code().name},
            )
            return None
        return [
            WarehouseHint(
                code=match.warehouse.code,
                name=match.warehouse.profile.name,
                country=match.warehouse.profile.country_code,
                city=match.warehouse.profile.city,
                services=tuple(_service_name(s) for s in match.warehouse.profile.services),
            )
            for match in reply.matches
        ]
