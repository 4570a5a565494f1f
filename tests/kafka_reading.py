"""Reading topics back in tests. Reads until the expected number of records arrived:
on the embedded broker ListOffsets "latest" is not the high watermark, so "read to the
end offset" would stop early (docs/architecture.md, "Limits of the embedded
infrastructure")."""

from __future__ import annotations

import time

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord


def read_records(
    bootstrap_servers: str,
    topic: str,
    *,
    expected: int,
    within_seconds: float = 20.0,
    keys: set[bytes] | None = None,
    settle_seconds: float = 0.0,
) -> list[ConsumerRecord]:
    """Records of ``topic`` (only those with one of ``keys`` when given), in partition order.

    Returns as soon as ``expected`` records arrived, after ``settle_seconds`` more of
    reading so that unexpected extra records (duplicates) are caught too.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        consumer.seek_to_beginning()
        found: list[ConsumerRecord] = []
        deadline = time.monotonic() + within_seconds
        settle_until: float | None = None
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                found.extend(r for r in records if keys is None or r.key in keys)
            if len(found) >= expected:
                settle_until = settle_until or time.monotonic() + settle_seconds
                if time.monotonic() >= settle_until:
                    break
        return found
    finally:
        consumer.close()
