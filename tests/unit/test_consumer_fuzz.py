"""The consumers fed junk. The bureau's: whatever a record holds, the agent's per-record
step (bureau.stream.RecordHandler, through the dispatcher and every projection) returns;
a record it refuses is dead-lettered or skipped, counted, and changes no figure; the
figures stay readable and snapshot-able; and valid records after the junk still apply.
Notify's: its record step (notify.consumer.RecordStep, through notify.messages and the
use cases, on an in-memory store) returns too; a record it dead-letters makes no
notification and is not taken as handled, one it passes over writes nothing, and valid
records after the junk still notify.

Deterministic (derandomize) so that CI runs the same records every time. The number of
records tried is kept in TRIED; the last test checks it so that a change of settings
cannot quietly shrink the fuzzing to nothing."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bureau.figures import BureauFigures
from bureau.live import LiveStats
from bureau.messages import dashboard_json
from bureau.stream import RecordHandler, StreamMetrics
from chuhai.events.v1.envelope_pb2 import EventEnvelope
from chuhai.expo.v1 import events_pb2 as expo_events
from chuhai.expo.v1 import resources_pb2 as expo_resources
from notify import consumer as notify_consumer
from notify import handlers as notify_handlers
from notify.domain import Fact, RetryPolicy
from runtime.adapters.dead_letters import Record
from runtime.adapters.events import envelope_for, schema_version
from runtime.adapters.tracing import BatchTrace
from tests.fakes import DEFAULT_NOW
from tests.unit.notify_memory import MemoryNotifyStore
from tests.unit.test_bureau_aggregates import (
    Application,
    exhibitor_visited,
    exporter_registered,
    fair_created,
    intent_submitted,
    warehouse_registered,
)

EXAMPLES = 300
RECORDS_PER_EXAMPLE = 8
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TRIED: Counter[str] = Counter()
TOPIC = "chuhai.expo.visits.v1"


# What the bureau had seen before the junk: a little of every context.


def history() -> list[EventEnvelope]:
    application = Application("app-1")
    return [
        exporter_registered("91411000MA0000001X"),
        fair_created("canton-132", standard=2, brand=1),
        application.submitted(),
        application.scored(),
        application.allocated(),
        exhibitor_visited("buyer-1", "DE"),
        intent_submitted("intent-1", country="DE"),
        warehouse_registered("WH-LA-1", "US", 500),
    ]


HISTORY = [envelope.SerializeToString() for envelope in history()]


def figures_with_history() -> BureauFigures:
    figures = BureauFigures()
    for value in HISTORY:
        envelope = EventEnvelope()
        envelope.ParseFromString(value)
        assert figures.apply(envelope)
    return figures


# Strategies -------------------------------------------------------------------------------

PAYLOAD_FIELDS = list(EventEnvelope.DESCRIPTOR.oneofs_by_name["payload"].fields)
# Ids the history uses, so that junk meets existing aggregates too.
IDS = st.sampled_from(
    ["", "app-1", "canton-132", "buyer-1", "intent-1", "WH-LA-1", "91411000MA0000001X"]
) | st.text(max_size=12)
INT64 = (-(2**63), 2**63 - 1)
ABSURD_SECONDS = st.sampled_from([-(2**63), -62_135_596_801, 253_402_300_800, 2**63 - 1])
TIMESTAMPS = st.builds(
    Timestamp,
    seconds=st.integers(0, 4_102_444_800) | ABSURD_SECONDS | st.integers(*INT64),
    nanos=st.integers(0, 999_999_999) | st.integers(-(2**31), 2**31 - 1),
)
STRINGS = st.sampled_from(["", "DE", "de", "XX", "670420", "6704", "canton-132"]) | st.text(
    max_size=10
)


def scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return STRINGS
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=8)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_ENUM:
        # Open enums: values this build does not name arrive too.
        return st.sampled_from([v.number for v in field.enum_type.values]) | st.integers(-3, 99)
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return st.floats()
    if kind == FieldDescriptor.TYPE_FLOAT:
        return st.floats(width=32)
    if kind in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return st.integers(0, 2**32 - 1)
    if kind in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return st.integers(0, 2**64 - 1)
    if kind in (
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SFIXED32,
    ):
        return st.integers(-3, 1000) | st.integers(-(2**31), 2**31 - 1)
    return st.integers(-3, 1000) | st.integers(*INT64)


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Messages of ``descriptor`` with any subset of their fields set to random values."""
    if descriptor.full_name == Timestamp.DESCRIPTOR.full_name:
        return TIMESTAMPS
    cls = GetMessageClass(descriptor)
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key, value = (
                field.message_type.fields_by_name["key"],
                field.message_type.fields_by_name["value"],
            )
            optional[field.name] = st.dictionaries(scalar(key), value_of(value, depth), max_size=3)
            continue
        one = value_of(field, depth)
        repeated = field.is_repeated
        optional[field.name] = st.lists(one, max_size=3) if repeated else one
    return st.fixed_dictionaries({}, optional=optional).map(lambda values: cls(**values))


