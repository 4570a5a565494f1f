"""The expo service's public gRPC API: each call decodes its request (messages), runs
one use case (handlers) through the runner as its caller, and encodes the answer
(messages). ACCESS says which roles may make each call; the use case decides which
objects the caller may see and change."""

from __future__ import annotations

import asyncio
import functools
import logging
from datetime import timedelta

import grpc

from chuhai.expo.v1 import expo_service_pb2 as pb
from chuhai.expo.v1 import expo_service_pb2_grpc as pb_grpc
from expo import handlers, messages, storage
from expo.booth_client import BoothDirectory
from expo.domain import RateLimit
from expo.storage import ExpoStore
from expo.warehouse_client import WarehouseDirectory
from runtime.adapters.auth import EVERYONE, Access, caller, roles
from runtime.adapters.grpc_client import channel_to
from runtime.adapters.grpc_server import ServiceBinding
from runtime.adapters.service import ServiceContext
from runtime.adapters.unit_of_work import UseCaseRunner
from runtime.kernel.identity import Role

log = logging.getLogger(__name__)

ACCESS: Access = {
    "CreateEdition": roles(Role.OFFICER),
    "OpenEdition": roles(Role.OFFICER),
    "CloseEdition": roles(Role.OFFICER),
    "GetEdition": EVERYONE,
    "JoinEdition": roles(Role.EXPORTER),
    "ListExhibitors": EVERYONE,
    "PublishProduct": roles(Role.EXPORTER),
    "ListProducts": EVERYONE,
    # A buyer without a buyer id yet; one that has one is refused by the use case.
    "RegisterBuyer": roles(Role.BUYER),
    # The bureau imports a delegation.
    "RegisterBuyers": roles(Role.OFFICER),
    # Exporters see only the buyers that addressed them (the use case).
    "GetBuyer": roles(Role.BUYER, Role.EXPORTER, Role.OFFICER),
    # The expo front end reports anyone's visits; a buyer only its own (the use case).
    "RecordVisits": roles(Role.SERVICE, Role.BUYER),
    "SubmitIntent": roles(Role.BUYER),
    "RespondToIntent": roles(Role.EXPORTER),
    "CloseIntent": roles(Role.BUYER),
    "GetIntent": roles(Role.BUYER, Role.EXPORTER, Role.OFFICER),
    "ListIntents": roles(Role.BUYER, Role.EXPORTER, Role.OFFICER),
}


def _intent_turn(intent_id: str) -> str:
    """Requests on one intent take turns in this process: they all rewrite it."""
    return f"intent:{intent_id}"


