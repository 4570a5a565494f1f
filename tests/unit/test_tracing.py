"""Traces: a span per gRPC call, its trace context in the envelope of each event
recorded during the call, and the bureau's span continuing that trace."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, Tracer
from prometheus_client import CollectorRegistry

from bureau.figures import BureauFigures
from bureau.live import LiveStats
from bureau.stream import build_stream_app
from chuhai.expo.v1 import events_pb2
from runtime.adapters.events import EventEnvelope, decode_envelope
from runtime.adapters.metrics import RpcMetrics
from runtime.adapters.outbox import Transaction
from runtime.adapters.settings import Settings
from runtime.adapters.topics import EXPO_VISITS
from runtime.adapters.tracing import (
    TRACER_NAME,
    context_of,
    current_traceparent,
    tracer_provider_for,
)
from tests.unit.test_bureau_stream import RecordingStore
from tests.unit.test_metrics import ECHO, call_code, echo_check, echo_server
from tests.waiting import eventually


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.shutdown()


@pytest.fixture
def tracer(spans: InMemorySpanExporter) -> Iterator[Tracer]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    yield provider.get_tracer(TRACER_NAME)
    provider.shutdown()


class FakeOutboxCollection:
    def __init__(self) -> None:
        self.documents: list[dict[str, Any]] = []

    async def insert_one(self, document: dict[str, Any], session: Any = None) -> None:
        self.documents.append(document)


class FakeDatabase:
    """Just enough of a database for Transaction.record: the outbox collection."""

    def __init__(self) -> None:
        self.outbox = FakeOutboxCollection()

    def __getitem__(self, name: str) -> FakeOutboxCollection:
        assert name == "outbox"
        return self.outbox

    def envelopes(self) -> list[EventEnvelope]:
        return [decode_envelope(bytes(doc["envelope"])) for doc in self.outbox.documents]


async def record_visit(db: FakeDatabase, buyer_id: str) -> None:
    """Records an event as a use case does: through the transaction's outbox."""
    tx = Transaction(db, session=None, producer="expo", correlation_id="r-1")  # type: ignore[arg-type]
    payload = events_pb2.ExhibitorVisited(visit_id=f"v-{buyer_id}", buyer_id=buyer_id)
    await tx.record(EXPO_VISITS, payload, aggregate_id=buyer_id)


def traceparent_of(span: ReadableSpan) -> str:
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


async def test_an_event_recorded_in_a_span_carries_its_traceparent(
    tracer: Tracer, spans: InMemorySpanExporter
) -> None:
    db = FakeDatabase()
    with tracer.start_as_current_span("call"):
        await record_visit(db, "b1")
    await record_visit(db, "b2")
    [call] = spans.get_finished_spans()
    inside, outside = db.envelopes()
    assert inside.traceparent == traceparent_of(call)
    assert outside.traceparent == ""


def test_without_an_endpoint_there_is_no_tracing() -> None:
    assert tracer_provider_for("booth", "") is None
    assert current_traceparent() == ""
    provider = tracer_provider_for("booth", "http://127.0.0.1:4317")
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "booth"
    provider.shutdown()


def test_a_malformed_traceparent_starts_a_new_trace(tracer: Tracer) -> None:
    with tracer.start_as_current_span("applied", context=context_of("00-nonsense")) as span:
        assert not span.parent


async def test_each_call_is_a_server_span_continuing_the_callers_trace(
    tracer: Tracer, spans: InMemorySpanExporter
) -> None:
    caller = tracer.start_span("caller")
    caller_traceparent = traceparent_of(caller)
    caller.end()
    async with echo_server(RpcMetrics(CollectorRegistry()), tracer) as channel:
        check = echo_check(channel)
        metadata = (("traceparent", caller_traceparent),)
        await check(HealthCheckRequest(service="ok"), metadata=metadata, timeout=5)
        await call_code(check(HealthCheckRequest(service="bad"), timeout=5))
        await call_code(check(HealthCheckRequest(service="boom"), timeout=5))
    ok, bad, boom = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert ok.name == f"{ECHO}/Check"
    assert ok.attributes["rpc.method"] == "Check"
    assert ok.parent.span_id == caller.get_span_context().span_id
    assert ok.context.trace_id == caller.get_span_context().trace_id
    assert bad.parent is None
    # The caller's mistake is no error of the server's; a bug is.
    assert (bad.attributes["rpc.grpc.status_code"], bad.status.status_code) == (3, StatusCode.UNSET)
    assert (boom.attributes["rpc.grpc.status_code"], boom.status.status_code) == (
        13,
        StatusCode.ERROR,
    )


async def test_the_bureau_continues_the_trace_of_the_call_that_recorded_the_event(
    tracer: Tracer, spans: InMemorySpanExporter
) -> None:
    db = FakeDatabase()

    async def check_and_record(request: HealthCheckRequest, _: grpc.aio.ServicerContext) -> Any:
        await record_visit(db, request.service)
        return HealthCheckResponse()

    async with echo_server(RpcMetrics(CollectorRegistry()), tracer, check_and_record) as channel:
        await echo_check(channel)(HealthCheckRequest(service="b1"), timeout=5)
    [envelope] = db.envelopes()
    [call] = spans.get_finished_spans()

    store = RecordingStore()

    async def send(*_: Any) -> None:
        return None

    app = build_stream_app(
        Settings(kafka_bootstrap_servers="127.0.0.1:1"),
        LiveStats(BureauFigures()),
        store,
        lambda: b"headline",
        send,
        tracer=tracer,
    )
    [agent] = app.agents.values()

    async def journaled() -> int:
        return len(store.journal)

    async with agent.test_context() as stream:
        await stream.put(envelope.SerializeToString(), key=b"b1")
        await eventually(journaled, equals=1, within_seconds=5)

    finished = spans.get_finished_spans()
    [applied] = [s for s in finished if s.name.startswith("process ")]
    [batch] = [s for s in finished if s.name == "bureau apply batch"]
    assert applied.context.trace_id == call.context.trace_id
    assert applied.parent.span_id == call.context.span_id
    assert applied.kind is SpanKind.CONSUMER
    assert applied.attributes["messaging.message.id"] == envelope.event_id
    assert applied.attributes["chuhai.event.applied"] is True
    assert [link.context.span_id for link in applied.links] == [batch.context.span_id]
    assert batch.context.trace_id != call.context.trace_id
