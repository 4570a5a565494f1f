"""TLS and mutual TLS of the gRPC servers, the service channels and the web server, with
certificates made here by trustme."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
import pytest
import trustme
from aiohttp import web
from grpc_health.v1 import health_pb2, health_pb2_grpc

from runtime.adapters.grpc_client import service_channel
from runtime.adapters.grpc_server import GrpcServer
from runtime.adapters.service import ServiceHost
from runtime.adapters.settings import Settings
from runtime.adapters.tls import (
    TlsConfigurationError,
    channel_credentials,
    server_credentials,
    web_ssl_context,
)

SERVING = health_pb2.HealthCheckResponse.SERVING


@dataclass(frozen=True)
class Pki:
    """PEM files: a CA, a server certificate it signed for 127.0.0.1 and localhost, a
    client certificate it signed, and a client certificate from an unrelated CA."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    stranger_cert: Path
    stranger_key: Path


def _write(cert: trustme.LeafCert, directory: Path, name: str) -> tuple[Path, Path]:
    chain, key = directory / f"{name}.pem", directory / f"{name}.key"
    chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key))
    return chain, key


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca, other_ca = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    other_ca.cert_pem.write_to_path(str(tmp_path / "other-ca.pem"))
    server_cert, server_key = _write(ca.issue_cert("127.0.0.1", "localhost"), tmp_path, "server")
    client_cert, client_key = _write(ca.issue_cert("chuhai-expo"), tmp_path, "client")
    stranger_cert, stranger_key = _write(other_ca.issue_cert("intruder"), tmp_path, "stranger")
    return Pki(
        ca=tmp_path / "ca.pem",
        server_cert=server_cert,
        server_key=server_key,
        client_cert=client_cert,
        client_key=client_key,
        other_ca=tmp_path / "other-ca.pem",
        stranger_cert=stranger_cert,
        stranger_key=stranger_key,
    )


def tls_settings(**files: Path | str) -> Settings:
    return Settings(**{name: str(value) for name, value in files.items()})


def server_settings(pki: Pki, *, mutual: bool = False) -> Settings:
    if mutual:
        return tls_settings(
            tls_cert_file=pki.server_cert,
            tls_key_file=pki.server_key,
            tls_client_ca_file=pki.ca,
        )
    return tls_settings(tls_cert_file=pki.server_cert, tls_key_file=pki.server_key)


@asynccontextmanager
async def health_server(credentials: grpc.ServerCredentials | None) -> AsyncIterator[str]:
    """A GrpcServer with its health service only; yields its address."""
    server = GrpcServer(host="127.0.0.1", port=0, verifier=None, credentials=credentials)
    await server.start([])
    try:
        yield server.address
    finally:
        await server.stop(0)


async def health(
    address: str, credentials: grpc.ChannelCredentials | None, server_name_override: str = ""
) -> int:
    async with service_channel(
        address, credentials=credentials, server_name_override=server_name_override
    ) as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        return response.status


async def refused(address: str, credentials: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await health(address, credentials)
    return raised.value.code()


async def test_a_tls_client_reaches_a_tls_server(pki: Pki) -> None:
    async with health_server(server_credentials(server_settings(pki))) as address:
        assert (
            await health(address, channel_credentials(tls_settings(tls_ca_file=pki.ca))) == SERVING
        )


async def test_a_plaintext_client_cannot_call_a_tls_server(pki: Pki) -> None:
    async with health_server(server_credentials(server_settings(pki))) as address:
        assert await refused(address, None) == grpc.StatusCode.UNAVAILABLE


async def test_a_client_refuses_a_server_its_ca_did_not_sign(pki: Pki) -> None:
    async with health_server(server_credentials(server_settings(pki))) as address:
        untrusting = channel_credentials(tls_settings(tls_ca_file=pki.other_ca))
        assert await refused(address, untrusting) == grpc.StatusCode.UNAVAILABLE


async def test_mutual_tls_admits_only_clients_with_a_certificate_from_the_client_ca(
    pki: Pki,
) -> None:
    async with health_server(server_credentials(server_settings(pki, mutual=True))) as address:
        without_cert = channel_credentials(tls_settings(tls_ca_file=pki.ca))
        assert await refused(address, without_cert) == grpc.StatusCode.UNAVAILABLE

        stranger = channel_credentials(
            tls_settings(
                tls_ca_file=pki.ca,
                tls_client_cert_file=pki.stranger_cert,
                tls_client_key_file=pki.stranger_key,
            )
        )
        assert await refused(address, stranger) == grpc.StatusCode.UNAVAILABLE

        member = channel_credentials(
            tls_settings(
                tls_ca_file=pki.ca,
                tls_client_cert_file=pki.client_cert,
                tls_client_key_file=pki.client_key,
            )
        )
        assert await health(address, member) == SERVING


async def test_the_server_name_override_checks_a_certificate_named_otherwise(
    pki: Pki, tmp_path: Path
) -> None:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "named-ca.pem"))
    cert, key = _write(ca.issue_cert("booth.chuhai.internal"), tmp_path, "named")
    credentials = server_credentials(tls_settings(tls_cert_file=cert, tls_key_file=key))
    client = tls_settings(
        tls_ca_file=tmp_path / "named-ca.pem", tls_server_name_override="booth.chuhai.internal"
    )
    async with health_server(credentials) as address:
        assert await refused(address, channel_credentials(client)) == grpc.StatusCode.UNAVAILABLE
        assert (
            await health(address, channel_credentials(client), client.tls_server_name_override)
            == SERVING
        )


