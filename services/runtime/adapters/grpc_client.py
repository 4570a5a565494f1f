"""Channels for calling other services: bounded retries of UNAVAILABLE by gRPC's own
retry policy, so a brief restart of the callee is absorbed; callers set a deadline on
every call."""

from __future__ import annotations

import json
from collections.abc import Callable

import grpc

from runtime.adapters.settings import Settings
from runtime.adapters.tls import channel_credentials

# gRPC retries only calls that never reached the server's handler, or that failed with
# a listed code: safe for our idempotent (request id) mutations as well as for reads.
_RETRY_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 3,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


def service_channel(
    target: str,
    token: TokenSource | None = None,
    *,
    credentials: grpc.ChannelCredentials | None = None,
    server_name_override: str = "",
    max_message_bytes: int = 4 * 1024 * 1024,
) -> grpc.aio.Channel:
    """A channel to a Chuhai service; with ``token``, every call carries it. With
    ``credentials`` (tls.channel_credentials) the channel speaks TLS, checking the
    callee's certificate against ``server_name_override`` when given (the setting
    TLS_SERVER_NAME_OVERRIDE), else against the target's host."""
    options: list[tuple[str, str | int]] = [
        ("grpc.service_config", _RETRY_SERVICE_CONFIG),
        ("grpc.enable_retries", 1),
        ("grpc.keepalive_time_ms", 30_000),
        # Reconnect to a restarted service within about a second, not gRPC's default
        # of up to two minutes of backoff.
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1000),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]
    interceptors = bearer_token_interceptors(token) if token is not None else None
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
    if server_name_override:
        options.append(("grpc.ssl_target_name_override", server_name_override))
    return grpc.aio.secure_channel(target, credentials, options=options, interceptors=interceptors)


TokenSource = Callable[[], str]
"""Gives the bearer token for the next call (renewing it when it is about to expire)."""


def _with_token(
    details: grpc.aio.ClientCallDetails, token: TokenSource
) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    metadata.add("authorization", f"Bearer {token()}")
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


# One class per kind of call: a channel files each interceptor under the first kind it
# is an instance of, so one class for both would never see the streams.
class _UnaryBearerToken(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, token: TokenSource) -> None:
        self._token = token

    async def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return await continuation(_with_token(client_call_details, self._token), request)


class _StreamBearerToken(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, token: TokenSource) -> None:
        self._token = token

    async def intercept_unary_stream(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return await continuation(_with_token(client_call_details, self._token), request)


def bearer_token_interceptors(token: TokenSource) -> list[grpc.aio.ClientInterceptor]:
    """Interceptors adding ``authorization: Bearer <token>`` to every call of a channel."""
    return [_UnaryBearerToken(token), _StreamBearerToken(token)]


def channel_to(
    service: str, settings: Settings, token: TokenSource | None = None
) -> grpc.aio.Channel:
    """A channel to one of the platform's services as the settings describe it: its
    target, TLS (and the client certificate under mutual TLS) when configured, the
    message size limit, and ``token`` on every call."""
    return service_channel(
        settings.grpc_target(service),
        token,
        credentials=channel_credentials(settings),
        server_name_override=settings.tls_server_name_override,
        max_message_bytes=settings.grpc_max_message_bytes,
    )
