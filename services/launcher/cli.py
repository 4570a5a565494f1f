"""`chuhai-platform`: runs the whole platform on one machine (`make run`), provisions
topics and replays outboxes.

`run` starts the embedded infrastructure for whatever has no external address
(KAFKA_BOOTSTRAP_SERVERS, MONGODB_URI) and the development identity provider unless an
identity provider is configured (AUTH_JWKS_URL, AUTH_JWKS_FILE), creates the topics,
replays the outboxes into a fresh in-memory broker, then supervises one process per
service until Ctrl-C. `token` signs development tokens, `keys` makes a key pair,
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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from launcher.embedded import EmbeddedInfrastructure, port_is_free
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

log = logging.getLogger("chuhai.launcher")

SERVICES = ("booth", "expo", "warehouse", "bureau")
# Services that write an outbox (the bureau only consumes).
OUTBOX_SERVICES = ("booth", "expo", "warehouse")
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


@dataclass
class ManagedService:
    name: str
    # Where it listens: its gRPC port, and the bureau's dashboard.
    ports: tuple[int, ...]
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0


class PortReservations:
    """Holds the services' ports while their services are not running.

    The services' usual ports (50051-50054, 8080) lie in Linux's range of ephemeral
    ports, from which every outgoing connection (a service's MongoDB pool, the relay's
    Kafka client) draws its local port: once, booth's MongoDB connection got 50052 and
    expo could never listen. A port with a bound socket is never handed out as an
    ephemeral port, so the launcher binds each one from its start until just before the
    service that listens on it is spawned, and again while a crashed one waits to restart.
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


class Supervisor:
    """Starts one process per service, restarts a crashed one with backoff, and stops
    them all (SIGTERM, then SIGKILL after a grace period) on request."""

    def __init__(
        self,
        settings: Settings,
        env: dict[str, str],
        log_dir: Path,
        reservations: PortReservations,
    ) -> None:
        self._settings = settings
        self._env = env
        self._log_dir = log_dir
        self._reservations = reservations
        self._stopping = False
        self.services = [ManagedService(n, service_ports(settings, n)) for n in SERVICES]
        self._watchers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._log_dir.mkdir(parents=True, exist_ok=True)
        for service in self.services:
            await self._spawn(service)
            self._watchers.append(asyncio.create_task(self._watch(service)))

    async def _spawn(self, service: ManagedService) -> None:
        self._reservations.release(service.ports)
        # Opening a local log file does not block the loop in any way that matters.
        log_file = open(self._log_dir / f"{service.name}.log", "ab")  # noqa: ASYNC230, SIM115
        service.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            service.name,
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
        running = [s for s in self.services if s.process and s.process.returncode is None]
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


def launcher_ports(settings: Settings, *, identity: bool) -> tuple[int, ...]:
    """Every port the launcher holds from its start: the services', and the development
    identity provider's when it runs one (it binds it once the infrastructure is up)."""
    ports = tuple(p for n in SERVICES for p in service_ports(settings, n))
    return (*ports, settings.dev_identity_port) if identity else ports


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
    reservations = PortReservations(listening.grpc_host)
    reservations.hold(launcher_ports(listening, identity=provider is not None))
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
        settings = Settings()
        # Development tokens only where the development provider vouches for them.
        tokens = development_issuer(keys, settings) if provider is not None else None
        supervisor = Supervisor(settings, dict(os.environ), var_dir / "logs", reservations)
        await asyncio.to_thread(provision_topics, settings.kafka_bootstrap_servers)
        if infra.started_kafka:
            replayed = await replay_outboxes(settings)
            log.info("outboxes replayed into the fresh broker", extra={"events": replayed})
        await supervisor.start()
        ready = await asyncio.gather(
            *(
                wait_serving(
                    settings.grpc_target(s.name),
                    READY_TIMEOUT_SECONDS,
                    channel_credentials(settings),
                )
                for s in supervisor.services
            )
        )
        _print_endpoints(settings, supervisor, ready, var_dir, provider, tokens)
        if demo and all(ready):
            if tokens is None:
                _say(
                    "The demo signs its tokens with the development key, which the identity "
                    "provider configured here (AUTH_JWKS_URL/AUTH_JWKS_FILE) does not vouch "
                    "for: not played.\n"
                )
            else:
                await _play_demo(settings, tokens, var_dir, pace, stop)
        await stop.wait()
        return 0 if all(ready) else 1
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


async def _play_demo(
    settings: Settings, tokens: TokenIssuer, var_dir: Path, pace: float, stop: asyncio.Event
) -> None:
    """Play the Xuchang case, unless Ctrl-C comes first."""
    from demo.scenario import Targets, play

    _say("Playing the Xuchang case (127 firms, 43 booths, 68,000 buyers, 7,442 intents)…\n")
    targets = Targets(**{name: settings.grpc_target(name) for name in SERVICES})
    playing = asyncio.create_task(
        play(targets, pace=pace, tokens=tokens, credentials=channel_credentials(settings))
    )
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({playing, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if not playing.done():
        playing.cancel()
        await asyncio.gather(playing, return_exceptions=True)
        return
    stopped.cancel()
    try:
        figures = playing.result()
    except Exception as error:
        # The platform stays up: the demo is one client among others.
        log.exception("the demo scenario stopped")
        _say(f"The demo stopped: {error}. The platform keeps running.\n")
        return
    lines = ["", "The bureau's figures:"]
    lines += [f"  {key:<17} {value:>7,}" for key, value in figures.items()]
    lines += [
        f"Dashboard (signed in as an officer for {DASHBOARD_TOKEN_HOURS:g} h): "
        f"{dashboard_login_url(settings, tokens)}",
        _token_hint(var_dir),
        "Press Ctrl-C to stop everything.",
        "",
    ]
    _say("\n".join(lines))


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
    ready: list[bool],
    var_dir: Path,
    provider: DevelopmentIdentityProvider | None,
    tokens: TokenIssuer | None,
) -> None:
    lines = ["", "Chuhai is running:"]
    for service, ok in zip(supervisor.services, ready, strict=True):
        state = "SERVING" if ok else "NOT READY (see its log)"
        lines.append(
            f"  {service.name:<10} grpc://{settings.grpc_target(service.name):<22} {state}"
        )
    identity = provider.jwks_url if provider else settings.auth_jwks_url or settings.auth_jwks_file
    lines += [
        f"  dashboard  {_dashboard_url(settings)}",
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
