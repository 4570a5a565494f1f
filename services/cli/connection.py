"""How a command reaches the platform: the addresses (the environment variables the
services read, overridden by the top-level options), the caller's token, and the one
place that opens channels and sets every call's deadline and metadata."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from chuhai.booth.v1 import booth_service_pb2_grpc as booth_grpc
from chuhai.bureau.v1 import bureau_service_pb2_grpc as bureau_grpc
from chuhai.expo.v1 import expo_service_pb2_grpc as expo_grpc
from chuhai.notify.v1 import notify_service_pb2_grpc as notify_grpc
from chuhai.warehouse.v1 import warehouse_service_pb2_grpc as warehouse_grpc
from cli.credentials import Token, find_token
from runtime.adapters.grpc_client import service_channel
from runtime.adapters.settings import Settings
from runtime.adapters.tls import channel_credentials

Reply = TypeVar("Reply", bound=Message)

SERVICES = ("booth", "expo", "warehouse", "bureau", "notify")
DEFAULT_DEADLINE_SECONDS = 30.0
AUTHORIZATION = "authorization"


@dataclass(frozen=True)
class Overrides:
    """What the top-level options said; anything left empty comes from the environment."""

    targets: dict[str, str] = field(default_factory=dict)
    bureau_web_url: str = ""
    kafka_bootstrap_servers: str = ""
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS
    token: str = ""


@dataclass(frozen=True)
class Endpoints:
    targets: dict[str, str]
    bureau_web_url: str
    kafka_bootstrap_servers: str
    deadline_seconds: float
    # None: no token anywhere; calls go without one and the service says so.
    token: Token | None = None
    # TLS as the services' own clients use it (TLS_CA_FILE and friends); None: plaintext.
    credentials: grpc.ChannelCredentials | None = None
    server_name_override: str = ""

    @classmethod
    def resolve(cls, overrides: Overrides) -> Endpoints:
        """Read the environment (and the saved token) only when a command needs them,
        so that `--help` works whatever the environment holds."""
        settings = Settings()
        web_host = settings.bureau_web_host
        # A dashboard bound to every interface is reached on this machine's loopback.
        if web_host in ("0.0.0.0", "::", ""):
            web_host = "127.0.0.1"
        return cls(
            targets={
                service: overrides.targets.get(service) or settings.grpc_target(service)
                for service in SERVICES
            },
            bureau_web_url=(
                overrides.bureau_web_url or f"http://{web_host}:{settings.bureau_web_port}"
            ).rstrip("/"),
            kafka_bootstrap_servers=(
                overrides.kafka_bootstrap_servers or settings.kafka_bootstrap_servers
            ),
            deadline_seconds=overrides.deadline_seconds,
            token=find_token(overrides.token),
            credentials=channel_credentials(settings),
            server_name_override=settings.tls_server_name_override,
        )


class ServiceCallFailed(Exception):
    """A call the service refused or could not answer, with where it went."""

    def __init__(self, error: grpc.aio.AioRpcError, service: str, target: str) -> None:
        super().__init__(error.details())
        self.error = error
        self.service = service
        self.target = target


def call_metadata(token: Token | None) -> tuple[tuple[str, str], ...]:
    """Metadata sent with every call: the caller's bearer token, when there is one."""
    if token is None:
        return ()
    return ((AUTHORIZATION, bearer(token)),)


def bearer(token: Token) -> str:
    """The value of an ``authorization`` header or metadata entry."""
    return f"Bearer {token.value}"


def _service_of(request: Message) -> str:
    # chuhai.<service>.v1.<Request>: the package names the service that takes it.
    return request.DESCRIPTOR.full_name.split(".")[1]


class Platform:
    """The public APIs for one command: channels opened on first use, closed at the end."""

    def __init__(self, endpoints: Endpoints) -> None:
        self.endpoints = endpoints
        self._channels: dict[str, grpc.aio.Channel] = {}

    def _channel(self, service: str) -> grpc.aio.Channel:
        if service not in self._channels:
            self._channels[service] = service_channel(
                self.endpoints.targets[service],
                credentials=self.endpoints.credentials,
                server_name_override=self.endpoints.server_name_override,
            )
        return self._channels[service]

    @property
    def booth(self) -> booth_grpc.BoothServiceStub:
        return booth_grpc.BoothServiceStub(self._channel("booth"))

    @property
    def expo(self) -> expo_grpc.ExpoServiceStub:
        return expo_grpc.ExpoServiceStub(self._channel("expo"))

    @property
    def warehouse(self) -> warehouse_grpc.WarehouseServiceStub:
        return warehouse_grpc.WarehouseServiceStub(self._channel("warehouse"))

    @property
    def bureau(self) -> bureau_grpc.BureauServiceStub:
        return bureau_grpc.BureauServiceStub(self._channel("bureau"))

    @property
    def notify(self) -> notify_grpc.NotifyServiceStub:
        return notify_grpc.NotifyServiceStub(self._channel("notify"))

    async def call(self, method: Callable[..., Awaitable[Reply]], request: Message) -> Reply:
        """One unary call with the deadline and metadata every call carries."""
        try:
            return await method(
                request,
                timeout=self.endpoints.deadline_seconds,
                metadata=call_metadata(self.endpoints.token),
            )
        except grpc.aio.AioRpcError as error:
            raise self._failed(error, request) from error

    async def stream(
        self,
        method: Callable[..., Any],
        request: Message,
        *,
        for_seconds: float | None,
        opened: Callable[[], None] | None = None,
    ) -> AsyncIterator[Any]:
        """The replies of a server stream for ``for_seconds`` (None: until cancelled); the
        end of that time ends the stream quietly, since the caller asked for it.
        ``opened`` is called once the service has accepted the stream (its headers came),
        before any reply: from then on nothing made is missed."""
        call = method(request, timeout=for_seconds, metadata=call_metadata(self.endpoints.token))
        try:
            if opened is not None:
                await call.initial_metadata()
                # A refused call ends without headers of its own: the loop raises its error.
                if not call.done():
                    opened()
            async for reply in call:
                yield reply
        except grpc.aio.AioRpcError as error:
            if for_seconds is not None and error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return
            raise self._failed(error, request) from error
        finally:
            call.cancel()

    def _failed(self, error: grpc.aio.AioRpcError, request: Message) -> ServiceCallFailed:
        service = _service_of(request)
        return ServiceCallFailed(error, service, self.endpoints.targets[service])

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
