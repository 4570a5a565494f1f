"""The declared Kafka topics."""

from __future__ import annotations

import re

from runtime.adapters.topics import ALL_TOPICS, BUREAU_STATS, DOMAIN_RETENTION_MS, DOMAIN_TOPICS

NAME = re.compile(r"^chuhai\.(booth|expo|warehouse|bureau)\.[a-z]+\.v1$")
NAMES = {t.name for t in ALL_TOPICS}


def test_topic_names_are_unique() -> None:
    assert len(NAMES) == len(ALL_TOPICS)


def test_topic_names_follow_the_convention() -> None:
    for topic in ALL_TOPICS:
        base = topic.name.removesuffix(".dlq")
        assert NAME.match(base), topic.name
        if base != topic.name:
            assert base in NAMES, f"{topic.name} has no source topic"


def test_every_domain_topic_has_its_dead_letter_twin() -> None:
    for topic in DOMAIN_TOPICS:
        assert topic in ALL_TOPICS
        assert f"{topic.name}.dlq" in NAMES
        assert topic.dlq in ALL_TOPICS


def test_partition_counts_are_positive() -> None:
    for topic in ALL_TOPICS:
        assert topic.partitions > 0, topic.name


def test_the_stats_topic_is_compacted_and_the_others_expire() -> None:
    assert BUREAU_STATS in ALL_TOPICS
    assert BUREAU_STATS.configs() == {"cleanup.policy": "compact"}
    for topic in ALL_TOPICS:
        if topic is BUREAU_STATS:
            continue
        assert not topic.compacted, topic.name
        assert topic.configs() == {
            "cleanup.policy": "delete",
            "retention.ms": str(DOMAIN_RETENTION_MS),
        }, topic.name
    assert DOMAIN_RETENTION_MS == 30 * 24 * 60 * 60 * 1000
