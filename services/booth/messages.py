"""The booth service's protobuf, and nothing else: API requests become domain commands
and queries (every wrong field reported at once), domain objects become API messages,
and domain events become the event payloads of chuhai/booth/v1/events.proto."""

from __future__ import annotations

import dataclasses
import enum
from datetime import UTC, date, datetime

from google.protobuf.message import Message

from booth import domain
from booth.domain import (
    DEFAULT_SCORING_SHEET,
    PRIORITY,
    Application,
    ApplicationQuery,
    ApplicationState,
    BoothQuota,
    BoothType,
    CreateFair,
    Exporter,
    ExporterProfile,
    Fair,
    Phase,
    Product,
    RegisterExporter,
    RejectApplication,
    RunAllocation,
    ScoringSheet,
    SubmitApplication,
    UpdateExporter,
    WithdrawApplication,
    Zone,
)
from booth.handlers import AllocationResult, ApplicationView, FairView, Withdrawal
from chuhai.booth.v1 import booth_service_pb2 as pb
from chuhai.booth.v1 import events_pb2 as events
from chuhai.booth.v1 import resources_pb2 as res
from runtime.adapters import topics
from runtime.adapters.pagination import PageRequest, page_request
from runtime.adapters.timestamps import moment, timestamp
from runtime.adapters.unit_of_work import OutgoingEvent
from runtime.kernel.validation import Validator, validated

# Requests --------------------------------------------------------------------------------

# The booth types a request may name, in the API's words.
BOOTH_TYPES = "must be BOOTH_TYPE_STANDARD or BOOTH_TYPE_BRAND"


def _booth_type(value: int, check: Validator, field: str = "booth_type") -> BoothType:
    # A wrong value is reported and stands in as STANDARD: the request is refused anyway.
    return check.member(value, BoothType, field, description=BOOTH_TYPES) or BoothType.STANDARD


def _required_moment(message: Message, name: str, check: Validator, field: str) -> datetime:
    found = moment(message, name, field)
    if not check.require(found is not None, field, "is required"):
        return datetime.min.replace(tzinfo=UTC)
    return found


def _profile(message: pb.ExporterProfile) -> ExporterProfile:
    return ExporterProfile(
        name=message.name,
        district=message.district,
        industry=message.industry,
        main_products=tuple(Product(p.name, p.hs_code) for p in message.main_products),
        export_turnover_usd=message.export_turnover_usd,
        specialised_innovative=message.specialised_innovative,
        brand_owner=message.brand_owner,
        high_tech_enterprise=message.high_tech_enterprise,
        past_fairs=tuple(message.past_fairs),
    )


def register_exporter_command(request: pb.RegisterExporterRequest) -> RegisterExporter:
    def build(check: Validator) -> RegisterExporter:
        check.request_id(request.request_id)
        return RegisterExporter.parse(check, request.credit_code, _profile(request.profile))

    return validated(build)


def update_exporter_command(request: pb.UpdateExporterRequest) -> UpdateExporter:
    def build(check: Validator) -> UpdateExporter:
        check.request_id(request.request_id)
        return UpdateExporter.parse(check, request.credit_code, _profile(request.profile))

    return validated(build)


def exporter_key(request: pb.GetExporterRequest) -> str:
    return request.credit_code.strip().upper()


def list_exporters_query(request: pb.ListExportersRequest) -> tuple[str, PageRequest]:
    check = Validator()
    page = page_request(
        request.page_size, request.page_token, ("exporters", request.district), check, key_length=1
    )
    check.raise_if_invalid()
    return request.district, page


def _phase(phase: res.Phase, index: int, check: Validator) -> Phase:
    # A date that is no date is reported and stands in as date.min (CreateFair skips it).
    return Phase(
        phase.name,
        check.date(phase.starts_on, f"phases[{index}].starts_on") or date.min,
        check.date(phase.ends_on, f"phases[{index}].ends_on") or date.min,
    )


