"""Building and reading the event envelope (chuhai.events.v1.EventEnvelope)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from google.protobuf.message import DecodeError, Message

from chuhai.events.v1 import envelope_pb2
from chuhai.schema.v1 import options_pb2
from runtime.kernel.identity import Principal

EventEnvelope = envelope_pb2.EventEnvelope
# A payload type without the (chuhai.schema.v1.schema_version) option is at version 1.
FIRST_SCHEMA_VERSION = 1

# Payload type (full protobuf name) -> the envelope's oneof field that carries it.
_PAYLOAD_FIELDS: dict[str, str] = {
    field.message_type.full_name: field.name
    for field in EventEnvelope.DESCRIPTOR.oneofs_by_name["payload"].fields
}


def schema_version(payload_type: type[Message] | Message) -> int:
    """The version of a payload type's schema, declared next to it in its .proto file."""
    declared = payload_type.DESCRIPTOR.GetOptions().Extensions[options_pb2.schema_version]
    return declared or FIRST_SCHEMA_VERSION


class UndecodableEvent(ValueError):
    """A record whose value is not a valid envelope with a payload."""


def envelope_for(
    payload: Message,
    *,
    aggregate_id: str,
    producer: str,
    correlation_id: str = "",
    causation_id: str = "",
    occurred_at: datetime | None = None,
    event_id: str = "",
    traceparent: str = "",
    actor: Principal | None = None,
) -> EventEnvelope:
    """Wrap a typed event in a new envelope, with a fresh event id unless one is given
    (a fact the client identified itself, such as a visit, keeps one id however often
    it is reported). ``traceparent`` is the W3C trace context it was recorded in;
    ``actor`` who made the change."""
    type_name = payload.DESCRIPTOR.full_name
    field = _PAYLOAD_FIELDS.get(type_name)
    if field is None:
        raise TypeError(f"{type_name} is not a payload of EventEnvelope")
    if not aggregate_id:
        raise ValueError("an event needs an aggregate id")
    envelope = EventEnvelope(
        event_id=event_id or str(uuid.uuid4()),
        type=type_name,
        aggregate_id=aggregate_id,
        producer=producer,
        schema_version=schema_version(payload),
        correlation_id=correlation_id,
        causation_id=causation_id,
        traceparent=traceparent,
    )
    if actor is not None:
        envelope.actor.subject = actor.subject
        envelope.actor.role = actor.role.value
        envelope.actor.party = actor.party
    envelope.occurred_at.FromDatetime(occurred_at or datetime.now(UTC))
    getattr(envelope, field).CopyFrom(payload)
    return envelope


def decode_envelope(data: bytes | None) -> EventEnvelope:
    """Parse a record value; raise UndecodableEvent when it is not a usable envelope."""
    if not data:
        raise UndecodableEvent("empty record value")
    envelope = EventEnvelope()
    try:
        envelope.ParseFromString(data)
    except DecodeError as error:
        raise UndecodableEvent(f"not an EventEnvelope: {error}") from error
    if not envelope.event_id or envelope.WhichOneof("payload") is None:
        raise UndecodableEvent("envelope without event_id or payload")
    return envelope


def payload_of(envelope: EventEnvelope) -> Message:
    field = envelope.WhichOneof("payload")
    if field is None:
        raise UndecodableEvent("envelope without payload")
    return getattr(envelope, field)
