"""The one way a Chuhai service process starts and stops.

Start: logging, settings, the /metrics endpoint, MongoDB and Kafka clients built on the
running loop (waiting with backoff while either is unreachable), the outbox relay, then
the gRPC server. Stop on SIGINT/SIGTERM: health NOT_SERVING, in-flight calls finish, the
relay drains, clients close, the last spans are exported."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.trace import Tracer, TracerProvider
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from runtime.adapters.auth import PrincipalRateLimiter, TokenVerifier, verifier_from
from runtime.adapters.grpc_client import TokenSource
from runtime.adapters.grpc_server import GrpcServer, ServiceBinding
from runtime.adapters.kafka import KafkaEventPublisher
from runtime.adapters.logging import configure_logging
from runtime.adapters.metrics import MetricsServer, ServiceMetrics
from runtime.adapters.mongo import connect_mongo
from runtime.adapters.outbox import GroupCommit, Outbox, OutboxRelay, RelayLease
from runtime.adapters.settings import Settings
from runtime.adapters.tls import server_credentials
from runtime.adapters.tokens import service_tokens_from
from runtime.adapters.tracing import TRACER_NAME, tracer_provider_for
from runtime.kernel.clock import Clock, SystemClock

log = logging.getLogger(__name__)


@dataclass
class ServiceContext:
    """The long-lived clients a service's adapters are built from, and what the service
    wants run beside its server and cleaned up after it."""

    name: str
    settings: Settings
    mongo: AsyncMongoClient
    db: AsyncDatabase
    outbox: Outbox
    clock: Clock
    # The process's metrics (a service adds its own to metrics.registry) and its
    # tracer, None when tracing is off.
    metrics: ServiceMetrics
    tracer: Tracer | None
    # The one verifier of the process: the gRPC server's, for any other door (the
    # bureau's dashboard) to admit exactly the same tokens.
    verifier: TokenVerifier
    # The bearer token this service presents to the services it calls.
    service_token: TokenSource | None = None
    background: dict[str, Callable[[], Awaitable[None]]] = field(default_factory=dict)
    cleanups: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def run_in_background(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run ``loop`` while the server serves; it is cancelled at stop."""
        self.background[name] = loop

    def on_stop(self, cleanup: Callable[[], Awaitable[None]]) -> None:
        """Await ``cleanup`` once the server has stopped (close channels and the like)."""
        self.cleanups.append(cleanup)


BuildBindings = Callable[[ServiceContext], Awaitable[Sequence[ServiceBinding]]]


