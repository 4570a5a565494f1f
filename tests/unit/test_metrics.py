"""Prometheus metrics: gRPC calls by final status, the relay's backlog and lag, MongoDB
transaction retries, the bureau stream's counts and consumer lag, the /metrics endpoint."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import grpc
import pytest
from faust.types import TP
from grpc_health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry
from pymongo.errors import OperationFailure, PyMongoError

from bureau.figures import BureauFigures
from bureau.live import LiveStats
from bureau.stream import ConsumerLag, StreamMetrics, build_stream_app
from chuhai.expo.v1 import events_pb2
from runtime.adapters.events import envelope_for
from runtime.adapters.grpc_server import GrpcServer, ServiceBinding
from runtime.adapters.metrics import (
    MetricsServer,
    OutboxMetrics,
    RpcMetrics,
    ServiceMetrics,
    TransactionMetrics,
)
from runtime.adapters.mongo import run_in_transaction
from runtime.adapters.outbox import OutboxRecord, OutboxRelay, PublishError
from runtime.adapters.settings import Settings
from runtime.kernel import errors
from tests.unit.test_bureau_stream import RecordingStore
from tests.unit.test_relay import FakeOutbox, FakePublisher
from tests.waiting import eventually

ECHO = "test.v1.Echo"

# Echo.Check answers by the request's `service` field: "bad" is the caller's mistake,
# "boom" a server bug; anything else is fine. Echo.Watch streams two answers.
Check = Callable[[HealthCheckRequest, grpc.aio.ServicerContext], Awaitable[HealthCheckResponse]]


async def plain_check(request: HealthCheckRequest, _: grpc.aio.ServicerContext) -> Any:
    if request.service == "bad":
        raise errors.InvalidArgument(errors.FieldViolation("service", "is bad"))
    if request.service == "boom":
        raise RuntimeError("a bug")
    return HealthCheckResponse(status=HealthCheckResponse.SERVING)


async def watch(_: HealthCheckRequest, __: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
    for _ in range(2):
        yield HealthCheckResponse(status=HealthCheckResponse.SERVING)


def echo_binding(check: Check = plain_check) -> ServiceBinding:
    serialization = {
        "request_deserializer": HealthCheckRequest.FromString,
        "response_serializer": HealthCheckResponse.SerializeToString,
    }
    handler = grpc.method_handlers_generic_handler(
        ECHO,
        {
            "Check": grpc.unary_unary_rpc_method_handler(check, **serialization),
            "Watch": grpc.unary_stream_rpc_method_handler(watch, **serialization),
        },
    )
    return ServiceBinding(ECHO, None, lambda _, server: server.add_generic_rpc_handlers([handler]))


@asynccontextmanager
async def echo_server(
    metrics: RpcMetrics, tracer: Tracer | None = None, check: Check = plain_check
) -> AsyncIterator[grpc.aio.Channel]:
    server = GrpcServer(host="127.0.0.1", port=0, verifier=None, metrics=metrics, tracer=tracer)
    await server.start([echo_binding(check)])
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            yield channel
    finally:
        await server.stop(0)


def echo_check(channel: grpc.aio.Channel) -> grpc.aio.UnaryUnaryMultiCallable:
    return channel.unary_unary(
        f"/{ECHO}/Check",
        request_serializer=HealthCheckRequest.SerializeToString,
        response_deserializer=HealthCheckResponse.FromString,
    )


async def call_code(call: Awaitable[Any]) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def handled(registry: CollectorRegistry, method: str, code: str) -> float | None:
    labels = {"grpc_service": ECHO, "grpc_method": method, "grpc_code": code}
    return registry.get_sample_value("chuhai_grpc_server_handled_total", labels)


async def test_each_call_is_counted_and_timed_by_its_final_status_code() -> None:
    registry = CollectorRegistry()
    async with echo_server(RpcMetrics(registry)) as channel:
        check = echo_check(channel)
        codes = [
            await call_code(check(HealthCheckRequest(service=name), timeout=5))
            for name in ("ok", "ok", "bad", "boom")
        ]
        watched = channel.unary_stream(
            f"/{ECHO}/Watch",
            request_serializer=HealthCheckRequest.SerializeToString,
            response_deserializer=HealthCheckResponse.FromString,
        )
        assert len([r async for r in watched(HealthCheckRequest(), timeout=5)]) == 2
    assert codes == [
        grpc.StatusCode.OK,
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.INTERNAL,
    ]
    # The code the DomainErrorInterceptor set, not what the handler raised.
    assert handled(registry, "Check", "OK") == 2
    assert handled(registry, "Check", "INVALID_ARGUMENT") == 1
    assert handled(registry, "Check", "INTERNAL") == 1
    assert handled(registry, "Check", "UNKNOWN") is None
    assert handled(registry, "Watch", "OK") == 1
    timed = {"grpc_service": ECHO, "grpc_method": "Check", "grpc_code": "OK"}
    assert registry.get_sample_value("chuhai_grpc_server_handling_seconds_count", timed) == 2
    assert registry.get_sample_value("chuhai_grpc_server_handling_seconds_sum", timed) > 0


def aged_records(ages_seconds: list[float], topic: str = "chuhai.booth.fairs.v1") -> list:
    """Outbox records written ``ages_seconds`` ago (a position is a write's nanosecond)."""
    now = time.time_ns()
    return [
        OutboxRecord(f"e{i}", now - int(age * 1e9), topic, "canton-137", "t", b"x")
        for i, age in enumerate(ages_seconds)
    ]


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


async def test_a_relay_pass_reports_the_backlog_it_found_its_lag_and_what_kafka_took() -> None:
    registry = CollectorRegistry()
    outbox = FakeOutbox(aged_records([3.0, 2.0, 1.0]))
    relay = OutboxRelay(outbox, FakePublisher([2]), batch_size=10, metrics=OutboxMetrics(registry))
    assert await relay.publish_pending() == 2
    assert sample(registry, "chuhai_outbox_backlog_events") == 3
    assert 2.9 < sample(registry, "chuhai_outbox_lag_seconds") < 4
    topic = "chuhai.booth.fairs.v1"
    assert sample(registry, "chuhai_outbox_published_events_total", topic=topic) == 2
    # The next pass finds the one left, a second old; then nothing at all.
    assert await relay.publish_pending() == 1
    assert sample(registry, "chuhai_outbox_backlog_events") == 1
    assert 0.9 < sample(registry, "chuhai_outbox_lag_seconds") < 2
    assert await relay.publish_pending() == 0
    assert sample(registry, "chuhai_outbox_backlog_events") == 0
    assert sample(registry, "chuhai_outbox_lag_seconds") == 0
    assert sample(registry, "chuhai_outbox_published_events_total", topic=topic) == 3


class CountingOutbox(FakeOutbox):
    def __init__(self, stored: list[OutboxRecord]) -> None:
        super().__init__(stored)
        self.counts = 0

    async def pending_count(self) -> int:
        self.counts += 1
        return await super().pending_count()


async def test_a_backlog_beyond_a_batch_is_counted_at_most_once_per_interval() -> None:
    registry = CollectorRegistry()
    outbox = CountingOutbox(aged_records([5.0] * 10))
    relay = OutboxRelay(
        outbox,
        FakePublisher(),
        batch_size=3,
        metrics=OutboxMetrics(registry),
        backlog_recount_seconds=60,
    )
    await relay.publish_pending()
    assert (outbox.counts, sample(registry, "chuhai_outbox_backlog_events")) == (1, 10)
    # Within the interval: the count less what was published since, no query.
    await relay.publish_pending()
    assert (outbox.counts, sample(registry, "chuhai_outbox_backlog_events")) == (1, 7)
    await relay.publish_pending()
    assert (outbox.counts, sample(registry, "chuhai_outbox_backlog_events")) == (1, 4)
    # Less than a batch found: that is the whole backlog.
    await relay.publish_pending()
    assert (outbox.counts, sample(registry, "chuhai_outbox_backlog_events")) == (1, 1)


async def test_a_failed_relay_pass_is_counted() -> None:
    registry = CollectorRegistry()
    outbox = FakeOutbox(aged_records([0.0]))
    relay = OutboxRelay(
        outbox,
        FakePublisher([PublishError("broker down")]),
        idle_poll_seconds=0.01,
        metrics=OutboxMetrics(registry),
    )

    async def published() -> list[str]:
        return outbox.published

    task = asyncio.create_task(relay.run())
    try:
        await eventually(published, equals=["e0"], within_seconds=3)
    finally:
        relay.stop()
        await task
    assert sample(registry, "chuhai_outbox_relay_errors_total") == 1


class FakeSession:
    """A client session whose transaction ``work`` decides about; commits fail as told."""

    def __init__(self, commit_failures: list[PyMongoError]) -> None:
        self.in_transaction = False
        self._commit_failures = commit_failures

    async def __aenter__(self) -> FakeSession:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None

    async def start_transaction(self) -> None:
        self.in_transaction = True

    async def commit_transaction(self) -> None:
        if self._commit_failures:
            raise self._commit_failures.pop(0)
        self.in_transaction = False

    async def abort_transaction(self) -> None:
        self.in_transaction = False


class FakeClient:
    def __init__(self, commit_failures: list[PyMongoError]) -> None:
        self._commit_failures = commit_failures

    def start_session(self) -> FakeSession:
        return FakeSession(self._commit_failures)


async def test_transaction_retries_are_counted_by_reason() -> None:
    registry = CollectorRegistry()
    metrics = TransactionMetrics(registry)
    unknown_commit = PyMongoError("lost", error_labels=["UnknownTransactionCommitResult"])
    failures: list[Exception] = [
        PyMongoError("write conflict", error_labels=["TransientTransactionError"]),
        PyMongoError("write conflict", error_labels=["TransientTransactionError"]),
        OperationFailure(
            "internal server error", code=1, details={"errmsg": "internal server error"}
        ),
    ]
    attempts = 0

    async def work(_: Any) -> str:
        nonlocal attempts
        attempts += 1
        if failures:
            raise failures.pop(0)
        return "done"

    client = FakeClient([unknown_commit])
    assert await run_in_transaction(client, work, on_retry=metrics.retried) == "done"
    assert attempts == 4

    def retries(reason: str) -> float | None:
        return sample(registry, "chuhai_mongo_transaction_retries_total", reason=reason)

    assert retries("transient") == 2
    assert retries("commit_conflict") == 1
    assert retries("unknown_commit_result") == 1


async def test_a_failure_that_is_not_retried_counts_nothing() -> None:
    registry = CollectorRegistry()

    async def work(_: Any) -> None:
        raise OperationFailure("E11000 duplicate key", code=11000)

    metrics = TransactionMetrics(registry)
    with pytest.raises(OperationFailure):
        await run_in_transaction(FakeClient([]), work, on_retry=metrics.retried)
    assert sample(registry, "chuhai_mongo_transaction_retries_total", reason="transient") is None


def visit(buyer_id: str) -> bytes:
    payload = events_pb2.ExhibitorVisited(visit_id=f"v-{buyer_id}", buyer_id=buyer_id)
    return envelope_for(payload, aggregate_id=buyer_id, producer="expo").SerializeToString()


async def test_the_stream_counts_applied_redelivered_skipped_and_dead_lettered_events() -> None:
    metrics = StreamMetrics()
    store = RecordingStore()
    sent: list[tuple[str, bytes | None, bytes, list]] = []

    async def send(topic: str, key: bytes | None, value: bytes, headers: list) -> None:
        sent.append((topic, key, value, headers))

    app = build_stream_app(
        Settings(kafka_bootstrap_servers="127.0.0.1:1"),
        LiveStats(BureauFigures()),
        store,
        lambda: b"headline",
        send,
        metrics=metrics,
    )
    [agent] = app.agents.values()
    unreadable = envelope_for(
        events_pb2.ExhibitorVisited(visit_id="v-x", buyer_id="x"), aggregate_id="x", producer="expo"
    )
    unreadable.schema_version = 99

    async def journaled_and_dead_lettered() -> tuple[int, int]:
        return len(store.journal), len([s for s in sent if s[0].endswith(".dlq")])

    async with agent.test_context() as stream:
        first = visit("b1")
        for value in (first, first, visit("b2"), unreadable.SerializeToString(), b"\xff junk"):
            await stream.put(value, key=b"k")
        await eventually(journaled_and_dead_lettered, equals=(2, 1), within_seconds=5)

    registry = metrics.registry
    assert sample(registry, "chuhai_bureau_events_applied_total") == 2
    assert sample(registry, "chuhai_bureau_events_redelivered_total") == 1
    assert sample(registry, "chuhai_bureau_events_skipped_total") == 1
    [dead] = [s for s in sent if s[0].endswith(".dlq")]
    original_topic = dict(dead[3])["original_topic"].decode()
    assert sample(registry, "chuhai_bureau_dead_letters_total", topic=original_topic) == 1
    assert sample(registry, "chuhai_bureau_store_writes_total", kind="journal") >= 1
    # RecordingStore never rewrites a snapshot.
    assert sample(registry, "chuhai_bureau_store_writes_total", kind="snapshot") == 0


def test_consumer_lag_is_the_fetch_highwater_less_the_next_offset_per_topic() -> None:
    intents = [TP("chuhai.expo.intents.v1", p) for p in range(2)]
    fairs = TP("chuhai.booth.fairs.v1", 0)
    unseen = TP("chuhai.booth.fairs.v1", 1)
    highwaters = {intents[0]: 120, intents[1]: 40, fairs: 7, unseen: 99}
    assigned = {*intents, fairs, unseen}
    lag = ConsumerLag(highwaters.get, lambda: assigned)
    registry = CollectorRegistry()
    registry.register(lag)
    # Nothing processed yet: no figure rather than a wrong one.
    assert sample(registry, "chuhai_bureau_consumer_lag_records", topic=fairs.topic) is None
    lag.next_offsets.update({intents[0]: 100, intents[1]: 40, fairs: 7})
    assert sample(registry, "chuhai_bureau_consumer_lag_records", topic=intents[0].topic) == 20
    assert sample(registry, "chuhai_bureau_consumer_lag_records", topic=fairs.topic) == 0
    # A partition given to another member no longer counts here.
    assigned.discard(intents[0])
    assert sample(registry, "chuhai_bureau_consumer_lag_records", topic=intents[0].topic) == 0


async def test_metrics_are_served_as_prometheus_text_on_a_free_port() -> None:
    metrics = ServiceMetrics("booth")
    metrics.transactions.retried("transient")
    server = MetricsServer(metrics.registry, "127.0.0.1", 0)
    port = await server.start()
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/metrics") as response,
        ):
            assert response.status == 200
            assert response.content_type == "text/plain"
            text = await response.text()
    finally:
        await server.stop()
    assert 'chuhai_service_info{service="booth",version=' in text
    assert 'chuhai_mongo_transaction_retries_total{reason="transient"} 1.0' in text
    assert "process_cpu_seconds_total" in text
    assert "# TYPE chuhai_grpc_server_handling_seconds histogram" in text
