"""Authentication: tokens checked as an identity provider's are (signature against a
key set, issuer, audience, expiry, not-before, bounded skew), key rotation from a file
and from a JWKS URL, the access table, per-principal rate limits and message size
limits, over a real gRPC server."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from aiohttp import web
from grpc_health.v1 import health_pb2_grpc
from grpc_health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse
from grpc_status import rpc_status

from runtime.adapters.auth import (
    FileKeySet,
    PrincipalRateLimiter,
    TokenVerifier,
    UrlKeySet,
    bearer_token,
    caller,
    roles,
)
from runtime.adapters.grpc_client import service_channel
from runtime.adapters.grpc_errors import retry_delay_seconds
from runtime.adapters.grpc_server import GrpcServer, ServiceBinding
from runtime.adapters.tokens import DevelopmentKeys, TokenIssuer
from runtime.kernel import errors
from runtime.kernel.identity import Principal, Role

ISSUER = "https://id.example.gov.cn/realms/bureau"
AUDIENCE = "chuhai"
EXPORTER = Principal(subject="u-17", role=Role.EXPORTER, party="91411000MA45XYZ12K")


@pytest.fixture
def keys(tmp_path: Path) -> DevelopmentKeys:
    return DevelopmentKeys.ensure(tmp_path / "trusted")


@pytest.fixture
def issuer(keys: DevelopmentKeys) -> TokenIssuer:
    return keys.issuer(issuer=ISSUER, audience=AUDIENCE)


def verifier_for(keys: DevelopmentKeys, **options: Any) -> TokenVerifier:
    return TokenVerifier(FileKeySet(keys.key_set_file), issuer=ISSUER, audience=AUDIENCE, **options)


def signed(keys: DevelopmentKeys, claims: dict[str, Any], **header: Any) -> str:
    """A token with exactly these claims, signed with the key of ``keys``."""
    return jwt.encode(
        claims,
        keys.signing_key_file.read_bytes(),
        algorithm="ES256",
        headers={"kid": keys.key_id, **header},
    )


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "u-17",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "chuhai_role": "exporter",
        "chuhai_party": EXPORTER.party,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


async def refused(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(errors.Unauthenticated) as raised:
        await verifier.verify(token)
    return raised.value.message


# The token itself ---------------------------------------------------------------------


async def test_a_valid_token_names_its_principal(
    keys: DevelopmentKeys, issuer: TokenIssuer
) -> None:
    assert await verifier_for(keys).verify(issuer.issue(EXPORTER)) == EXPORTER


async def test_an_expired_token_is_refused_beyond_the_clock_skew(keys: DevelopmentKeys) -> None:
    now = int(time.time())
    verifier = verifier_for(keys, leeway_seconds=30)
    assert "expired" in await refused(verifier, signed(keys, claims(exp=now - 60)))
    # Within the skew a clock slightly behind the provider's still accepts it.
    assert (await verifier.verify(signed(keys, claims(exp=now - 10)))).party == EXPORTER.party


async def test_a_token_not_valid_yet_is_refused_beyond_the_clock_skew(
    keys: DevelopmentKeys,
) -> None:
    now = int(time.time())
    verifier = verifier_for(keys, leeway_seconds=30)
    assert "not valid yet" in await refused(verifier, signed(keys, claims(nbf=now + 120)))
    assert (await verifier.verify(signed(keys, claims(nbf=now + 10)))).role is Role.EXPORTER


async def test_a_token_for_another_audience_is_refused(keys: DevelopmentKeys) -> None:
    message = await refused(verifier_for(keys), signed(keys, claims(aud="another-platform")))
    assert "not addressed to 'chuhai'" in message


async def test_a_token_from_an_untrusted_issuer_is_refused(keys: DevelopmentKeys) -> None:
    message = await refused(verifier_for(keys), signed(keys, claims(iss="https://evil.example")))
    assert "issuer" in message


async def test_a_token_signed_by_another_key_is_refused(
    keys: DevelopmentKeys, tmp_path: Path
) -> None:
    foreign = DevelopmentKeys.ensure(tmp_path / "foreign")
    verifier = verifier_for(keys)
    # Under its own key id: a key the key set does not have.
    assert "unknown key" in await refused(verifier, signed(foreign, claims()))
    # Claiming the trusted key's id: the signature does not verify.
    forged = jwt.encode(
        claims(),
        foreign.signing_key_file.read_bytes(),
        algorithm="ES256",
        headers={"kid": keys.key_id},
    )
    assert "signature" in await refused(verifier, forged)


async def test_symmetric_and_unsigned_tokens_are_refused(keys: DevelopmentKeys) -> None:
    verifier = verifier_for(keys)
    # A shared secret proves nothing about who signed: only asymmetric algorithms count.
    hmac = jwt.encode(claims(), b"a secret anybody might know, 32+", algorithm="HS256")
    assert "algorithm 'HS256'" in await refused(verifier, hmac)
    unsigned = jwt.encode(claims(), None, algorithm="none")
    assert "algorithm 'none'" in await refused(verifier, unsigned)


async def test_a_token_missing_a_required_claim_is_refused(keys: DevelopmentKeys) -> None:
    assert "'exp'" in await refused(verifier_for(keys), signed(keys, claims(exp=None)))
    assert "'sub'" in await refused(verifier_for(keys), signed(keys, claims(sub=None)))


async def test_what_is_not_a_jwt_is_refused(keys: DevelopmentKeys) -> None:
    assert "not a JWT" in await refused(verifier_for(keys), "not-a-token")


async def test_a_token_without_a_chuhai_role_is_denied(keys: DevelopmentKeys) -> None:
    with pytest.raises(errors.PermissionDenied):
        await verifier_for(keys).verify(signed(keys, claims(chuhai_role="admin")))


async def test_roles_are_read_where_the_provider_puts_them(keys: DevelopmentKeys) -> None:
    """A Keycloak realm role: a list under realm_access.roles, among others."""
    token = signed(
        keys,
        claims(chuhai_role=None, realm_access={"roles": ["offline_access", "officer"]}),
    )
    verifier = verifier_for(keys, role_claim="realm_access.roles")
    assert (await verifier.verify(token)).role is Role.OFFICER


async def test_a_services_own_issuer_may_only_speak_for_services(keys: DevelopmentKeys) -> None:
    verifier = verifier_for(keys, service_issuer="chuhai-services")
    as_officer = signed(keys, claims(iss="chuhai-services", chuhai_role="officer"))
    assert "service role" in await refused(verifier, as_officer)
    as_service = signed(keys, claims(iss="chuhai-services", chuhai_role="service", sub="expo"))
    assert (await verifier.verify(as_service)).role is Role.SERVICE


def test_the_bearer_token_is_read_from_the_authorization_metadata() -> None:
    assert bearer_token([("authorization", "Bearer abc.def.ghi")]) == "abc.def.ghi"
    with pytest.raises(errors.Unauthenticated, match="missing bearer token"):
        bearer_token([("x-other", "1")])
    with pytest.raises(errors.Unauthenticated, match="Bearer <token>"):
        bearer_token([("authorization", "Basic dXNlcjpwYXNz")])


# Key rotation -------------------------------------------------------------------------


async def test_a_key_set_file_is_read_again_when_it_is_replaced(
    keys: DevelopmentKeys, tmp_path: Path
) -> None:
    verifier = verifier_for(keys)
    rotated = DevelopmentKeys.ensure(tmp_path / "rotated")
    new_token = rotated.issuer(issuer=ISSUER, audience=AUDIENCE).issue(EXPORTER)
    assert "unknown key" in await refused(verifier, new_token)

    both = {
        "keys": json.loads(keys.key_set_file.read_text())["keys"]
        + json.loads(rotated.key_set_file.read_text())["keys"]
    }
    keys.key_set_file.write_text(json.dumps(both))

    assert await verifier.verify(new_token) == EXPORTER


@asynccontextmanager
async def jwks_server(documents: list[dict[str, Any]]) -> AsyncIterator[tuple[str, list[int]]]:
    """Serves documents[-1] at /jwks; counts the fetches; 503 when the list is empty."""
    fetches: list[int] = []

    async def jwks(_: web.Request) -> web.Response:
        fetches.append(1)
        if not documents:
            return web.Response(status=503)
        return web.json_response(documents[-1])

    app = web.Application()
    app.router.add_get("/jwks", jwks)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/jwks", fetches
    finally:
        await runner.cleanup()


async def test_a_jwks_url_is_fetched_again_when_a_token_names_a_new_key(
    keys: DevelopmentKeys, issuer: TokenIssuer, tmp_path: Path
) -> None:
    documents = [json.loads(keys.key_set_file.read_text())]
    async with jwks_server(documents) as (url, fetches):
        verifier = TokenVerifier(
            UrlKeySet(url, min_refresh_seconds=0), issuer=ISSUER, audience=AUDIENCE
        )
        assert await verifier.verify(issuer.issue(EXPORTER)) == EXPORTER
        assert len(fetches) == 1

        # The provider rotates its key: the first token under the new key makes the
        # service fetch the key set again, and it verifies.
        rotated = DevelopmentKeys.ensure(tmp_path / "rotated")
        documents.append(json.loads(rotated.key_set_file.read_text()))
        token = rotated.issuer(issuer=ISSUER, audience=AUDIENCE).issue(EXPORTER)
        assert await verifier.verify(token) == EXPORTER
        assert len(fetches) == 2


async def test_a_provider_outage_keeps_the_keys_already_known(
    keys: DevelopmentKeys, issuer: TokenIssuer
) -> None:
    documents = [json.loads(keys.key_set_file.read_text())]
    async with jwks_server(documents) as (url, fetches):
        key_set = UrlKeySet(url, refresh_seconds=0, min_refresh_seconds=0)
        verifier = TokenVerifier(key_set, issuer=ISSUER, audience=AUDIENCE)
        await verifier.verify(issuer.issue(EXPORTER))
        documents.clear()
        # Refreshed (and failed) on every call now, yet the known key still verifies.
        assert (await verifier.verify(issuer.issue(EXPORTER))).party == EXPORTER.party
        assert len(fetches) >= 2


async def test_without_any_key_from_the_provider_calls_are_unavailable(
    issuer: TokenIssuer,
) -> None:
    async with jwks_server([]) as (url, _):
        verifier = TokenVerifier(UrlKeySet(url), issuer=ISSUER, audience=AUDIENCE)
        with pytest.raises(errors.Unavailable):
            await verifier.verify(issuer.issue(EXPORTER))


# Rate limits --------------------------------------------------------------------------


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_principal_over_its_rate_is_told_when_to_retry() -> None:
    clock = ManualClock()
    limiter = PrincipalRateLimiter(rate=10, burst=3, clock=clock)
    for _ in range(3):
        limiter.take(EXPORTER)
    with pytest.raises(errors.ResourceExhausted) as raised:
        limiter.take(EXPORTER)
    assert raised.value.retry_after_seconds == pytest.approx(0.1)
    # Another principal has its own bucket.
    limiter.take(Principal(subject="u-18", role=Role.EXPORTER, party="91411000MA45XYZ13K"))
    clock.now += 0.1
    limiter.take(EXPORTER)


def test_services_are_not_rate_limited() -> None:
    limiter = PrincipalRateLimiter(rate=1, burst=1, clock=ManualClock())
    expo = Principal(subject="expo", role=Role.SERVICE, party="expo")
    for _ in range(100):
        limiter.take(expo)


# Over a real gRPC server --------------------------------------------------------------

ECHO = "test.v1.Echo"


async def check(request: HealthCheckRequest, _: grpc.aio.ServicerContext) -> HealthCheckResponse:
    # The servicer sees the caller the token named.
    who = caller()
    status = (
        HealthCheckResponse.SERVING if who.party == request.service else HealthCheckResponse.UNKNOWN
    )
    return HealthCheckResponse(status=status)


async def watch(_: HealthCheckRequest, __: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
    for _ in range(2):
        yield HealthCheckResponse(status=HealthCheckResponse.SERVING)


def echo_binding() -> ServiceBinding:
    serialization = {
        "request_deserializer": HealthCheckRequest.FromString,
        "response_serializer": HealthCheckResponse.SerializeToString,
    }
    handler = grpc.method_handlers_generic_handler(
        ECHO,
        {
            "Check": grpc.unary_unary_rpc_method_handler(check, **serialization),
            "Watch": grpc.unary_stream_rpc_method_handler(watch, **serialization),
            "Unlisted": grpc.unary_unary_rpc_method_handler(check, **serialization),
        },
    )
    return ServiceBinding(
        ECHO,
        None,
        lambda _, server: server.add_generic_rpc_handlers([handler]),
        # Unlisted is served but has no entry: nobody may call it.
        access={"Check": roles(Role.EXPORTER, Role.OFFICER), "Watch": roles(Role.OFFICER)},
    )


@asynccontextmanager
async def echo_server(keys: DevelopmentKeys) -> AsyncIterator[str]:
    server = GrpcServer(
        host="127.0.0.1",
        port=0,
        verifier=verifier_for(keys),
        limiter=PrincipalRateLimiter(rate=1, burst=5),
        max_message_bytes=64 * 1024,
    )
    await server.start([echo_binding()])
    try:
        yield server.address
    finally:
        await server.stop(0)


def unary(channel: grpc.aio.Channel, method: str) -> Any:
    return channel.unary_unary(
        f"/{ECHO}/{method}",
        request_serializer=HealthCheckRequest.SerializeToString,
        response_deserializer=HealthCheckResponse.FromString,
    )


async def status_of(call: Any) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_calls_without_a_valid_token_are_unauthenticated(
    keys: DevelopmentKeys, issuer: TokenIssuer
) -> None:
    async with echo_server(keys) as address, grpc.aio.insecure_channel(address) as channel:
        request = HealthCheckRequest(service=EXPORTER.party)
        assert await status_of(unary(channel, "Check")(request, timeout=5)) == (
            grpc.StatusCode.UNAUTHENTICATED
        )
        expired = issuer.issue(EXPORTER, ttl_seconds=-120)
        metadata = (("authorization", f"Bearer {expired}"),)
        error_call = unary(channel, "Check")(request, metadata=metadata, timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await error_call
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "expired" in (raised.value.details() or "")


async def test_health_stays_open_for_probes(keys: DevelopmentKeys) -> None:
    async with echo_server(keys) as address, grpc.aio.insecure_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(HealthCheckRequest(), timeout=5)
        assert reply.status == HealthCheckResponse.SERVING


async def test_the_access_table_decides_who_calls_what(
    keys: DevelopmentKeys, issuer: TokenIssuer
) -> None:
    officer = issuer.issue(Principal(subject="officer-1", role=Role.OFFICER))
    buyer = issuer.issue(Principal(subject="b-1", role=Role.BUYER, party="B1"))
    async with echo_server(keys) as address:
        async with service_channel(address, token=lambda: issuer.issue(EXPORTER)) as channel:
            reply = await unary(channel, "Check")(
                HealthCheckRequest(service=EXPORTER.party), timeout=5
            )
            # The servicer saw the exporter the token named.
            assert reply.status == HealthCheckResponse.SERVING
            watch_call = channel.unary_stream(
                f"/{ECHO}/Watch",
                request_serializer=HealthCheckRequest.SerializeToString,
                response_deserializer=HealthCheckResponse.FromString,
            )(HealthCheckRequest(), timeout=5)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                async for _ in watch_call:
                    pass
            assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
        async with service_channel(address, token=lambda: officer) as channel:
            streamed = channel.unary_stream(
                f"/{ECHO}/Watch",
                request_serializer=HealthCheckRequest.SerializeToString,
                response_deserializer=HealthCheckResponse.FromString,
            )(HealthCheckRequest(), timeout=5)
            assert len([r async for r in streamed]) == 2
            assert await status_of(unary(channel, "Unlisted")(HealthCheckRequest(), timeout=5)) == (
                grpc.StatusCode.PERMISSION_DENIED
            )
        async with service_channel(address, token=lambda: buyer) as channel:
            assert await status_of(unary(channel, "Check")(HealthCheckRequest(), timeout=5)) == (
                grpc.StatusCode.PERMISSION_DENIED
            )


async def test_a_principal_over_its_rate_gets_resource_exhausted_with_a_retry_hint(
    keys: DevelopmentKeys, issuer: TokenIssuer
) -> None:
    token = issuer.issue(EXPORTER)
    async with (
        echo_server(keys) as address,
        service_channel(address, token=lambda: token) as channel,
    ):
        request = HealthCheckRequest(service=EXPORTER.party)
        for _ in range(5):
            await unary(channel, "Check")(request, timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await unary(channel, "Check")(request, timeout=5)
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        delay = retry_delay_seconds(raised.value)
        assert delay is not None and 0 < delay <= 1.0
        assert rpc_status.from_call(raised.value) is not None


async def test_a_message_over_the_size_limit_is_refused(
    keys: DevelopmentKeys, issuer: TokenIssuer
) -> None:
    async with (
        echo_server(keys) as address,
        service_channel(address, token=lambda: issuer.issue(EXPORTER)) as channel,
    ):
        huge = HealthCheckRequest(service="x" * (128 * 1024))
        assert await status_of(unary(channel, "Check")(huge, timeout=5)) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED
        )
