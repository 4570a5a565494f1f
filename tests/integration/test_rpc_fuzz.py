"""Every public RPC of every service, fuzzed: requests generated from the protobuf
descriptors (plausible values drawn from pools of valid ids and codes, arbitrary text,
numbers at their limits, unknown enum values, timestamps out of range, oversized lists)
and tokens of every kind (each role, none, malformed, expired, for another audience).

Two properties hold for every example: the answer is a deliberate status (never
UNKNOWN, INTERNAL or a broken connection), and a refused request writes nothing to any
service's database."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import string
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from bson import json_util
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo import AsyncMongoClient

import booth.grpc_api
import bureau.host
import expo.grpc_api
import notify.grpc_api
import warehouse.grpc_api
from chuhai.booth.v1 import booth_service_pb2
from chuhai.bureau.v1 import bureau_service_pb2
from chuhai.expo.v1 import expo_service_pb2
from chuhai.notify.v1 import notify_service_pb2
from chuhai.warehouse.v1 import warehouse_service_pb2
from runtime.adapters.outbox import LEASE_COLLECTION
from runtime.adapters.service import ServiceHost
from runtime.adapters.settings import Settings
from runtime.adapters.tokens import DevelopmentKeys
from runtime.kernel.identity import Principal, Role
from tests.conftest import Infrastructure, settings_for
from tests.credit_codes import random_credit_code
from tests.identity import TEST_ISSUER, Identities

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

SERVICES = {
    "booth": booth_service_pb2.DESCRIPTOR.services_by_name["BoothService"],
    "expo": expo_service_pb2.DESCRIPTOR.services_by_name["ExpoService"],
    "warehouse": warehouse_service_pb2.DESCRIPTOR.services_by_name["WarehouseService"],
    "bureau": bureau_service_pb2.DESCRIPTOR.services_by_name["BureauService"],
    "notify": notify_service_pb2.DESCRIPTOR.services_by_name["NotifyService"],
}
METHODS = [(name, method) for name, service in SERVICES.items() for method in service.methods]
EXAMPLES_PER_METHOD = 25
# How long a watch may stay quiet before its headers are asked whether it was accepted.
WATCH_PATIENCE_SECONDS = 0.5

# What a caller may be told. UNKNOWN and INTERNAL are bugs; so is a dropped connection.
DELIBERATE = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE,
}

CREDIT_CODES = [random_credit_code() for _ in range(3)]
IDS = ["canton-137", "asean-21", "xuchang-2026", "B-1", "APP-1", "WH-1", "DE-HAM-01", ""]
# Plausible values by field name, so requests reach past validation into the rules.
POOLS: dict[str, list[str]] = {
    "credit_code": CREDIT_CODES,
    "exporter_credit_code": CREDIT_CODES,
    "recipient_credit_code": CREDIT_CODES,
    "country": ["DE", "US", "VN", "BR", "ZZ", "de"],
    "country_code": ["DE", "US", "VN"],
    "serving_country": ["DE", "FR"],
    "destination_country": ["DE", "US"],
    "currency_code": ["USD", "EUR", "CNY", "XXX", "usd"],
    "hs_code": ["940360", "9403", "85", "0000000000", "94036000"],
    "main_product_hs_code": ["940360", "9403"],
    "hs_heading": ["9403", "94", "0101"],
    "start_date": ["2026-05-01", "2026-02-30", "2026-5-1"],
    "end_date": ["2026-05-31", "2025-01-01"],
    "available_from": ["2026-05-01"],
    "available_until": ["2026-06-01"],
    "starts_on": ["2026-04-15", "2026-13-01"],
    "ends_on": ["2026-05-05"],
    "since": ["2020-01-01"],
    # Notify: webhooks, preferences and notifications.
    "url": [
        "https://hooks.example.com/chuhai",
        "http://127.0.0.1:9/hook",
        "ftp://x",
        "http://10.0.0.1/",
    ],
    "email": ["sales@example.com", "not-an-address"],
    "language": ["zh", "en", "fr"],
    "start": ["22:00", "07:30", "25:00"],
    "end": ["07:00", "22:00", "7"],
    "time_zone": ["Asia/Shanghai", "UTC", "Mars/Olympus"],
    "fair_hs_headings": ["6704", "9403", "94"],
    "notification_ids": IDS,
}
ID_FIELDS = ("_id", "code", "fair_id", "edition_id", "buyer_id", "intent_id", "product_id")


def text_for(field: FieldDescriptor) -> st.SearchStrategy[str]:
    pool = POOLS.get(field.name)
    if pool is None and field.name.endswith(ID_FIELDS):
        pool = IDS
    choices = [
        st.text(max_size=24),
        st.text(alphabet=string.ascii_uppercase + string.digits + "-", max_size=40),
        st.just(""),
        st.text(min_size=300, max_size=2000),
    ]
    if pool:
        choices.insert(0, st.sampled_from(pool))
    if field.name == "request_id":
        choices.insert(0, st.uuids().map(str))
    return st.one_of(choices)


INTEGER_LIMITS = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def scalar_for(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return text_for(field)
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(width=64 if kind == FieldDescriptor.TYPE_DOUBLE else 32)
    if kind == FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-3, max(known) + 3))
    if kind in INTEGER_LIMITS:
        low, high = INTEGER_LIMITS[kind]
        return st.one_of(
            st.integers(0, 1000), st.integers(low, high), st.sampled_from([low, high, -1])
        )
    if kind == FieldDescriptor.TYPE_MESSAGE:
        return message_of(field.message_type, depth + 1)
    raise AssertionError(f"no strategy for {field.full_name}")


@functools.cache
def message_of(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    cls = GetMessageClass(descriptor)
    if descriptor.full_name == "google.protobuf.Timestamp":
        return st.builds(
            lambda seconds, nanos: cls(seconds=seconds, nanos=nanos),
            st.one_of(
                st.integers(1_700_000_000, 1_900_000_000),
                st.sampled_from([0, -62_135_596_801, 253_402_300_800, -1]),
            ),
            st.one_of(st.just(0), st.integers(-1, 1_000_000_000)),
        )
    if depth > 3:
        return st.just(cls())
    fields = {}
    for field in descriptor.fields:
        value = scalar_for(field, depth)
        if field.is_repeated:
            value = st.lists(value, max_size=4)
        fields[field.name] = st.one_of(st.none(), value)

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        message = cls()
        for name, strategy in fields.items():
            value = draw(strategy)
            if value is None:
                continue
            target = descriptor.fields_by_name[name]
            if target.is_repeated:
                getattr(message, name).extend(value)
            elif target.type == FieldDescriptor.TYPE_MESSAGE:
                getattr(message, name).CopyFrom(value)
            else:
                setattr(message, name, value)
        return message

    return build()


@dataclass(frozen=True)
class Caller:
    """Who calls: a principal to sign a token for at call time (drawing stays pure
    data), a fixed authorization header, or nothing."""

    description: str
    principal: Principal | None = None
    header: str = ""

    def metadata(self, identities: Identities) -> tuple[tuple[str, str], ...]:
        if self.principal is not None:
            return (("authorization", f"Bearer {identities.issuer.issue(self.principal)}"),)
        return (("authorization", self.header),) if self.header else ()


def callers(identities: Identities) -> st.SearchStrategy[Caller]:
    def valid(role: Role, party: str, subject: str) -> Caller:
        principal = Principal(subject=subject, role=role, party=party)
        return Caller(f"{role.value}:{party}", principal)

    parties = {
        Role.EXPORTER: st.sampled_from(CREDIT_CODES),
        Role.BUYER: st.sampled_from(["", "B-1", "unknown-buyer"]),
        Role.OPERATOR: st.sampled_from(["OP-1", "OP-2"]),
        Role.OFFICER: st.just(""),
        Role.SERVICE: st.sampled_from(["expo", "expo-web"]),
    }
    subjects = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=12)
    by_role = [st.builds(valid, st.just(role), party, subjects) for role, party in parties.items()]
    expired = identities.issuer.issue(
        Principal(subject="late", role=Role.OFFICER), ttl_seconds=-3600
    )
    wrong_audience = identities.keys.issuer(issuer=TEST_ISSUER, audience="elsewhere").issue(
        Principal(subject="lost", role=Role.OFFICER)
    )
    broken = [
        Caller("none"),
        Caller("expired", header=f"Bearer {expired}"),
        Caller("wrong audience", header=f"Bearer {wrong_audience}"),
        Caller("garbage", header="Bearer not.a.jwt"),
        Caller("basic", header="Basic b2ZmaWNlcjpwdw=="),
    ]
    return st.one_of(*by_role, st.sampled_from(broken))


@dataclass
class Platform:
    channels: dict[str, grpc.aio.Channel]
    mongo: AsyncMongoClient
    settings: Settings
    tried: dict[str, int]


@pytest.fixture(scope="module")
async def platform(
    infra: Infrastructure, identity_keys: DevelopmentKeys
) -> AsyncIterator[Platform]:
    """The five services, started once for every method's examples. Notify serves its
    API alone (notify.grpc_api.build): without its consumer and delivery loop, nothing
    changes its database but the calls."""
    fuzz_settings = settings_for(
        infra,
        identity_keys,
        f"fuzz{uuid.uuid4().hex[:8]}",
        bureau_web_port=0,
        bureau_consumer_group=f"fuzz-{uuid.uuid4().hex[:8]}",
        # No background changes while the databases are compared.
        expo_expiry_sweep_seconds=3600.0,
        # The fuzzer calls far faster than any person; limits are tested elsewhere.
        rate_limit_per_second=100_000.0,
        rate_limit_burst=100_000,
    )
    builds = {
        "booth": booth.grpc_api.build,
        "expo": expo.grpc_api.build,
        "warehouse": warehouse.grpc_api.build,
        "notify": notify.grpc_api.build,
    }
    hosts = {name: ServiceHost(name, build, fuzz_settings) for name, build in builds.items()}
    hosts["bureau"] = bureau.host.BureauHost(fuzz_settings)
    mongo: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri, tz_aware=True)
    for host in hosts.values():
        await host.start()
    channels = {
        name: grpc.aio.insecure_channel(host.server.address)  # type: ignore[union-attr]
        for name, host in hosts.items()
    }
    found = Platform(channels, mongo, fuzz_settings, {"requests": 0, "refused": 0})
    try:
        yield found
    finally:
        # How much was tried: `pytest --log-cli-level=INFO` shows it.
        log.info("RPC fuzzing finished", extra=found.tried)
        for channel in channels.values():
            await channel.close()
        for host in reversed(list(hosts.values())):
            await host.stop()
        await mongo.close()


async def database_state(platform: Platform) -> str:
    """A digest of every document the services keep, without what moves by itself (the
    relay's lease and publication marks)."""
    digest = hashlib.sha256()
    # Not the bureau's: it keeps folding in the events of earlier, accepted requests.
    for service in ("booth", "expo", "warehouse", "notify"):
        db = platform.mongo[platform.settings.database_name(service)]
        for name in sorted(await db.list_collection_names()):
            if name == LEASE_COLLECTION:
                continue
            async for doc in db[name].find({}, {"published_at": 0}).sort("_id", 1):
                digest.update(json_util.dumps(doc, sort_keys=True).encode())
    return digest.hexdigest()


def call(channel: grpc.aio.Channel, method: MethodDescriptor) -> Any:
    request_class = GetMessageClass(method.input_type)
    response_class = GetMessageClass(method.output_type)
    path = f"/{method.containing_service.full_name}/{method.name}"
    if method.server_streaming:
        return channel.unary_stream(
            path,
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
    return channel.unary_unary(
        path,
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )


async def status_of(
    channel: grpc.aio.Channel,
    method: MethodDescriptor,
    request: Message,
    metadata: tuple[tuple[str, str], ...],
) -> grpc.StatusCode:
    stub = call(channel, method)
    try:
        if method.server_streaming:
            return await watch_status(stub(request, metadata=metadata, timeout=10))
        await stub(request, metadata=metadata, timeout=10)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def watch_status(stream: Any) -> grpc.StatusCode:
    """A watch streams until cancelled: its first answer (or refusal) is enough. One
    with nothing to tell yet (notify's, when no notification is waiting) keeps quiet;
    such a watch counts as accepted when its headers said so (WATCH_ACCEPTED)."""

    async def first() -> None:
        async for _ in stream:
            break

    try:
        await asyncio.wait_for(first(), WATCH_PATIENCE_SECONDS)
    except TimeoutError:
        headers = dict(await stream.initial_metadata())
        return (
            grpc.StatusCode.OK
            if headers.get("chuhai-watch") == "accepted"
            else (grpc.StatusCode.DEADLINE_EXCEEDED)
        )
    finally:
        stream.cancel()
    return grpc.StatusCode.OK


@pytest.mark.parametrize(("service", "method"), METHODS, ids=[f"{s}.{m.name}" for s, m in METHODS])
@settings(
    max_examples=EXAMPLES_PER_METHOD,
    derandomize=True,
    deadline=None,
    database=None,
    # The platform is started once per method, on purpose: the examples share it.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_every_rpc_answers_deliberately_and_a_refusal_writes_nothing(
    platform: Platform,
    identities: Identities,
    service: str,
    method: MethodDescriptor,
    data: st.DataObject,
) -> None:
    request = data.draw(message_of(method.input_type), label="request")
    caller = data.draw(callers(identities), label="caller")
    before = await database_state(platform)
    metadata = caller.metadata(identities)
    code = await status_of(platform.channels[service], method, request, metadata)
    platform.tried["requests"] += 1
    assert code in DELIBERATE, f"{method.full_name} as {caller.description}: {code}"
    if code is not grpc.StatusCode.OK:
        platform.tried["refused"] += 1
        assert await database_state(platform) == before, (
            f"{method.full_name} refused ({code.name}) as {caller.description} "
            "yet changed the database"
        )
