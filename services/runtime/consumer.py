"""An idempotent event consumer for services that react to other services' events.

Each event is applied at most once: its event_id goes into an inbox collection in the
same transaction as the handler's writes, so a redelivered record changes nothing.
A record that cannot be decoded, or whose handler still fails after bounded retries,
goes to ``<topic>.dlq`` with the error in its headers, and the partition moves on.
Offsets are committed only after a record was applied or dead-lettered: delivery is
at least once, application exactly once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from runtime.events import EventEnvelope, UndecodableEvent, decode_envelope
from runtime.mongo import run_in_transaction

log = logging.getLogger(__name__)

INBOX_COLLECTION = "inbox"

Handler = Callable[[AsyncDatabase, AsyncClientSession, EventEnvelope], Awaitable[None]]


class IdempotentConsumer:
    def __init__(
        self,
        *,
        name: str,
        topics: Sequence[str],
        bootstrap_servers: str,
        mongo: AsyncMongoClient,
        db: AsyncDatabase,
        handler: Handler,
        max_attempts: int = 3,
        retry_delay_seconds: float = 0.2,
    ) -> None:
        self.name = name
        self._topics = list(topics)
        self._bootstrap = bootstrap_servers
        self._mongo = mongo
        self._db = db
        self._handler = handler
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay_seconds
        self._consumer: AIOKafkaConsumer | None = None
        self._dlq: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            *self._topics,
            bootstrap_servers=self._bootstrap,
            group_id=self.name,
            client_id=self.name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # The embedded broker holds a group's first join for half the session
            # timeout; 10 s keeps that wait at 5 s (see ARCHITECTURE.md).
            session_timeout_ms=10_000,
            heartbeat_interval_ms=3_000,
        )
        # aiokafka's idempotent producer fails on the embedded broker; dead letters are
        # rare and tolerate a duplicate, so a plain acks=all producer is enough here.
        self._dlq = AIOKafkaProducer(bootstrap_servers=self._bootstrap, acks="all")
        await self._dlq.start()
        await self._consumer.start()

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self._dlq is not None:
            await self._dlq.stop()

    async def run(self) -> None:
        """Consume until cancelled."""
        assert self._consumer is not None, "start() first"
        while True:
            batches = await self._consumer.getmany(timeout_ms=500, max_records=500)
            for partition, records in batches.items():
                for record in records:
                    await self.process(record)
                await self._consumer.commit({partition: records[-1].offset + 1})

    async def process(self, record: ConsumerRecord) -> bool:
        """Apply one record; return True when it changed state, False for a duplicate
        or a dead letter."""
        try:
            envelope = decode_envelope(record.value)
        except UndecodableEvent as error:
            await self._dead_letter(record, error, attempts=0)
            return False
        for attempt in range(1, self._max_attempts + 1):
            try:
                return await run_in_transaction(
                    self._mongo, lambda session: self._apply_once(session, envelope)
                )
            except Exception as error:
                if attempt == self._max_attempts:
                    await self._dead_letter(record, error, attempts=attempt)
                    return False
                log.warning(
                    "handler failed, retrying",
                    extra={
                        "consumer": self.name,
                        "event_id": envelope.event_id,
                        "error": str(error),
                    },
                )
                await asyncio.sleep(self._retry_delay * attempt)
        return False

    async def _apply_once(self, session: AsyncClientSession, envelope: EventEnvelope) -> bool:
        inbox = self._db[INBOX_COLLECTION]
        key = f"{self.name}:{envelope.event_id}"
        if await inbox.find_one({"_id": key}, session=session) is not None:
            return False
        await self._handler(self._db, session, envelope)
        await inbox.insert_one({"_id": key, "type": envelope.type}, session=session)
        return True

    async def _dead_letter(self, record: ConsumerRecord, error: Exception, attempts: int) -> None:
        assert self._dlq is not None
        log.error(
            "dead-lettering record",
            extra={
                "consumer": self.name,
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "error": str(error),
            },
        )
        await self._dlq.send_and_wait(
            f"{record.topic}.dlq",
            key=record.key,
            value=record.value,
            headers=[
                ("error", str(error).encode()),
                ("error_type", type(error).__name__.encode()),
                ("consumer", self.name.encode()),
                ("attempts", str(attempts).encode()),
                ("original_topic", record.topic.encode()),
                ("original_partition", str(record.partition).encode()),
                ("original_offset", str(record.offset).encode()),
            ],
        )
