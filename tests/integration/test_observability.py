"""Metrics and traces of real services: /metrics scraped over HTTP after real calls, and
a gRPC call's trace continued by the bureau once the event it recorded reaches it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from importlib import metadata

import aiohttp
import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

import booth.grpc_api
from bureau.host import BureauHost
from chuhai.booth.v1 import booth_service_pb2 as pb
from chuhai.booth.v1 import booth_service_pb2_grpc as pb_grpc
from runtime.adapters.service import ServiceHost
from runtime.adapters.settings import Settings
from runtime.adapters.topics import BOOTH_EXPORTERS
from tests.identity import Identities
from tests.integration.test_booth import register_exporters
from tests.integration.test_bureau import bureau_settings, own_kafka  # noqa: F401 - fixtures
from tests.waiting import eventually

pytestmark = pytest.mark.integration

BOOTH = "chuhai.booth.v1.BoothService"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(port: int) -> Samples:
    """Every sample /metrics serves, by name and labels."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as reply,
    ):
        assert reply.status == 200
        text = await reply.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture
async def booth_host(settings: Settings) -> AsyncIterator[ServiceHost]:
    host = ServiceHost("booth", booth.grpc_api.build, settings)
    await host.start()
    yield host
    await host.stop()


async def test_a_service_serves_its_calls_and_outbox_on_metrics(
    booth_host: ServiceHost, identities: Identities
) -> None:
    assert booth_host.metrics_port
    async with grpc.aio.insecure_channel(booth_host.server.address) as channel:
        stub = pb_grpc.BoothServiceStub(channel)
        [code, _] = await register_exporters(stub, 2, seed=13, identities=identities)
        await stub.GetExporter(
            pb.GetExporterRequest(credit_code=code), metadata=identities.officer(), timeout=10
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.RegisterExporter(
                pb.RegisterExporterRequest(request_id="bad", credit_code="not a code"),
                metadata=identities.exporter(code),
                timeout=10,
            )
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT

    samples = await scrape(booth_host.metrics_port)
    handled = "chuhai_grpc_server_handled_total"
    calls = {"grpc_service": BOOTH, "grpc_method": "RegisterExporter"}
    assert value(samples, handled, **calls, grpc_code="OK") == 2
    assert value(samples, handled, **calls, grpc_code="INVALID_ARGUMENT") == 1
    assert value(samples, handled, grpc_service=BOOTH, grpc_method="GetExporter", grpc_code="OK")
    assert value(samples, "chuhai_grpc_server_handling_seconds_count", **calls, grpc_code="OK") == 2
    service = {"service": "booth", "version": metadata.version("chuhai")}
    assert value(samples, "chuhai_service_info", **service) == 1

    async def outbox() -> tuple[float | None, ...]:
        samples = await scrape(booth_host.metrics_port)
        return (
            value(samples, "chuhai_outbox_published_events_total", topic=BOOTH_EXPORTERS.name),
            value(samples, "chuhai_outbox_backlog_events"),
            value(samples, "chuhai_outbox_lag_seconds"),
        )

    # Both registrations relayed; the next pass found nothing waiting.
    await eventually(outbox, equals=(2, 0, 0), within_seconds=20)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.shutdown()


async def test_the_bureau_continues_the_trace_of_the_call_that_recorded_its_event(
    bureau_settings: Settings,  # noqa: F811 - the fixture imported above
    spans: InMemorySpanExporter,
    identities: Identities,
) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    booth_host = ServiceHost(
        "booth", booth.grpc_api.build, bureau_settings, tracer_provider=provider
    )
    bureau = BureauHost(bureau_settings, tracer_provider=provider)
    await booth_host.start()
    await bureau.start()
    try:
        async with grpc.aio.insecure_channel(booth_host.server.address) as channel:
            await register_exporters(
                pb_grpc.BoothServiceStub(channel), 1, seed=14, identities=identities
            )

        async def applied() -> float | None:
            samples = await scrape(bureau.metrics_port)
            return value(samples, "chuhai_bureau_events_applied_total")

        await eventually(applied, equals=1, within_seconds=60)
        samples = await scrape(bureau.metrics_port)
        lag = value(samples, "chuhai_bureau_consumer_lag_records", topic=BOOTH_EXPORTERS.name)
        assert lag == 0
        journal = {"kind": "journal"}
        assert value(samples, "chuhai_bureau_store_writes_total", **journal) == 1
    finally:
        await bureau.stop()
        await booth_host.stop()
        provider.shutdown()

    finished = spans.get_finished_spans()
    [call] = [s for s in finished if s.name == f"{BOOTH}/RegisterExporter"]
    [continued] = [s for s in finished if s.name == f"process {BOOTH_EXPORTERS.name}"]
    assert call.kind is SpanKind.SERVER
    assert continued.context.trace_id == call.context.trace_id
    assert continued.parent.span_id == call.context.span_id
