"""Who may read the bureau's figures, over a real gRPC server and the real dashboard:
officers only, at both doors. Every BureauService method by every role (and no token);
the dashboard's bearer tokens, its login link and its session cookie."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest

from bureau.grpc_api import ACCESS
from bureau.host import BureauHost
from chuhai.bureau.v1 import bureau_service_pb2 as pb
from chuhai.bureau.v1 import bureau_service_pb2_grpc as pb_grpc
from runtime.adapters.tokens import DevelopmentKeys
from runtime.kernel.identity import Role
from tests.conftest import Infrastructure, settings_for
from tests.identity import Identities, Metadata

pytestmark = pytest.mark.integration

SERVICE = pb.DESCRIPTOR.services_by_name["BureauService"]
METHODS = sorted(method.name for method in SERVICE.methods)
REQUESTS = {
    "GetStats": pb.GetStatsRequest(),
    "QueryStats": pb.QueryStatsRequest(country="DE"),
    "WatchStats": pb.WatchStatsRequest(),
}
# Each role with a party it could have; None: no token at all.
PARTIES = {
    Role.EXPORTER: "91411000MA0000001X",
    Role.BUYER: "buyer-1",
    Role.OPERATOR: "operator-1",
    Role.OFFICER: "",
    Role.SERVICE: "expo",
}
WEB_PATHS = ("/", "/api/stats", "/api/dashboard", "/api/report.csv", "/api/report.xlsx")


@pytest.fixture(scope="module")
async def bureau(
    infra: Infrastructure, identity_keys: DevelopmentKeys
) -> AsyncIterator[BureauHost]:
    """One bureau for the module: access is all these tests look at."""
    unique = uuid.uuid4().hex[:10]
    host = BureauHost(
        settings_for(
            infra,
            identity_keys,
            unique,
            bureau_consumer_group=f"bureau-{unique}",
            bureau_web_port=0,
        )
    )
    await host.start()
    yield host
    await host.stop()


def as_role(identities: Identities, role: Role | None) -> Metadata:
    if role is None:
        return ()
    return identities.metadata(role, PARTIES[role])


async def call(address: str, method: str, metadata: Metadata) -> grpc.StatusCode:
    """The status of one call to ``method``; a stream's once its first message came."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.BureauServiceStub(channel)
        try:
            if method == "WatchStats":
                watch = stub.WatchStats(REQUESTS[method], metadata=metadata, timeout=10)
                reply = await watch.read()
                watch.cancel()
                assert reply.HasField("headline")
            else:
                await getattr(stub, method)(REQUESTS[method], metadata=metadata, timeout=10)
        except grpc.aio.AioRpcError as error:
            return error.code()
    return grpc.StatusCode.OK


def test_the_access_table_names_exactly_the_bureau_methods() -> None:
    assert sorted(ACCESS) == METHODS


@pytest.mark.parametrize("role", [*Role, None], ids=lambda r: "no-token" if r is None else r.value)
@pytest.mark.parametrize("method", METHODS)
async def test_bureau_methods_are_for_officers_only(
    bureau: BureauHost, identities: Identities, method: str, role: Role | None
) -> None:
    status = await call(bureau.server.address, method, as_role(identities, role))
    if role is None:
        assert status == grpc.StatusCode.UNAUTHENTICATED
    elif role is Role.OFFICER:
        assert status == grpc.StatusCode.OK
    else:
        assert status == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("method", METHODS)
async def test_an_expired_officer_token_is_unauthenticated(
    bureau: BureauHost, identities: Identities, method: str
) -> None:
    expired = identities.token(Role.OFFICER, ttl_seconds=-120)
    status = await call(bureau.server.address, method, (("authorization", f"Bearer {expired}"),))
    assert status == grpc.StatusCode.UNAUTHENTICATED


# The dashboard ----------------------------------------------------------------------------


def url_of(bureau: BureauHost, path: str = "/") -> str:
    assert bureau.web is not None and bureau.web.port is not None
    return f"http://127.0.0.1:{bureau.web.port}{path}"


def session(**options: object) -> aiohttp.ClientSession:
    # unsafe: the jar keeps cookies of an IP address host (127.0.0.1) too.
    return aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True),
        timeout=aiohttp.ClientTimeout(total=10),
        **options,  # type: ignore[arg-type]
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("path", WEB_PATHS)
async def test_web_without_a_token_is_401(bureau: BureauHost, path: str) -> None:
    async with session() as http, http.get(url_of(bureau, path)) as reply:
        assert reply.status == 401
        assert reply.headers["WWW-Authenticate"].startswith("Bearer ")


@pytest.mark.parametrize("path", WEB_PATHS)
async def test_web_with_an_exporter_token_is_403(
    bureau: BureauHost, identities: Identities, path: str
) -> None:
    exporter = identities.token(Role.EXPORTER, PARTIES[Role.EXPORTER])
    async with session() as http, http.get(url_of(bureau, path), headers=bearer(exporter)) as reply:
        assert reply.status == 403


@pytest.mark.parametrize("path", WEB_PATHS)
async def test_web_with_an_officer_bearer_token_is_200(
    bureau: BureauHost, identities: Identities, path: str
) -> None:
    officer = identities.token(Role.OFFICER, subject="officer-1")
    async with session() as http, http.get(url_of(bureau, path), headers=bearer(officer)) as reply:
        assert reply.status == 200


async def test_web_login_sets_the_session_cookie_redirects_and_the_cookie_then_works(
    bureau: BureauHost, identities: Identities
) -> None:
    token = identities.token(Role.OFFICER, subject="officer-1", ttl_seconds=900)
    async with session() as http:
        async with http.get(
            url_of(bureau, "/login"), params={"token": token}, allow_redirects=False
        ) as reply:
            assert reply.status == 303
            assert reply.headers["Location"] == "/"
            cookie = reply.cookies["chuhai_session"]
            assert cookie.value == token and cookie["httponly"] and cookie["samesite"] == "Strict"
            assert 0 < int(cookie["max-age"]) <= 900
        # Followed as a browser does: the dashboard, by the cookie alone.
        async with http.get(url_of(bureau, "/")) as page:
            assert page.status == 200 and page.content_type == "text/html"
        async with http.get(url_of(bureau, "/api/stats")) as stats:
            assert stats.status == 200 and "intents" in await stats.json()


async def test_web_login_refuses_an_exporter_token(
    bureau: BureauHost, identities: Identities
) -> None:
    exporter = identities.token(Role.EXPORTER, PARTIES[Role.EXPORTER])
    async with (
        session() as http,
        http.get(
            url_of(bureau, "/login"), params={"token": exporter}, allow_redirects=False
        ) as reply,
    ):
        assert reply.status == 403 and "chuhai_session" not in reply.cookies


async def test_web_an_expired_token_in_the_cookie_is_401(
    bureau: BureauHost, identities: Identities
) -> None:
    expired = identities.token(Role.OFFICER, subject="officer-1", ttl_seconds=-120)
    async with (
        session() as http,
        http.get(url_of(bureau, "/api/dashboard"), cookies={"chuhai_session": expired}) as reply,
    ):
        assert reply.status == 401
        assert "token expired" in (await reply.json())["detail"]