def value_of(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is None:
        return scalar(field)
    if depth >= 3:
        return st.just(GetMessageClass(field.message_type)())
    return st.deferred(lambda: messages(field.message_type, depth + 1))


@st.composite
def envelopes(draw: Callable[..., Any]) -> EventEnvelope:
    """An envelope of any payload type with random fields, header and all."""
    field = draw(st.sampled_from(PAYLOAD_FIELDS))
    payload = draw(messages(field.message_type))
    envelope = EventEnvelope(
        event_id=draw(st.sampled_from(["e-1", "e-2", ""]) | st.uuids().map(str)),
        type=draw(st.sampled_from([field.message_type.full_name, "", "chuhai.Nope"])),
        aggregate_id=draw(IDS),
        producer=draw(st.sampled_from(["booth", "expo", "warehouse", ""])),
        schema_version=draw(
            st.sampled_from([0, 1, schema_version(payload), 99]) | st.integers(0, 2**32 - 1)
        ),
        occurred_at=draw(TIMESTAMPS),
    )
    getattr(envelope, field.name).CopyFrom(payload)
    return envelope


def unknown_payload(envelope: EventEnvelope) -> bytes:
    """The envelope with its payload replaced by a field this build does not know."""
    header = EventEnvelope()
    header.CopyFrom(envelope)
    header.ClearField("payload")
    # Field 4000, length-delimited: a payload type added by a newer producer.
    return header.SerializeToString() + b"\x82\xfa\x01\x03abc"


def junk(draw: Callable[..., Any]) -> bytes:
    kind = draw(
        st.sampled_from(
            ["bytes", "truncated", "unknown_payload", "version", "no_ids", "time", "random"]
        )
    )
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "truncated":
        valid = draw(st.sampled_from(HISTORY))
        return valid[: draw(st.integers(0, len(valid) - 1))]
    envelope = draw(envelopes())
    if kind == "unknown_payload":
        return unknown_payload(envelope)
    if kind in ("version", "no_ids", "time"):
        # A real event of the history, changed in one respect.
        envelope.ParseFromString(draw(st.sampled_from(HISTORY)))
        envelope.event_id = draw(st.uuids().map(str))
        if kind == "version":
            envelope.schema_version = draw(st.integers(2, 2**32 - 1))
        elif kind == "no_ids":
            envelope.aggregate_id = ""
            if draw(st.booleans()):
                envelope.event_id = ""
        else:
            envelope.occurred_at.CopyFrom(draw(TIMESTAMPS))
    return envelope.SerializeToString()


RECORDS = st.lists(st.composite(junk)(), min_size=1, max_size=RECORDS_PER_EXAMPLE)


# The property -----------------------------------------------------------------------------


class Harness:
    """A RecordHandler over figures that already hold the history, with its sends and
    counts kept."""

    def __init__(self) -> None:
        self.live = LiveStats(figures_with_history())
        self.metrics = StreamMetrics()
        self.dead: list[tuple[str, bytes | None, bytes, list]] = []
        self.handle = RecordHandler(self.live, self.send, self.metrics)
        self.offset = 0

    async def send(self, topic: str, key: bytes | None, value: bytes, headers: list) -> None:
        self.dead.append((topic, key, value, headers))

    async def feed(self, value: bytes) -> bool:
        """Whether the record was applied."""
        self.offset += 1
        record = Record(TOPIC, 0, self.offset, b"key", value)
        return await self.handle(record, BatchTrace(None, "fuzz", {})) is not None

    @property
    def figures(self) -> BureauFigures:
        return self.live.figures

    def counts(self) -> tuple[int, int, int, int]:
        """Dead letters, skipped events, refused redeliveries, events applied."""
        dispatcher = self.figures.dispatcher
        return (
            len(self.dead),
            dispatcher.skipped_count,
            dispatcher.redelivered_count,
            dispatcher.applied_count,
        )


def event_id_of(value: bytes) -> str:
    envelope = EventEnvelope()
    envelope.ParseFromString(value)
    return envelope.event_id


def fingerprint(figures: BureauFigures) -> str:
    """Every figure, in a form that compares: the snapshot and what the dashboard shows."""
    # The skipped count moves for a skipped record, by design; it is no figure.
    shown = {k: v for k, v in dashboard_json(figures).items() if k != "events_skipped"}
    return json.dumps([figures.snapshot(), shown], sort_keys=True, default=str)


def assert_readable(figures: BureauFigures) -> None:
    """Figures the API can still serve and the store can still keep and restore."""
    figures.headline()
    snapshot = figures.snapshot()
    copied = json.loads(json.dumps(snapshot))
    restored = BureauFigures.restore(copied, [])
    assert restored.snapshot() == snapshot
    dashboard_json(restored)


@FUZZ
@given(records=RECORDS)
async def test_junk_never_escapes_the_handler_and_changes_no_figure(records: list[bytes]) -> None:
    harness = Harness()
    skipped_ids: set[str] = set()
    for value in records:
        before, counts = fingerprint(harness.figures), harness.counts()
        applied = await harness.feed(value)
        if not applied:
            assert fingerprint(harness.figures) == before
        # Every record is accounted for, once: dead-lettered, skipped (an event skipped
        # before is counted once: skipped events are counted by id), refused as applied
        # before, or applied.
        moved = [after - was for after, was in zip(harness.counts(), counts, strict=True)]
        if moved == [0, 1, 0, 0]:
            skipped_ids.add(event_id_of(value))
        elif moved == [0, 0, 0, 0]:
            assert event_id_of(value) in skipped_ids
        else:
            assert sorted(moved) == [0, 0, 0, 1]
            assert applied == (moved[3] == 1)
        TRIED["records"] += 1
        TRIED["applied"] += applied
    TRIED["examples"] += 1
    assert harness.metrics.dead_letters.labels(TOPIC)._value.get() == len(harness.dead)
    assert_readable(harness.figures)

    # Valid records still apply after the junk.
    headline = harness.figures.headline()
    fresh = [exhibitor_visited("buyer-after-junk", "KE"), intent_submitted("intent-after-junk")]
    for envelope in fresh:
        assert await harness.feed(envelope.SerializeToString())
    after = harness.figures.headline()
    assert after.buyers >= headline.buyers + 1
    assert after.intents == headline.intents + 1


# Notify's consumer ------------------------------------------------------------------------

NOTIFY_EXAMPLES = 150
NOTIFY_POLICY = notify_handlers.DeliveryPolicy(
    stale_after_hours=72.0,
    mail_configured=True,
    retry=RetryPolicy(base=10.0, max=3600.0, max_attempts=8),
    webhook_disable_after=10,
)


class NotifyHarness:
    """Notify's record step over an in-memory store that already handled the history,
    with its dead letters kept."""

    def __init__(self) -> None:
        self.store = MemoryNotifyStore()
        self.dead: list[tuple[str, bytes | None, bytes, list]] = []
        self.step = notify_consumer.RecordStep(self.handle, self.send, lambda topic: None)
        self.offset = 0

    async def handle(self, fact: Fact, event_type: str) -> None:
        await notify_handlers.handle_event(self.store, fact, event_type, DEFAULT_NOW, NOTIFY_POLICY)

    async def send(self, topic: str, key: bytes | None, value: bytes, headers: list) -> None:
        assert topic == f"{TOPIC}.dlq"
        self.dead.append((topic, key, value, headers))

    async def feed(self, value: bytes) -> bool:
        self.offset += 1
        record = notify_consumer.Record(TOPIC, 0, self.offset, b"key", value)
        return await self.step(record)


def decodable_event_id(value: bytes) -> str:
    try:
        return event_id_of(value)
    except Exception:
        return ""


def fresh_inquiry() -> EventEnvelope:
    submitted = expo_events.IntentSubmitted(
        intent_id="intent-after-junk",
        buyer_id="buyer-after-junk",
        buyer_country="KE",
        kind=expo_resources.INTENT_KIND_INQUIRY,
        hs_code="670420",
        quantity=100,
        unit="piece",
        recipients=["91411000MA0000001X"],
    )
    return envelope_for(submitted, aggregate_id="intent-after-junk", producer="expo")


@settings(
    max_examples=NOTIFY_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(records=RECORDS)
async def test_notifys_record_step_never_fails_on_junk_and_junk_notifies_nobody(
    records: list[bytes],
) -> None:
    harness = NotifyHarness()
    for value in HISTORY:
        assert await harness.feed(value) in (True, False)
    assert harness.dead == []
    for value in records:
        notifications = dict(harness.store.notifications)
        writes, dead = harness.store.writes, len(harness.dead)
        handled = await harness.feed(value)
        event_id = decodable_event_id(value)
        if len(harness.dead) > dead:
            assert not handled and len(harness.dead) == dead + 1
            assert harness.store.notifications == notifications
            if event_id:
                assert event_id not in harness.store.events or event_id in {
                    event_id_of(h) for h in HISTORY
                }
        elif not handled:
            # An event notify does not read: passed over, nothing written.
            assert harness.store.writes == writes
        else:
            assert event_id in harness.store.events
        TRIED["notify_records"] += 1
    TRIED["notify_examples"] += 1

    # Valid records still notify after the junk.
    assert await harness.feed(fresh_inquiry().SerializeToString())
    assert [n.kind.name for n in harness.store.notifications.values()][-1] == "INQUIRY_RECEIVED"


def test_the_fuzzing_tried_every_record_it_generated() -> None:
    # Runs after the properties (file order): they must have run every example given.
    assert TRIED["examples"] == EXAMPLES
    assert TRIED["records"] >= EXAMPLES
    assert TRIED["notify_examples"] == NOTIFY_EXAMPLES
    assert TRIED["notify_records"] >= NOTIFY_EXAMPLES
