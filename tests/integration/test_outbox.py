"""The transactional outbox and its relay on real Kafka and MongoDB."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient

from chuhai.booth.v1 import events_pb2
from launcher.embedded import EmbeddedInfrastructure
from runtime.adapters.events import decode_envelope
from runtime.adapters.kafka import KafkaEventPublisher
from runtime.adapters.outbox import Outbox, OutboxRecord, OutboxRelay, RelayLease, Transaction
from runtime.adapters.topics import TopicSpec, provision_topics
from tests.conftest import Infrastructure
from tests.credit_codes import random_credit_code
from tests.kafka_reading import read_records
from tests.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
def topic(infra: Infrastructure, unique: str) -> TopicSpec:
    spec = TopicSpec(f"chuhai.test{unique}.events.v1", partitions=3)
    provision_topics(infra.kafka_bootstrap_servers, (spec, spec.dlq))
    return spec


@pytest.fixture
async def outbox(mongo: AsyncMongoClient, unique: str) -> Outbox:
    box = Outbox(mongo, mongo.get_database(f"t{unique}_outbox"), producer="booth")
    await box.ensure_indexes()
    return box


@pytest.fixture
async def publisher(infra: Infrastructure) -> AsyncIterator[KafkaEventPublisher]:
    kafka = await KafkaEventPublisher.connect(infra.kafka_bootstrap_servers, client_id="test")
    yield kafka
    await kafka.close()


async def register(outbox: Outbox, topic: TopicSpec, codes: Sequence[str]) -> list[str]:
    """Commit one exporter document and its event per code; return the event ids."""

    async def work(tx: Transaction) -> list[str]:
        ids = []
        for code in codes:
            await tx.db.exporters.insert_one({"_id": code}, session=tx.session)
            envelope = await tx.record(
                topic,
                events_pb2.FairOpened(fair_id=code),
                aggregate_id=code,
            )
            ids.append(envelope.event_id)
        return ids

    return await outbox.transact(work, correlation_id="request-1")


async def test_committed_event_reaches_its_topic_with_envelope_and_key(
    infra: Infrastructure, outbox: Outbox, publisher: KafkaEventPublisher, topic: TopicSpec
) -> None:
    code = random_credit_code()
    [event_id] = await register(outbox, topic, [code])

    assert await OutboxRelay(outbox, publisher).publish_pending() == 1

    [record] = await asyncio.to_thread(
        read_records, infra.kafka_bootstrap_servers, topic.name, expected=1, settle_seconds=0.5
    )
    assert record.key == code.encode()
    envelope = decode_envelope(record.value)
    assert envelope.event_id == event_id
    assert envelope.type == "chuhai.booth.v1.FairOpened"
    assert envelope.aggregate_id == code
    assert envelope.producer == "booth"
    assert envelope.schema_version == 1
    assert envelope.correlation_id == "request-1"
    assert envelope.fair_opened.fair_id == code
    age = datetime.now(UTC) - envelope.occurred_at.ToDatetime(UTC)
    assert timedelta(0) <= age < timedelta(seconds=30)
    assert dict(record.headers)["event_id"] == event_id.encode()
    assert await outbox.pending(10) == []


async def test_failed_transaction_leaves_neither_state_nor_event(
    outbox: Outbox, topic: TopicSpec
) -> None:
    code = random_credit_code()
    await register(outbox, topic, [code])

    with pytest.raises(Exception, match="duplicate key"):
        # The same exporter again: the state write fails after the event was recorded.
        await register(outbox, topic, [random_credit_code(), code])

    assert await outbox.db.exporters.count_documents({}) == 1
    assert len(await outbox.pending(10)) == 1


async def test_relay_publishes_in_commit_order_per_aggregate(
    infra: Infrastructure, outbox: Outbox, publisher: KafkaEventPublisher, topic: TopicSpec
) -> None:
    code = random_credit_code()

    async def rename(tx: Transaction, name: str) -> None:
        await tx.record(topic, events_pb2.FairOpened(fair_id=name), aggregate_id=code)

    names = [f"name {i}" for i in range(30)]
    for name in names:
        await outbox.transact(lambda tx, name=name: rename(tx, name))
    relay = OutboxRelay(outbox, publisher, batch_size=7)
    while await relay.publish_pending():
        pass

    records = await asyncio.to_thread(
        read_records, infra.kafka_bootstrap_servers, topic.name, expected=30
    )
    assert [decode_envelope(r.value).fair_opened.fair_id for r in records] == names


class CrashAfterPublish:
    """A publisher that delivers, then dies before the relay can mark anything sent:
    the crash window between Kafka's acknowledgement and the outbox update."""

    def __init__(self, inner: KafkaEventPublisher) -> None:
        self._inner = inner

    async def publish(self, records: Sequence[OutboxRecord]) -> int:
        await self._inner.publish(records)
        raise SystemExit("relay killed after publish")


