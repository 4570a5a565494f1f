"""`chuhai-platform`: runs the whole platform on one machine (`make run`), provisions
topics and replays outboxes.

`run` starts the embedded infrastructure for whatever has no external address
(KAFKA_BOOTSTRAP_SERVERS, MONGODB_URI), the development identity provider unless an
identity provider is configured (AUTH_JWKS_URL, AUTH_JWKS_FILE) and a mail catcher for
notify's e-mail unless an SMTP server is (SMTP_HOST), creates the topics, replays the
outboxes into a fresh in-memory broker, then supervises one process per service and the
catcher until Ctrl-C. `token` signs development tokens, `keys` makes a key pair,
`reconcile` compares the services' state with the bureau's figures."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import aiohttp
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from launcher.embedded import EmbeddedInfrastructure, free_port, port_is_free
from launcher.identity import (
    DevelopmentIdentityProvider,
    development_issuer,
    development_keys,
    identity_environment,
    needs_development_provider,
    principal_for,
)
from launcher.reconcile import (
    DEFAULT_SETTLE_SECONDS,
    Reconciliation,
    SourceUnavailable,
    reconcile,
)
from runtime.adapters.grpc_client import service_channel
from runtime.adapters.kafka import KafkaEventPublisher
from runtime.adapters.logging import configure_logging
from runtime.adapters.mongo import connect_mongo
from runtime.adapters.outbox import Outbox, OutboxRelay
from runtime.adapters.settings import Settings
from runtime.adapters.tls import channel_credentials
from runtime.adapters.tokens import SIGNING_KEY_FILE, DevelopmentKeys, TokenIssuer
from runtime.adapters.topics import provision_topics
from runtime.kernel.identity import Role

if TYPE_CHECKING:
    from demo.scenario import Notified, Played

T = TypeVar("T")

log = logging.getLogger("chuhai.launcher")

SERVICES = ("booth", "expo", "warehouse", "bureau", "notify")
# Services that write an outbox (the bureau and notify only consume).
OUTBOX_SERVICES = ("booth", "expo", "warehouse")
# What the demo's figures need; notify only tells people, so the demo plays without it.
FIGURE_SERVICES = ("booth", "expo", "warehouse", "bureau")
READY_TIMEOUT_SECONDS = 120.0
# Each service gets this long to stop gracefully before it is killed.
STOP_TIMEOUT_SECONDS = 12.0
RESTART_BACKOFF_MAX_SECONDS = 30.0
DEFAULT_KAFKA_PORT = 9092
DEFAULT_MONGO_PORT = 27017
# How long the officer's token `reconcile` signs itself stays valid past its wait.
RECONCILE_TOKEN_SECONDS = 600.0
# reconcile's exit codes beyond 0 (no difference) and 2 (usage, argparse's).
EXIT_DIFFERENCES = 1
EXIT_UNAVAILABLE = 3
# How long the printed dashboard link (an officer's token) stays valid.
DASHBOARD_TOKEN_HOURS = 12.0
DEFAULT_TOKEN_HOURS = 12.0
DEFAULT_VAR_DIR = Path("var")
# How long, after the demo's figures, the launcher waits for notify to have made the
# notifications and e-mails the demo caused: at full speed notify (33,000 notifications,
# mostly RFQ matches) finished about 130 s after the figures on the 2-core machine.
NOTIFY_SETTLE_SECONDS = 300.0


@dataclass
class ManagedService:
    name: str
    # Where it listens: its gRPC port, the bureau's dashboard, the catcher's two ports.
    ports: tuple[int, ...]
    # What `python` runs: `-m <service>`, or the mail catcher with its arguments.
    command: tuple[str, ...] = ()
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0

    def __post_init__(self) -> None:
        self.command = self.command or ("-m", self.name)


@dataclass(frozen=True)
class MailCatcher:
    """The embedded rung's SMTP server (launcher.mailbox): notify sends its e-mail there,
    the catcher keeps each message under ``directory`` and shows them on a page."""

    directory: Path
    smtp_port: int
    web_port: int
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.web_port}/"

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.smtp_port, self.web_port)

    def managed(self) -> ManagedService:
        return ManagedService(
            "mail",
            self.ports,
            (
                "-m",
                "launcher.mailbox",
                "--dir",
                str(self.directory),
                "--smtp-port",
                str(self.smtp_port),
                "--web-port",
                str(self.web_port),
            ),
        )


def mail_catcher(
    var_dir: Path, settings: Settings, environ: Mapping[str, str]
) -> MailCatcher | None:
    """The catcher to start, unless notify is given an SMTP server of the operator's
    (SMTP_HOST). Like the embedded broker and database, it takes its usual ports when they
    are free and any free ones otherwise (0 asks for that): nobody but notify sends to it,
    and the status table shows where its page is."""
    if "SMTP_HOST" in environ:
        return None

    def port(usual: int) -> int:
        return usual if usual and port_is_free(usual) else free_port()

    return MailCatcher(
        var_dir / "mail", port(settings.dev_mail_smtp_port), port(settings.dev_mail_web_port)
    )


class PortReservations:
    """Holds the services' ports while their services are not running.

    The services' usual ports (50051-50055, 8080) lie in Linux's range of ephemeral
    ports, from which every outgoing connection (a service's MongoDB pool, the relay's
    Kafka client) draws its local port: once, booth's MongoDB connection got 50052 and
    expo could never listen. A port with a bound socket is never handed out as an
    ephemeral port, so the launcher binds each one from its start until just before the
    service that listens on it is spawned, and again while a crashed one waits to restart.
    The mail catcher's ports are held the same way.
    """

    def __init__(self, host: str) -> None:
        self._host = host
        self._held: dict[int, socket.socket] = {}

    def hold(self, ports: tuple[int, ...]) -> None:
        """Bind each port not held yet; a port something else uses is left to fail
        later, in the service, with its own clear error."""
        for port in ports:
            if port in self._held or port == 0:
                continue
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind((self._host, port))
            except OSError:
                sock.close()
                continue
            self._held[port] = sock

    def release(self, ports: tuple[int, ...]) -> None:
        for port in ports:
            held = self._held.pop(port, None)
            if held is not None:
                held.close()

    def release_all(self) -> None:
        self.release(tuple(self._held))


async def replay_outboxes(settings: Settings, services: tuple[str, ...] = OUTBOX_SERVICES) -> int:
    """Publish every service's whole outbox again: the in-memory broker forgot it."""
    mongo = await connect_mongo(settings.mongodb_uri, app_name="chuhai-replay")
    publisher = await KafkaEventPublisher.connect(
        settings.kafka_bootstrap_servers, client_id="chuhai-replay"
    )
    try:
        total = 0
        for service in services:
            outbox = Outbox(mongo, mongo.get_database(settings.database_name(service)), service)
            total += await OutboxRelay(outbox, publisher).replay(datetime.min.replace(tzinfo=UTC))
        return total
    finally:
        await publisher.close()
        await mongo.close()


