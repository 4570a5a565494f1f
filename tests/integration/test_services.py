"""Every service as a real gRPC server on real infrastructure, called by real clients
with the tokens of the principals they play (health and reflection need none)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

import booth.grpc_api
import expo.grpc_api
import warehouse.grpc_api
from bureau.host import BureauHost
from chuhai.booth.v1 import booth_service_pb2 as booth_pb
from chuhai.booth.v1 import booth_service_pb2_grpc as booth_grpc
from runtime.adapters.events import decode_envelope
from runtime.adapters.grpc_errors import field_violations
from runtime.adapters.service import ServiceHost
from runtime.adapters.settings import Settings
from runtime.adapters.topics import BOOTH_EXPORTERS
from tests.credit_codes import random_credit_code
from tests.identity import Identities
from tests.kafka_reading import read_records

pytestmark = pytest.mark.integration

SERVICES = {
    "booth": "chuhai.booth.v1.BoothService",
    "expo": "chuhai.expo.v1.ExpoService",
    "warehouse": "chuhai.warehouse.v1.WarehouseService",
    "bureau": "chuhai.bureau.v1.BureauService",
}


def host_of(name: str, settings: Settings) -> ServiceHost:
    """The process host each service's entry point uses."""
    if name == "bureau":
        return BureauHost(settings.model_copy(update={"bureau_web_port": 0}))
    builds = {
        "booth": booth.grpc_api.build,
        "expo": expo.grpc_api.build,
        "warehouse": warehouse.grpc_api.build,
    }
    return ServiceHost(name, builds[name], settings)


@pytest.fixture
async def booth_channel(settings: Settings) -> AsyncIterator[grpc.aio.Channel]:
    host = ServiceHost("booth", booth.grpc_api.build, settings)
    await host.start()
    try:
        async with grpc.aio.insecure_channel(host.server.address) as channel:
            yield channel
    finally:
        await host.stop()


@pytest.mark.parametrize("name", sorted(SERVICES))
async def test_service_is_serving_and_lists_its_api_over_reflection(
    settings: Settings, name: str
) -> None:
    full_name = SERVICES[name]
    host = host_of(name, settings)
    await host.start()
    try:
        async with grpc.aio.insecure_channel(host.server.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for service in ("", full_name):
                reply = await health.Check(
                    health_pb2.HealthCheckRequest(service=service), timeout=5
                )
                assert reply.status == health_pb2.HealthCheckResponse.SERVING

        def listed_services() -> list[str]:
            with grpc.insecure_channel(host.server.address) as sync_channel:
                return ProtoReflectionDescriptorDatabase(sync_channel).get_services()

        listed = await asyncio.to_thread(listed_services)
        assert full_name in listed
        assert "grpc.health.v1.Health" in listed
    finally:
        await host.stop()


async def test_stopping_reports_not_serving_before_the_server_goes(settings: Settings) -> None:
    host = ServiceHost("expo", expo.grpc_api.build, settings)
    await host.start()
    async with grpc.aio.insecure_channel(host.server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        stopping = asyncio.create_task(host.stop())
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        await stopping


async def test_registered_exporter_is_an_event_on_the_booth_topic(
    settings: Settings, booth_channel: grpc.aio.Channel, identities: Identities
) -> None:
    stub = booth_grpc.BoothServiceStub(booth_channel)
    code = random_credit_code()
    exporter = identities.exporter(code)
    request = booth_pb.RegisterExporterRequest(
        request_id=f"req-{code}",
        credit_code=code,
        profile=booth_pb.ExporterProfile(name="许昌瑞贝卡发制品", district="建安区"),
    )

    first = await stub.RegisterExporter(request, metadata=exporter, timeout=10)
    retried = await stub.RegisterExporter(request, metadata=exporter, timeout=10)

    assert first.exporter.credit_code == code
    assert retried == first
    fetched = await stub.GetExporter(
        booth_pb.GetExporterRequest(credit_code=code), metadata=exporter, timeout=10
    )
    assert fetched.exporter.name == "许昌瑞贝卡发制品"
    records = await asyncio.to_thread(
        read_records,
        settings.kafka_bootstrap_servers,
        BOOTH_EXPORTERS.name,
        expected=1,
        keys={code.encode()},
        settle_seconds=1.0,
    )
    # The retried request changed nothing: one registration, one event.
    assert len(records) == 1
    envelope = decode_envelope(records[0].value)
    assert envelope.exporter_registered.district == "建安区"
    assert envelope.correlation_id == f"req-{code}"


async def test_bad_requests_get_the_right_status_and_name_the_field(
    booth_channel: grpc.aio.Channel, identities: Identities
) -> None:
    stub = booth_grpc.BoothServiceStub(booth_channel)
    code = random_credit_code()
    wrong_check = code[:-1] + ("0" if code[-1] != "0" else "1")
    exporter = identities.exporter(code)

    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await stub.RegisterExporter(
            booth_pb.RegisterExporterRequest(
                request_id="r", credit_code=wrong_check, profile=booth_pb.ExporterProfile()
            ),
            # A token for the (mistyped) code it registers: the request reaches validation.
            metadata=identities.exporter(wrong_check),
            timeout=10,
        )
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(invalid.value)) == {"credit_code", "profile.name"}
    assert "check character" in field_violations(invalid.value)["credit_code"]

    with pytest.raises(grpc.aio.AioRpcError) as missing_id:
        await stub.RegisterExporter(
            booth_pb.RegisterExporterRequest(
                credit_code=code, profile=booth_pb.ExporterProfile(name="x")
            ),
            metadata=exporter,
            timeout=10,
        )
    assert field_violations(missing_id.value).keys() == {"request_id"}

    await stub.RegisterExporter(
        booth_pb.RegisterExporterRequest(
            request_id="first", credit_code=code, profile=booth_pb.ExporterProfile(name="x")
        ),
        metadata=exporter,
        timeout=10,
    )
    with pytest.raises(grpc.aio.AioRpcError) as duplicate:
        await stub.RegisterExporter(
            booth_pb.RegisterExporterRequest(
                request_id="second", credit_code=code, profile=booth_pb.ExporterProfile(name="y")
            ),
            metadata=exporter,
            timeout=10,
        )
    assert duplicate.value.code() == grpc.StatusCode.ALREADY_EXISTS

    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.GetExporter(
            booth_pb.GetExporterRequest(credit_code=random_credit_code()),
            metadata=identities.officer(),
            timeout=10,
        )
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
