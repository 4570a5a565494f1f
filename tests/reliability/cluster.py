"""The platform under test as real processes, so a kill -9 is real: its own embedded
Kafka and SecantusDB (the session's shared infrastructure is never touched), each
service as ``python -m <service>`` on a fixed port, so a restarted one is found again,
and notify's mail server: the embedded rung's catcher (launcher.mailbox) in the suite's
own process, on a fixed port too, so it can be stopped and started again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from launcher.cli import wait_serving
from launcher.embedded import EmbeddedInfrastructure, free_port
from launcher.mailbox import Mailbox
from runtime.adapters.settings import Settings
from runtime.adapters.tokens import DevelopmentKeys
from runtime.adapters.topics import provision_topics
from tests.identity import TEST_AUDIENCE, TEST_ISSUER

READY_SECONDS = 90.0
STOP_SECONDS = 20.0
# Notify's deliveries, sped up so that the suite's outages of the mail server stay short
# of giving up on any e-mail: retried within a second, never failed for attempts.
NOTIFY_SETTINGS = {
    "NOTIFY_CONSUMER_GROUP": "reliability-notify",
    "NOTIFY_DISPATCH_POLL_SECONDS": "0.5",
    "NOTIFY_RETRY_BASE_SECONDS": "0.2",
    "NOTIFY_RETRY_MAX_SECONDS": "1",
    "NOTIFY_MAX_ATTEMPTS": "10000",
    # A delivery claimed by a notify that died is due again after these plus 30 s.
    "SMTP_TIMEOUT_SECONDS": "2",
    "NOTIFY_WEBHOOK_TIMEOUT_SECONDS": "2",
}


@dataclass
class ServiceProcess:
    name: str
    module: str
    port: int
    metrics_port: int
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def spawn(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env=self.env,
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def kill(self) -> None:
        """kill -9: no drain, no goodbye."""
        assert self.process is not None and self.process.poll() is None, self.name
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    async def serving(self, within: float = READY_SECONDS) -> None:
        if not await wait_serving(self.target, within):
            raise AssertionError(f"{self.name} not serving within {within} s; see {self.log}")


@dataclass
class Cluster:
    """Kafka, MongoDB, booth (twice), expo, warehouse, the bureau, notify and its mail
    server, all its own."""

    directory: Path
    keys: DevelopmentKeys
    kafka: EmbeddedInfrastructure = field(init=False)
    mongo: EmbeddedInfrastructure = field(init=False)
    mailbox: Mailbox = field(init=False)
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.kafka = EmbeddedInfrastructure(self.directory / "kafka")
        self.mongo = EmbeddedInfrastructure(self.directory / "mongo")
        self.mailbox = Mailbox(self.directory / "mail")

    @property
    def settings(self) -> Settings:
        """What the suite's own clients (replay, checks, reconciliation) connect with."""
        return Settings(
            kafka_bootstrap_servers=self.kafka.kafka_bootstrap_servers,
            mongodb_uri=self.mongo.mongodb_uri,
            mongodb_database_prefix="r_",
            auth_issuer=TEST_ISSUER,
            auth_audience=TEST_AUDIENCE,
            auth_jwks_file=str(self.keys.key_set_file),
            bureau_grpc_target=self.services["bureau"].target,
            booth_grpc_target=self.services["booth"].target,
            expo_grpc_target=self.services["expo"].target,
            warehouse_grpc_target=self.services["warehouse"].target,
            notify_grpc_target=self.services["notify"].target,
        )

    def start_infrastructure(self) -> None:
        self.kafka.start(mongo=False)
        self.mongo.start(kafka=False)
        provision_topics(self.kafka.kafka_bootstrap_servers)

    def declare(self) -> None:
        """The services' processes, not started; after ``start_mail`` (notify's SMTP port)."""
        names = ("booth", "booth_b", "expo", "warehouse", "bureau", "notify")
        ports = {name: free_port() for name in names}
        common = dict(os.environ)
        common.update(
            KAFKA_BOOTSTRAP_SERVERS=self.kafka.kafka_bootstrap_servers,
            MONGODB_URI=self.mongo.mongodb_uri,
            MONGODB_DATABASE_PREFIX="r_",
            AUTH_ISSUER=TEST_ISSUER,
            AUTH_AUDIENCE=TEST_AUDIENCE,
            AUTH_JWKS_FILE=str(self.keys.key_set_file),
            AUTH_SERVICE_KEY_FILE=str(self.keys.signing_key_file),
            BOOTH_GRPC_TARGET=f"127.0.0.1:{ports['booth']}",
            WAREHOUSE_GRPC_TARGET=f"127.0.0.1:{ports['warehouse']}",
            BUREAU_CONSUMER_GROUP="reliability-bureau",
            BUREAU_WEB_PORT="0",
            RELAY_IDLE_POLL_SECONDS="0.05",
            GRPC_SHUTDOWN_GRACE_SECONDS="0.5",
            LOG_LEVEL="WARNING",
        )
        logs = self.directory / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for name, port in ports.items():
            module = name.removesuffix("_b")
            env = dict(common)
            metrics = free_port()
            env[f"{module.upper()}_GRPC_PORT"] = str(port)
            env[f"{module.upper()}_METRICS_PORT"] = str(metrics)
            if module == "notify":
                env.update(
                    NOTIFY_SETTINGS, SMTP_HOST="127.0.0.1", SMTP_PORT=str(self.mailbox.smtp_port)
                )
                # When its consumer got into the group ("notify consumer started") and
                # each failed delivery attempt, for reading a failed run afterwards.
                env["LOG_LEVEL"] = "INFO"
            self.services[name] = ServiceProcess(
                name, module, port, metrics, env, logs / f"{name}.log"
            )

    async def start(self, *names: str) -> None:
        for name in names:
            self.services[name].spawn()
        await asyncio.gather(*(self.services[name].serving() for name in names))

    async def restart(self, name: str) -> float:
        """Spawn ``name`` again; seconds until it serves."""
        begun = time.monotonic()
        await self.start(name)
        return time.monotonic() - begun

    # The infrastructure's own faults ----------------------------------------------------------

    def kill_kafka(self) -> None:
        self.kafka.kill()

    def restart_kafka(self) -> None:
        # Same port: clients reconnect to the address they know.
        self.kafka.start(mongo=False)
        provision_topics(self.kafka.kafka_bootstrap_servers)

    async def start_mail(self) -> None:
        """The mail server; again on the port it had (port 0 picks one the first time)."""
        await self.mailbox.start()

    async def stop_mail(self) -> None:
        await self.mailbox.stop()

    def kill_mongo(self) -> None:
        self.mongo.kill()

    def restart_mongo(self) -> None:
        # Same port and the same data directory: WiredTiger recovers from its journal.
        self.mongo.start(kafka=False)

    async def metric(self, name: str, metric: str) -> float:
        """A counter of a service's /metrics, summed over its labels (0 before it exists)."""
        url = f"http://127.0.0.1:{self.services[name].metrics_port}/metrics"
        async with aiohttp.ClientSession() as http, http.get(url) as reply:
            text = await reply.text()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(metric) and line[len(metric)] in " {":
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self) -> None:
        """Everything started, services first, even after a failure."""
        for service in reversed(self.services.values()):
            service.stop()
        self.kafka.stop()
        self.mongo.stop()