@asynccontextmanager
async def web_server(context: ssl.SSLContext | None) -> AsyncIterator[str]:
    """A one-route aiohttp app served as the bureau serves its dashboard; yields its URL."""

    async def hello(_: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
        host, port = runner.addresses[0][:2]
        yield f"https://{host}:{port}/"
    finally:
        await runner.cleanup()


async def fetch(url: str, context: ssl.SSLContext) -> str:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
        session.get(url, ssl=context) as response,
    ):
        response.raise_for_status()
        return await response.text()


async def test_the_web_server_serves_https(pki: Pki) -> None:
    async with web_server(web_ssl_context(server_settings(pki))) as url:
        assert await fetch(url, ssl.create_default_context(cafile=str(pki.ca))) == "hello"
        with pytest.raises(aiohttp.ClientError):
            await fetch(url, ssl.create_default_context(cafile=str(pki.other_ca)))


async def test_the_web_server_under_mutual_tls_requires_a_client_certificate(pki: Pki) -> None:
    async with web_server(web_ssl_context(server_settings(pki, mutual=True))) as url:
        anonymous = ssl.create_default_context(cafile=str(pki.ca))
        with pytest.raises(aiohttp.ClientError):
            await fetch(url, anonymous)
        member = ssl.create_default_context(cafile=str(pki.ca))
        member.load_cert_chain(str(pki.client_cert), str(pki.client_key))
        assert await fetch(url, member) == "hello"


def test_without_tls_settings_everything_is_plaintext() -> None:
    plain = Settings()
    assert server_credentials(plain) is None
    assert channel_credentials(plain) is None
    assert web_ssl_context(plain) is None


@pytest.mark.parametrize(
    ("files", "named"),
    [
        ({"tls_cert_file": "server.pem"}, "TLS_KEY_FILE"),
        ({"tls_key_file": "server.key"}, "TLS_CERT_FILE"),
        ({"tls_ca_file": "ca.pem", "tls_client_cert_file": "client.pem"}, "TLS_CLIENT_KEY_FILE"),
        ({"tls_client_ca_file": "ca.pem"}, "TLS_CERT_FILE"),
        ({"tls_client_cert_file": "c.pem", "tls_client_key_file": "c.key"}, "TLS_CA_FILE"),
    ],
)
def test_half_configured_tls_is_refused_naming_the_variables(
    files: dict[str, str], named: str
) -> None:
    for make in (server_credentials, channel_credentials, web_ssl_context):
        with pytest.raises(TlsConfigurationError, match=named):
            make(tls_settings(**files))


def test_an_unreadable_certificate_file_is_refused_naming_its_variable(tmp_path: Path) -> None:
    missing = tls_settings(tls_ca_file=tmp_path / "absent.pem")
    with pytest.raises(TlsConfigurationError, match="TLS_CA_FILE"):
        channel_credentials(missing)


async def test_a_service_with_half_configured_tls_stops_at_startup(pki: Pki) -> None:
    async def build(_: object) -> list[object]:
        raise AssertionError("built despite the configuration error")

    # MongoDB and Kafka are never reached: the check comes before them.
    host = ServiceHost("booth", build, tls_settings(tls_cert_file=pki.server_cert))
    with pytest.raises(TlsConfigurationError, match="TLS_KEY_FILE"):
        await host.start()
