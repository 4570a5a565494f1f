"""Every Kafka topic of the platform, declared once. Partition counts are fixed here
because Faust co-partitions tables with their source topics: changing a count on a
live cluster means a new topic version (…v2), never an in-place edit."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

log = logging.getLogger(__name__)

_DAY_MS = 24 * 60 * 60 * 1000
# The outbox collections are the durable event log; Kafka keeps a generous window of it.
DOMAIN_RETENTION_MS = 30 * _DAY_MS


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False
    retention_ms: int = DOMAIN_RETENTION_MS

    @property
    def dlq(self) -> TopicSpec:
        """The dead-letter twin: records that could not be decoded or handled."""
        return TopicSpec(f"{self.name}.dlq", partitions=1, retention_ms=self.retention_ms)

    def configs(self) -> dict[str, str]:
        if self.compacted:
            return {"cleanup.policy": "compact"}
        return {"cleanup.policy": "delete", "retention.ms": str(self.retention_ms)}


BOOTH_EXPORTERS = TopicSpec("chuhai.booth.exporters.v1", partitions=6)
BOOTH_FAIRS = TopicSpec("chuhai.booth.fairs.v1", partitions=6)
BOOTH_APPLICATIONS = TopicSpec("chuhai.booth.applications.v1", partitions=6)
EXPO_EDITIONS = TopicSpec("chuhai.expo.editions.v1", partitions=6)
EXPO_EXHIBITORS = TopicSpec("chuhai.expo.exhibitors.v1", partitions=6)
EXPO_BUYERS = TopicSpec("chuhai.expo.buyers.v1", partitions=6)
EXPO_VISITS = TopicSpec("chuhai.expo.visits.v1", partitions=6)
EXPO_INTENTS = TopicSpec("chuhai.expo.intents.v1", partitions=6)
WAREHOUSE_WAREHOUSES = TopicSpec("chuhai.warehouse.warehouses.v1", partitions=6)
WAREHOUSE_RESERVATIONS = TopicSpec("chuhai.warehouse.reservations.v1", partitions=6)
BUREAU_STATS = TopicSpec("chuhai.bureau.stats.v1", partitions=1, compacted=True)

DOMAIN_TOPICS: tuple[TopicSpec, ...] = (
    BOOTH_EXPORTERS,
    BOOTH_FAIRS,
    BOOTH_APPLICATIONS,
    EXPO_EDITIONS,
    EXPO_EXHIBITORS,
    EXPO_BUYERS,
    EXPO_VISITS,
    EXPO_INTENTS,
    WAREHOUSE_WAREHOUSES,
    WAREHOUSE_RESERVATIONS,
)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    *DOMAIN_TOPICS,
    *(topic.dlq for topic in DOMAIN_TOPICS),
    BUREAU_STATS,
)


class TopicMismatch(RuntimeError):
    """An existing topic has another partition count than declared."""


def provision_topics(
    bootstrap_servers: str, topics: tuple[TopicSpec, ...] = ALL_TOPICS
) -> list[str]:
    """Create the declared topics that are missing; return the names created.

    Idempotent, and refuses topics that exist with another partition count. Call it
    before anything produces or consumes: the embedded broker creates an unknown topic
    with 4 partitions on the first metadata request that names it (measured), and
    real clusters may do the same with auto-create on.
    """
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="chuhai-topics")
    try:
        existing = set(admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        created: list[str] = []
        for topic in missing:
            try:
                admin.create_topics(
                    [NewTopic(topic.name, topic.partitions, 1, topic_configs=topic.configs())]
                )
                created.append(topic.name)
            except TopicAlreadyExistsError:
                # Another process created it between our listing and our request.
                pass
        _check_partitions(admin, [t for t in topics if t.name in existing])
        if created:
            log.info("created topics", extra={"topics": created})
        return created
    finally:
        admin.close()


def _check_partitions(admin: KafkaAdminClient, topics: list[TopicSpec]) -> None:
    if not topics:
        return
    declared = {t.name: t.partitions for t in topics}
    for description in admin.describe_topics(list(declared)):
        name = description["name"]
        actual = len(description["partitions"])
        if actual != declared[name]:
            raise TopicMismatch(f"topic {name} has {actual} partitions, declared {declared[name]}")
