"""Settings from the environment: embedded-rung defaults, overrides, derived values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from runtime.adapters.settings import EMBEDDED_KAFKA_BOOTSTRAP, EMBEDDED_MONGODB_URI, Settings

PORTS = {"booth": 50051, "expo": 50052, "warehouse": 50053, "bureau": 50054}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests' own environment (CI sets KAFKA_BOOTSTRAP_SERVERS...) must not leak in."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
        monkeypatch.delenv(name, raising=False)


def test_defaults_are_the_embedded_rung() -> None:
    config = Settings()
    assert config.kafka_bootstrap_servers == EMBEDDED_KAFKA_BOOTSTRAP == "127.0.0.1:9092"
    assert config.mongodb_uri == EMBEDDED_MONGODB_URI
    assert config.mongodb_uri.startswith("mongodb://127.0.0.1:27017/")
    assert {service: config.grpc_port(service) for service in PORTS} == PORTS
    assert config.grpc_target("expo") == "127.0.0.1:50052"


def test_environment_variables_override_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("MONGODB_URI", "mongodb://mongo:27017/?replicaSet=rs0")
    monkeypatch.setenv("BOOTH_GRPC_PORT", "6000")
    config = Settings()
    assert config.kafka_bootstrap_servers == "kafka:9092"
    assert config.mongodb_uri == "mongodb://mongo:27017/?replicaSet=rs0"
    assert config.grpc_port("booth") == 6000
    assert config.grpc_target("booth") == "127.0.0.1:6000"
    assert config.grpc_port("expo") == 50052


def test_grpc_target_honours_an_explicit_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAREHOUSE_GRPC_TARGET", "dns:///warehouse:50053")
    monkeypatch.setenv("GRPC_HOST", "10.0.0.7")
    config = Settings()
    assert config.grpc_target("warehouse") == "dns:///warehouse:50053"
    assert config.grpc_target("bureau") == "10.0.0.7:50054"


def test_database_name_applies_the_prefix() -> None:
    assert Settings().database_name("booth") == "booth"
    assert Settings(mongodb_database_prefix="t1a2b_").database_name("booth") == "t1a2b_booth"


@pytest.mark.parametrize("port", ["65536", "-1"])
def test_an_out_of_range_port_is_rejected(monkeypatch: pytest.MonkeyPatch, port: str) -> None:
    monkeypatch.setenv("EXPO_GRPC_PORT", port)
    with pytest.raises(ValidationError, match="expo_grpc_port"):
        Settings()
