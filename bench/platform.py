"""The platform the bench measures: its own embedded Kafka and MongoDB, a development key
pair in a temporary directory, and each service as a real process (`python -m <service>`,
as `make run` starts them) on free ports, so every service has its own interpreter and
its own memory to report."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from launcher.cli import wait_serving
from launcher.embedded import EmbeddedInfrastructure, free_port
from runtime.adapters.settings import Settings
from runtime.adapters.tokens import DevelopmentKeys, TokenIssuer

SERVICES = ("booth", "expo", "warehouse", "bureau")
ISSUER = "chuhai-bench"
AUDIENCE = "chuhai"
READY_SECONDS = 120.0
STOP_SECONDS = 15.0
# Settings the bench decides; anything else in the caller's environment that would
# point the services elsewhere is dropped.
_OWN_KEYS = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "MONGODB_URI",
    "MONGODB_DATABASE_PREFIX",
    "AUTH_ISSUER",
    "AUTH_AUDIENCE",
    "AUTH_JWKS_URL",
    "AUTH_JWKS_FILE",
    "AUTH_SERVICE_KEY_FILE",
    "BUREAU_CONSUMER_GROUP",
    "BUREAU_WEB_PORT",
    "GRPC_HOST",
    *(f"{s.upper()}_{what}" for s in SERVICES for what in ("GRPC_PORT", "METRICS_PORT")),
    *(f"{s.upper()}_GRPC_TARGET" for s in SERVICES),
)


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process in MiB (VmRSS), None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


@dataclass
class ServiceProcess:
    name: str
    env: dict[str, str]
    workdir: Path
    process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # The bureau's Faust keeps a data directory in its working directory: the
        # temporary one, never the repository.
        log_file = open(self.workdir / f"{self.name}.log", "ab")  # noqa: ASYNC230, SIM115
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                self.name,
                env=self.env,
                cwd=self.workdir,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log_file.close()

    async def stop(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_SECONDS)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


@dataclass
class BenchPlatform:
    """Infrastructure, keys and service processes under one temporary directory."""

    root: Path
    infra: EmbeddedInfrastructure = field(init=False)
    keys: DevelopmentKeys = field(init=False)
    tokens: TokenIssuer = field(init=False)
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    prefix: str = "bench_"

    def __post_init__(self) -> None:
        self.infra = EmbeddedInfrastructure(self.root / "infra")
        self.keys = DevelopmentKeys.ensure(self.root / "identity")
        self.tokens = self.keys.issuer(issuer=ISSUER, audience=AUDIENCE)

    def start_infrastructure(self) -> None:
        self.infra.start()

    def environment(self, *, prefix: str, bureau_group: str) -> dict[str, str]:
        """The services' environment: this infrastructure, these keys, free ports."""
        env = {k: v for k, v in os.environ.items() if k.upper() not in _OWN_KEYS}
        env.update(
            KAFKA_BOOTSTRAP_SERVERS=self.infra.kafka_bootstrap_servers,
            MONGODB_URI=self.infra.mongodb_uri,
            MONGODB_DATABASE_PREFIX=prefix,
            AUTH_ISSUER=ISSUER,
            AUTH_AUDIENCE=AUDIENCE,
            AUTH_JWKS_FILE=str(self.keys.key_set_file),
            AUTH_SERVICE_KEY_FILE=str(self.keys.signing_key_file),
            BUREAU_CONSUMER_GROUP=bureau_group,
            BUREAU_WEB_PORT=str(free_port()),
        )
        for service in SERVICES:
            env[f"{service.upper()}_GRPC_PORT"] = str(free_port())
            env[f"{service.upper()}_METRICS_PORT"] = str(free_port())
        return env

    @property
    def settings(self) -> Settings:
        """The settings the services read (addresses, database names)."""
        return self.settings_of(self.processes["booth"].env)

    @staticmethod
    def settings_of(env: dict[str, str]) -> Settings:
        return Settings(**{k.lower(): v for k, v in env.items() if k.upper() in _OWN_KEYS})

    async def start_services(self) -> None:
        env = self.environment(prefix=self.prefix, bureau_group="chuhai-bureau-bench")
        for name in SERVICES:
            self.processes[name] = ServiceProcess(name, env, self.root / "services")
        await self._start_all(list(self.processes.values()), env)

    async def start_extra(self, label: str, service: str, env: dict[str, str]) -> ServiceProcess:
        """Another process of ``service`` with its own environment (a second bureau)."""
        process = ServiceProcess(service, env, self.root / label)
        self.processes[label] = process
        await self._start_all([process], env)
        return process

    async def _start_all(self, processes: list[ServiceProcess], env: dict[str, str]) -> None:
        settings = self.settings_of(env)
        for process in processes:
            await process.start()
        ready = await asyncio.gather(
            *(wait_serving(settings.grpc_target(p.name), READY_SECONDS) for p in processes)
        )
        failed = [p.name for p, ok in zip(processes, ready, strict=True) if not ok]
        if failed:
            raise RuntimeError(f"not SERVING within {READY_SECONDS:.0f} s: {failed}")

    def rss(self) -> dict[str, float | None]:
        return {
            name: rss_mb(p.process.pid) if p.process else None
            for name, p in self.processes.items()
            if name in SERVICES
        }

    async def stop_process(self, label: str) -> None:
        process = self.processes.pop(label, None)
        if process is not None:
            await process.stop()

    async def stop(self) -> None:
        # Reverse order: the bureau and expo stop before the services they call.
        for label in reversed(list(self.processes)):
            await self.stop_process(label)
        await asyncio.to_thread(self.infra.stop)
