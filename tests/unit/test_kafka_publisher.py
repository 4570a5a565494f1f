"""The relay's publisher replaces a producer that failed to deliver (what a broker
restarted empty leaves behind), with a bounded backoff between replacements."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from kafka.errors import KafkaError, KafkaTimeoutError, UnknownProducerIdError

from runtime.adapters.kafka import KafkaEventPublisher, ProducerMetrics
from runtime.adapters.outbox import OutboxRecord, PublishError


class FatalProducerError(KafkaError):
    """What kafka-python reports once InitProducerId failed: the producer is done."""


@dataclass
class Future:
    error: KafkaError | None

    def get(self, timeout: float) -> None:
        if self.error is not None:
            raise self.error


@dataclass
class FakeProducer:
    """Acknowledges each record, or fails it with the next of ``errors`` (None: acked)."""

    errors: Iterator[KafkaError | None]
    refuse: KafkaError | None = None
    flush_error: KafkaError | None = None
    sent: list[str] = field(default_factory=list)
    closed: bool = False

    def send(self, topic: str, **record: Any) -> Future:
        if self.refuse is not None:
            raise self.refuse
        self.sent.append(dict(record["headers"])["event_id"].decode())
        return Future(next(self.errors, None))

    def flush(self, timeout: float) -> None:
        if self.flush_error is not None:
            raise self.flush_error

    def close(self, timeout: float) -> None:
        self.closed = True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def records(*ids: str) -> list[OutboxRecord]:
    return [OutboxRecord(i, n, "t", "k", "T", b"e") for n, i in enumerate(ids)]


class Producers:
    """Hands out the producers queued in ``next``, recording each."""

    def __init__(self, *queued: FakeProducer | KafkaError) -> None:
        self.queued = list(queued)
        self.built: list[FakeProducer] = []

    def __call__(self) -> Any:
        made = self.queued.pop(0) if self.queued else FakeProducer(iter(()))
        if isinstance(made, KafkaError):
            raise made
        self.built.append(made)
        return made


def replaced(metrics: ProducerMetrics) -> float:
    return metrics.replaced._value.get()


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_a_healthy_producer_is_kept(clock: Clock) -> None:
    producers = Producers()
    publisher = KafkaEventPublisher(producers, clock=clock)
    assert await publisher.publish(records("a", "b")) == 2
    assert await publisher.publish(records("c")) == 1
    assert [p.sent for p in producers.built] == [["a", "b", "c"]]


@pytest.mark.parametrize(
    "broken",
    [
        # Fatal after InitProducerId: every record fails at once.
        FakeProducer(iter([FatalProducerError("InitProducerIdResponse: UnknownError")] * 9)),
        FakeProducer(iter([UnknownProducerIdError()] * 9)),
        # Retrying for a broker that forgot it until the acknowledgement deadline.
        FakeProducer(iter([KafkaTimeoutError()] * 9), flush_error=KafkaTimeoutError()),
        # Closed, or refusing every send.
        FakeProducer(iter(()), refuse=KafkaError("producer closed")),
    ],
    ids=["fatal", "unknown-producer-id", "timeout", "refused"],
)
async def test_a_failed_producer_is_replaced_and_the_retry_publishes(
    broken: FakeProducer, clock: Clock
) -> None:
    metrics = ProducerMetrics()
    producers = Producers(broken)
    publisher = KafkaEventPublisher(producers, metrics=metrics, clock=clock)
    with pytest.raises(PublishError):
        await publisher.publish(records("a", "b"))
    # The relay retries after its own backoff; the publisher replaces the producer.
    assert await publisher.publish(records("a", "b")) == 2
    assert broken.closed and len(producers.built) == 2
    assert producers.built[1].sent == ["a", "b"]
    assert replaced(metrics) == 1


async def test_a_partly_acknowledged_batch_replaces_the_producer_for_the_rest(
    clock: Clock,
) -> None:
    broken = FakeProducer(iter([None, None, FatalProducerError("fatal")]))
    producers = Producers(broken)
    publisher = KafkaEventPublisher(producers, clock=clock)
    assert await publisher.publish(records("a", "b", "c")) == 2
    assert await publisher.publish(records("c")) == 1
    assert broken.closed and producers.built[1].sent == ["c"]


async def test_replacements_back_off_while_the_broker_is_away(clock: Clock) -> None:
    away = KafkaError("NoBrokersAvailable")
    failing = FakeProducer(iter([FatalProducerError("fatal")] * 99))
    # Back after six attempts, with a producer that delivers once, then fails.
    back = FakeProducer(iter([None, FatalProducerError("fatal")]))
    producers = Producers(failing, *[away] * 6, back)
    metrics = ProducerMetrics()
    publisher = KafkaEventPublisher(producers, metrics=metrics, clock=clock)
    with pytest.raises(PublishError):
        await publisher.publish(records("a"))
    attempts: list[float] = []
    acknowledged = 0
    while not acknowledged:
        queued = len(producers.queued)
        with contextlib.suppress(PublishError):
            acknowledged = await publisher.publish(records("a"))
        if len(producers.queued) < queued or acknowledged:
            attempts.append(clock.now)
        clock.now += 0.25
    # The first replacement at once, then a bounded exponential backoff (the relay's
    # passes in between fail fast), until the broker is back.
    assert attempts[0] == 1000.0
    assert [b - a for a, b in itertools.pairwise(attempts)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        8.0,
        10.0,
    ]
    # The failed producer was closed once; builds that failed replaced nothing.
    assert failing.closed and replaced(metrics) == 1
    # One that delivered is replaced at once when it fails: the backoff starts over.
    with pytest.raises(PublishError):
        await publisher.publish(records("b"))
    assert await publisher.publish(records("b")) == 1
    assert back.closed and replaced(metrics) == 2
