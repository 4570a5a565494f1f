"""Maps domain errors to gRPC status codes, with google.rpc details: BadRequest for bad
requests, ErrorInfo (a machine-readable reason) for FAILED_PRECONDITION and ABORTED."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from runtime.adapters.grpc_handlers import rewrap
from runtime.kernel import errors

log = logging.getLogger(__name__)

# ErrorInfo's domain names who defines the reasons; the kernel defines them for every
# service, so it is one fixed name rather than the service's.
ERROR_DOMAIN = "chuhai"

D = TypeVar("D", bound=Message)

_CODES: dict[type[errors.DomainError], int] = {
    errors.InvalidArgument: code_pb2.INVALID_ARGUMENT,
    errors.NotFound: code_pb2.NOT_FOUND,
    errors.AlreadyExists: code_pb2.ALREADY_EXISTS,
    errors.FailedPrecondition: code_pb2.FAILED_PRECONDITION,
    errors.PermissionDenied: code_pb2.PERMISSION_DENIED,
    errors.Unauthenticated: code_pb2.UNAUTHENTICATED,
    errors.ResourceExhausted: code_pb2.RESOURCE_EXHAUSTED,
    errors.Unavailable: code_pb2.UNAVAILABLE,
    errors.Aborted: code_pb2.ABORTED,
}


def status_for(error: errors.DomainError) -> grpc.Status:
    """The rich gRPC status for a domain error (BadRequest details for field violations,
    ErrorInfo for an error with a reason)."""
    # A DomainError without its own code is a server bug, not the caller's problem.
    code = next((c for cls, c in _CODES.items() if isinstance(error, cls)), code_pb2.INTERNAL)
    status = status_pb2.Status(code=code, message=error.message)
    if isinstance(error, errors.InvalidArgument):
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description
                )
                for v in error.violations
            ]
        )
        _attach(status, bad_request)
    if isinstance(error, errors.ErrorWithReason):
        info = error_details_pb2.ErrorInfo(
            reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata
        )
        _attach(status, info)
    if isinstance(error, errors.ResourceExhausted) and error.retry_after_seconds is not None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromMilliseconds(max(1, math.ceil(error.retry_after_seconds * 1000)))
        _attach(status, retry)
    return rpc_status.to_status(status)


def _attach(status: status_pb2.Status, detail: Message) -> None:
    packed = any_pb2.Any()
    packed.Pack(detail)
    status.details.append(packed)


def field_violations(error: grpc.aio.AioRpcError | grpc.RpcError) -> dict[str, str]:
    """Client-side helper: the field violations a server attached to an error."""
    found: dict[str, str] = {}
    for bad_request in _details(error, error_details_pb2.BadRequest):
        found.update({v.field: v.description for v in bad_request.field_violations})
    return found


def error_reason(error: grpc.aio.AioRpcError | grpc.RpcError) -> str:
    """Client-side helper: the reason (REQUEST_ID_REUSED, FAIR_NOT_OPEN, ...) a server
    attached to an error, or "" when it attached none."""
    for info in _details(error, error_details_pb2.ErrorInfo):
        if info.domain == ERROR_DOMAIN:
            return info.reason
    return ""


def retry_delay_seconds(error: grpc.aio.AioRpcError | grpc.RpcError) -> float | None:
    """Client-side helper: how long the server asked to wait before retrying, if it said."""
    for retry in _details(error, error_details_pb2.RetryInfo):
        return retry.retry_delay.ToMilliseconds() / 1000
    return None


def _details(error: grpc.aio.AioRpcError | grpc.RpcError, kind: type[D]) -> list[D]:
    status = rpc_status.from_call(error)
    if status is None:
        return []
    found: list[D] = []
    for detail in status.details:
        if detail.Is(kind.DESCRIPTOR):
            unpacked = kind()
            detail.Unpack(unpacked)
            found.append(unpacked)
    return found


class DomainErrorInterceptor(grpc.aio.ServerInterceptor):
    """Turns a DomainError raised by a handler into its status; anything else is INTERNAL
    with the details logged, never leaked to the caller."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        return rewrap(
            handler,
            unary=lambda behaviour: _wrap_unary(behaviour, method),
            stream=lambda behaviour: _wrap_stream(behaviour, method),
        )


async def _abort_for(error: Exception, context: grpc.aio.ServicerContext, method: str) -> None:
    if isinstance(error, errors.DomainError):
        await context.abort_with_status(status_for(error))
    log.exception("unhandled error in %s", method, exc_info=error)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")


def _wrap_unary(behaviour: Callable[..., Awaitable[Any]], method: str) -> Callable[..., Any]:
    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behaviour(request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            await _abort_for(error, context, method)

    return guarded


def _wrap_stream(behaviour: Callable[..., AsyncIterator[Any]], method: str) -> Callable[..., Any]:
    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            async for response in behaviour(request, context):
                yield response
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            await _abort_for(error, context, method)

    return guarded
