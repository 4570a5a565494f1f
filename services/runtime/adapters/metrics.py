"""Prometheus metrics of a Chuhai process, served as text on http://<METRICS_HOST>:<port>/metrics.

Every ServiceHost (the bureau's too) owns one CollectorRegistry rather than using
prometheus_client's global one. Tests run several hosts in one process (the demo test
runs all four, the warehouse test two of the same service): on the global registry the
second host would be refused its metric names (duplicated timeseries), and a counter
would carry one test's calls into the next. A registry per host gives each /metrics
exactly its own process role, and tests read values with
``host.metrics.registry.get_sample_value(name, labels)``. The service is named once, by
``chuhai_service_info``; Prometheus adds the target's own labels (job, pod) to every series.

Hot paths pay a dictionary lookup and an increment: labelled children are cached per
label values (prometheus_client's ``labels()`` validates its arguments on every call),
and the outbox gauges move once per relay pass, never per event.
"""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Sequence
from importlib import metadata
from typing import Protocol

import grpc
from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.aiohttp import make_aiohttp_handler

log = logging.getLogger(__name__)

# gRPC calls here take from a millisecond (a read) to seconds (a contended allocation).
RPC_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class RpcMetrics:
    """gRPC server calls, recorded at their final status (see grpc_server.CallObserver).

    - ``chuhai_grpc_server_handled_total`` (counter; grpc_service, grpc_method,
      grpc_code): calls completed, by final status code ("OK", "INVALID_ARGUMENT"...).
    - ``chuhai_grpc_server_handling_seconds`` (histogram; same labels): time from the
      call reaching the service to its status; for a server stream, the whole stream.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry if registry is not None else CollectorRegistry()
        labels = ("grpc_service", "grpc_method", "grpc_code")
        self._handled = Counter(
            "chuhai_grpc_server_handled",
            "gRPC calls completed by the server, by final status code.",
            labels,
            registry=registry,
        )
        self._seconds = Histogram(
            "chuhai_grpc_server_handling_seconds",
            "Time the server took to complete a gRPC call, by final status code.",
            labels,
            buckets=RPC_SECONDS_BUCKETS,
            registry=registry,
        )
        self._children: dict[tuple[str, grpc.StatusCode], tuple[Counter, Histogram]] = {}

    def observe(self, full_method: str, code: grpc.StatusCode, seconds: float) -> None:
        """One call of ``full_method`` ("/package.Service/Method") ended with ``code``."""
        key = (full_method, code)
        children = self._children.get(key)
        if children is None:
            service, _, method = full_method.lstrip("/").rpartition("/")
            values = (service, method, code.name)
            children = (self._handled.labels(*values), self._seconds.labels(*values))
            self._children[key] = children
        handled, seconds_histogram = children
        handled.inc()
        seconds_histogram.observe(seconds)


class _TopicRecord(Protocol):
    @property
    def topic(self) -> str: ...


class OutboxMetrics:
    """The outbox relay, per pass (see outbox.OutboxRelay).

    - ``chuhai_outbox_backlog_events`` (gauge): unpublished events the last relay pass
      found waiting; 0 on an instance that does not hold the relay lease, so the
      service's backlog is the max over its instances.
    - ``chuhai_outbox_lag_seconds`` (gauge): age of the oldest unpublished event at the
      last pass (0 when none waits): how far Kafka is behind MongoDB.
    - ``chuhai_outbox_published_events_total`` (counter; topic): events Kafka acknowledged.
    - ``chuhai_outbox_relay_errors_total`` (counter): relay passes that failed (Kafka or
      MongoDB unreachable) and were retried after a backoff.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry if registry is not None else CollectorRegistry()
        self.backlog = Gauge(
            "chuhai_outbox_backlog_events",
            "Unpublished outbox events found by the last relay pass.",
            registry=registry,
        )
        self.lag = Gauge(
            "chuhai_outbox_lag_seconds",
            "Age of the oldest unpublished outbox event at the last relay pass.",
            registry=registry,
        )
        self._published = Counter(
            "chuhai_outbox_published_events",
            "Outbox events published to Kafka and acknowledged, by topic.",
            ("topic",),
            registry=registry,
        )
        self.relay_errors = Counter(
            "chuhai_outbox_relay_errors",
            "Relay passes that failed and were retried after a backoff.",
            registry=registry,
        )
        self._published_by_topic: dict[str, Counter] = {}

    def found(self, backlog: int, oldest_age_seconds: float) -> None:
        self.backlog.set(backlog)
        self.lag.set(max(0.0, oldest_age_seconds))

    def published(self, records: Sequence[_TopicRecord]) -> None:
        for topic, count in Tally(record.topic for record in records).items():
            child = self._published_by_topic.get(topic)
            if child is None:
                child = self._published_by_topic[topic] = self._published.labels(topic)
            child.inc(count)


class TransactionMetrics:
    """MongoDB transactions (see mongo.run_in_transaction).

    - ``chuhai_mongo_transaction_retries_total`` (counter; reason): retries of a
      transaction: "transient" (TransientTransactionError, a write conflict),
      "commit_conflict" (SecantusDB's unlabelled conflict at commit),
      "unknown_commit_result" (the commit alone retried).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry if registry is not None else CollectorRegistry()
        self._retries = Counter(
            "chuhai_mongo_transaction_retries",
            "MongoDB transaction retries, by reason.",
            ("reason",),
            registry=registry,
        )

    def retried(self, reason: str) -> None:
        self._retries.labels(reason).inc()


class ServiceMetrics:
    """Every metric of one service process, in its own registry (see the module's
    docstring), with the process's CPU, memory, file descriptors and GC.

    - ``chuhai_service_info`` (info; service, version): which service this process is.
    """

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        info = Info("chuhai_service", "The service this process runs.", registry=self.registry)
        info.info({"service": service, "version": _version()})
        self.rpc = RpcMetrics(self.registry)
        self.outbox = OutboxMetrics(self.registry)
        self.transactions = TransactionMetrics(self.registry)


def _version() -> str:
    try:
        return metadata.version("chuhai")
    except metadata.PackageNotFoundError:
        return "unknown"


class MetricsServer:
    """Serves a registry's metrics at /metrics (aiohttp, on the service's event loop).

    On the loop rather than prometheus_client's thread: collectors that read the
    service's own state at scrape time (the bureau's consumer lag) then never race the
    code that changes it, and stopping is immediate. A loop too busy to answer a scrape
    is one too busy to answer gRPC, which is worth seeing as a failed scrape."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        app = web.Application()
        app.router.add_get("/metrics", make_aiohttp_handler(registry))
        self._runner = web.AppRunner(app, access_log=None)
        self._host = host
        self._port = port
        self.port: int | None = None

    async def start(self) -> int:
        """Listen (port 0: any free port, then in ``port``); raises OSError if taken."""
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self._host, self._port).start()
        except OSError:
            await self._runner.cleanup()
            raise
        self.port = int(self._runner.addresses[0][1])
        log.info("metrics served", extra={"url": f"http://{self._host}:{self.port}/metrics"})
        return self.port

    async def stop(self) -> None:
        await self._runner.cleanup()
