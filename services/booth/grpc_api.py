"""The booth service's public gRPC API: requests are validated into domain values,
use cases run in one transaction each, results go back as messages."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from pymongo import ASCENDING

from booth import handlers
from booth.documents import (
    application_message,
    exporter_message,
    fair_from,
    fair_message,
)
from booth.domain import (
    DEFAULT_SCORING_SHEET,
    BoothQuota,
    BoothType,
    ExporterProfile,
    Fair,
    FairStatus,
    Phase,
    Product,
    ScoringSheet,
    State,
    Zone,
    validate_fair,
    validate_hs_code,
    validate_profile,
)
from chuhai.booth.v1 import booth_service_pb2 as pb
from chuhai.booth.v1 import booth_service_pb2_grpc as pb_grpc
from runtime.adapters.grpc_server import ServiceBinding
from runtime.adapters.idempotency import run_once
from runtime.adapters.outbox import Transaction
from runtime.adapters.pagination import decode_token, encode_token, page_size
from runtime.adapters.service import ServiceContext
from runtime.adapters.timestamps import timestamp
from runtime.kernel.errors import FieldViolation, InvalidArgument, NotFound
from runtime.kernel.validation import Validator

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _profile(message: pb.ExporterProfile, check: Validator) -> ExporterProfile:
    return validate_profile(
        ExporterProfile(
            name=message.name,
            district=message.district,
            industry=message.industry,
            main_products=tuple(Product(p.name, p.hs_code) for p in message.main_products),
            export_turnover_usd=message.export_turnover_usd,
            specialised_innovative=message.specialised_innovative,
            brand_owner=message.brand_owner,
            high_tech_enterprise=message.high_tech_enterprise,
            past_fairs=tuple(message.past_fairs),
        ),
        check,
    )


def _booth_type(value: int, check: Validator, field: str = "booth_type") -> BoothType:
    if value in BoothType._value2member_map_:
        return BoothType(value)
    check.require(False, field, "must be BOOTH_TYPE_STANDARD or BOOTH_TYPE_BRAND")
    return BoothType.STANDARD


def _date(text: str, check: Validator, field: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        check.require(False, field, "must be a date YYYY-MM-DD")
        return date.min


def _moment(message: Any, name: str, check: Validator, field: str) -> datetime:
    if not message.HasField(name):
        check.require(False, field, "is required")
        return datetime.min.replace(tzinfo=UTC)
    stamp: Timestamp = getattr(message, name)
    return stamp.ToDatetime(UTC)


def _fair(request: pb.CreateFairRequest) -> Fair:
    check = Validator()
    phases = tuple(
        Phase(
            p.name,
            _date(p.starts_on, check, f"phases[{i}].starts_on"),
            _date(p.ends_on, check, f"phases[{i}].ends_on"),
        )
        for i, p in enumerate(request.phases)
    )
    quotas = tuple(
        BoothQuota(
            booth_type=_booth_type(q.booth_type, check, f"booth_quotas[{i}].booth_type"),
            quota=q.quota,
            application_deadline=_moment(
                q, "application_deadline", check, f"booth_quotas[{i}].application_deadline"
            ),
            allocation_deadline=_moment(
                q, "allocation_deadline", check, f"booth_quotas[{i}].allocation_deadline"
            ),
            fee_fen=q.fee_fen,
        )
        for i, q in enumerate(request.booth_quotas)
    )
    check.raise_if_invalid()
    sheet = DEFAULT_SCORING_SHEET
    if request.HasField("scoring_sheet"):
        s = request.scoring_sheet
        sheet = ScoringSheet(
            points_per_million_usd=s.points_per_million_usd,
            turnover_cap_points=s.turnover_cap_points,
            points_per_past_fair=s.points_per_past_fair,
            participation_cap_points=s.participation_cap_points,
            brand_owner_points=s.brand_owner_points,
            specialised_innovative_points=s.specialised_innovative_points,
            high_tech_points=s.high_tech_points,
        )
    first_day = min((p.starts_on for p in phases), default=date.max)
    fair = Fair(
        fair_id=request.fair_id.strip(),
        name=request.name.strip(),
        organiser=request.organiser.strip(),
        session=request.session.strip(),
        venue=request.venue.strip(),
        phases=phases,
        zones=tuple(
            Zone(z.code.strip(), z.name.strip(), frozenset(h.strip() for h in z.hs_headings))
            for z in request.zones
        ),
        quotas=quotas,
        # A fair opens at the start of its first phase (UTC midnight of that day).
        opens_at=datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)
        if phases
        else datetime.max.replace(tzinfo=UTC),
        scoring_sheet=sheet,
    )
    validate_fair(fair, check)
    check.raise_if_invalid()
    return fair


def _required_id(value: str, field: str) -> str:
    value = value.strip()
    if not value:
        raise InvalidArgument(FieldViolation(field, "is required"))
    return value


class BoothApi(pb_grpc.BoothServiceServicer):
    def __init__(self, context: ServiceContext, clock: Clock = _utc_now) -> None:
        self._db = context.db
        self._outbox = context.outbox
        self._clock = clock
        # Allocations and withdrawals of one fair and booth type all write its quota
        # counter; taking turns in-process spares them a storm of transaction conflicts
        # (the transaction, not this lock, is what keeps the quota exact).
        self._allocation_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    # Exporters -------------------------------------------------------------------------

    async def RegisterExporter(
        self, request: pb.RegisterExporterRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterExporterResponse:
        check = Validator()
        credit_code = check.credit_code(request.credit_code)
        profile = _profile(request.profile, check)
        check.raise_if_invalid()

        async def register(tx: Transaction) -> pb.RegisterExporterResponse:
            doc = await handlers.register_exporter(tx, credit_code, profile, self._clock())
            return pb.RegisterExporterResponse(exporter=exporter_message(doc))

        return await run_once(
            self._outbox,
            "RegisterExporter",
            request.request_id,
            pb.RegisterExporterResponse,
            register,
        )

    async def UpdateExporter(
        self, request: pb.UpdateExporterRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateExporterResponse:
        check = Validator()
        credit_code = check.credit_code(request.credit_code)
        profile = _profile(request.profile, check)
        check.raise_if_invalid()

        async def update(tx: Transaction) -> pb.UpdateExporterResponse:
            doc = await handlers.update_exporter(tx, credit_code, profile, self._clock())
            return pb.UpdateExporterResponse(exporter=exporter_message(doc))

        return await run_once(
            self._outbox, "UpdateExporter", request.request_id, pb.UpdateExporterResponse, update
        )

    async def GetExporter(
        self, request: pb.GetExporterRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetExporterResponse:
        credit_code = request.credit_code.strip().upper()
        doc = await self._db[handlers.EXPORTERS].find_one({"_id": credit_code})
        if doc is None:
            raise NotFound(f"no exporter with credit code {request.credit_code!r}")
        return pb.GetExporterResponse(exporter=exporter_message(doc))

    async def ListExporters(
        self, request: pb.ListExportersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListExportersResponse:
        limit = page_size(request.page_size)
        query: dict[str, Any] = {}
        if request.district:
            query["district"] = request.district
        after = decode_token(request.page_token)
        if after is not None:
            query["_id"] = {"$gt": str(after.get("id", ""))}
        cursor = self._db[handlers.EXPORTERS].find(query).sort("_id", ASCENDING).limit(limit + 1)
        docs = [doc async for doc in cursor]
        token = encode_token({"id": docs[limit - 1]["_id"]}) if len(docs) > limit else ""
        return pb.ListExportersResponse(
            exporters=[exporter_message(d) for d in docs[:limit]], next_page_token=token
        )

    # Fairs -----------------------------------------------------------------------------

    async def CreateFair(
        self, request: pb.CreateFairRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateFairResponse:
        fair = _fair(request)

        async def create(tx: Transaction) -> pb.CreateFairResponse:
            created = await handlers.create_fair(tx, fair, self._clock())
            return pb.CreateFairResponse(fair=fair_message(created))

        return await run_once(
            self._outbox, "CreateFair", request.request_id, pb.CreateFairResponse, create
        )

    async def _set_status(
        self, method: str, request: Any, target: FairStatus, response_type: Any
    ) -> Any:
        fair_id = _required_id(request.fair_id, "fair_id")

        async def change(tx: Transaction) -> Any:
            fair = await handlers.set_fair_status(tx, fair_id, target)
            return response_type(fair=fair_message(fair))

        return await run_once(self._outbox, method, request.request_id, response_type, change)

    async def OpenFair(
        self, request: pb.OpenFairRequest, context: grpc.aio.ServicerContext
    ) -> pb.OpenFairResponse:
        return await self._set_status("OpenFair", request, FairStatus.OPEN, pb.OpenFairResponse)

    async def CloseFair(
        self, request: pb.CloseFairRequest, context: grpc.aio.ServicerContext
    ) -> pb.CloseFairResponse:
        return await self._set_status("CloseFair", request, FairStatus.CLOSED, pb.CloseFairResponse)

    async def GetFair(
        self, request: pb.GetFairRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetFairResponse:
        doc = await self._db[handlers.FAIRS].find_one({"_id": request.fair_id})
        if doc is None:
            raise NotFound(f"no fair {request.fair_id!r}")
        fair = fair_from(doc)
        counters = {
            c["_id"]: c
            async for c in self._db[handlers.QUOTA_COUNTERS].find(
                {
                    "_id": {
                        "$in": [
                            handlers.counter_id(fair.fair_id, q.booth_type) for q in fair.quotas
                        ]
                    }
                }
            )
        }
        allocated = [
            counters[handlers.counter_id(fair.fair_id, q.booth_type)]["allocated"]
            for q in fair.quotas
        ]
        return pb.GetFairResponse(fair=fair_message(fair), allocated=allocated)

    async def ListFairs(
        self, request: pb.ListFairsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListFairsResponse:
        limit = page_size(request.page_size)
        after = decode_token(request.page_token)
        query = {"_id": {"$gt": str(after.get("id", ""))}} if after else {}
        cursor = self._db[handlers.FAIRS].find(query).sort("_id", ASCENDING).limit(limit + 1)
        docs = [doc async for doc in cursor]
        token = encode_token({"id": docs[limit - 1]["_id"]}) if len(docs) > limit else ""
        return pb.ListFairsResponse(
            fairs=[fair_message(fair_from(d)) for d in docs[:limit]], next_page_token=token
        )

    # Applications ----------------------------------------------------------------------

    async def SubmitApplication(
        self, request: pb.SubmitApplicationRequest, context: grpc.aio.ServicerContext
    ) -> pb.SubmitApplicationResponse:
        check = Validator()
        fair_id = request.fair_id.strip()
        check.require(bool(fair_id), "fair_id", "is required")
        credit_code = check.credit_code(request.credit_code)
        booth_type = _booth_type(request.booth_type, check)
        hs_code = validate_hs_code(request.main_product_hs_code, check, "main_product_hs_code")
        check.raise_if_invalid()

        async def submit(tx: Transaction) -> pb.SubmitApplicationResponse:
            doc = await handlers.submit_application(
                tx, fair_id, credit_code, booth_type, hs_code, self._clock()
            )
            return pb.SubmitApplicationResponse(application=application_message(doc))

        return await run_once(
            self._outbox,
            "SubmitApplication",
            request.request_id,
            pb.SubmitApplicationResponse,
            submit,
        )

    def _lock_for(self, fair_id: str, booth_type: int) -> asyncio.Lock:
        return self._allocation_locks[f"{fair_id}:{booth_type}"]

    async def WithdrawApplication(
        self, request: pb.WithdrawApplicationRequest, context: grpc.aio.ServicerContext
    ) -> pb.WithdrawApplicationResponse:
        application_id = _required_id(request.application_id, "application_id")
        found = await self._db[handlers.APPLICATIONS].find_one({"_id": application_id})
        if found is None:
            raise NotFound(f"no application {application_id!r}")

        async def withdraw(tx: Transaction) -> pb.WithdrawApplicationResponse:
            result = await handlers.withdraw_application(
                tx, application_id, request.reason, self._clock()
            )
            response = pb.WithdrawApplicationResponse(
                application=application_message(result.application)
            )
            if result.promoted is not None:
                response.promoted.CopyFrom(application_message(result.promoted))
            return response

        async with self._lock_for(found["fair_id"], found["booth_type"]):
            return await run_once(
                self._outbox,
                "WithdrawApplication",
                request.request_id,
                pb.WithdrawApplicationResponse,
                withdraw,
            )

    async def RejectApplication(
        self, request: pb.RejectApplicationRequest, context: grpc.aio.ServicerContext
    ) -> pb.RejectApplicationResponse:
        application_id = _required_id(request.application_id, "application_id")
        reason = _required_id(request.reason, "reason")

        async def reject(tx: Transaction) -> pb.RejectApplicationResponse:
            doc = await handlers.reject_application(tx, application_id, reason, self._clock())
            return pb.RejectApplicationResponse(application=application_message(doc))

        return await run_once(
            self._outbox,
            "RejectApplication",
            request.request_id,
            pb.RejectApplicationResponse,
            reject,
        )

    async def GetApplication(
        self, request: pb.GetApplicationRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetApplicationResponse:
        doc = await self._db[handlers.APPLICATIONS].find_one({"_id": request.application_id})
        if doc is None:
            raise NotFound(f"no application {request.application_id!r}")
        position = await handlers.waitlist_position(self._db, doc)
        return pb.GetApplicationResponse(application=application_message(doc, position))

    async def ListApplications(
        self, request: pb.ListApplicationsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListApplicationsResponse:
        check = Validator()
        query: dict[str, Any] = {}
        if request.fair_id:
            query["fair_id"] = request.fair_id
        if request.credit_code:
            query["credit_code"] = request.credit_code.strip().upper()
        if request.state:
            check.require(request.state in State._value2member_map_, "state", "unknown state")
            query["state"] = request.state
        if request.booth_type:
            query["booth_type"] = int(_booth_type(request.booth_type, check))
        limit = page_size(request.page_size)
        after = decode_token(request.page_token)
        check.raise_if_invalid()
        if after is not None:
            try:
                score, submitted_at, last_id = (
                    int(after["score"]),
                    datetime.fromisoformat(after["at"]),
                    str(after["id"]),
                )
            except (KeyError, ValueError, TypeError) as error:
                raise InvalidArgument(
                    FieldViolation("page_token", "not a token from this list")
                ) from error
            query["$or"] = [
                {"score": {"$lt": score}},
                {"score": score, "submitted_at": {"$gt": submitted_at}},
                {"score": score, "submitted_at": submitted_at, "_id": {"$gt": last_id}},
            ]
        cursor = (
            self._db[handlers.APPLICATIONS]
            .find(query)
            .sort(handlers.PRIORITY_ORDER)
            .limit(limit + 1)
        )
        docs = [doc async for doc in cursor]
        page = docs[:limit]
        token = ""
        if len(docs) > limit:
            last = page[-1]
            token = encode_token(
                {"score": last["score"], "at": last["submitted_at"].isoformat(), "id": last["_id"]}
            )
        messages = [
            application_message(d, await handlers.waitlist_position(self._db, d)) for d in page
        ]
        return pb.ListApplicationsResponse(applications=messages, next_page_token=token)

    async def RunAllocation(
        self, request: pb.RunAllocationRequest, context: grpc.aio.ServicerContext
    ) -> pb.RunAllocationResponse:
        check = Validator()
        fair_id = request.fair_id.strip()
        check.require(bool(fair_id), "fair_id", "is required")
        booth_type = _booth_type(request.booth_type, check)
        check.raise_if_invalid()

        async def allocate(tx: Transaction) -> pb.RunAllocationResponse:
            result = await handlers.run_allocation(tx, fair_id, booth_type, self._clock())
            return pb.RunAllocationResponse(
                quota=result.quota,
                allocated_total=result.allocated_total,
                newly_allocated=result.newly_allocated,
                newly_waitlisted=result.newly_waitlisted,
            )

        async with self._lock_for(fair_id, int(booth_type)):
            return await run_once(
                self._outbox,
                "RunAllocation",
                request.request_id,
                pb.RunAllocationResponse,
                allocate,
            )

    async def GetExhibitorStatus(
        self, request: pb.GetExhibitorStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetExhibitorStatusResponse:
        check = Validator()
        credit_code = check.credit_code(request.credit_code)
        check.require(bool(request.fair_id.strip()), "fair_id", "is required")
        check.raise_if_invalid()
        if await self._db[handlers.FAIRS].count_documents({"_id": request.fair_id}) == 0:
            raise NotFound(f"no fair {request.fair_id!r}")
        doc = await self._db[handlers.APPLICATIONS].find_one(
            {
                "fair_id": request.fair_id,
                "credit_code": credit_code,
                "state": int(State.ALLOCATED),
            }
        )
        if doc is None:
            return pb.GetExhibitorStatusResponse(exhibitor=False)
        return pb.GetExhibitorStatusResponse(
            exhibitor=True,
            booth_type=doc["booth_type"],
            booth_number=doc["booth_number"],
            zone_code=doc["zone_code"],
            allocated_at=timestamp(doc["allocated_at"]),
        )


async def build(context: ServiceContext, clock: Clock = _utc_now) -> list[ServiceBinding]:
    await handlers.ensure_indexes(context.db)
    return [
        ServiceBinding(
            full_name=pb.DESCRIPTOR.services_by_name["BoothService"].full_name,
            servicer=BoothApi(context, clock),
            add_to_server=pb_grpc.add_BoothServiceServicer_to_server,
        )
    ]
