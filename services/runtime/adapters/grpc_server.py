"""The gRPC server every service runs: health, reflection, one interceptor chain
(metrics and traces outermost, error mapping innermost), graceful stop (health
NOT_SERVING first, then in-flight calls get a grace period)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Tracer

from runtime.adapters.auth import Access, AuthInterceptor, PrincipalRateLimiter, TokenVerifier
from runtime.adapters.grpc_errors import DomainErrorInterceptor
from runtime.adapters.grpc_handlers import rewrap
from runtime.adapters.metrics import RpcMetrics
from runtime.adapters.tracing import end_server_span, start_server_span

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceBinding:
    """One gRPC service to expose: its full name, its servicer and the generated adder."""

    full_name: str
    servicer: Any
    add_to_server: Callable[[Any, grpc.aio.Server], None]
    # Which roles may call each method; a method missing here is refused to everyone.
    access: Access = field(default_factory=dict)


class GrpcServer:
    """A grpc.aio server with grpc.health.v1, server reflection and error mapping."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        verifier: TokenVerifier | None,
        limiter: PrincipalRateLimiter | None = None,
        max_message_bytes: int = 4 * 1024 * 1024,
        metrics: RpcMetrics | None = None,
        tracer: Tracer | None = None,
        credentials: grpc.ServerCredentials | None = None,
    ) -> None:
        """Without a ``verifier`` nothing is authenticated: only for tests of the
        server itself; every service host passes one. With ``credentials`` (see
        tls.server_credentials) the port serves TLS only; without, plaintext."""
        self._address = f"{host}:{port}"
        self._credentials = credentials
        self._host = host
        self._bindings: tuple[ServiceBinding, ...] = ()
        # Filled from the bindings at start; the interceptor reads it at every call.
        self._access: dict[str, Access] = {}
        # The observer comes first, so it sees every call's final status, whichever
        # interceptor set it; error mapping next, so the authentication's refusals are
        # mapped too; authentication last, right before the servicer.
        chain: list[grpc.aio.ServerInterceptor] = [
            CallObserver(metrics or RpcMetrics(), tracer),
            DomainErrorInterceptor(),
        ]
        if verifier is not None:
            chain.append(AuthInterceptor(verifier, self._access, limiter))
        self._server = grpc.aio.server(
            interceptors=chain,
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", max_message_bytes),
            ],
        )
        self._health = health.aio.HealthServicer()
        self.port: int | None = None

    @property
    def address(self) -> str:
        if self.port is None:
            raise RuntimeError("server not bound")
        return f"{self._host}:{self.port}"

    def bind(self) -> int:
        """Claim the port now; serve from start(). A service binds before it opens its
        MongoDB and Kafka connections: their ephemeral local ports are drawn from a
        range that holds the services' ports, and one of them once took a port a
        service was about to listen on."""
        if self.port is None:
            if self._credentials is None:
                self.port = self._server.add_insecure_port(self._address)
            else:
                self.port = self._server.add_secure_port(self._address, self._credentials)
            if self.port == 0:
                raise OSError(f"cannot listen on {self._address}")
        return self.port

    async def start(self, bindings: Sequence[ServiceBinding]) -> int:
        self.bind()
        self._bindings = tuple(bindings)
        for binding in self._bindings:
            binding.add_to_server(binding.servicer, self._server)
            self._access[binding.full_name] = binding.access
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        names = [b.full_name for b in self._bindings]
        reflection.enable_server_reflection(
            [
                *names,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ],
            self._server,
        )
        await self._server.start()
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        log.info("gRPC server listening", extra={"address": self.address, "services": names})
        return self.port

    async def stop(self, grace: float) -> None:
        """Report NOT_SERVING so balancers drain us, then let in-flight calls finish."""
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self._server.stop(grace)
        log.info("gRPC server stopped", extra={"address": self._address})

    async def _set_health(self, status: int) -> None:
        await self._health.set("", status)
        for binding in self._bindings:
            await self._health.set(binding.full_name, status)


class CallObserver(grpc.aio.ServerInterceptor):
    """Counts and times every call by its final status code and, with a tracer, runs
    it in a SERVER span (a child of the caller's, from its traceparent metadata). The
    span is the current one while a unary call runs, so the events it records carry
    its trace context (see outbox.Transaction.record).

    Outermost in the chain: the status is read from the call's context once every inner
    interceptor (the DomainErrorInterceptor's abort) has set it."""

    def __init__(self, metrics: RpcMetrics, tracer: Tracer | None) -> None:
        self._metrics = metrics
        self._tracer = tracer

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
            unary=lambda behaviour: self._observe_unary(behaviour, method),
            stream=lambda behaviour: self._observe_stream(behaviour, method),
        )

    def _observe_unary(
        self, behaviour: Callable[..., Awaitable[Any]], method: str
    ) -> Callable[..., Awaitable[Any]]:
        async def observed(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            span = token = None
            if self._tracer is not None:
                span = start_server_span(self._tracer, method, context.invocation_metadata())
                token = otel_context.attach(trace.set_span_in_context(span))
            error: BaseException | None = None
            try:
                return await behaviour(request, context)
            except BaseException as raised:
                error = raised
                raise
            finally:
                code = _final_code(context, error)
                self._metrics.observe(method, code, time.perf_counter() - started)
                if span is not None:
                    otel_context.detach(token)
                    end_server_span(span, code)

        return observed

    def _observe_stream(
        self, behaviour: Callable[..., AsyncIterator[Any]], method: str
    ) -> Callable[..., AsyncIterator[Any]]:
        async def observed(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            started = time.perf_counter()
            # Not made current: an async generator's context is not reliably the same
            # between its steps, and a stream records no events.
            span = None
            if self._tracer is not None:
                span = start_server_span(self._tracer, method, context.invocation_metadata())
            error: BaseException | None = None
            try:
                async for response in behaviour(request, context):
                    yield response
            except BaseException as raised:
                error = raised
                raise
            finally:
                code = _final_code(context, error)
                self._metrics.observe(method, code, time.perf_counter() - started)
                if span is not None:
                    end_server_span(span, code)

        return observed


def _final_code(context: grpc.aio.ServicerContext, error: BaseException | None) -> grpc.StatusCode:
    """The status the caller gets: the one an abort or set_code put on the context, or
    what grpc makes of how the handler ended."""
    code = context.code()
    if code is not None:
        return code
    if error is None:
        return grpc.StatusCode.OK
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        # The caller went away (or the server stopped) before an answer.
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN
