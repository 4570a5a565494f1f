"""Channels for calling other services: bounded retries of UNAVAILABLE by gRPC's own
retry policy, so a brief restart of the callee is absorbed; callers set a deadline on
every call."""

from __future__ import annotations

import json

import grpc

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


def service_channel(target: str) -> grpc.aio.Channel:
    """An insecure channel to another Chuhai service (TLS arrives with its own issue)."""
    return grpc.aio.insecure_channel(
        target,
        options=[
            ("grpc.service_config", _RETRY_SERVICE_CONFIG),
            ("grpc.enable_retries", 1),
            ("grpc.keepalive_time_ms", 30_000),
            # Reconnect to a restarted service within about a second, not gRPC's default
            # of up to two minutes of backoff.
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
        ],
    )