def _quota(quota: res.BoothQuota, index: int, check: Validator) -> BoothQuota:
    path = f"booth_quotas[{index}]"
    return BoothQuota(
        booth_type=_booth_type(quota.booth_type, check, f"{path}.booth_type"),
        quota=quota.quota,
        application_deadline=_required_moment(
            quota, "application_deadline", check, f"{path}.application_deadline"
        ),
        allocation_deadline=_required_moment(
            quota, "allocation_deadline", check, f"{path}.allocation_deadline"
        ),
        fee_fen=quota.fee_fen,
    )


def _scoring_sheet(request: pb.CreateFairRequest) -> ScoringSheet:
    if not request.HasField("scoring_sheet"):
        return DEFAULT_SCORING_SHEET
    return ScoringSheet(
        **{f.name: getattr(request.scoring_sheet, f.name) for f in dataclasses.fields(ScoringSheet)}
    )


def create_fair_command(request: pb.CreateFairRequest) -> CreateFair:
    """Dates, booth types and moments are read first, into the same Validator: the fair's
    rules then skip what could not be read and judge the rest."""

    def build(check: Validator) -> CreateFair:
        check.request_id(request.request_id)
        return CreateFair.parse(
            check,
            fair_id=request.fair_id,
            name=request.name,
            organiser=request.organiser,
            session=request.session,
            venue=request.venue,
            phases=[_phase(p, i, check) for i, p in enumerate(request.phases)],
            zones=[Zone(z.code, z.name, frozenset(z.hs_headings)) for z in request.zones],
            quotas=[_quota(q, i, check) for i, q in enumerate(request.booth_quotas)],
            scoring_sheet=_scoring_sheet(request),
        )

    return validated(build)


def fair_key(request: pb.OpenFairRequest | pb.CloseFairRequest) -> str:
    def build(check: Validator) -> str:
        check.request_id(request.request_id)
        return check.identifier(request.fair_id, "fair_id")

    return validated(build)


def list_fairs_query(request: pb.ListFairsRequest) -> PageRequest:
    check = Validator()
    page = page_request(request.page_size, request.page_token, ("fairs",), check, key_length=1)
    check.raise_if_invalid()
    return page


def submit_application_command(request: pb.SubmitApplicationRequest) -> SubmitApplication:
    def build(check: Validator) -> SubmitApplication:
        check.request_id(request.request_id)
        return SubmitApplication(
            fair_id=check.identifier(request.fair_id, "fair_id"),
            booth_type=_booth_type(request.booth_type, check),
            hs_code=check.hs_code(request.main_product_hs_code, "main_product_hs_code"),
        )

    return validated(build)


def withdraw_application_command(
    request: pb.WithdrawApplicationRequest,
) -> WithdrawApplication:
    def build(check: Validator) -> WithdrawApplication:
        check.request_id(request.request_id)
        application_id = check.identifier(request.application_id, "application_id")
        return WithdrawApplication(application_id, request.reason)

    return validated(build)


def reject_application_command(request: pb.RejectApplicationRequest) -> RejectApplication:
    def build(check: Validator) -> RejectApplication:
        check.request_id(request.request_id)
        return RejectApplication.parse(check, request.application_id, request.reason)

    return validated(build)


def list_applications_query(
    request: pb.ListApplicationsRequest,
) -> tuple[ApplicationQuery, PageRequest]:
    check = Validator()
    query = ApplicationQuery(
        fair_id=request.fair_id,
        credit_code=request.credit_code.strip().upper(),
        state=check.member(
            request.state, ApplicationState, "state", required=False, description="unknown state"
        ),
        booth_type=check.member(
            request.booth_type, BoothType, "booth_type", required=False, description=BOOTH_TYPES
        ),
    )
    page = page_request(
        request.page_size,
        request.page_token,
        ("applications", query),
        check,
        key_length=len(PRIORITY),
    )
    check.raise_if_invalid()
    return query, page