async def test_relay_crash_windows_lose_nothing_and_copies_share_their_event_id(
    infra: Infrastructure,
    outbox: Outbox,
    publisher: KafkaEventPublisher,
    topic: TopicSpec,
) -> None:
    codes = [random_credit_code() for _ in range(5)]
    # Crash between commit and publish: the events are committed, no relay ran.
    await register(outbox, topic, codes[:3])
    # Crash between publish and mark: delivered, but still pending in the outbox.
    with pytest.raises(SystemExit):
        await OutboxRelay(outbox, CrashAfterPublish(publisher)).publish_pending()
    assert len(await outbox.pending(10)) == 3
    await register(outbox, topic, codes[3:])

    # The restarted relay publishes everything pending, the first three a second time.
    assert await OutboxRelay(outbox, publisher).publish_pending() == 5
    assert await outbox.pending(10) == []
    records = await asyncio.to_thread(
        read_records, infra.kafka_bootstrap_servers, topic.name, expected=8
    )
    assert len(records) == 8

    # Each copy carries its event's id, which is all a consumer needs to count it once.
    envelopes = [decode_envelope(r.value) for r in records]
    assert len({e.event_id for e in envelopes}) == 5
    assert sorted({e.aggregate_id for e in envelopes}) == sorted(codes)


async def test_replay_rebuilds_the_topic_after_the_broker_lost_it(
    tmp_path, outbox: Outbox, unique: str
) -> None:
    spec = TopicSpec(f"chuhai.test{unique}.replay.v1", partitions=3)
    codes = [random_credit_code() for _ in range(12)]

    async def publish_into_fresh_broker(replay: bool) -> list[tuple[int, bytes, bytes]]:
        with EmbeddedInfrastructure(tmp_path / "broker") as broker:
            broker.start(mongo=False)
            provision_topics(broker.kafka_bootstrap_servers, (spec,))
            kafka = await KafkaEventPublisher.connect(
                broker.kafka_bootstrap_servers, client_id="replay-test"
            )
            try:
                relay = OutboxRelay(outbox, kafka, batch_size=5)
                if replay:
                    await relay.replay(datetime(2000, 1, 1, tzinfo=UTC))
                else:
                    for code in codes:
                        await register(outbox, spec, [code])
                    while await relay.publish_pending():
                        pass
            finally:
                await kafka.close()
            records = await asyncio.to_thread(
                read_records, broker.kafka_bootstrap_servers, spec.name, expected=len(codes)
            )
        return [(r.partition, r.key, r.value) for r in records]

    live = await publish_into_fresh_broker(replay=False)
    # A new in-memory broker knows nothing; the outbox alone rebuilds the same topic.
    replayed = await publish_into_fresh_broker(replay=True)

    assert len(live) == len(codes)
    assert replayed == live


async def test_one_relay_at_a_time_publishes_a_shared_outbox(
    infra: Infrastructure, outbox: Outbox, publisher: KafkaEventPublisher, topic: TopicSpec
) -> None:
    first = OutboxRelay(
        outbox, publisher, idle_poll_seconds=0.05, lease=RelayLease(outbox.db, "instance-a")
    )
    second = OutboxRelay(
        outbox, publisher, idle_poll_seconds=0.05, lease=RelayLease(outbox.db, "instance-b")
    )
    running = [asyncio.create_task(first.run()), asyncio.create_task(second.run())]
    try:
        for _ in range(20):
            await register(outbox, topic, [random_credit_code(), random_credit_code()])
        await eventually(lambda: outbox.pending_count(), equals=0, within_seconds=30)
        # The holder stops and hands over; the other instance publishes what follows.
        holder = await outbox.db.relay_lease.find_one({"_id": "relay"})
        stopping = first if holder["owner"] == "instance-a" else second
        stopping.stop()
        await stopping.release()
        await register(outbox, topic, [random_credit_code()])
        await eventually(lambda: outbox.pending_count(), equals=0, within_seconds=30)
    finally:
        first.stop()
        second.stop()
        await asyncio.gather(*running)
    records = await asyncio.to_thread(
        read_records, infra.kafka_bootstrap_servers, topic.name, expected=41, settle_seconds=1.0
    )
    # Two relays, one outbox: every event once, none twice.
    assert len(records) == 41
    assert len({decode_envelope(r.value).event_id for r in records}) == 41
