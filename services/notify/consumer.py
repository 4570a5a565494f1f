"""Notify's Kafka consumer: every domain topic, in the group NOTIFY_CONSUMER_GROUP.

Records come in batches (up to BATCH_SIZE): each record is read on its own, and the
facts of the batch are handled together (handlers.handle_events: about a dozen round
trips to MongoDB for the batch rather than several for each event). Offsets are
committed by hand, after the whole batch was handled, so they never run ahead of what
notify made of the events; whatever is delivered again (a commit lost to a rebalance or a crash, a
relay that published twice, a replay of the outboxes, a new group reading from the
start) is recognised by the event's id and changes nothing.

A record notify cannot read (no envelope at all, or a payload it reads that is
malformed) goes to its topic's ``.dlq`` twin with the error in its headers and is
counted; the partition moves on. When handling a batch fails for a reason in its
records, its records are handled again one at a time, and the one whose handling fails
goes to the ``.dlq`` the same way. A failure of the infrastructure (MongoDB or Kafka
unreachable) is not the records' fault: the batch is tried again, with backoff, until
it succeeds; it is never dead-lettered and never committed past. Events notify does
not read are passed over."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import CommitFailedError, KafkaError

from notify.domain import Fact
from notify.messages import fact_of
from notify.storage import STORE_ERRORS
from runtime.adapters.dead_letters import Record, Send, dead_letter
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

T = TypeVar("T")

# Handles one fact of an envelope of the given type.
HandleFact = Callable[[Fact, str], Awaitable[None]]
# Handles the facts of a batch, in the order read: (fact, envelope type) each.
HandleFacts = Callable[[Sequence[tuple[Fact, str]]], Awaitable[None]]


class RecordStep:
    """What the consumer does with one record: read it and hand its fact to ``handle``,
    or dead-letter it. Returns whether a fact was handled; raises only the
    infrastructure's failures (INFRASTRUCTURE_ERRORS), for the caller to try again."""

    def __init__(
        self, handle: HandleFact, send: Send, dead_lettered: Callable[[str], None]
    ) -> None:
        self._handle = handle
        self._send = send
        self._dead_lettered = dead_lettered

    async def read(self, record: Record) -> tuple[Fact, str] | None:
        """The record's fact and its envelope's type; None for an event notify does not
        read, and for a record it cannot read (dead-lettered)."""
        try:
            envelope = decode_envelope(record.value)
            fact = fact_of(envelope)
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception as error:
            await self.dead_letter(record, error)
            return None
        return None if fact is None else (fact, envelope.type)

    async def __call__(self, record: Record) -> bool:
        read = await self.read(record)
        if read is None:
            return False
        try:
            await self._handle(*read)
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception as error:
            await self.dead_letter(record, error)
            return False
        return True

    async def dead_letter(self, record: Record, error: Exception) -> None:
        await dead_letter(self._send, record, error, consumer=CONSUMER_NAME)
        self._dead_lettered(record.topic)


class BatchStep:
    """What the consumer does with each batch: read each record (RecordStep.read), then
    hand the batch's facts to ``handle`` at once. When that fails for a reason in the
    records, each record is handled again on its own, so that only the one at fault
    is dead-lettered. Returns how many facts were handled; the infrastructure's
    failures are waited out (``until_done``)."""

    def __init__(
        self, handle: HandleFacts, send: Send, dead_lettered: Callable[[str], None]
    ) -> None:
        self._handle = handle
        self._one = RecordStep(self._handle_one, send, dead_lettered)

    async def _handle_one(self, fact: Fact, event_type: str) -> None:
        await self._handle([(fact, event_type)])

    async def __call__(self, records: Sequence[Record]) -> int:
        read: list[tuple[Record, tuple[Fact, str]]] = []
        for record in records:
            found = await until_done(lambda record=record: self._one.read(record), record)
            if found is not None:
                read.append((record, found))
        if not read:
            return 0
        try:
            await until_done(lambda: self._handle([found for _, found in read]), records[0])
        except Exception:
            log.warning(
                "batch not handled; handling its records one at a time",
                extra={"records": len(read), "topic": records[0].topic},
                exc_info=True,
            )
            handled = 0
            for record, _ in read:
                handled += await handle_until_done(self._one, record)
            return handled
        return len(read)


class NotifyConsumer:
    """The group consumer and the producer of its dead letters, run until cancelled.
    Kafka unreachable at start, or lost later, is waited out with backoff."""

    def __init__(
        self, settings: Settings, handle: HandleFacts, dead_lettered: Callable[[str], None]
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

        step = BatchStep(self._handle, send, self._dead_lettered)
        try:
            await producer.start()
            await consumer.start()
            self._started = True
            log.info("notify consumer started", extra={"group": settings.notify_consumer_group})
            while True:
                batches = await consumer.getmany(
                    timeout_ms=FETCH_TIMEOUT_MS, max_records=BATCH_SIZE
                )
                records = [
                    Record(m.topic, m.partition, m.offset, m.key, m.value)
                    for messages in batches.values()
                    for m in messages
                ]
                if records:
                    await step(records)
                    await _commit(consumer)
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
            with contextlib.suppress(Exception):
                await producer.stop()


async def handle_until_done(step: RecordStep, record: Record) -> bool:
    """``step`` on ``record``, tried again with backoff for as long as the
    infrastructure fails: a record is never skipped for the database's trouble."""
    return await until_done(lambda: step(record), record)


async def until_done(attempt: Callable[[], Awaitable[T]], record: Record) -> T:
    """``attempt()``, tried again with backoff for as long as the infrastructure fails
    (``record``: the record it is about, or the first of its batch, for the log)."""
    backoff = BACKOFF_SECONDS
    while True:
        try:
            return await attempt()
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
