"""The gRPC server every service runs: health, reflection, one interceptor chain,
graceful stop (health NOT_SERVING first, then in-flight calls get a grace period)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from runtime.adapters.grpc_errors import DomainErrorInterceptor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceBinding:
    """One gRPC service to expose: its full name, its servicer and the generated adder."""

    full_name: str
    servicer: Any
    add_to_server: Callable[[Any, grpc.aio.Server], None]


class GrpcServer:
    """A grpc.aio server with grpc.health.v1, server reflection and error mapping."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    ) -> None:
        self._address = f"{host}:{port}"
        self._host = host
        self._bindings: tuple[ServiceBinding, ...] = ()
        # Future interceptors (authentication, rate limits) go before error mapping so
        # their own domain errors are mapped too.
        self._server = grpc.aio.server(interceptors=[*interceptors, DomainErrorInterceptor()])
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
            self.port = self._server.add_insecure_port(self._address)
            if self.port == 0:
                raise OSError(f"cannot listen on {self._address}")
        return self.port

    async def start(self, bindings: Sequence[ServiceBinding]) -> int:
        self.bind()
        self._bindings = tuple(bindings)
        for binding in self._bindings:
            binding.add_to_server(binding.servicer, self._server)
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
