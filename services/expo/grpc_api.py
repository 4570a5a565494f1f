"""The expo service's public gRPC API."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import grpc
from pymongo import ASCENDING

from chuhai.expo.v1 import expo_service_pb2 as pb
from chuhai.expo.v1 import expo_service_pb2_grpc as pb_grpc
from chuhai.expo.v1 import resources_pb2 as res
from expo import handlers
from expo.booth_client import BoothDirectory
from expo.documents import (
    buyer_message,
    edition_message,
    exhibitor_message,
    intent_message,
    money_document,
    money_from,
    product_message,
)
from expo.domain import (
    DESCRIPTION_MAX_LENGTH,
    EDITION_ID_PATTERN,
    OPEN_STATES,
    VISITS_PER_CALL,
    IntentKind,
    ResponseKind,
    validate_country,
    validate_email,
    validate_hs,
    validate_money,
    validate_terms,
    validate_text,
)
from expo.warehouse_client import WarehouseDirectory
from runtime.adapters.grpc_client import service_channel
from runtime.adapters.grpc_server import ServiceBinding
from runtime.adapters.idempotency import run_once
from runtime.adapters.outbox import Transaction
from runtime.adapters.pagination import decode_token, encode_token, page_size
from runtime.adapters.service import ServiceContext
from runtime.kernel.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from runtime.kernel.validation import Validator

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
MAX_PAGE = 100
BUYERS_PER_CALL = 500
EXPIRY_BATCH = 200


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _required(value: str, field: str) -> str:
    value = value.strip()
    if not value:
        raise InvalidArgument(FieldViolation(field, "is required"))
    return value


def _date(text: str, check: Validator, field: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        check.require(False, field, "must be a date YYYY-MM-DD")
        return text


class ExpoApi(pb_grpc.ExpoServiceServicer):
    def __init__(
        self,
        context: ServiceContext,
        booth: BoothDirectory,
        warehouses: WarehouseDirectory,
        clock: Clock = _utc_now,
    ) -> None:
        self._db = context.db
        self._outbox = context.outbox
        self._booth = booth
        self._warehouses = warehouses
        self._clock = clock
        settings = context.settings
        self._rate_limit = handlers.RateLimit(
            settings.expo_intent_rate_limit,
            timedelta(seconds=settings.expo_intent_rate_window_seconds),
        )

    # Editions --------------------------------------------------------------------------

    async def CreateEdition(
        self, request: pb.CreateEditionRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateEditionResponse:
        check = Validator()
        edition_id = request.edition_id.strip()
        check.require(
            bool(EDITION_ID_PATTERN.match(edition_id)),
            "edition_id",
            "2-63 characters: lowercase letters, digits and '-'",
        )
        name = validate_text(request.name, check, "name")
        check.require(bool(request.fair_id.strip()), "fair_id", "is required")
        starts_on = _date(request.starts_on, check, "starts_on")
        ends_on = _date(request.ends_on, check, "ends_on")
        check.raise_if_invalid()
        check.require(starts_on <= ends_on, "ends_on", "must not be before starts_on")
        check.raise_if_invalid()
        edition = {
            "_id": edition_id,
            "name": name,
            "fair_id": request.fair_id.strip(),
            "starts_on": starts_on,
            "ends_on": ends_on,
            "allow_online_only": request.allow_online_only,
        }

        async def create(tx: Transaction) -> pb.CreateEditionResponse:
            return pb.CreateEditionResponse(
                edition=edition_message(await handlers.create_edition(tx, edition))
            )

        return await run_once(
            self._outbox, "CreateEdition", request.request_id, pb.CreateEditionResponse, create
        )

    async def _set_status(self, method: str, request: Any, target: int, kind: Any) -> Any:
        edition_id = _required(request.edition_id, "edition_id")

        async def change(tx: Transaction) -> Any:
            doc = await handlers.set_edition_status(tx, edition_id, target)
            return kind(edition=edition_message(doc))

        return await run_once(self._outbox, method, request.request_id, kind, change)

    async def OpenEdition(
        self, request: pb.OpenEditionRequest, context: grpc.aio.ServicerContext
    ) -> pb.OpenEditionResponse:
        return await self._set_status("OpenEdition", request, handlers.OPEN, pb.OpenEditionResponse)

    async def CloseEdition(
        self, request: pb.CloseEditionRequest, context: grpc.aio.ServicerContext
    ) -> pb.CloseEditionResponse:
        return await self._set_status(
            "CloseEdition", request, handlers.CLOSED, pb.CloseEditionResponse
        )

    async def GetEdition(
        self, request: pb.GetEditionRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetEditionResponse:
        doc = await self._db[handlers.EDITIONS].find_one({"_id": request.edition_id})
        if doc is None:
            raise NotFound(f"no expo edition {request.edition_id!r}")
        exhibitors = await self._db[handlers.EXHIBITORS].count_documents(
            {"edition_id": request.edition_id}
        )
        return pb.GetEditionResponse(edition=edition_message(doc), exhibitors=exhibitors)

    # Exhibitors and showrooms --------------------------------------------------------------

    async def JoinEdition(
        self, request: pb.JoinEditionRequest, context: grpc.aio.ServicerContext
    ) -> pb.JoinEditionResponse:
        check = Validator()
        credit_code = check.credit_code(request.credit_code)
        check.require(bool(request.edition_id.strip()), "edition_id", "is required")
        check.raise_if_invalid()
        edition = await self._db[handlers.EDITIONS].find_one({"_id": request.edition_id})
        if edition is None:
            raise NotFound(f"no expo edition {request.edition_id!r}")
        if edition["status"] == handlers.CLOSED:
            raise FailedPrecondition(f"expo edition {edition['_id']} is closed")
        # Asked before the transaction: if the booth service is down, nothing is written.
        found = await self._booth.check_exhibitor(credit_code, edition["fair_id"])
        if found.has_booth:
            kind = res.EXHIBITOR_KIND_BOOTH
        elif edition["allow_online_only"]:
            kind = res.EXHIBITOR_KIND_ONLINE_ONLY
        else:
            raise FailedPrecondition(
                f"{credit_code} holds no allocated booth at fair {edition['fair_id']}, and "
                f"expo edition {edition['_id']} admits no online-only exhibitors"
            )

        async def join(tx: Transaction) -> pb.JoinEditionResponse:
            doc = await handlers.join_edition(
                tx,
                edition,
                credit_code,
                found.name,
                found.industry,
                kind,
                found.booth_number,
                self._clock(),
            )
            return pb.JoinEditionResponse(exhibitor=exhibitor_message(doc))

        return await run_once(
            self._outbox, "JoinEdition", request.request_id, pb.JoinEditionResponse, join
        )

    async def ListExhibitors(
        self, request: pb.ListExhibitorsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListExhibitorsResponse:
        docs, token = await self._page(
            handlers.EXHIBITORS, {"edition_id": request.edition_id}, request
        )
        return pb.ListExhibitorsResponse(
            exhibitors=[exhibitor_message(d) for d in docs], next_page_token=token
        )

    async def PublishProduct(
        self, request: pb.PublishProductRequest, context: grpc.aio.ServicerContext
    ) -> pb.PublishProductResponse:
        check = Validator()
        credit_code = check.credit_code(request.credit_code)
        check.require(bool(request.edition_id.strip()), "edition_id", "is required")
        name = validate_text(request.name, check, "name")
        hs_code = validate_hs(request.hs_code, check, "hs_code")
        description = request.description.strip()
        check.require(
            len(description) <= DESCRIPTION_MAX_LENGTH,
            "description",
            f"at most {DESCRIPTION_MAX_LENGTH} characters",
        )
        check.require(request.moq >= 0, "moq", "must not be negative")
        unit = validate_text(request.unit, check, "unit")
        price_min, price_max = money_from(request.price_min), money_from(request.price_max)
        validate_money(price_min, check, "price_min", required=False)
        validate_money(price_max, check, "price_max", required=False)
        if money_document(price_min) and money_document(price_max):
            check.require(
                price_min.currency == price_max.currency, "price_max.currency", "as price_min"
            )
            check.require(
                price_min.as_nanos() <= price_max.as_nanos(), "price_max", "below price_min"
            )
        certifications = [c.strip() for c in request.certifications if c.strip()]
        check.raise_if_invalid()
        product = {
            "edition_id": request.edition_id.strip(),
            "credit_code": credit_code,
            "name": name,
            "hs_code": hs_code,
            "description": description,
            "moq": request.moq,
            "unit": unit,
            "price_min": money_document(price_min),
            "price_max": money_document(price_max),
            "certifications": certifications,
        }

        async def publish(tx: Transaction) -> pb.PublishProductResponse:
            return pb.PublishProductResponse(
                product=product_message(await handlers.publish_product(tx, product))
            )

        return await run_once(
            self._outbox, "PublishProduct", request.request_id, pb.PublishProductResponse, publish
        )

    async def ListProducts(
        self, request: pb.ListProductsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListProductsResponse:
        query: dict[str, Any] = {"edition_id": request.edition_id}
        if request.credit_code:
            query["credit_code"] = request.credit_code.strip().upper()
        if request.hs_heading:
            query["hs_heading"] = request.hs_heading.strip()
        docs, token = await self._page(handlers.PRODUCTS, query, request)
        return pb.ListProductsResponse(
            products=[product_message(d) for d in docs], next_page_token=token
        )

    # Buyers and visits -----------------------------------------------------------------

    def _new_buyer(self, buyer: Any, check: Validator, path: str) -> dict[str, Any]:
        company = validate_text(buyer.company, check, f"{path}company")
        country = validate_country(buyer.country, check, f"{path}country")
        check.require(
            buyer.buyer_type in (res.BUYER_TYPE_NEW, res.BUYER_TYPE_RETURNING),
            f"{path}buyer_type",
            "must be BUYER_TYPE_NEW or BUYER_TYPE_RETURNING",
        )
        contact = buyer.contact
        return {
            "company": company,
            "country": country,
            "buyer_type": buyer.buyer_type,
            "contact": {
                "name": validate_text(contact.name, check, f"{path}contact.name", required=False),
                "email": validate_email(contact.email, check, f"{path}contact.email"),
                "phone": validate_text(
                    contact.phone, check, f"{path}contact.phone", required=False
                ),
            },
            "registered_at": self._clock(),
        }

    async def RegisterBuyer(
        self, request: pb.RegisterBuyerRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterBuyerResponse:
        check = Validator()
        buyer = self._new_buyer(request, check, "")
        check.raise_if_invalid()

        async def register(tx: Transaction) -> pb.RegisterBuyerResponse:
            [doc] = await handlers.register_buyers(tx, [buyer])
            return pb.RegisterBuyerResponse(buyer=buyer_message(doc, with_contact=True))

        return await run_once(
            self._outbox, "RegisterBuyer", request.request_id, pb.RegisterBuyerResponse, register
        )

    async def RegisterBuyers(
        self, request: pb.RegisterBuyersRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterBuyersResponse:
        check = Validator()
        check.require(
            0 < len(request.buyers) <= BUYERS_PER_CALL, "buyers", f"1 to {BUYERS_PER_CALL}"
        )
        buyers = [
            self._new_buyer(buyer, check, f"buyers[{index}].")
            for index, buyer in enumerate(request.buyers)
        ]
        check.raise_if_invalid()

        async def register(tx: Transaction) -> pb.RegisterBuyersResponse:
            docs = await handlers.register_buyers(tx, buyers)
            return pb.RegisterBuyersResponse(
                buyers=[buyer_message(doc, with_contact=True) for doc in docs]
            )

        return await run_once(
            self._outbox, "RegisterBuyers", request.request_id, pb.RegisterBuyersResponse, register
        )

    async def GetBuyer(
        self, request: pb.GetBuyerRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetBuyerResponse:
        doc = await self._db[handlers.BUYERS].find_one({"_id": request.buyer_id})
        if doc is None:
            raise NotFound(f"no buyer {request.buyer_id!r}")
        viewer = request.viewer_credit_code.strip().upper()
        visible = await handlers.may_see_contact(self._db, doc["_id"], viewer)
        return pb.GetBuyerResponse(buyer=buyer_message(doc, with_contact=visible))

    async def RecordVisits(
        self, request: pb.RecordVisitsRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecordVisitsResponse:
        check = Validator()
        check.require(bool(request.edition_id.strip()), "edition_id", "is required")
        check.require(
            0 < len(request.visits) <= VISITS_PER_CALL, "visits", f"1 to {VISITS_PER_CALL}"
        )
        visits = []
        for index, visit in enumerate(request.visits):
            check.require(bool(visit.visit_id.strip()), f"visits[{index}].visit_id", "is required")
            check.require(bool(visit.buyer_id), f"visits[{index}].buyer_id", "is required")
            visits.append(
                handlers.VisitInput(
                    visit.visit_id.strip(),
                    visit.buyer_id,
                    check.credit_code(visit.credit_code, f"visits[{index}].credit_code"),
                    visit.product_id,
                )
            )
        check.raise_if_invalid()

        async def record(tx: Transaction) -> pb.RecordVisitsResponse:
            recorded = await handlers.record_visits(
                tx, request.edition_id.strip(), visits, self._clock()
            )
            return pb.RecordVisitsResponse(recorded=recorded)

        return await run_once(
            self._outbox, "RecordVisits", request.request_id, pb.RecordVisitsResponse, record
        )

    # Intents ---------------------------------------------------------------------------

    async def SubmitIntent(
        self, request: pb.SubmitIntentRequest, context: grpc.aio.ServicerContext
    ) -> pb.SubmitIntentResponse:
        check = Validator()
        check.require(bool(request.edition_id.strip()), "edition_id", "is required")
        check.require(bool(request.buyer_id), "buyer_id", "is required")
        kind = IntentKind.RFQ
        if request.kind in IntentKind._value2member_map_:
            kind = IntentKind(request.kind)
        else:
            check.require(False, "kind", "must be INTENT_KIND_INQUIRY or INTENT_KIND_RFQ")
        exhibitor = ""
        if kind == IntentKind.INQUIRY:
            exhibitor = check.credit_code(request.exhibitor_credit_code, "exhibitor_credit_code")
        target_price = money_from(request.target_price)
        terms = validate_terms(
            kind=kind,
            hs_code=request.hs_code,
            quantity=request.quantity,
            unit=request.unit,
            target_price=target_price,
            incoterm=request.incoterm,
            destination_country=request.destination_country,
            deadline=request.deadline.ToDatetime(UTC) if request.HasField("deadline") else None,
            max_quotes=request.max_quotes,
            now=self._clock(),
            check=check,
        )
        check.raise_if_invalid()
        intent = handlers.IntentRequest(
            edition_id=request.edition_id.strip(),
            buyer_id=request.buyer_id,
            kind=kind,
            exhibitor_credit_code=exhibitor,
            product_id=request.product_id,
            terms=terms,
            target_price=money_document(target_price),
            incoterm=request.incoterm,
            destination_port=request.destination_port.strip(),
        )

        async def submit(tx: Transaction) -> pb.SubmitIntentResponse:
            doc = await handlers.submit_intent(tx, intent, self._rate_limit, self._clock())
            return pb.SubmitIntentResponse(intent=intent_message(doc))

        response = await run_once(
            self._outbox, "SubmitIntent", request.request_id, pb.SubmitIntentResponse, submit
        )
        hints = await self._warehouses.serving(response.intent.destination_country)
        if hints is not None:
            response.warehouses.extend(hints)
            response.warehouses_available = True
        return response

    async def RespondToIntent(
        self, request: pb.RespondToIntentRequest, context: grpc.aio.ServicerContext
    ) -> pb.RespondToIntentResponse:
        check = Validator()
        intent_id = request.intent_id.strip()
        check.require(bool(intent_id), "intent_id", "is required")
        credit_code = check.credit_code(request.credit_code)
        response: dict[str, Any]
        if request.kind == res.RESPONSE_KIND_QUOTED:
            price = money_from(request.unit_price)
            validate_money(price, check, "unit_price", required=True)
            check.require(request.moq >= 0, "moq", "must not be negative")
            check.require(0 <= request.lead_time_days <= 365, "lead_time_days", "0 to 365 days")
            check.require(
                1 <= request.incoterm <= 11, "incoterm", "must be one of the Incoterms 2020 rules"
            )
            check.require(request.HasField("valid_until"), "valid_until", "is required")
            response = {
                "kind": int(ResponseKind.QUOTED),
                "unit_price": money_document(price),
                "moq": request.moq,
                "lead_time_days": request.lead_time_days,
                "incoterm": request.incoterm,
                "valid_until": request.valid_until.ToDatetime(UTC),
            }
        elif request.kind == res.RESPONSE_KIND_DECLINED:
            response = {
                "kind": int(ResponseKind.DECLINED),
                "reason": validate_text(request.reason, check, "reason", required=False),
            }
        else:
            check.require(False, "kind", "must be RESPONSE_KIND_QUOTED or RESPONSE_KIND_DECLINED")
            response = {}
        check.raise_if_invalid()

        async def respond(tx: Transaction) -> pb.RespondToIntentResponse:
            doc = await handlers.respond(tx, intent_id, credit_code, response, self._clock())
            return pb.RespondToIntentResponse(intent=intent_message(doc))

        # A response that comes too late first settles the intent (expired, or closed with
        # the quotes it has) in its own transaction; the response is then refused.
        await self._expire_if_due(intent_id)

        return await run_once(
            self._outbox, "RespondToIntent", request.request_id, pb.RespondToIntentResponse, respond
        )

    async def CloseIntent(
        self, request: pb.CloseIntentRequest, context: grpc.aio.ServicerContext
    ) -> pb.CloseIntentResponse:
        intent_id = _required(request.intent_id, "intent_id")
        buyer_id = _required(request.buyer_id, "buyer_id")

        async def close(tx: Transaction) -> pb.CloseIntentResponse:
            doc = await handlers.close_by_buyer(tx, intent_id, buyer_id)
            return pb.CloseIntentResponse(intent=intent_message(doc))

        return await run_once(
            self._outbox, "CloseIntent", request.request_id, pb.CloseIntentResponse, close
        )

    async def GetIntent(
        self, request: pb.GetIntentRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetIntentResponse:
        doc = await self._db[handlers.INTENTS].find_one({"_id": request.intent_id})
        if doc is None:
            raise NotFound(f"no intent {request.intent_id!r}")
        return pb.GetIntentResponse(intent=intent_message(doc))

    async def ListIntents(
        self, request: pb.ListIntentsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListIntentsResponse:
        query: dict[str, Any] = {"edition_id": request.edition_id}
        if request.buyer_id:
            query["buyer_id"] = request.buyer_id
        if request.recipient_credit_code:
            query["recipients"] = request.recipient_credit_code.strip().upper()
        if request.state:
            query["state"] = request.state
        docs, token = await self._page(handlers.INTENTS, query, request)
        return pb.ListIntentsResponse(
            intents=[intent_message(d) for d in docs], next_page_token=token
        )

    async def _page(self, collection: str, query: dict[str, Any], request: Any) -> tuple[list, str]:
        """One page in _id order, keyset-paginated."""
        limit = page_size(request.page_size, maximum=MAX_PAGE)
        after = decode_token(request.page_token)
        if after is not None:
            query = {**query, "_id": {"$gt": str(after.get("id", ""))}}
        cursor = self._db[collection].find(query).sort("_id", ASCENDING).limit(limit + 1)
        docs = [doc async for doc in cursor]
        token = encode_token({"id": docs[limit - 1]["_id"]}) if len(docs) > limit else ""
        return docs[:limit], token

    # Background ------------------------------------------------------------------------

    async def _expire_if_due(self, intent_id: str) -> bool:
        now = self._clock()

        async def expire(tx: Transaction) -> bool:
            return await handlers.expire_due(tx, intent_id, now)

        try:
            return await self._outbox.transact(expire)
        except NotFound:
            return False

    async def expire_due_intents(self) -> int:
        """One sweep: close or expire every open intent past its deadline."""
        now = self._clock()
        due: list[str] = []
        # One equality query per state: SecantusDB uses the (state, deadline) index for
        # those but scans the collection for $in.
        for state in OPEN_STATES:
            cursor = (
                self._db[handlers.INTENTS]
                .find({"state": int(state), "deadline": {"$lte": now}}, {"_id": 1})
                .limit(EXPIRY_BATCH)
            )
            due += [doc["_id"] async for doc in cursor]
        finished = 0
        for intent_id in due:
            finished += await self._expire_if_due(intent_id)
        return finished


async def build(context: ServiceContext, clock: Clock = _utc_now) -> list[ServiceBinding]:
    await handlers.ensure_indexes(context.db)
    settings = context.settings
    booth_channel = service_channel(settings.grpc_target("booth"))
    warehouse_channel = service_channel(settings.grpc_target("warehouse"))
    api = ExpoApi(
        context, BoothDirectory(booth_channel), WarehouseDirectory(warehouse_channel), clock
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
        )
    ]
