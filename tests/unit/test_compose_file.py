"""The compose rung: docker-compose.yml is a valid Compose file wired as docs/architecture.md
describes, and deploy/Dockerfile builds the one image the way `make` builds the venv."""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from runtime.adapters.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
SERVICES = ("booth", "expo", "warehouse", "bureau")


def default_port(service: str) -> int:
    return Settings.model_fields[f"{service}_grpc_port"].default


@pytest.fixture(scope="module")
def services() -> dict:
    return YAML(typ="safe").load((ROOT / "docker-compose.yml").read_text())["services"]


def test_compose_file_validates_against_the_compose_spec() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            "docker-compose.yml",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", SERVICES)
def test_service_is_built_wired_and_health_checked(services: dict, name: str) -> None:
    service = services[name]
    assert service["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}
    assert service["command"] == ["python", "-m", name]
    assert service["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "mongo": {"condition": "service_healthy"},
        "topic-init": {"condition": "service_completed_successfully"},
    }
    env = service["environment"]
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["MONGODB_URI"].startswith("mongodb://mongo:27017/")
    for peer in SERVICES:
        assert env[f"{peer.upper()}_GRPC_TARGET"] == f"{peer}:{default_port(peer)}"
    port = default_port(name)
    assert f"{port}:{port}" in service["ports"]
    # The probe speaks grpc.health.v1 to the port the server listens on.
    probe = service["healthcheck"]["test"]
    assert probe[0] == "CMD" and "grpc_health" in probe[3] and probe[-1] == str(port)


def test_kafka_is_kraft_without_auto_created_topics(services: dict) -> None:
    env = services["kafka"]["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert str(env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]).lower() == "false"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert "healthcheck" in services["kafka"]
    # Topics come from runtime.adapters.topics, once, before any service starts.
    init = services["topic-init"]
    assert init["restart"] == "no" and init["command"] == ["chuhai-platform", "topics"]
    assert init["depends_on"] == {"kafka": {"condition": "service_healthy"}}


def test_every_command_the_compose_file_runs_exists_in_the_image(services: dict) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = scripts["chuhai-platform"].split(":")
    with pytest.raises(SystemExit) as shown:
        getattr(importlib.import_module(module), function)(["topics", "--help"])
    assert shown.value.code == 0
    for name in SERVICES:
        assert importlib.util.find_spec(f"{name}.__main__") is not None


def test_mongo_is_the_replica_set_the_services_connect_to(services: dict) -> None:
    command = services["mongo"]["command"]
    replica_set = command[command.index("--replSet") + 1]
    for name in SERVICES:
        assert f"replicaSet={replica_set}" in services[name]["environment"]["MONGODB_URI"]
    assert "rs.initiate" in services["mongo"]["healthcheck"]["test"][-1]


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = (line.strip() for line in text.splitlines())
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_image_generates_stubs_before_install_and_runs_unprivileged() -> None:
    instructions = dockerfile_instructions()
    runs = [args for instr, args in instructions if instr == "RUN"]
    generate = next(i for i, args in enumerate(runs) if "scripts/gen_protos.py" in args)
    install = next(
        i for i, args in enumerate(runs) if re.search(r"pip install -c constraints\.txt \.", args)
    )
    assert generate < install
    users = [args for instr, args in instructions if instr == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert any("GRPC_HOST=0.0.0.0" in args for instr, args in instructions if instr == "ENV")
    # Stubs are generated in the image, never copied from a developer's gen/.
    assert "gen" in (ROOT / ".dockerignore").read_text().split()
