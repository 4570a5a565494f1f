"""Fixtures shared by every test tier.

Integration tests run on real infrastructure: the embedded Tansu broker and SecantusDB
started once per session on free ports, or the Kafka and MongoDB named by
KAFKA_BOOTSTRAP_SERVERS and MONGODB_URI when those are set."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from pymongo import AsyncMongoClient

from launcher.embedded import EmbeddedInfrastructure
from runtime.adapters.settings import Settings
from runtime.adapters.topics import provision_topics


@dataclass(frozen=True)
class Infrastructure:
    kafka_bootstrap_servers: str
    mongodb_uri: str


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infrastructure]:
    external_kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    external_mongo = os.environ.get("MONGODB_URI")
    embedded = EmbeddedInfrastructure(tmp_path_factory.mktemp("infra"))
    embedded.start(kafka=external_kafka is None, mongo=external_mongo is None)
    try:
        found = Infrastructure(
            kafka_bootstrap_servers=external_kafka or embedded.kafka_bootstrap_servers,
            mongodb_uri=external_mongo or embedded.mongodb_uri,
        )
        provision_topics(found.kafka_bootstrap_servers)
        yield found
    finally:
        embedded.stop()


@pytest.fixture
def unique() -> str:
    """A short id that keeps a test's databases, topics and groups its own."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def settings(infra: Infrastructure, unique: str) -> Settings:
    """Settings for services under test: real infrastructure, own databases, port 0
    (gRPC and metrics)."""
    return Settings(
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        mongodb_uri=infra.mongodb_uri,
        mongodb_database_prefix=f"t{unique}_",
        booth_grpc_port=0,
        expo_grpc_port=0,
        warehouse_grpc_port=0,
        bureau_grpc_port=0,
        booth_metrics_port=0,
        expo_metrics_port=0,
        warehouse_metrics_port=0,
        bureau_metrics_port=0,
        grpc_shutdown_grace_seconds=0.5,
        relay_idle_poll_seconds=0.05,
    )


@pytest.fixture
async def mongo(infra: Infrastructure) -> AsyncIterator[AsyncMongoClient]:
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri, tz_aware=True)
    yield client
    await client.close()
