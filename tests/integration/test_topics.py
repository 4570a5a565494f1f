"""Topic provisioning against a real broker."""

from __future__ import annotations

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from runtime.adapters.topics import TopicMismatch, TopicSpec, provision_topics
from tests.conftest import Infrastructure

pytestmark = pytest.mark.integration


def test_provisioning_is_idempotent_and_catches_a_wrong_partition_count(
    infra: Infrastructure, unique: str
) -> None:
    spec = TopicSpec(f"chuhai.test{unique}.orders.v1", partitions=3)

    assert provision_topics(infra.kafka_bootstrap_servers, (spec, spec.dlq)) == [
        spec.name,
        spec.dlq.name,
    ]
    assert provision_topics(infra.kafka_bootstrap_servers, (spec, spec.dlq)) == []

    elsewhere = TopicSpec(f"chuhai.test{unique}.other.v1", partitions=6)
    admin = KafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap_servers)
    try:
        admin.create_topics([NewTopic(elsewhere.name, 2, 1)])
    finally:
        admin.close()
    with pytest.raises(TopicMismatch, match="has 2 partitions, declared 6"):
        provision_topics(infra.kafka_bootstrap_servers, (elsewhere,))
