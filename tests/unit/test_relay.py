"""OutboxRelay against hand-written fakes of the outbox and the Kafka publisher."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from pymongo.errors import AutoReconnect

from runtime.adapters.mongo import TransactionFailed
from runtime.adapters.outbox import OutboxRecord, OutboxRelay, PublishError

START = datetime(2025, 4, 1, tzinfo=UTC)
END = datetime(2025, 5, 1, tzinfo=UTC)


def records(count: int) -> list[OutboxRecord]:
    return [
        OutboxRecord(f"e{i}", i, "chuhai.booth.fairs.v1", "canton-137", "t", b"x")
        for i in range(count)
    ]


class FakeOutbox:
    def __init__(self, stored: list[OutboxRecord], failures: Sequence[Exception] = ()) -> None:
        self.stored = stored
        self.failures = list(failures)
        self.marked: list[list[str]] = []
        self.since_calls: list[tuple[datetime, datetime | None]] = []

    @property
    def published(self) -> list[str]:
        return [event_id for call in self.marked for event_id in call]

    async def pending(self, limit: int) -> list[OutboxRecord]:
        if self.failures:
            raise self.failures.pop(0)
        return [r for r in self.stored if r.event_id not in self.published][:limit]

    async def mark_published(self, event_ids: Sequence[str]) -> None:
        self.marked.append(list(event_ids))

    async def pending_count(self) -> int:
        return len([r for r in self.stored if r.event_id not in self.published])

    async def since(self, start: datetime, end: datetime | None = None) -> list[OutboxRecord]:
        self.since_calls.append((start, end))
        return list(self.stored)

    async def wait_for_commit(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FakePublisher:
    """Acknowledges whole batches unless told otherwise, one script entry per call:
    an int is how many leading records to acknowledge, an exception is raised."""

    def __init__(self, script: Sequence[int | Exception] = ()) -> None:
        self.script = list(script)
        self.batches: list[list[str]] = []

    async def publish(self, batch: Sequence[OutboxRecord]) -> int:
        self.batches.append([r.event_id for r in batch])
        step = self.script.pop(0) if self.script else len(batch)
        if isinstance(step, Exception):
            raise step
        return step


async def test_publish_pending_marks_only_the_acknowledged_prefix() -> None:
    outbox, publisher = FakeOutbox(records(5)), FakePublisher([3])
    relay = OutboxRelay(outbox, publisher)
    assert await relay.publish_pending() == 3
    assert outbox.marked == [["e0", "e1", "e2"]]
    # The next pass starts again at the first unacknowledged record.
    assert await relay.publish_pending() == 2
    assert publisher.batches[1] == ["e3", "e4"]
    assert outbox.published == ["e0", "e1", "e2", "e3", "e4"]


async def test_publish_pending_takes_at_most_a_batch() -> None:
    outbox, publisher = FakeOutbox(records(7)), FakePublisher()
    relay = OutboxRelay(outbox, publisher, batch_size=3)
    assert await relay.publish_pending() == 3
    assert publisher.batches == [["e0", "e1", "e2"]]
    assert outbox.marked == [["e0", "e1", "e2"]]


async def test_publish_pending_with_nothing_pending_publishes_nothing() -> None:
    outbox, publisher = FakeOutbox([]), FakePublisher()
    assert await OutboxRelay(outbox, publisher).publish_pending() == 0
    assert publisher.batches == []
    assert outbox.marked == []


async def test_drain_publishes_everything_pending_in_order() -> None:
    outbox, publisher = FakeOutbox(records(7)), FakePublisher()
    await OutboxRelay(outbox, publisher, batch_size=3).drain()
    assert publisher.batches == [["e0", "e1", "e2"], ["e3", "e4", "e5"], ["e6"]]
    assert outbox.published == [f"e{i}" for i in range(7)]


async def test_replay_publishes_every_record_in_batches_in_order() -> None:
    outbox, publisher = FakeOutbox(records(7)), FakePublisher()
    relay = OutboxRelay(outbox, publisher, batch_size=3)
    assert await relay.replay(START, END) == 7
    assert outbox.since_calls == [(START, END)]
    assert publisher.batches == [["e0", "e1", "e2"], ["e3", "e4", "e5"], ["e6"]]
    assert outbox.marked == []


async def test_replay_stops_with_publish_error_when_a_batch_is_partly_refused() -> None:
    outbox, publisher = FakeOutbox(records(7)), FakePublisher([3, 1])
    relay = OutboxRelay(outbox, publisher, batch_size=3)
    with pytest.raises(PublishError, match=r"\be4\b"):
        await relay.replay(START)
    assert len(publisher.batches) == 2


async def until(condition) -> None:
    for _ in range(150):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached within 1.5 s")


@pytest.mark.parametrize(
    ("outbox_failures", "publisher_script"),
    [
        ((), [PublishError("broker down")]),
        ([AutoReconnect("mongo down")], []),
        (
            [
                TransactionFailed(
                    "marking published kept conflicting", reason="TRANSACTION_CONFLICT"
                )
            ],
            [],
        ),
    ],
    ids=["kafka-fails", "mongo-fails", "transaction-budget-spent"],
)
async def test_run_backs_off_after_a_failure_then_keeps_relaying(
    outbox_failures, publisher_script
) -> None:
    outbox = FakeOutbox(records(4), failures=outbox_failures)
    publisher = FakePublisher(publisher_script)
    relay = OutboxRelay(outbox, publisher, batch_size=10, idle_poll_seconds=0.01)
    started = time.monotonic()
    task = asyncio.create_task(relay.run())
    try:
        await until(lambda: len(outbox.published) == 4)
        recovered_after = time.monotonic() - started
    finally:
        relay.stop()
        await asyncio.wait_for(task, 0.5)
    assert recovered_after >= 0.35  # backed off (0.4 s after a first failure)
    assert outbox.published == ["e0", "e1", "e2", "e3"]
    assert publisher.batches[-1] == ["e0", "e1", "e2", "e3"]


async def test_stop_cuts_the_backoff_short() -> None:
    outbox = FakeOutbox(records(1))
    publisher = FakePublisher([PublishError("broker down")] * 100)
    relay = OutboxRelay(outbox, publisher, idle_poll_seconds=0.01)
    task = asyncio.create_task(relay.run())
    await until(lambda: publisher.batches)
    relay.stop()
    # The first backoff is 0.4 s; stop() must end it at once.
    await asyncio.wait_for(task, 0.3)
    assert len(publisher.batches) == 1
    assert outbox.marked == []
