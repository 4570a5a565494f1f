"""Kafka clients. The outbox relay uses kafka-python's idempotent producer: on the
embedded Tansu broker aiokafka's idempotent producer fails at InitProducerId while
kafka-python 3.x's works (measured; docs/architecture.md, "Limits of the embedded
infrastructure")."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from kafka import KafkaProducer
from kafka.errors import KafkaError
from tenacity import AsyncRetrying, before_sleep_log, retry_if_exception_type, wait_exponential

from runtime.adapters.outbox import OutboxRecord, PublishError

log = logging.getLogger(__name__)

# A record not acknowledged within this time is retried by the relay's next pass.
_ACK_TIMEOUT_SECONDS = 30.0


class KafkaEventPublisher:
    """Publishes outbox records: acks=all, idempotent, key = aggregate id."""

    def __init__(self, producer: KafkaProducer) -> None:
        self._producer = producer

    @classmethod
    async def connect(cls, bootstrap_servers: str, *, client_id: str) -> KafkaEventPublisher:
        """Wait, with backoff and a log line per attempt, until the broker answers."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(KafkaError),
            wait=wait_exponential(multiplier=0.2, max=10),
            before_sleep=before_sleep_log(log, logging.WARNING),
        ):
            with attempt:
                producer = await asyncio.to_thread(
                    KafkaProducer,
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
        log.info("connected to Kafka", extra={"client_id": client_id})
        return cls(producer)

    async def publish(self, records: Sequence[OutboxRecord]) -> int:
        return await asyncio.to_thread(self._publish_blocking, records)

    def _publish_blocking(self, records: Sequence[OutboxRecord]) -> int:
        futures = []
        try:
            for record in records:
                futures.append(
                    self._producer.send(
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
        self._producer.flush(timeout=_ACK_TIMEOUT_SECONDS)
        acknowledged = 0
        for future in futures:
            try:
                future.get(timeout=_ACK_TIMEOUT_SECONDS)
            except KafkaError as error:
                log.warning("record not acknowledged", extra={"error": str(error)})
                break
            acknowledged += 1
        if records and acknowledged == 0:
            raise PublishError(f"no record acknowledged; first was {records[0].event_id}")
        return acknowledged

    async def close(self) -> None:
        await asyncio.to_thread(self._producer.close, 10)