async def wait_serving(
    target: str, within_seconds: float, credentials: grpc.ChannelCredentials | None = None
) -> bool:
    """Poll grpc.health.v1 until the server says SERVING or the time is up."""
    deadline = time.monotonic() + within_seconds
    async with service_channel(target, credentials=credentials) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return True
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.25)
    return False


async def wait_catching(catcher: MailCatcher | None, within_seconds: float) -> bool:
    """Poll until the catcher takes SMTP connections and its page answers, or the time
    is up; without a catcher (SMTP_HOST is the operator's) there is nothing to wait for."""
    if catcher is None:
        return True
    deadline = time.monotonic() + within_seconds
    timeout = aiohttp.ClientTimeout(total=1.0)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        while time.monotonic() < deadline:
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(catcher.host, catcher.smtp_port), 1.0
                )
                writer.close()
                await writer.wait_closed()
                async with http.get(catcher.url + "messages.json") as reply:
                    if reply.status == 200:
                        return True
            except (OSError, TimeoutError, aiohttp.ClientError):
                pass
            await asyncio.sleep(0.25)
    return False


class Supervisor:
    """Starts one process per service, restarts a crashed one with backoff, and stops
    them all (SIGTERM, then SIGKILL after a grace period) on request."""

    def __init__(
        self,
        settings: Settings,
        env: dict[str, str],
        log_dir: Path,
        reservations: PortReservations,
        catcher: MailCatcher | None = None,
    ) -> None:
        self._settings = settings
        self._env = env
        self._log_dir = log_dir
        self._reservations = reservations
        self._stopping = False
        self.services = [ManagedService(n, service_ports(settings, n)) for n in SERVICES]
        # Started first: notify may send as soon as it runs (a failed send is retried).
        self.catcher = catcher.managed() if catcher is not None else None
        self._watchers: list[asyncio.Task[None]] = []

    @property
    def processes(self) -> list[ManagedService]:
        return ([self.catcher] if self.catcher else []) + self.services

    async def start(self) -> None:
        self._log_dir.mkdir(parents=True, exist_ok=True)
        for service in self.processes:
            await self._spawn(service)
            self._watchers.append(asyncio.create_task(self._watch(service)))

    async def _spawn(self, service: ManagedService) -> None:
        self._reservations.release(service.ports)
        # Opening a local log file does not block the loop in any way that matters.
        log_file = open(self._log_dir / f"{service.name}.log", "ab")  # noqa: ASYNC230, SIM115
        service.process = await asyncio.create_subprocess_exec(
            sys.executable,
            *service.command,
            env=self._env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
            # Own session: Ctrl-C reaches the launcher only, which stops services in order.
            start_new_session=True,
        )
        log_file.close()

    async def _watch(self, service: ManagedService) -> None:
        while True:
            assert service.process is not None
            code = await service.process.wait()
            if self._stopping:
                return
            self._reservations.hold(service.ports)
            service.restarts += 1
            delay = min(RESTART_BACKOFF_MAX_SECONDS, 2.0**service.restarts)
            log.warning(
                "service exited; restarting",
                extra={"service": service.name, "returncode": code, "in_seconds": delay},
            )
            await asyncio.sleep(delay)
            if self._stopping:
                return
            await self._spawn(service)

    async def stop(self) -> None:
        self._stopping = True
        for task in self._watchers:
            task.cancel()
        running = [s for s in self.processes if s.process and s.process.returncode is None]
        for service in running:
            with contextlib.suppress(ProcessLookupError):
                service.process.send_signal(signal.SIGTERM)
        for service in running:
            try:
                await asyncio.wait_for(service.process.wait(), STOP_TIMEOUT_SECONDS)
            except TimeoutError:
                log.warning(
                    "service did not stop in time; killing", extra={"service": service.name}
                )
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(service.process.pid, signal.SIGKILL)
                await service.process.wait()


