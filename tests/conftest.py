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
from runtime.adapters.tokens import DevelopmentKeys
from runtime.adapters.topics import provision_topics
from tests.identity import TEST_AUDIENCE, TEST_ISSUER, Identities

SERVICE_NAMES = ("booth", "expo", "warehouse", "bureau", "notify")


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


@pytest.fixture(scope="session")
def identity_keys(tmp_path_factory: pytest.TempPathFactory) -> DevelopmentKeys:
    """The session's development key pair: the key set services trust, the key tests
    and services sign with."""
    return DevelopmentKeys.ensure(tmp_path_factory.mktemp("identity"))


@pytest.fixture(scope="session")
def identities(identity_keys: DevelopmentKeys) -> Identities:
    return Identities(identity_keys)


@pytest.fixture
def unique() -> str:
    """A short id that keeps a test's databases, topics and groups its own."""
    return uuid.uuid4().hex[:10]


def settings_for(
    infra: Infrastructure, identity_keys: DevelopmentKeys, unique: str, **overrides: object
) -> Settings:
    """Settings for services under test: real infrastructure, own databases, port 0
    (gRPC and metrics), tokens from the session's key pair."""
    values: dict[str, object] = {
        "auth_issuer": TEST_ISSUER,
        "auth_audience": TEST_AUDIENCE,
        "auth_jwks_file": str(identity_keys.key_set_file),
        "auth_service_key_file": str(identity_keys.signing_key_file),
        "kafka_bootstrap_servers": infra.kafka_bootstrap_servers,
        "mongodb_uri": infra.mongodb_uri,
        "mongodb_database_prefix": f"t{unique}_",
        **{f"{name}_grpc_port": 0 for name in SERVICE_NAMES},
        **{f"{name}_metrics_port": 0 for name in SERVICE_NAMES},
        "grpc_shutdown_grace_seconds": 0.5,
        "relay_idle_poll_seconds": 0.05,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(infra: Infrastructure, unique: str, identity_keys: DevelopmentKeys) -> Settings:
    return settings_for(infra, identity_keys, unique)


@pytest.fixture
async def mongo(infra: Infrastructure) -> AsyncIterator[AsyncMongoClient]:
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri, tz_aware=True)
    yield client
    await client.close()