def run_allocation_command(request: pb.RunAllocationRequest) -> RunAllocation:
    def build(check: Validator) -> RunAllocation:
        check.request_id(request.request_id)
        return RunAllocation(
            fair_id=check.identifier(request.fair_id, "fair_id"),
            booth_type=_booth_type(request.booth_type, check),
        )

    return validated(build)


def exhibitor_status_query(request: pb.GetExhibitorStatusRequest) -> tuple[str, str]:
    """The exporter's credit code and the fair's id."""
    check = Validator()
    credit_code = check.credit_code(request.credit_code)
    fair_id = check.identifier(request.fair_id, "fair_id")
    check.raise_if_invalid()
    return credit_code, fair_id


# Resources and responses -----------------------------------------------------------------


def exporter_message(exporter: Exporter) -> res.Exporter:
    profile = exporter.profile
    return res.Exporter(
        credit_code=exporter.credit_code,
        name=profile.name,
        district=profile.district,
        industry=profile.industry,
        main_products=[res.Product(name=p.name, hs_code=p.hs_code) for p in profile.main_products],
        export_turnover_usd=profile.export_turnover_usd,
        specialised_innovative=profile.specialised_innovative,
        brand_owner=profile.brand_owner,
        high_tech_enterprise=profile.high_tech_enterprise,
        past_fairs=profile.past_fairs,
        registered_at=timestamp(exporter.registered_at),
        updated_at=timestamp(exporter.updated_at),
    )


def list_exporters_response(page: tuple[list[Exporter], str]) -> pb.ListExportersResponse:
    exporters, token = page
    return pb.ListExportersResponse(
        exporters=[exporter_message(e) for e in exporters], next_page_token=token
    )


def fair_message(fair: Fair) -> res.Fair:
    return res.Fair(
        fair_id=fair.fair_id,
        name=fair.name,
        organiser=fair.organiser,
        session=fair.session,
        venue=fair.venue,
        phases=[
            res.Phase(name=p.name, starts_on=p.starts_on.isoformat(), ends_on=p.ends_on.isoformat())
            for p in fair.phases
        ],
        zones=[
            res.Zone(code=z.code, name=z.name, hs_headings=sorted(z.hs_headings))
            for z in fair.zones
        ],
        booth_quotas=[
            res.BoothQuota(
                booth_type=int(q.booth_type),
                quota=q.quota,
                application_deadline=timestamp(q.application_deadline),
                allocation_deadline=timestamp(q.allocation_deadline),
                fee_fen=q.fee_fen,
            )
            for q in fair.quotas
        ],
        scoring_sheet=res.ScoringSheet(**vars(fair.scoring_sheet)),
        status=int(fair.status),
        opens_at=timestamp(fair.opens_at),
    )


def get_fair_response(view: FairView) -> pb.GetFairResponse:
    return pb.GetFairResponse(fair=fair_message(view.fair), allocated=view.allocated)


def list_fairs_response(page: tuple[list[Fair], str]) -> pb.ListFairsResponse:
    fairs, token = page
    return pb.ListFairsResponse(fairs=[fair_message(f) for f in fairs], next_page_token=token)


def application_message(
    application: Application, waitlist_position: int = 0
) -> res.BoothApplication:
    return res.BoothApplication(
        application_id=application.application_id,
        fair_id=application.fair_id,
        credit_code=application.credit_code,
        booth_type=int(application.booth_type),
        main_product_hs_code=application.hs_code,
        zone_code=application.zone_code,
        state=int(application.state),
        score=application.score,
        booth_number=application.booth_number,
        penalty_fen=application.penalty_fen,
        submitted_at=timestamp(application.submitted_at),
        history=[
            res.Transition(state=int(t.state), at=timestamp(t.at), by=t.by, reason=t.reason)
            for t in application.history
        ],
        waitlist_position=waitlist_position,
    )


def view_message(view: ApplicationView) -> res.BoothApplication:
    return application_message(view.application, view.waitlist_position)


