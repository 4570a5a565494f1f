"""Notify's Kafka consumer: every domain topic, in the group NOTIFY_CONSUMER_GROUP.

Offsets are committed by hand, after every record of a batch was handled, so they never
run ahead of what notify made of the events; whatever is delivered again (a commit
lost to a rebalance or a crash, a relay that published twice, a replay of the outboxes,
a new group reading from the start) is recognised by the event's id and changes
nothing (see handlers.handle_event).

A record notify cannot read (no envelope at all, or a payload it reads that is
malformed), or whose handling fails for a reason in the record, goes to its topic's
``.dlq`` twin with the error in its headers and is counted; the partition moves on.
A failure of the infrastructure (MongoDB or Kafka unreachable) is not the record's
fault: the record is tried again, with backoff, until it succeeds; it is never
dead-lettered and never committed past. Events notify does not read are passed over."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import CommitFailedError, KafkaError

from notify.domain import Fact
from notify.messages import fact_of
from notify.storage import STORE_ERRORS
from runtime.adapters.events import decode_envelope
from runtime.adapters.settings import Settings
from runtime.adapters.topics import DOMAIN_TOPICS

log = logging.getLogger(__name__)

CONSUMER_NAME = "notify"
# Records handled between two offset commits, at most.
BATCH_SIZE = 500
# How long one fetch waits for records before the loop turns again.
FETCH_TIMEOUT_MS = 500
# The embedded broker holds a group's first join for half the session timeout
# (docs/architecture.md, "Limits of the embedded infrastructure").
SESSION_TIMEOUT_MS = 10_000
BACKOFF_SECONDS = 0.2
MAX_BACKOFF_SECONDS = 10.0

# Failures that are the infrastructure's, not the record's: retried, never dead-lettered.
# (TimeoutError and ConnectionError are OSErrors.)
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (*STORE_ERRORS, KafkaError, OSError)

# Sends one record: topic, key, value, headers.
Send = Callable[[str, bytes | None, bytes, list[tuple[str, bytes]]], Awaitable[Any]]
# Handles one fact of an envelope of the given type.
HandleFact = Callable[[Fact, str], Awaitable[None]]


@dataclass(frozen=True)
class Record:
    """One consumed record, as notify reads it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class RecordStep:
    """What the consumer does with each record: read it and hand its fact to
    ``handle``, or dead-letter it. Returns whether a fact was handled; raises only the
    infrastructure's failures (INFRASTRUCTURE_ERRORS), for the caller to try again."""

    def __init__(
        self, handle: HandleFact, send: Send, dead_lettered: Callable[[str], None]
    ) -> None:
        self._handle = handle
        self._send = send
        self._dead_lettered = dead_lettered

    async def __call__(self, record: Record) -> bool:
        try:
            envelope = decode_envelope(record.value)
            fact = fact_of(envelope)
            if fact is None:
                return False
            await self._handle(fact, envelope.type)
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception as error:
            await _dead_letter(self._send, record, error)
            self._dead_lettered(record.topic)
            return False
        return True


async def _dead_letter(send: Send, record: Record, error: Exception) -> None:
    log.error(
        "dead-lettering record",
        extra={
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "error": str(error),
        },
    )
    await send(
        f"{record.topic}.dlq",
        record.key,
        record.value or b"",
        [
            ("error", str(error).encode()),
            ("error_type", type(error).__name__.encode()),
            ("consumer", CONSUMER_NAME.encode()),
            ("original_topic", record.topic.encode()),
            ("original_partition", str(record.partition).encode()),
            ("original_offset", str(record.offset).encode()),
        ],
    )


class NotifyConsumer:
    """The group consumer and the producer of its dead letters, run until cancelled.
    Kafka unreachable at start, or lost later, is waited out with backoff."""

    def __init__(
        self, settings: Settings, handle: HandleFact, dead_lettered: Callable[[str], None]
    ) -> None:
        self._settings = settings
        self._handle = handle
        self._dead_lettered = dead_lettered
        # Whether the last connection got as far as consuming: the backoff starts again.
        self._started = False

    async def run(self) -> None:
        backoff = BACKOFF_SECONDS
        while True:
            self._started = False
            try:
                await self._consume()
            except INFRASTRUCTURE_ERRORS as error:
                log.warning(
                    "notify consumer lost Kafka; connecting again",
                    extra={"error": str(error)},
                )
            except Exception:
                log.exception("notify consumer failed; starting again")
            if self._started:
                backoff = BACKOFF_SECONDS
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def _consume(self) -> None:
        settings = self._settings
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id="chuhai-notify-dead-letters",
        )
        consumer = AIOKafkaConsumer(
            *(topic.name for topic in DOMAIN_TOPICS),
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=settings.notify_consumer_group,
            client_id="chuhai-notify",
            session_timeout_ms=SESSION_TIMEOUT_MS,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )

        async def send(topic: str, key: bytes | None, value: bytes, headers: list) -> None:
            await producer.send_and_wait(topic, value, key=key, headers=headers)

        step = RecordStep(self._handle, send, self._dead_lettered)
        try:
            await producer.start()
            await consumer.start()
            self._started = True
            log.info("notify consumer started", extra={"group": settings.notify_consumer_group})
            while True:
                batches = await consumer.getmany(
                    timeout_ms=FETCH_TIMEOUT_MS, max_records=BATCH_SIZE
                )
                for records in batches.values():
                    for message in records:
                        record = Record(
                            message.topic,
                            message.partition,
                            message.offset,
                            message.key,
                            message.value,
                        )
                        await handle_until_done(step, record)
                if batches:
                    await _commit(consumer)
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
            with contextlib.suppress(Exception):
                await producer.stop()


async def handle_until_done(step: RecordStep, record: Record) -> bool:
    """``step`` on ``record``, tried again with backoff for as long as the
    infrastructure fails: a record is never skipped for the database's trouble."""
    backoff = BACKOFF_SECONDS
    while True:
        try:
            return await step(record)
        except INFRASTRUCTURE_ERRORS as error:
            log.warning(
                "event not handled yet; trying again",
                extra={
                    "topic": record.topic,
                    "offset": record.offset,
                    "error": str(error),
                    "retry_in_seconds": backoff,
                },
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)


async def _commit(consumer: AIOKafkaConsumer) -> None:
    try:
        await consumer.commit()
    except CommitFailedError as error:
        # The group rebalanced while the batch was handled: its records come again to
        # whoever owns their partitions now, and are recognised as handled.
        log.warning("offsets not committed", extra={"error": str(error)})
