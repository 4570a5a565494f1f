"""OpenTelemetry traces: a span per gRPC call, its W3C trace context carried in the
envelope of every event recorded during the call, and the consumer's spans continuing
that trace when it applies the event.

Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set: no tracer provider then, and the code
paths below reduce to a check for ``None`` (no span objects, no context switches); an
event recorded outside any span carries an empty traceparent. When on, spans go in
batches to the OTLP collector over gRPC; the SDK's standard variables apply
(OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG, OTEL_EXPORTER_OTLP_HEADERS,
OTEL_EXPORTER_OTLP_INSECURE...).

Nothing here installs a global tracer provider: a host passes its tracer down, so
several hosts in one process (tests, the demo test) each trace on their own terms."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACER_NAME = "chuhai"
TRACEPARENT = "traceparent"
_W3C = TraceContextTextMapPropagator()
_TRACE_HEADERS = frozenset({TRACEPARENT, "tracestate"})
# Reusable: what an event without a span is processed in.
_NO_SPAN: AbstractContextManager[None] = contextlib.nullcontext()

# Server-side codes that mean the server failed (OpenTelemetry's RPC conventions); a
# caller's mistake (INVALID_ARGUMENT, NOT_FOUND...) leaves the span's status unset.
_SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


def tracer_provider_for(service: str, otlp_endpoint: str) -> TracerProvider | None:
    """The provider exporting ``service``'s spans to ``otlp_endpoint`` (for example
    http://otel-collector:4317); None, tracing off, when the endpoint is empty."""
    if not otlp_endpoint:
        return None
    resource = Resource.create({"service.name": service, "service.namespace": "chuhai"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    return provider


def current_traceparent() -> str:
    """The W3C traceparent of the current span; empty outside a valid span."""
    if not trace.get_current_span().get_span_context().is_valid:
        return ""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier.get(TRACEPARENT, "")


def context_of(traceparent: str) -> Context:
    """The context to continue the trace ``traceparent`` names (an empty or malformed
    one gives a context without a span: a new trace)."""
    return _W3C.extract({TRACEPARENT: traceparent})


def start_server_span(
    tracer: Tracer, full_method: str, metadata: Sequence[tuple[str, Any]] | None
) -> Span:
    """A SERVER span for a call of ``full_method``, a child of the caller's span when
    the call's metadata carries a traceparent."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    carrier = {key: value for key, value in metadata or () if key in _TRACE_HEADERS}
    return tracer.start_span(
        f"{service}/{method}",
        context=_W3C.extract(carrier) if carrier else None,
        kind=SpanKind.SERVER,
        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": method},
    )


def end_server_span(span: Span, code: grpc.StatusCode) -> None:
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code in _SERVER_ERRORS:
        span.set_status(Status(StatusCode.ERROR, code.name))
    span.end()


class BatchTrace:
    """The spans of one batch of consumed events.

    A consumer taking 2000 events at a time cannot give each a trace of its own cheaply,
    nor hang them all on one span (the SDK keeps 128 links a span). So the batch gets
    one span of its own (its size, the journal write), and each event that carries a
    traceparent gets a short span that continues its producer's trace and links to the
    batch. Volume follows the producer's sampling: an event from an unsampled trace gets
    a non-recording span, which costs next to nothing. Without a tracer, nothing at all.
    """

    def __init__(self, tracer: Tracer | None, name: str, attributes: Mapping[str, Any]) -> None:
        self._tracer = tracer
        self._batch: Span | None = None
        self._links: list[Link] = []
        if tracer is not None:
            self._batch = tracer.start_span(name, kind=SpanKind.CONSUMER, attributes=attributes)
            self._links = [Link(self._batch.get_span_context())]

    def event(
        self, traceparent: str, topic: str, event_id: str, event_type: str
    ) -> AbstractContextManager[Span | None]:
        """A span, ended on leaving the ``with``, for one event of ``topic`` continuing
        ``traceparent``'s trace; None without a tracer or a traceparent."""
        if self._tracer is None or not traceparent:
            return _NO_SPAN
        return self._tracer.start_span(
            f"process {topic}",
            context=context_of(traceparent),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": topic,
                "messaging.message.id": event_id,
                "chuhai.event.type": event_type,
            },
            links=self._links,
        )

    def end(self) -> None:
        if self._batch is not None:
            self._batch.end()