def service_ports(settings: Settings, name: str) -> tuple[int, ...]:
    """The ports a service listens on."""
    if name == "bureau":
        return (settings.grpc_port(name), settings.bureau_web_port)
    return (settings.grpc_port(name),)


def launcher_ports(
    settings: Settings, *, identity: bool, catcher: MailCatcher | None = None
) -> tuple[int, ...]:
    """Every port the launcher holds from its start: the services', the development
    identity provider's when it runs one (it binds it once the infrastructure is up), and
    the mail catcher's when it starts one."""
    ports = tuple(p for n in SERVICES for p in service_ports(settings, n))
    if identity:
        ports = (*ports, settings.dev_identity_port)
    return (*ports, *catcher.ports) if catcher is not None else ports


def _embedded_ports() -> tuple[int | None, int | None]:
    """The usual ports when free, otherwise any free port (chosen by the launcher)."""
    kafka = DEFAULT_KAFKA_PORT if port_is_free(DEFAULT_KAFKA_PORT) else None
    mongo = DEFAULT_MONGO_PORT if port_is_free(DEFAULT_MONGO_PORT) else None
    return kafka, mongo


async def run_platform(var_dir: Path, *, demo: bool = True, pace: float = 1.0) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    kafka_port, mongo_port = _embedded_ports()
    # The services' ports do not depend on where the infrastructure runs.
    listening = Settings()
    keys = development_keys(var_dir)
    provider: DevelopmentIdentityProvider | None = None
    if needs_development_provider(os.environ):
        provider = DevelopmentIdentityProvider(
            keys, listening.auth_issuer, port=listening.dev_identity_port
        )
    catcher = mail_catcher(var_dir, listening, os.environ)
    reservations = PortReservations(listening.grpc_host)
    reservations.hold(launcher_ports(listening, identity=provider is not None, catcher=catcher))
    infra = EmbeddedInfrastructure(var_dir, kafka_port=kafka_port, mongo_port=mongo_port)
    supervisor: Supervisor | None = None
    try:
        await asyncio.to_thread(
            infra.start,
            kafka="KAFKA_BOOTSTRAP_SERVERS" not in os.environ,
            mongo="MONGODB_URI" not in os.environ,
        )
        jwks_url = ""
        if provider is not None:
            reservations.release((provider.port,))
            await _start_provider(provider)
            jwks_url = provider.jwks_url
        # The services inherit the launcher's environment, now pointing at what runs.
        os.environ.update(identity_environment(os.environ, keys, jwks_url, listening.auth_issuer))
        if infra.kafka_bootstrap_servers:
            os.environ["KAFKA_BOOTSTRAP_SERVERS"] = infra.kafka_bootstrap_servers
        if infra.mongodb_uri:
            os.environ["MONGODB_URI"] = infra.mongodb_uri
        if catcher is not None:
            os.environ.update({"SMTP_HOST": catcher.host, "SMTP_PORT": str(catcher.smtp_port)})
        settings = Settings()
        # Development tokens only where the development provider vouches for them.
        tokens = development_issuer(keys, settings) if provider is not None else None
        supervisor = Supervisor(settings, dict(os.environ), var_dir / "logs", reservations, catcher)
        await asyncio.to_thread(provision_topics, settings.kafka_bootstrap_servers)
        if infra.started_kafka:
            replayed = await replay_outboxes(settings)
            log.info("outboxes replayed into the fresh broker", extra={"events": replayed})
        await supervisor.start()
        serving, catching = await asyncio.gather(
            asyncio.gather(
                *(
                    wait_serving(
                        settings.grpc_target(s.name),
                        READY_TIMEOUT_SECONDS,
                        channel_credentials(settings),
                    )
                    for s in supervisor.services
                )
            ),
            wait_catching(catcher, READY_TIMEOUT_SECONDS),
        )
        ready = dict(zip(SERVICES, serving, strict=True))
        _print_endpoints(
            settings, supervisor, serving, catcher, catching, var_dir, provider, tokens
        )
        if demo and all(ready[name] for name in FIGURE_SERVICES):
            if tokens is None:
                _say(
                    "The demo signs its tokens with the development key, which the identity "
                    "provider configured here (AUTH_JWKS_URL/AUTH_JWKS_FILE) does not vouch "
                    "for: not played.\n"
                )
            else:
                await _play_demo(settings, tokens, var_dir, pace, stop, catcher)
        await stop.wait()
        return 0 if all(serving) and catching else 1
    finally:
        _say("\nStopping Chuhai…\n")
        if supervisor is not None:
            await supervisor.stop()
        reservations.release_all()
        if provider is not None:
            await provider.stop()
        await asyncio.to_thread(infra.stop)
        _say("Stopped.\n")


