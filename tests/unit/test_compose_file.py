"""The compose rung: docker-compose.yml is a valid Compose file wired as docs/architecture.md
describes, and deploy/Dockerfile builds the one image the way `make` builds the venv."""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from runtime.adapters.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
SERVICES = ("booth", "expo", "warehouse", "bureau", "notify")


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
        "identity": {"condition": "service_completed_successfully"},
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


def test_notify_mails_through_the_mail_catcher(services: dict) -> None:
    mailpit = services["mailpit"]
    env = services["notify"]["environment"]
    # Mailpit's SMTP port, inside the compose network; its page on the host's 8025.
    assert env["SMTP_HOST"] == "mailpit" and env["SMTP_PORT"] == "1025"
    assert mailpit["image"].startswith("axllent/mailpit:v")
    assert "8025:8025" in mailpit["ports"]
    assert mailpit["healthcheck"]["test"] == ["CMD", "/mailpit", "readyz"]
    # Only notify sends e-mail.
    for name in SERVICES:
        if name != "notify":
            assert "SMTP_HOST" not in services[name]["environment"], name


def chuhai_platform() -> Callable[[list[str]], int]:
    """The function the image's `chuhai-platform` script runs."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = scripts["chuhai-platform"].split(":")
    return getattr(importlib.import_module(module), function)


def test_every_command_the_compose_file_runs_exists_in_the_image(services: dict) -> None:
    platform_commands = [
        service["command"][1]
        for service in services.values()
        if service.get("command", [""])[0] == "chuhai-platform"
    ]
    assert sorted(platform_commands) == ["keys", "topics"]
    for command in platform_commands:
        with pytest.raises(SystemExit) as shown:
            chuhai_platform()([command, "--help"])
        assert shown.value.code == 0
    for name in SERVICES:
        assert importlib.util.find_spec(f"{name}.__main__") is not None


def test_identity_makes_the_key_files_the_services_read(services: dict, tmp_path: Path) -> None:
    identity = services["identity"]
    assert identity["restart"] == "no"
    (volume,) = identity["volumes"]
    name, directory = volume.split(":")
    command = identity["command"]
    assert command[:3] == ["chuhai-platform", "keys", "--dir"] and command[3] == directory
    # The services' user (deploy/Dockerfile) gets the files made as root.
    owner = command[command.index("--owner") + 1]
    uid = re.search(r"--uid (\d+)", DOCKERFILE.read_text())
    assert uid and owner == f"{uid.group(1)}:{uid.group(1)}"
    # Run as written, into a scratch directory owned by whoever runs the tests.
    scratch = tmp_path / "identity"
    args = [*command[1:3], str(scratch), "--owner", f"{os.getuid()}:{os.getgid()}"]
    assert chuhai_platform()(args) == 0
    for service in SERVICES:
        spec = services[service]
        assert f"{name}:{directory}:ro" in spec["volumes"]
        env = spec["environment"]
        for setting in ("AUTH_JWKS_FILE", "AUTH_SERVICE_KEY_FILE"):
            path = Path(env[setting])
            assert path.parent == Path(directory), setting
            assert (scratch / path.name).is_file(), setting
        assert "AUTH_JWKS_URL" not in env
        assert {n.lower() for n in env} <= Settings.model_fields.keys()


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