def list_applications_response(
    page: tuple[list[ApplicationView], str],
) -> pb.ListApplicationsResponse:
    views, token = page
    return pb.ListApplicationsResponse(
        applications=[view_message(v) for v in views], next_page_token=token
    )


def withdrawal_response(withdrawal: Withdrawal) -> pb.WithdrawApplicationResponse:
    response = pb.WithdrawApplicationResponse(
        application=application_message(withdrawal.application)
    )
    if withdrawal.promoted is not None:
        response.promoted.CopyFrom(application_message(withdrawal.promoted))
    return response


def allocation_response(result: AllocationResult) -> pb.RunAllocationResponse:
    return pb.RunAllocationResponse(
        quota=result.quota,
        allocated_total=result.allocated_total,
        newly_allocated=result.newly_allocated,
        newly_waitlisted=result.newly_waitlisted,
    )


def exhibitor_status_response(holder: Application | None) -> pb.GetExhibitorStatusResponse:
    if holder is None:
        return pb.GetExhibitorStatusResponse(exhibitor=False)
    response = pb.GetExhibitorStatusResponse(
        exhibitor=True,
        booth_type=int(holder.booth_type),
        booth_number=holder.booth_number,
        zone_code=holder.zone_code,
    )
    if holder.allocated_at is not None:
        response.allocated_at.CopyFrom(timestamp(holder.allocated_at))
    return response


# Events ----------------------------------------------------------------------------------

# Domain event -> its topic, its payload type (whose fields have the event's names) and
# the attribute that keys it (the aggregate's id: records of one aggregate stay in order).
_EVENTS: dict[type, tuple[topics.TopicSpec, type[Message], str]] = {
    domain.ExporterRegistered: (topics.BOOTH_EXPORTERS, events.ExporterRegistered, "credit_code"),
    domain.ExporterUpdated: (topics.BOOTH_EXPORTERS, events.ExporterUpdated, "credit_code"),
    domain.FairOpened: (topics.BOOTH_FAIRS, events.FairOpened, "fair_id"),
    domain.FairClosed: (topics.BOOTH_FAIRS, events.FairClosed, "fair_id"),
    # A run's summary is news about the fair: it follows the fair's other events.
    domain.AllocationCompleted: (topics.BOOTH_FAIRS, events.AllocationCompleted, "fair_id"),
    **{
        event_type: (topics.BOOTH_APPLICATIONS, payload_type, "application_id")
        for event_type, payload_type in (
            (domain.BoothApplicationSubmitted, events.BoothApplicationSubmitted),
            (domain.BoothApplicationScored, events.BoothApplicationScored),
            (domain.BoothAllocated, events.BoothAllocated),
            (domain.BoothApplicationWaitlisted, events.BoothApplicationWaitlisted),
            (domain.BoothApplicationRejected, events.BoothApplicationRejected),
            (domain.BoothApplicationWithdrawn, events.BoothApplicationWithdrawn),
            (domain.WaitlistPromoted, events.WaitlistPromoted),
        )
    },
}


def _fair_created(event: domain.FairCreated) -> events.FairCreated:
    return events.FairCreated(
        fair_id=event.fair_id,
        name=event.name,
        session=event.session,
        opens_at=timestamp(event.opens_at),
        quotas=[
            events.FairCreated.Quota(
                booth_type=int(q.booth_type),
                quota=q.quota,
                application_deadline=timestamp(q.application_deadline),
                allocation_deadline=timestamp(q.allocation_deadline),
            )
            for q in event.quotas
        ],
    )


def encode_event(event: object) -> OutgoingEvent:
    """A booth domain event as it goes into the outbox."""
    if isinstance(event, domain.FairCreated):
        return OutgoingEvent(topics.BOOTH_FAIRS, _fair_created(event), event.fair_id)
    topic, payload_type, key = _EVENTS[type(event)]
    fields = {
        name: int(value) if isinstance(value, enum.IntEnum) else value
        for name, value in vars(event).items()
    }
    return OutgoingEvent(topic, payload_type(**fields), getattr(event, key))
