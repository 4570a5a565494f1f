"""The warehouse service's protobuf boundary, and the only module that knows protobuf:
requests to domain commands (validated with the kernel Validator, naming every wrong
field at once), domain objects to the API's resources and responses, and domain events
to the payloads of protos/chuhai/warehouse/v1/events.proto."""

from __future__ import annotations

from datetime import date

from chuhai.warehouse.v1 import events_pb2
from chuhai.warehouse.v1 import resources_pb2 as pb
from chuhai.warehouse.v1 import warehouse_service_pb2 as api
from runtime.adapters import topics
from runtime.adapters.pagination import PageRequest, page_request
from runtime.adapters.timestamps import timestamp
from runtime.adapters.unit_of_work import OutgoingEvent
from runtime.kernel.validation import Validator, validated
from warehouse import domain
from warehouse.domain import (
    Booking,
    Cancellation,
    DayUse,
    Match,
    Operator,
    Period,
    ProfileUpdate,
    PublicRecognition,
    Registration,
    Reservation,
    ReservationFilter,
    SearchCriteria,
    Space,
    Suspension,
    Utilisation,
    Warehouse,
    WarehouseProfile,
)
from warehouse.geo import GeoPoint
from warehouse.handlers import ReservationPage, SearchPage

MAX_PAGE_SIZE = 100
# The sort keys a page token carries: search (distance, code); reservations
# (reserved_at, id).
SEARCH_KEY_LENGTH = 2
RESERVATION_KEY_LENGTH = 2


# Values.


def space(message: pb.Space) -> Space:
    return Space(message.pallet_positions, message.cubic_metres)


def space_message(value: Space) -> pb.Space:
    return pb.Space(pallet_positions=value.pallet_positions, cubic_metres=value.cubic_metres)


def point(message: pb.GeoPoint) -> GeoPoint:
    return GeoPoint(message.latitude, message.longitude)


def profile_draft(message: pb.WarehouseProfile) -> WarehouseProfile:
    """The request's profile as the domain sees it before validation: absent messages
    stay absent (None) so that validation can tell them from zeros."""
    recognition = None
    if message.HasField("recognition"):
        recognition = PublicRecognition(
            message.recognition.recognised_by, message.recognition.since
        )
    return WarehouseProfile(
        name=message.name,
        operator=Operator(
            message.operator.kind, message.operator.name, message.operator.credit_code
        ),
        country_code=message.country_code,
        city=message.city,
        address=message.address,
        location=point(message.location) if message.HasField("location") else None,
        area_m2=message.area_m2,
        capacity=space(message.capacity),
        services=tuple(message.services),
        recognition=recognition,
        delivery_countries=tuple(message.delivery_countries),
    )


# Requests to commands and queries.


def registration(request: api.RegisterWarehouseRequest, today: date) -> Registration:
    """``today`` bounds the recognition date: it is validated with the rest."""

    def build(check: Validator) -> Registration:
        check.request_id(request.request_id)
        return domain.registration(request.code, profile_draft(request.profile), today, check)

    return validated(build)


def profile_update(request: api.UpdateWarehouseRequest) -> ProfileUpdate:
    def build(check: Validator) -> ProfileUpdate:
        check.request_id(request.request_id)
        return ProfileUpdate(
            domain.warehouse_code(request.code, check),
            profile_draft(request.profile),
            tuple(request.update_mask.paths),
        )

    return validated(build)


def suspension(request: api.SuspendWarehouseRequest) -> Suspension:
    def build(check: Validator) -> Suspension:
        check.request_id(request.request_id)
        return domain.suspension(request.code, request.reason, check)

    return validated(build)


def reactivation(request: api.ReactivateWarehouseRequest) -> str:
    """The code of the warehouse to reactivate."""

    def build(check: Validator) -> str:
        check.request_id(request.request_id)
        return domain.warehouse_code(request.code, check)

    return validated(build)


def warehouse_lookup(request: api.GetWarehouseRequest) -> str:
    return validated(lambda check: domain.warehouse_code(request.code, check))


def search(request: api.SearchWarehousesRequest) -> tuple[SearchCriteria, PageRequest]:
    # A page token is bound to everything in the request but the paging itself.
    query = api.SearchWarehousesRequest()
    query.CopyFrom(request)
    query.ClearField("page_size")
    query.ClearField("page_token")

    def build(check: Validator) -> tuple[SearchCriteria, PageRequest]:
        criteria = domain.search_criteria(
            check,
            country_code=request.country_code,
            serving_country=request.serving_country,
            services=request.services,
            available_from=request.available_from,
            available_until=request.available_until,
            min_free=space(request.min_free),
            near=point(request.near) if request.HasField("near") else None,
            within_km=request.within_km,
            include_suspended=request.include_suspended,
        )
        page = page_request(
            request.page_size,
            request.page_token,
            query.SerializeToString(deterministic=True),
            check,
            key_length=SEARCH_KEY_LENGTH,
            maximum=MAX_PAGE_SIZE,
        )
        return criteria, page

    return validated(build)