class ExpoApi(pb_grpc.ExpoServiceServicer):
    def __init__(
        self,
        runner: UseCaseRunner[ExpoStore],
        booth: handlers.BoothDirectory,
        warehouses: WarehouseDirectory,
        rate_limit: RateLimit,
    ) -> None:
        self._runner = runner
        self._booth = booth
        self._warehouses = warehouses
        self._rate_limit = rate_limit

    # Editions --------------------------------------------------------------------------

    async def CreateEdition(
        self, request: pb.CreateEditionRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateEditionResponse:
        command = messages.new_edition(request)
        return await self._runner.run_once(
            "CreateEdition",
            request,
            pb.CreateEditionResponse,
            functools.partial(handlers.create_edition, command=command),
            messages.create_edition_response,
            actor=caller(),
        )

    async def OpenEdition(
        self, request: pb.OpenEditionRequest, context: grpc.aio.ServicerContext
    ) -> pb.OpenEditionResponse:
        edition_id = messages.edition_id(request)
        return await self._runner.run_once(
            "OpenEdition",
            request,
            pb.OpenEditionResponse,
            functools.partial(handlers.open_edition, edition_id=edition_id),
            messages.open_edition_response,
            actor=caller(),
        )

    async def CloseEdition(
        self, request: pb.CloseEditionRequest, context: grpc.aio.ServicerContext
    ) -> pb.CloseEditionResponse:
        edition_id = messages.edition_id(request)
        return await self._runner.run_once(
            "CloseEdition",
            request,
            pb.CloseEditionResponse,
            functools.partial(handlers.close_edition, edition_id=edition_id),
            messages.close_edition_response,
            actor=caller(),
        )

    async def GetEdition(
        self, request: pb.GetEditionRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetEditionResponse:
        summary = await handlers.get_edition(self._runner.reader(), request.edition_id)
        return messages.get_edition_response(summary.edition, summary.exhibitors)

    # Exhibitors and showrooms --------------------------------------------------------------

    async def JoinEdition(
        self, request: pb.JoinEditionRequest, context: grpc.aio.ServicerContext
    ) -> pb.JoinEditionResponse:
        edition_id = messages.edition_id(request)
        exporter = caller()
        standing = await handlers.booth_standing(
            self._runner.reader(), self._booth, edition_id, exporter
        )
        return await self._runner.run_once(
            "JoinEdition",
            request,
            pb.JoinEditionResponse,
            functools.partial(handlers.join_edition, edition_id=edition_id, standing=standing),
            messages.join_edition_response,
            actor=exporter,
        )

    async def ListExhibitors(
        self, request: pb.ListExhibitorsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListExhibitorsResponse:
        edition_id, page = messages.exhibitors_page(request)
        found, token = await handlers.list_exhibitors(self._runner.reader(), edition_id, page)
        return messages.list_exhibitors_response(found, token)

    async def PublishProduct(
        self, request: pb.PublishProductRequest, context: grpc.aio.ServicerContext
    ) -> pb.PublishProductResponse:
        draft = messages.product_draft(request)
        return await self._runner.run_once(
            "PublishProduct",
            request,
            pb.PublishProductResponse,
            functools.partial(handlers.publish_product, draft=draft),
            messages.publish_product_response,
            actor=caller(),
        )

    async def ListProducts(
        self, request: pb.ListProductsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListProductsResponse:
        query, page = messages.products_page(request)
        found, token = await handlers.list_products(self._runner.reader(), query, page)
        return messages.list_products_response(found, token)

    # Buyers and visits -----------------------------------------------------------------

    async def RegisterBuyer(
        self, request: pb.RegisterBuyerRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterBuyerResponse:
        draft = messages.buyer_draft(request)
        buyer = caller()
        return await self._runner.run_once(
            "RegisterBuyer",
            request,
            pb.RegisterBuyerResponse,
            functools.partial(handlers.register_buyer, draft=draft),
            messages.register_buyer_response,
            actor=buyer,
            # One registration of a subject at a time: a second one must see the first.
            one_at_a_time=f"buyer-subject:{buyer.subject}",
        )

    async def RegisterBuyers(
        self, request: pb.RegisterBuyersRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterBuyersResponse:
        drafts = messages.buyer_drafts(request)
        return await self._runner.run_once(
            "RegisterBuyers",
            request,
            pb.RegisterBuyersResponse,
            functools.partial(handlers.register_buyers, drafts=drafts),
            messages.register_buyers_response,
            actor=caller(),
        )

    async def GetBuyer(
        self, request: pb.GetBuyerRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetBuyerResponse:
        buyer = await handlers.get_buyer(self._runner.reader(), request.buyer_id, caller())
        return messages.get_buyer_response(buyer)

    async def RecordVisits(
        self, request: pb.RecordVisitsRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecordVisitsResponse:
        edition_id, visits = messages.visits(request)
        return await self._runner.run_once(
            "RecordVisits",
            request,
            pb.RecordVisitsResponse,
            functools.partial(handlers.record_visits, edition_id=edition_id, visits=visits),
            messages.record_visits_response,
            actor=caller(),
        )

    # Intents ---------------------------------------------------------------------------

    async def SubmitIntent(
        self, request: pb.SubmitIntentRequest, context: grpc.aio.ServicerContext
    ) -> pb.SubmitIntentResponse:
        draft = messages.intent_draft(request)
        buyer = caller()
        response = await self._runner.run_once(
            "SubmitIntent",
            request,
            pb.SubmitIntentResponse,
            functools.partial(handlers.submit_intent, draft=draft, limit=self._rate_limit),
            messages.submit_intent_response,
            actor=buyer,
            # The buyer's rate counter is the document they would all write.
            one_at_a_time=f"buyer:{buyer.party}",
        )
        # Asked after the commit and never stored with the response: the hint is
        # optional and a retry gets a fresh one.
        hints = await self._warehouses.serving(response.intent.destination_country)
        return messages.with_warehouse_hints(response, hints)

    async def RespondToIntent(
        self, request: pb.RespondToIntentRequest, context: grpc.aio.ServicerContext
    ) -> pb.RespondToIntentResponse:
        answer = messages.answer(request)
        principal = caller()
        # Two transactions: the deadline settles an overdue intent before a response is
        # considered (Intent.respond), and the refusal that follows rolls back its own
        # transaction only, not the settling.
        await self._settle_if_due(answer.intent_id)
        return await self._runner.run_once(
            "RespondToIntent",
            request,
            pb.RespondToIntentResponse,
            functools.partial(handlers.respond_to_intent, answer=answer),
            messages.respond_to_intent_response,
            actor=principal,
            one_at_a_time=_intent_turn(answer.intent_id),
        )

    async def CloseIntent(
        self, request: pb.CloseIntentRequest, context: grpc.aio.ServicerContext
    ) -> pb.CloseIntentResponse:
        intent_id = messages.intent_closing(request)
        return await self._runner.run_once(
            "CloseIntent",
            request,
            pb.CloseIntentResponse,
            functools.partial(handlers.close_intent, intent_id=intent_id),
            messages.close_intent_response,
            actor=caller(),
            one_at_a_time=_intent_turn(intent_id),
        )

    async def GetIntent(
        self, request: pb.GetIntentRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetIntentResponse:
        intent = await handlers.get_intent(self._runner.reader(), request.intent_id, caller())
        return messages.get_intent_response(intent)

    async def ListIntents(
        self, request: pb.ListIntentsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListIntentsResponse:
        query, page = messages.intents_page(request)
        found, token = await handlers.list_intents(self._runner.reader(), query, page, caller())
        return messages.list_intents_response(found, token)

    # Background ------------------------------------------------------------------------

    async def _settle_if_due(self, intent_id: str) -> bool:
        if not await handlers.is_due(self._runner.reader(), intent_id, self._runner.clock.now()):
            return False
        return await self._runner.run(
            functools.partial(handlers.settle_if_due, intent_id=intent_id),
            one_at_a_time=_intent_turn(intent_id),
        )

    async def expire_due_intents(self) -> int:
        """One sweep: close or expire the open intents past their deadline (up to
        handlers.EXPIRY_BATCH per state). Each is settled in a transaction of its own, so
        one that fails or conflicts with a request leaves the others settled."""
        due = await handlers.due_intents(self._runner.reader(), self._runner.clock.now())
        settled = 0
        for intent_id in due:
            settled += await self._settle_if_due(intent_id)
        return settled


async def build(context: ServiceContext) -> list[ServiceBinding]:
    await storage.ensure_indexes(context.db)
    settings = context.settings
    # Expo asks booth and warehouse as itself (a service token), never as its caller.
    booth_channel = channel_to("booth", settings, context.service_token)
    warehouse_channel = channel_to("warehouse", settings, context.service_token)
    runner = UseCaseRunner(context.outbox, ExpoStore, messages.encode_event, context.clock)
    api = ExpoApi(
        runner,
        BoothDirectory(booth_channel),
        WarehouseDirectory(warehouse_channel),
        RateLimit(
            settings.expo_intent_rate_limit,
            timedelta(seconds=settings.expo_intent_rate_window_seconds),
        ),
    )

    async def sweep_expired_intents() -> None:
        while True:
            try:
                await api.expire_due_intents()
            except Exception:
                log.exception("expiry sweep failed; next sweep retries")
            await asyncio.sleep(settings.expo_expiry_sweep_seconds)

    async def close_channels() -> None:
        await booth_channel.close()
        await warehouse_channel.close()

    context.run_in_background("intent-expiry", sweep_expired_intents)
    context.on_stop(close_channels)
    return [
        ServiceBinding(
            full_name=pb.DESCRIPTOR.services_by_name["ExpoService"].full_name,
            servicer=api,
            add_to_server=pb_grpc.add_ExpoServiceServicer_to_server,
            access=ACCESS,
        )
    ]
