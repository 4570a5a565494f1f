"""The event envelope: building it from a typed payload and reading it back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from google.protobuf import message_factory, timestamp_pb2

from chuhai.booth.v1 import events_pb2 as booth_events
from runtime.adapters.events import (
    FIRST_SCHEMA_VERSION,
    EventEnvelope,
    UndecodableEvent,
    decode_envelope,
    envelope_for,
    payload_of,
    schema_version,
)

PAYLOAD_FIELDS = tuple(EventEnvelope.DESCRIPTOR.oneofs_by_name["payload"].fields)


def fair_opened() -> EventEnvelope:
    return envelope_for(
        booth_events.FairOpened(fair_id="canton-137"),
        aggregate_id="canton-137",
        producer="booth",
        correlation_id="req-1",
        causation_id="cause-1",
        occurred_at=datetime(2025, 4, 15, 9, 30, 0, 123000, tzinfo=UTC),
    )


def test_envelope_for_fills_every_header() -> None:
    envelope = fair_opened()
    assert uuid.UUID(envelope.event_id).version == 4
    assert envelope.type == "chuhai.booth.v1.FairOpened"
    assert envelope.aggregate_id == "canton-137"
    assert envelope.producer == "booth"
    assert envelope.schema_version == FIRST_SCHEMA_VERSION == 1
    assert envelope.correlation_id == "req-1"
    assert envelope.causation_id == "cause-1"
    assert envelope.occurred_at.ToDatetime(UTC) == datetime(2025, 4, 15, 9, 30, 0, 123000, UTC)
    assert envelope.WhichOneof("payload") == "fair_opened"
    assert envelope.fair_opened.fair_id == "canton-137"


def test_the_envelope_carries_the_schema_version_declared_beside_the_payload() -> None:
    created = envelope_for(
        booth_events.FairCreated(fair_id="canton-137"), aggregate_id="canton-137", producer="b"
    )
    assert created.schema_version == schema_version(booth_events.FairCreated) == 2
    assert schema_version(booth_events.FairOpened) == 1


def test_each_envelope_gets_its_own_event_id() -> None:
    ids = {fair_opened().event_id for _ in range(100)}
    assert len(ids) == 100


def test_occurred_at_defaults_to_now() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    envelope = envelope_for(booth_events.FairOpened(fair_id="f"), aggregate_id="f", producer="b")
    assert before <= envelope.occurred_at.ToDatetime(UTC) <= datetime.now(UTC)


@pytest.mark.parametrize("field", PAYLOAD_FIELDS, ids=lambda f: f.name)
def test_every_payload_type_lands_in_its_own_oneof_field(field) -> None:
    payload = message_factory.GetMessageClass(field.message_type)()
    envelope = envelope_for(payload, aggregate_id="agg", producer="test")
    assert envelope.type == field.message_type.full_name
    assert envelope.WhichOneof("payload") == field.name
    assert decode_envelope(envelope.SerializeToString()).WhichOneof("payload") == field.name


def test_a_message_that_is_not_a_payload_is_refused() -> None:
    with pytest.raises(TypeError, match=r"google\.protobuf\.Timestamp"):
        envelope_for(timestamp_pb2.Timestamp(), aggregate_id="a", producer="booth")


def test_an_empty_aggregate_id_is_refused() -> None:
    with pytest.raises(ValueError, match="aggregate id"):
        envelope_for(booth_events.FairOpened(fair_id="f"), aggregate_id="", producer="booth")


def test_decode_envelope_round_trips() -> None:
    envelope = fair_opened()
    decoded = decode_envelope(envelope.SerializeToString())
    assert decoded == envelope
    assert payload_of(decoded) == booth_events.FairOpened(fair_id="canton-137")


@pytest.mark.parametrize(
    "data",
    [
        None,
        b"",
        b"\xff\xff\xff\xff",
        b"not a protobuf at all",
        EventEnvelope(event_id=str(uuid.uuid4()), type="x", aggregate_id="a").SerializeToString(),
        EventEnvelope(fair_opened=booth_events.FairOpened(fair_id="f")).SerializeToString(),
    ],
    ids=["none", "empty", "garbage", "text", "without-payload", "without-event-id"],
)
def test_unusable_record_values_are_undecodable(data: bytes | None) -> None:
    with pytest.raises(UndecodableEvent):
        decode_envelope(data)
