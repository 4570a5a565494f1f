"""Kafka clients. The outbox relay uses kafka-python's idempotent producer: on the
embedded Tansu broker aiokafka's idempotent producer fails at InitProducerId while
kafka-python 3.x's works (measured; docs/architecture.md, "Limits of the embedded
infrastructure").

A producer that failed to deliver is replaced by a fresh one. Measured after a kill -9
and restart of the embedded broker (which keeps nothing): a running idempotent producer
never recovers by itself. Either it tries to bump its epoch, the new broker answers
InitProducerId with UnknownError, and the producer turns fatal, failing every later
record at once; or it takes the broker's UnknownProducerId for retention-based loss and
retries each batch until its delivery timeout, again and again. A new producer gets a
new producer id from the new broker and publishes at once."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence

from kafka import KafkaProducer
from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter
from tenacity import AsyncRetrying, before_sleep_log, retry_if_exception_type, wait_exponential

from runtime.adapters.outbox import OutboxRecord, PublishError

log = logging.getLogger(__name__)

# A publish waits this long, in all, for its records to be acknowledged; what is not
# acknowledged by then is retried by the relay's next pass, on a new producer. Well
# above a healthy acknowledgement (well under a second for a full batch), and short
# enough that a producer stuck retrying for a broker that forgot it is replaced soon.
_ACK_TIMEOUT_SECONDS = 15.0
# Replacing a producer that keeps failing waits this long, doubling up to the maximum,
# so a broker that is down is not hammered with new connections.
_REPLACE_BACKOFF_SECONDS = 0.5
_REPLACE_BACKOFF_MAX_SECONDS = 10.0


class ProducerMetrics:
    """``chuhai_kafka_producers_replaced_total`` (counter): producers closed after they
    failed to deliver and replaced by a fresh one."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.replaced = Counter(
            "chuhai_kafka_producers_replaced",
            "Kafka producers replaced after they failed to deliver.",
            registry=registry if registry is not None else CollectorRegistry(),
        )


class KafkaEventPublisher:
    """Publishes outbox records: acks=all, idempotent, key = aggregate id.

    ``build`` makes a producer; the publisher makes a new one, at the start of the next
    publish, whenever a record was not acknowledged (a refused send, a failed or
    timed-out delivery): the relay retries the records from the first unacknowledged
    one, and consumers deduplicate whatever the old producer still delivered."""

    def __init__(
        self,
        build: Callable[[], KafkaProducer],
        *,
        metrics: ProducerMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Builds the first producer now (blocking: call it off the event loop)."""
        self._build = build
        self._metrics = metrics or ProducerMetrics()
        self._clock = clock
        self._producer: KafkaProducer | None = build()
        # Why the current producer must be replaced before the next publish, if it must.
        self._failure: Exception | None = None
        self._replace_delay = 0.0
        self._replace_at = 0.0
        self._lock = threading.Lock()

    @classmethod
    async def connect(
        cls,
        bootstrap_servers: str,
        *,
        client_id: str,
        registry: CollectorRegistry | None = None,
    ) -> KafkaEventPublisher:
        """Wait, with backoff and a log line per attempt, until the broker answers.
        Replacements are counted in ``registry`` (one of their own without)."""

        def build() -> KafkaProducer:
            return KafkaProducer(
                bootstrap_servers=bootstrap_servers,
                client_id=client_id,
                enable_idempotence=True,
                acks="all",
                # The idempotent producer keeps order with up to 5 requests in flight.
                max_in_flight_requests_per_connection=5,
                linger_ms=5,
                max_block_ms=10_000,
                request_timeout_ms=15_000,
            )

        metrics = ProducerMetrics(registry)
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(KafkaError),
            wait=wait_exponential(multiplier=0.2, max=10),
            before_sleep=before_sleep_log(log, logging.WARNING),
        ):
            with attempt:
                publisher = await asyncio.to_thread(lambda: cls(build, metrics=metrics))
        log.info("connected to Kafka", extra={"client_id": client_id})
        return publisher

    async def publish(self, records: Sequence[OutboxRecord]) -> int:
        return await asyncio.to_thread(self._publish_blocking, records)

    def _publish_blocking(self, records: Sequence[OutboxRecord]) -> int:
        with self._lock:
            producer = self._usable_producer()
            deadline = self._clock() + _ACK_TIMEOUT_SECONDS
            futures = []
            try:
                for record in records:
                    futures.append(
                        producer.send(
                            record.topic,
                            key=record.key.encode(),
                            value=record.envelope,
                            headers=[
                                ("event_id", record.event_id.encode()),
                                ("event_type", record.type.encode()),
                            ],
                        )
                    )
            except KafkaError as error:
                log.warning("send refused", extra={"error": str(error)})
                self._failure = error
            try:
                producer.flush(timeout=self._left(deadline))
            except KafkaError as error:
                # Timed out: the futures below tell which records made it.
                self._failure = error
            acknowledged = 0
            for future in futures:
                try:
                    future.get(timeout=self._left(deadline))
                except KafkaError as error:
                    log.warning("record not acknowledged", extra={"error": str(error)})
                    self._failure = error
                    break
                acknowledged += 1
            if acknowledged:
                # It delivers: when it fails, it is replaced at once.
                self._replace_delay = self._replace_at = 0.0
            if records and acknowledged == 0:
                raise PublishError(f"no record acknowledged; first was {records[0].event_id}")
            return acknowledged

    def _left(self, deadline: float) -> float:
        return max(0.0, deadline - self._clock())

    def _usable_producer(self) -> KafkaProducer:
        """The current producer, or a new one if it failed (PublishError if none can be
        had now: a replacement failed or waits for its backoff)."""
        if self._failure is None and self._producer is not None:
            return self._producer
        now = self._clock()
        if now < self._replace_at:
            raise PublishError(f"Kafka producer to be replaced in {self._replace_at - now:.1f} s")
        # Another failure before a record is acknowledged waits longer for the next one.
        self._replace_delay = min(
            _REPLACE_BACKOFF_MAX_SECONDS, max(_REPLACE_BACKOFF_SECONDS, self._replace_delay * 2)
        )
        self._replace_at = now + self._replace_delay
        if self._producer is not None:
            log.warning("replacing the Kafka producer", extra={"error": str(self._failure)})
            self._metrics.replaced.inc()
            self._close(self._producer, 0)
            self._producer = None
        try:
            self._producer = self._build()
        except KafkaError as error:
            raise PublishError(f"no new Kafka producer: {error}") from error
        self._failure = None
        return self._producer

    @staticmethod
    def _close(producer: KafkaProducer, timeout: float) -> None:
        try:
            producer.close(timeout)
        except KafkaError as error:
            # Its undelivered records are the relay's to retry; nothing else to do.
            log.warning("Kafka producer did not close cleanly", extra={"error": str(error)})

    async def close(self) -> None:
        def close() -> None:
            with self._lock:
                if self._producer is not None:
                    self._close(self._producer, 10)
                    self._producer = None

        await asyncio.to_thread(close)
