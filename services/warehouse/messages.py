"""Conversions between the warehouse domain and its protobuf messages: the API's
resources and the events recorded in the outbox."""

from __future__ import annotations

from chuhai.warehouse.v1 import events_pb2
from chuhai.warehouse.v1 import resources_pb2 as pb
from runtime.adapters.timestamps import timestamp
from warehouse.domain import (
    DayUse,
    Match,
    Operator,
    ProfileChange,
    PublicRecognition,
    Reservation,
    Space,
    Warehouse,
    WarehouseProfile,
)
from warehouse.geo import GeoPoint


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


# Events.


def warehouse_registered(warehouse: Warehouse) -> events_pb2.WarehouseRegistered:
    return events_pb2.WarehouseRegistered(warehouse=warehouse_message(warehouse))


def warehouse_updated(change: ProfileChange) -> events_pb2.WarehouseUpdated:
    return events_pb2.WarehouseUpdated(
        warehouse=warehouse_message(change.warehouse),
        changed_fields=list(change.changed_fields),
        previous_country_code=change.previous.country_code,
        previous_capacity=space_message(change.previous.capacity),
    )


def warehouse_suspended(warehouse: Warehouse) -> events_pb2.WarehouseSuspended:
    return events_pb2.WarehouseSuspended(
        warehouse=warehouse_message(warehouse), reason=warehouse.suspension_reason
    )


def warehouse_reactivated(warehouse: Warehouse) -> events_pb2.WarehouseReactivated:
    return events_pb2.WarehouseReactivated(warehouse=warehouse_message(warehouse))


def capacity_reserved(reservation: Reservation) -> events_pb2.CapacityReserved:
    return events_pb2.CapacityReserved(
        reservation_id=reservation.reservation_id,
        warehouse_code=reservation.warehouse_code,
        country_code=reservation.country_code,
        exporter_credit_code=reservation.exporter_credit_code,
        pallet_positions=reservation.space.pallet_positions,
        cubic_metres=reservation.space.cubic_metres,
        start_date=reservation.period.start.isoformat(),
        end_date=reservation.period.end.isoformat(),
        days=reservation.period.days,
    )


def reservation_cancelled(reservation: Reservation) -> events_pb2.ReservationCancelled:
    return events_pb2.ReservationCancelled(
        reservation_id=reservation.reservation_id,
        warehouse_code=reservation.warehouse_code,
        country_code=reservation.country_code,
        exporter_credit_code=reservation.exporter_credit_code,
        pallet_positions=reservation.space.pallet_positions,
        cubic_metres=reservation.space.cubic_metres,
        start_date=reservation.period.start.isoformat(),
        end_date=reservation.period.end.isoformat(),
        days=reservation.period.days,
        reason=reservation.cancellation_reason,
    )