class ServiceHost:
    """Owns a service's clients, relay and gRPC server for the life of the process."""

    def __init__(
        self,
        name: str,
        build: BuildBindings,
        settings: Settings,
        clock: Clock | None = None,
        *,
        relays_outbox: bool = True,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        """``relays_outbox=False`` is for a service that records no events of its own (the
        bureau only consumes): no relay and no Kafka producer are started, so it serves
        without waiting for Kafka, and its context's outbox is never published.

        Spans go to ``tracer_provider`` (tests give one with an in-memory exporter);
        without one, to the OTLP endpoint of the settings, if any (the host then owns
        that provider and flushes it at stop)."""
        self.name = name
        self._build = build
        self._settings = settings
        self._clock = clock or SystemClock()
        self._relays_outbox = relays_outbox
        self._tracer_provider = tracer_provider
        self._owned_tracer_provider: SdkTracerProvider | None = None
        self.metrics = ServiceMetrics(name)
        self._metrics_server: MetricsServer | None = None
        self._mongo: AsyncMongoClient | None = None
        self._publisher: KafkaEventPublisher | None = None
        self._relay: OutboxRelay | None = None
        self._relay_task: asyncio.Task[None] | None = None
        self._context: ServiceContext | None = None
        self._background: list[asyncio.Task[None]] = []
        self.server: GrpcServer | None = None

    @property
    def metrics_port(self) -> int | None:
        """Where /metrics is served once started (the free port taken for port 0)."""
        return None if self._metrics_server is None else self._metrics_server.port

    async def start(self) -> None:
        settings = self._settings
        # First: half-configured TLS stops the process before it starts anything.
        credentials = server_credentials(settings)
        tracer = self._start_tracing()
        verifier = verifier_from(settings)
        self.server = GrpcServer(
            host=settings.grpc_host,
            port=settings.grpc_port(self.name),
            verifier=verifier,
            limiter=PrincipalRateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst),
            max_message_bytes=settings.grpc_max_message_bytes,
            metrics=self.metrics.rpc,
            tracer=tracer,
            credentials=credentials,
        )
        self.server.bind()
        # Up while the clients still wait for MongoDB or Kafka: a process that has not
        # started is visible too.
        self._metrics_server = MetricsServer(
            self.metrics.registry, settings.metrics_host, settings.metrics_port(self.name)
        )
        await self._metrics_server.start()
        self._mongo = await connect_mongo(settings.mongodb_uri, app_name=f"chuhai-{self.name}")
        db = self._mongo.get_database(settings.database_name(self.name))
        outbox = Outbox(
            self._mongo,
            db,
            producer=self.name,
            transactions=self.metrics.transactions,
            group_commit=GroupCommit.from_settings(settings),
        )
        if self._relays_outbox:
            await self._start_relay(outbox, db)
        self._context = ServiceContext(
            self.name,
            settings,
            self._mongo,
            db,
            outbox,
            self._clock,
            self.metrics,
            tracer,
            verifier,
            service_token=service_tokens_from(settings, self.name),
        )
        await self.server.start(await self._build(self._context))
        self._background = [
            asyncio.create_task(loop(), name=f"{self.name}-{name}")
            for name, loop in self._context.background.items()
        ]

    async def _start_relay(self, outbox: Outbox, db: AsyncDatabase) -> None:
        settings = self._settings
        await outbox.ensure_indexes()
        self._publisher = await KafkaEventPublisher.connect(
            settings.kafka_bootstrap_servers,
            client_id=f"chuhai-{self.name}-relay",
            registry=self.metrics.registry,
        )
        self._relay = OutboxRelay(
            outbox,
            self._publisher,
            batch_size=settings.relay_batch_size,
            idle_poll_seconds=settings.relay_idle_poll_seconds,
            lease=RelayLease(db, owner=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"),
            metrics=self.metrics.outbox,
        )
        self._relay_task = asyncio.create_task(self._relay.run(), name=f"{self.name}-relay")

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(self._settings.grpc_shutdown_grace_seconds)
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._context is not None:
            for cleanup in self._context.cleanups:
                await cleanup()
        if self._relay is not None and self._relay_task is not None:
            self._relay.stop()
            await self._relay_task
            # Events committed by the last calls go out now rather than at next start.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._relay.drain(), 5)
            with contextlib.suppress(Exception):
                await self._relay.release()
        if self._publisher is not None:
            await self._publisher.close()
        if self._mongo is not None:
            await self._mongo.close()
        if self._metrics_server is not None:
            await self._metrics_server.stop()
        if self._owned_tracer_provider is not None:
            # Bounded: an unreachable collector must not hold the stop for the
            # exporter's own retries.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.to_thread(self._owned_tracer_provider.shutdown), 5)
        log.info("service stopped", extra={"service": self.name})

    def _start_tracing(self) -> Tracer | None:
        provider = self._tracer_provider
        if provider is None:
            provider = self._owned_tracer_provider = tracer_provider_for(
                self.name, self._settings.otel_exporter_otlp_endpoint
            )
        return None if provider is None else provider.get_tracer(TRACER_NAME)


class Startable(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def serve_until_signalled(host: Startable) -> None:
    """Start ``host``, run until SIGINT or SIGTERM, then stop it gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    start = asyncio.create_task(host.start())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({start, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if start.done():
        start.result()
        await stopped
    else:
        # Signalled while still waiting for Kafka or MongoDB: give up the wait.
        start.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await start
    await host.stop()


def run_service(name: str, build: BuildBindings) -> None:
    """Entry point of a service process (``python -m <service>``)."""
    settings = Settings()
    configure_logging(name, settings.log_level)
    asyncio.run(serve_until_signalled(ServiceHost(name, build, settings)))