def booking(request: api.ReserveCapacityRequest) -> Booking:
    def build(check: Validator) -> Booking:
        check.request_id(request.request_id)
        return domain.booking(
            request.warehouse_code,
            space(request.space),
            request.start_date,
            request.end_date,
            check,
        )

    return validated(build)


def cancellation(request: api.CancelReservationRequest) -> Cancellation:
    def build(check: Validator) -> Cancellation:
        check.request_id(request.request_id)
        return domain.cancellation(request.reservation_id, request.reason, check)

    return validated(build)


def reservation_lookup(request: api.GetReservationRequest) -> str:
    return validated(lambda check: domain.reservation_id(request.reservation_id, check))


def reservation_listing(
    request: api.ListReservationsRequest,
) -> tuple[ReservationFilter, PageRequest]:
    def build(check: Validator) -> tuple[ReservationFilter, PageRequest]:
        which = domain.reservation_filter(
            request.warehouse_code, request.exporter_credit_code, request.status, check
        )
        page = page_request(
            request.page_size,
            request.page_token,
            which,
            check,
            key_length=RESERVATION_KEY_LENGTH,
            maximum=MAX_PAGE_SIZE,
        )
        return which, page

    return validated(build)


def utilisation_query(request: api.GetUtilisationRequest) -> tuple[str, Period]:
    def build(check: Validator) -> tuple[str, Period]:
        code = domain.warehouse_code(request.warehouse_code, check, "warehouse_code")
        days = domain.period(request.start_date, request.end_date, check, "start_date", "end_date")
        # The placeholder period stands only beside a violation: validated() raises then.
        return code, days or Period(date.min, date.min)

    return validated(build)


# Domain objects to resources and responses.


def profile_message(profile: WarehouseProfile) -> pb.WarehouseProfile:
    message = pb.WarehouseProfile(
        name=profile.name,
        operator=pb.Operator(
            kind=profile.operator.kind,
            name=profile.operator.name,
            credit_code=profile.operator.credit_code,
        ),
        country_code=profile.country_code,
        city=profile.city,
        address=profile.address,
        area_m2=profile.area_m2,
        capacity=space_message(profile.capacity),
        services=list(profile.services),
        delivery_countries=list(profile.delivery_countries),
    )
    if profile.location is not None:
        message.location.CopyFrom(
            pb.GeoPoint(latitude=profile.location.latitude, longitude=profile.location.longitude)
        )
    if profile.recognition is not None:
        message.recognition.CopyFrom(
            pb.PublicRecognition(
                recognised_by=profile.recognition.recognised_by,
                since=profile.recognition.since,
            )
        )
    return message


def warehouse_message(warehouse: Warehouse) -> pb.Warehouse:
    return pb.Warehouse(
        code=warehouse.code,
        profile=profile_message(warehouse.profile),
        status=warehouse.status,
        suspension_reason=warehouse.suspension_reason,
        registered_at=timestamp(warehouse.registered_at),
        updated_at=timestamp(warehouse.updated_at),
        operator_id=warehouse.operator_id,
    )


def reservation_message(reservation: Reservation) -> pb.Reservation:
    message = pb.Reservation(
        reservation_id=reservation.reservation_id,
        warehouse_code=reservation.warehouse_code,
        country_code=reservation.country_code,
        exporter_credit_code=reservation.exporter_credit_code,
        space=space_message(reservation.space),
        start_date=reservation.period.start.isoformat(),
        end_date=reservation.period.end.isoformat(),
        status=reservation.status,
        reserved_at=timestamp(reservation.reserved_at),
        cancellation_reason=reservation.cancellation_reason,
    )
    if reservation.cancelled_at is not None:
        message.cancelled_at.CopyFrom(timestamp(reservation.cancelled_at))
    return message


def match_message(match: Match) -> pb.WarehouseMatch:
    message = pb.WarehouseMatch(warehouse=warehouse_message(match.warehouse))
    if match.distance_km is not None:
        message.distance_km = match.distance_km
    if match.free is not None:
        message.free.CopyFrom(space_message(match.free))
    return message


def day_use_message(use: DayUse) -> pb.DayUtilisation:
    return pb.DayUtilisation(
        date=use.day.isoformat(),
        reserved=space_message(use.reserved),
        free=space_message(use.free),
        pallet_ratio=use.pallet_ratio,
        cubic_metre_ratio=use.cubic_metre_ratio,
    )


def registered(warehouse: Warehouse) -> api.RegisterWarehouseResponse:
    return api.RegisterWarehouseResponse(warehouse=warehouse_message(warehouse))


def updated(warehouse: Warehouse) -> api.UpdateWarehouseResponse:
    return api.UpdateWarehouseResponse(warehouse=warehouse_message(warehouse))


def suspended(warehouse: Warehouse) -> api.SuspendWarehouseResponse:
    return api.SuspendWarehouseResponse(warehouse=warehouse_message(warehouse))


def reactivated(warehouse: Warehouse) -> api.ReactivateWarehouseResponse:
    return api.ReactivateWarehouseResponse(warehouse=warehouse_message(warehouse))


def found_warehouse(warehouse: Warehouse) -> api.GetWarehouseResponse:
    return api.GetWarehouseResponse(warehouse=warehouse_message(warehouse))


def search_results(page: SearchPage) -> api.SearchWarehousesResponse:
    return api.SearchWarehousesResponse(
        matches=[match_message(match) for match in page.matches],
        next_page_token=page.next_page_token,
        total_size=page.total_size,
    )


def reserved(reservation: Reservation) -> api.ReserveCapacityResponse:
    return api.ReserveCapacityResponse(reservation=reservation_message(reservation))


def cancelled(reservation: Reservation) -> api.CancelReservationResponse:
    return api.CancelReservationResponse(reservation=reservation_message(reservation))


def found_reservation(reservation: Reservation) -> api.GetReservationResponse:
    return api.GetReservationResponse(reservation=reservation_message(reservation))


def reservation_list(page: ReservationPage) -> api.ListReservationsResponse:
    return api.ListReservationsResponse(
        reservations=[reservation_message(r) for r in page.reservations],
        next_page_token=page.next_page_token,
    )


def utilisation_report(usage: Utilisation) -> api.GetUtilisationResponse:
    return api.GetUtilisationResponse(
        warehouse_code=usage.warehouse_code,
        capacity=space_message(usage.capacity),
        days=[day_use_message(use) for use in usage.days],
    )


# Events. Registry and booking events are keyed by warehouse code: every change to one
# warehouse, its registry entry or its load, is in order on one partition.


def encode_event(event: object) -> OutgoingEvent:
    """A domain event as the payload, topic and key it is published with."""
    match event:
        case domain.WarehouseRegistered():
            return OutgoingEvent(
                topics.WAREHOUSE_WAREHOUSES,
                events_pb2.WarehouseRegistered(
                    code=event.code,
                    name=event.name,
                    country_code=event.country_code,
                    city=event.city,
                    capacity_pallet_positions=event.capacity.pallet_positions,
                    capacity_cubic_metres=event.capacity.cubic_metres,
                    services=list(event.services),
                    publicly_recognised=event.publicly_recognised,
                    operator_id=event.operator_id,
                ),
                event.code,
            )
        case domain.WarehouseUpdated():
            return OutgoingEvent(
                topics.WAREHOUSE_WAREHOUSES,
                events_pb2.WarehouseUpdated(
                    code=event.code,
                    changed_fields=list(event.changed_fields),
                    name=event.name,
                    country_code=event.country_code,
                    city=event.city,
                    capacity_pallet_positions=event.capacity.pallet_positions,
                    capacity_cubic_metres=event.capacity.cubic_metres,
                    services=list(event.services),
                    publicly_recognised=event.publicly_recognised,
                    previous_country_code=event.previous_country_code,
                    previous_capacity_pallet_positions=event.previous_capacity.pallet_positions,
                    previous_capacity_cubic_metres=event.previous_capacity.cubic_metres,
                ),
                event.code,
            )
        case domain.WarehouseSuspended():
            return OutgoingEvent(
                topics.WAREHOUSE_WAREHOUSES,
                events_pb2.WarehouseSuspended(
                    code=event.code, country_code=event.country_code, reason=event.reason
                ),
                event.code,
            )
        case domain.WarehouseReactivated():
            return OutgoingEvent(
                topics.WAREHOUSE_WAREHOUSES,
                events_pb2.WarehouseReactivated(code=event.code, country_code=event.country_code),
                event.code,
            )
        case domain.CapacityReserved():
            return OutgoingEvent(
                topics.WAREHOUSE_RESERVATIONS,
                events_pb2.CapacityReserved(
                    reservation_id=event.reservation_id,
                    warehouse_code=event.warehouse_code,
                    country_code=event.country_code,
                    exporter_credit_code=event.exporter_credit_code,
                    pallet_positions=event.space.pallet_positions,
                    cubic_metres=event.space.cubic_metres,
                    start_date=event.period.start.isoformat(),
                    end_date=event.period.end.isoformat(),
                    days=event.period.days,
                    operator_id=event.operator_id,
                    peak_utilisation_percent=event.peak_utilisation_percent,
                ),
                event.warehouse_code,
            )
        case domain.ReservationCancelled():
            return OutgoingEvent(
                topics.WAREHOUSE_RESERVATIONS,
                events_pb2.ReservationCancelled(
                    reservation_id=event.reservation_id,
                    warehouse_code=event.warehouse_code,
                    country_code=event.country_code,
                    exporter_credit_code=event.exporter_credit_code,
                    pallet_positions=event.space.pallet_positions,
                    cubic_metres=event.space.cubic_metres,
                    start_date=event.period.start.isoformat(),
                    end_date=event.period.end.isoformat(),
                    days=event.period.days,
                    reason=event.reason,
                    operator_id=event.operator_id,
                ),
                event.warehouse_code,
            )
    raise TypeError(f"not a warehouse event: {event!r}")
