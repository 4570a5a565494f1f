"""What the expo service asks the booth service: who an exporter is and whether it
holds a booth at a fair."""

from __future__ import annotations

import grpc

from chuhai.booth.v1 import booth_service_pb2 as pb
from chuhai.booth.v1 import booth_service_pb2_grpc as pb_grpc
from expo.domain import BoothStanding
from runtime.kernel.errors import FailedPrecondition, NotFound, Unavailable

# Each call gets this long, retries included (the channel retries UNAVAILABLE).
CALL_DEADLINE_SECONDS = 3.0


class BoothDirectory:
    """handlers.BoothDirectory over gRPC."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = pb_grpc.BoothServiceStub(channel)

    async def check_exhibitor(self, credit_code: str, fair_id: str) -> BoothStanding:
        """The exporter's name and industry, and its booth at the fair if it has one."""
        try:
            exporter = await self._stub.GetExporter(
                pb.GetExporterRequest(credit_code=credit_code), timeout=CALL_DEADLINE_SECONDS
            )
            status = await self._stub.GetExhibitorStatus(
                pb.GetExhibitorStatusRequest(credit_code=credit_code, fair_id=fair_id),
                timeout=CALL_DEADLINE_SECONDS,
            )
        except grpc.aio.AioRpcError as error:
            raise _translate(error, credit_code, fair_id) from error
        return BoothStanding(
            name=exporter.exporter.name,
            industry=exporter.exporter.industry,
            has_booth=status.exhibitor,
            booth_number=status.booth_number,
        )


def _translate(error: grpc.aio.AioRpcError, credit_code: str, fair_id: str) -> Exception:
    code = error.code()
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFound(f"booth service: {error.details()}")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return FailedPrecondition(
            f"booth service refused {credit_code}: {error.details()}",
            reason="BOOTH_SERVICE_REFUSED",
        )
    return Unavailable(
        f"the booth service cannot confirm {credit_code}'s booth at {fair_id} right now "
        f"({code.name}); nothing was changed, try again shortly"
    )
