"""The bureau service's gRPC API: the headline, filtered breakdowns, and a live watch."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from bureau.live import LiveStats
from bureau.messages import headline_message, query_response
from bureau.projections.expo import IntentFilter
from chuhai.bureau.v1 import bureau_service_pb2 as pb
from chuhai.bureau.v1 import bureau_service_pb2_grpc as pb_grpc
from runtime.adapters.auth import Access, roles
from runtime.adapters.grpc_server import ServiceBinding
from runtime.adapters.timestamps import moment
from runtime.kernel.identity import Role
from runtime.kernel.validation import Validator

# Every figure is the bureau's: officers only, for the headline as for the breakdowns.
ACCESS: Access = {
    "GetStats": roles(Role.OFFICER),
    "QueryStats": roles(Role.OFFICER),
    "WatchStats": roles(Role.OFFICER),
}


class BureauApi(pb_grpc.BureauServiceServicer):
    def __init__(self, live: LiveStats) -> None:
        self._live = live

    async def GetStats(
        self, request: pb.GetStatsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetStatsResponse:
        return pb.GetStatsResponse(headline=headline_message(self._live.figures.headline()))

    async def QueryStats(
        self, request: pb.QueryStatsRequest, context: grpc.aio.ServicerContext
    ) -> pb.QueryStatsResponse:
        check = Validator()
        country = check.country(request.country, "country", required=False)
        chapter = request.hs_chapter.strip()
        check.require(
            not chapter or (len(chapter) == 2 and chapter.isdigit()), "hs_chapter", "2 digits"
        )
        since = moment(request, "since")
        until = moment(request, "until")
        check.require(not (since and until and since >= until), "until", "must be after since")
        check.raise_if_invalid()
        where = IntentFilter(
            since=since, until=until, country=country or None, hs_chapter=chapter or None
        )
        return query_response(self._live.figures, request.fair_id, where)

    async def WatchStats(
        self, request: pb.WatchStatsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchStatsResponse]:
        version = self._live.version
        yield pb.WatchStatsResponse(headline=headline_message(self._live.figures.headline()))
        while True:
            version = await self._live.wait_past(version)
            yield pb.WatchStatsResponse(headline=headline_message(self._live.figures.headline()))


def binding(live: LiveStats) -> ServiceBinding:
    return ServiceBinding(
        full_name=pb.DESCRIPTOR.services_by_name["BureauService"].full_name,
        servicer=BureauApi(live),
        add_to_server=pb_grpc.add_BureauServiceServicer_to_server,
        access=ACCESS,
    )