async def _start_provider(provider: DevelopmentIdentityProvider) -> None:
    try:
        await provider.start()
    except OSError as error:
        raise SystemExit(
            f"The development identity provider cannot listen on {provider.host}:"
            f"{provider.port} ({error.strerror}): set DEV_IDENTITY_PORT to a free port, or "
            "AUTH_JWKS_URL to your identity provider's key set."
        ) from None


async def _until_stopped(work: Awaitable[T], stop: asyncio.Event) -> T | None:
    """Await ``work`` unless Ctrl-C comes first: then cancel it and return None."""
    working = asyncio.ensure_future(work)
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({working, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not working.done():
        working.cancel()
        await asyncio.gather(working, return_exceptions=True)
        return None
    return working.result()


async def _play_demo(
    settings: Settings,
    tokens: TokenIssuer,
    var_dir: Path,
    pace: float,
    stop: asyncio.Event,
    catcher: MailCatcher | None,
) -> None:
    """Play the Xuchang case, then show what notify made of it, unless Ctrl-C comes
    first."""
    from demo.scenario import Targets, notified, play

    _say("Playing the Xuchang case (127 firms, 43 booths, 68,000 buyers, 7,442 intents)…\n")
    targets = Targets(**{name: settings.grpc_target(name) for name in SERVICES})
    credentials = channel_credentials(settings)
    try:
        played = await _until_stopped(
            play(targets, pace=pace, tokens=tokens, credentials=credentials), stop
        )
        if played is None:
            return
        lines = ["", "The bureau's figures:"]
        lines += [f"  {key:<17} {value:>7,}" for key, value in played.figures.items()]
        lines += [
            f"Dashboard (signed in as an officer for {DASHBOARD_TOKEN_HOURS:g} h): "
            f"{dashboard_login_url(settings, tokens)}",
            _token_hint(var_dir),
            "",
            f"Notifications: waiting up to {NOTIFY_SETTLE_SECONDS:g} s for notify to catch up…",
        ]
        _say("\n".join(lines) + "\n")
        report = await _until_stopped(
            notified(
                played,
                targets.notify,
                tokens,
                credentials=credentials,
                mail_dir=catcher.directory if catcher else None,
                within_seconds=NOTIFY_SETTLE_SECONDS,
            ),
            stop,
        )
    except Exception as error:
        # The platform stays up: the demo is one client among others.
        log.exception("the demo scenario stopped")
        _say(f"The demo stopped: {error}. The platform keeps running.\n")
        return
    if report is None:
        return
    _say(_notifications_text(report, played, catcher, var_dir))
    _say("Press Ctrl-C to stop everything.\n\n")


def _notifications_text(
    report: Notified, played: Played, catcher: MailCatcher | None, var_dir: Path
) -> str:
    """What notify holds for the demo's people, and how to look at it."""
    if report.error:
        return f"  notify did not answer ({report.error}); the figures above do not need it.\n"
    lines = ["Unread notifications of some of the demo's people:"]
    for recipient, count in report.unread:
        mail = f"  e-mail {recipient.email} ({recipient.language})" if recipient.email else ""
        lines.append(f"  {recipient.label:<40} {count:>7,}{mail}")
    if report.emails is not None:
        lines.append(f"  {'e-mails the mail catcher caught':<40} {report.emails:>7,}")
    if not report.caught_up:
        lines.append("  (notify is still catching up: these are the counts so far)")
    where = "" if var_dir == DEFAULT_VAR_DIR else f" --var-dir {var_dir}"
    lines += [
        "See them:",
        f"  e-mail     {catcher.url}" if catcher else "  e-mail     in the mailboxes above",
        '  command    chuhai --token "$(chuhai-platform token exporter --party '
        f'{played.example_exporter}{where})" notifications list',
        "  dashboard  the bell at the top of the dashboard (the link above): the bureau's own",
        "",
    ]
    return "\n".join(lines)


def _token_hint(var_dir: Path) -> str:
    where = "" if var_dir == DEFAULT_VAR_DIR else f" --var-dir {var_dir}"
    return (
        f"Tokens for the command line and other clients: chuhai-platform token officer{where} "
        "(or exporter --party CREDIT_CODE, buyer, operator --party OPERATOR_ID)"
    )


def _dashboard_url(settings: Settings) -> str:
    return f"http://{settings.bureau_web_host}:{settings.bureau_web_port}/"


def dashboard_login_url(settings: Settings, tokens: TokenIssuer) -> str:
    """The dashboard's address with a fresh officer's token: the bureau signs it in."""
    officer = principal_for(Role.OFFICER)
    token = tokens.issue(officer, ttl_seconds=DASHBOARD_TOKEN_HOURS * 3600)
    return f"{_dashboard_url(settings)}login?token={token}"


def _print_endpoints(
    settings: Settings,
    supervisor: Supervisor,
    serving: list[bool],
    catcher: MailCatcher | None,
    catching: bool,
    var_dir: Path,
    provider: DevelopmentIdentityProvider | None,
    tokens: TokenIssuer | None,
) -> None:
    lines = ["", "Chuhai is running:"]
    for service, ok in zip(supervisor.services, serving, strict=True):
        state = "SERVING" if ok else "NOT READY (see its log)"
        lines.append(
            f"  {service.name:<10} grpc://{settings.grpc_target(service.name):<22} {state}"
        )
    identity = provider.jwks_url if provider else settings.auth_jwks_url or settings.auth_jwks_file
    if catcher is None:
        mail = f"smtp://{settings.smtp_host}:{settings.smtp_port} (SMTP_HOST: no catcher started)"
    else:
        state = (
            f"SMTP {catcher.host}:{catcher.smtp_port}" if catching else "NOT READY (see its log)"
        )
        mail = f"{catcher.url:<29} {state}"
    lines += [
        f"  dashboard  {_dashboard_url(settings)}",
        f"  mail       {mail}",
        f"  identity   {identity}",
        f"  kafka      {settings.kafka_bootstrap_servers}",
        f"  mongodb    {settings.mongodb_uri}",
        f"  metrics    {_metrics_urls(settings, [s.name for s in supervisor.services])}",
        f"  logs       {var_dir / 'logs'}",
    ]
    if tokens is not None:
        lines += [
            f"Dashboard (signed in as an officer for {DASHBOARD_TOKEN_HOURS:g} h): "
            f"{dashboard_login_url(settings, tokens)}",
            _token_hint(var_dir),
        ]
    lines += [
        "Try the command line: chuhai --help",
        "Press Ctrl-C to stop everything.",
        "",
    ]
    _say("\n".join(lines) + "\n")


def _metrics_urls(settings: Settings, services: list[str]) -> str:
    """The first service's URL in full, then each port with its service."""
    first, *others = services
    url = f"http://{settings.metrics_host}:{settings.metrics_port(first)}/metrics ({first})"
    return ", ".join([url, *(f":{settings.metrics_port(s)} ({s})" for s in others)])


def _say(text: str) -> None:
    # The launcher is a terminal program: its summary goes to the person who ran it.
    sys.stdout.write(text)
    sys.stdout.flush()


async def _replay_command(args: argparse.Namespace) -> int:
    settings = Settings()
    since = datetime.fromisoformat(args.since) if args.since else datetime.min
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    mongo = await connect_mongo(settings.mongodb_uri, app_name="chuhai-replay")
    publisher = await KafkaEventPublisher.connect(
        settings.kafka_bootstrap_servers, client_id="chuhai-replay"
    )
    try:
        db = mongo.get_database(settings.database_name(args.service))
        count = await OutboxRelay(Outbox(mongo, db, args.service), publisher).replay(since)
    finally:
        await publisher.close()
        await mongo.close()
    _say(f"replayed {count} events of {args.service} since {since.isoformat()}\n")
    return 0


def _token_command(args: argparse.Namespace, command: argparse.ArgumentParser) -> int:
    """Prints a development token; a role without the party it needs is a usage error."""
    if args.ttl_hours <= 0:
        command.error("--ttl-hours must be positive")
    try:
        principal = principal_for(Role(args.role), args.party, args.subject)
    except ValueError as error:
        command.error(str(error))
    keys = development_keys(args.var_dir)
    token = development_issuer(keys, Settings()).issue(principal, ttl_seconds=args.ttl_hours * 3600)
    _say(token + "\n")
    # What the token says goes to stderr: `$(chuhai-platform token ...)` gets the token only.
    sys.stderr.write(
        f"{principal.role.value} token for subject {principal.subject!r}"
        + (f", party {principal.party!r}" if principal.party else ", no party")
        + f", valid {args.ttl_hours:g} h, key {keys.key_id}\n"
    )
    return 0


def _keys_command(args: argparse.Namespace, command: argparse.ArgumentParser) -> int:
    """Makes (or keeps) a key pair; --owner hands it to the services' user."""
    owner: tuple[int, int] | None = None
    if args.owner:
        uid, _, gid = args.owner.partition(":")
        if not (uid.isdigit() and gid.isdigit()):
            command.error("--owner takes UID:GID, e.g. 10001:10001")
        owner = (int(uid), int(gid))
    keys = DevelopmentKeys.ensure(args.dir)
    if owner is not None:
        for path in (keys.directory, keys.signing_key_file, keys.key_set_file):
            os.chown(path, *owner)
    _say(
        f"key id       {keys.key_id}\n"
        f"signing key  {keys.signing_key_file}\n"
        f"key set      {keys.key_set_file}\n"
    )
    return 0


def _reconcile_token(args: argparse.Namespace, command: argparse.ArgumentParser) -> str:
    """--token, else CHUHAI_TOKEN, else an officer's token signed with the development
    key under --var-dir, when `chuhai-platform run` made one there."""
    if args.token:
        return str(args.token)
    if token := os.environ.get("CHUHAI_TOKEN", ""):
        return token
    if (args.var_dir / "identity" / SIGNING_KEY_FILE).exists():
        issuer = development_issuer(development_keys(args.var_dir), Settings())
        return issuer.issue(
            principal_for(Role.OFFICER),
            ttl_seconds=args.settle_seconds + RECONCILE_TOKEN_SECONDS,
        )
    command.error(
        "no token: give --token or CHUHAI_TOKEN (an officer's), or --var-dir where "
        "`chuhai-platform run` keeps its development identity"
    )


def _reconciliation_json(result: Reconciliation) -> str:
    return json.dumps(
        {
            "reconciled": result.reconciled,
            "compared": len(result.figures),
            "differences": len(result.differences),
            "figures": [
                {
                    "figure": figure.name,
                    "service": figure.service_value,
                    "bureau": figure.bureau_value,
                    "agrees": figure.agrees,
                }
                for figure in result.figures
            ],
        },
        indent=2,
    )


def _reconciliation_table(result: Reconciliation) -> str:
    width = max([len("figure"), *(len(f.name) for f in result.figures)])
    lines = [f"  {'figure':<{width}}  {'services':>10}  {'bureau':>10}"]
    lines += [
        f"{'✓' if f.agrees else '✗'} {f.name:<{width}}  {f.service_value:>10,}  "
        f"{f.bureau_value:>10,}"
        for f in result.figures
    ]
    if result.reconciled:
        lines.append(f"Reconciled: all {len(result.figures)} figures agree.")
    else:
        lines.append(
            f"{len(result.differences)} of {len(result.figures)} figures differ: "
            + ", ".join(d.figure for d in result.differences)
        )
    return "\n".join(lines) + "\n"


def _reconcile_command(args: argparse.Namespace, command: argparse.ArgumentParser) -> int:
    if args.settle_seconds < 0:
        command.error("--settle-seconds must not be negative")
    token = _reconcile_token(args, command)
    try:
        result = asyncio.run(reconcile(Settings(), token, settle_seconds=args.settle_seconds))
    except SourceUnavailable as error:
        sys.stderr.write(f"chuhai-platform reconcile: {error}\n")
        return EXIT_UNAVAILABLE
    _say(_reconciliation_json(result) + "\n" if args.json else _reconciliation_table(result))
    return 0 if result.reconciled else EXIT_DIFFERENCES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chuhai-platform", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="start the whole platform until Ctrl-C")
    run.add_argument("--var-dir", type=Path, default=DEFAULT_VAR_DIR, help="data and logs")
    run.add_argument("--no-demo", action="store_true", help="start the platform only")
    run.add_argument(
        "--full-speed", action="store_true", help="play the demo as fast as the platform goes"
    )
    commands.add_parser("topics", help="create the declared topics (idempotent)")
    replay = commands.add_parser("replay", help="publish a service's outbox again")
    replay.add_argument("service", choices=OUTBOX_SERVICES)
    replay.add_argument("--since", help="ISO 8601 time; default: the beginning")
    token = commands.add_parser(
        "token",
        help="print a development token (signed with the key under VAR_DIR/identity)",
        description="Prints a token the platform started by `chuhai-platform run` accepts. "
        "exporter, operator and service tokens act for a party (--party); a buyer's token "
        "without one registers the buyer, then a token with the same --subject and the "
        "returned buyer id as --party acts for it.",
    )
    token.add_argument("role", choices=[role.value for role in Role])
    token.add_argument(
        "--party",
        default="",
        help="credit code (exporter), buyer id (buyer), operator id (operator), "
        "service name (service)",
    )
    token.add_argument("--subject", default="", help="who the token names; default from the party")
    token.add_argument("--ttl-hours", type=float, default=DEFAULT_TOKEN_HOURS)
    token.add_argument("--var-dir", type=Path, default=DEFAULT_VAR_DIR, help="as for run")
    keys = commands.add_parser(
        "keys", help="make a key pair (signing-key.pem, jwks.json) unless one is there"
    )
    keys.add_argument("--dir", type=Path, required=True, help="where the key pair goes")
    keys.add_argument("--owner", default="", help="UID:GID to hand the files to (as root)")
    reconciling = commands.add_parser(
        "reconcile",
        help="compare every service's MongoDB state with the bureau's figures",
        description="Recomputes each figure the bureau serves from the booth, expo and "
        "warehouse databases (MONGODB_URI) and compares it with the bureau's (QueryStats at "
        "BUREAU_GRPC_TARGET, with an officer's token), waiting up to --settle-seconds for "
        "the bureau to catch up. Exit 0: no difference; 1: differences; 2: wrong usage; "
        "3: the bureau or the databases unreachable, or the token refused.",
    )
    reconciling.add_argument("--token", default="", help="an officer's token; else CHUHAI_TOKEN")
    reconciling.add_argument(
        "--var-dir",
        type=Path,
        default=DEFAULT_VAR_DIR,
        help="without a token: sign an officer's one with the development key kept here",
    )
    reconciling.add_argument(
        "--settle-seconds",
        type=float,
        default=DEFAULT_SETTLE_SECONDS,
        help="how long to wait for the bureau to catch up before reporting differences",
    )
    reconciling.add_argument("--json", action="store_true", help="every figure as JSON")
    args = parser.parse_args(argv)
    if args.command == "reconcile":
        return _reconcile_command(args, reconciling)
    if args.command == "token":
        return _token_command(args, token)
    if args.command == "keys":
        return _keys_command(args, keys)
    configure_logging("launcher", Settings().log_level)
    if args.command == "run":
        return asyncio.run(
            run_platform(args.var_dir, demo=not args.no_demo, pace=0.0 if args.full_speed else 1.0)
        )
    if args.command == "topics":
        created = provision_topics(Settings().kafka_bootstrap_servers)
        _say(f"created {len(created)} topics\n")
        return 0
    return asyncio.run(_replay_command(args))


if __name__ == "__main__":
    raise SystemExit(main())
