"""What every interceptor of the server's chain does to a method handler: the same
handler with its behaviour wrapped, by the kind of call."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import grpc

Wrap = Callable[[Callable[..., Any]], Callable[..., Any]]


def rewrap(handler: grpc.RpcMethodHandler, *, unary: Wrap, stream: Wrap) -> grpc.RpcMethodHandler:
    """``handler`` with its behaviour wrapped by ``unary`` (a unary call, or a streaming
    one written as a coroutine that writes with context.write()) or by ``stream`` (a
    streaming call written as an async generator). Client and bidirectional streams are
    not part of any Chuhai API, only of server reflection: left as they are."""
    serialization = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary), **serialization)
    if handler.unary_stream:
        behaviour = handler.unary_stream
        wrap = stream if inspect.isasyncgenfunction(behaviour) else unary
        return grpc.unary_stream_rpc_method_handler(wrap(behaviour), **serialization)
    return handler
