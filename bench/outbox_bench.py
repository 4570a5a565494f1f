"""`make bench`: the outbox's costs as ratios against baselines measured in the same run,
on the embedded infrastructure (numbers differ by machine; the ratios are what to watch).

- write: one state document + its outbox event per transaction, against the same
  state document inserted alone without a transaction (what the outbox costs a write);
- relay: publishing the outbox in batches of 500, against one event per relay pass."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from pymongo import AsyncMongoClient

from chuhai.booth.v1 import events_pb2
from launcher.embedded import EmbeddedInfrastructure
from runtime.adapters.kafka import KafkaEventPublisher
from runtime.adapters.outbox import Outbox, OutboxRelay, Transaction
from runtime.adapters.topics import TopicSpec, provision_topics

TOPIC = TopicSpec("chuhai.bench.events.v1", partitions=6)


async def timed(label: str, count: int, work) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    await work()
    rate = count / (time.perf_counter() - started)
    print(f"  {label:<44} {rate:10.0f} /s")  # noqa: T201 - a benchmark reports on stdout
    return rate


async def bench(events: int, concurrency: int, infra: EmbeddedInfrastructure) -> None:
    mongo: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri, tz_aware=True)
    publisher = await KafkaEventPublisher.connect(infra.kafka_bootstrap_servers, client_id="b")
    outbox = Outbox(mongo, mongo.get_database("bench_outbox"), producer="bench")
    await outbox.ensure_indexes()
    plain = mongo.get_database("bench_plain").firms
    limit = asyncio.Semaphore(concurrency)

    async def each(action) -> None:  # type: ignore[no-untyped-def]
        async def one(i: int) -> None:
            async with limit:
                await action(i)

        await asyncio.gather(*(one(i) for i in range(events)))

    async def with_outbox(i: int) -> None:
        async def work(tx: Transaction) -> None:
            await tx.db.firms.insert_one({"_id": f"firm-{i}", "n": i}, session=tx.session)
            await tx.record(TOPIC, events_pb2.FairOpened(fair_id=f"fair-{i}"), aggregate_id=f"{i}")

        await outbox.transact(work)

    print(f"write path, {events} writes, {concurrency} concurrent")  # noqa: T201
    baseline = await timed(
        "baseline: insert_one, no transaction",
        events,
        lambda: each(lambda i: plain.insert_one({"_id": f"firm-{i}", "n": i})),
    )
    measured = await timed(
        "state + outbox event, one transaction", events, lambda: each(with_outbox)
    )
    print(f"  ratio (outbox / baseline): {measured / baseline:.2f}")  # noqa: T201

    print(f"relay, {events} events")  # noqa: T201

    async def relay_all(batch_size: int) -> None:
        await outbox.collection.update_many({}, {"$set": {"published_at": None}})
        relay = OutboxRelay(outbox, publisher, batch_size=batch_size)
        while await relay.publish_pending():
            pass

    single = await timed("baseline: one event per pass", events, lambda: relay_all(1))
    batched = await timed("batches of 500", events, lambda: relay_all(500))
    print(f"  ratio (batched / baseline): {batched / single:.2f}")  # noqa: T201
    await publisher.close()
    await mongo.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedInfrastructure(Path(tmp)) as infra:
        infra.start()
        provision_topics(infra.kafka_bootstrap_servers, (TOPIC,))
        asyncio.run(bench(args.events, args.concurrency, infra))


if __name__ == "__main__":
    main()
