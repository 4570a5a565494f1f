"""The bureau's web app: the dashboard page is self-contained, /api/dashboard carries the
names the page shows, /api/stats keeps its promised keys, and the bell's endpoints ask a
notify service (a real gRPC server of the test's) with the officer's own token. (The page
itself is looked at in a real browser by tests/integration/test_demo.py, the bell by
tests/integration/test_bureau_access.py.)"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import grpc
import pytest
import trustme
from aiohttp.test_utils import TestClient, TestServer

from bureau.figures import BureauFigures
from bureau.live import LiveStats
from bureau.messages import dashboard_json
from bureau.projections.expo import UNKNOWN
from bureau.regions import REGION_NAMES, REGIONS, UNKNOWN_REGION, country_name
from bureau.web import Bell, WebServer, build_web_app
from runtime.adapters.auth import FileKeySet, TokenVerifier
from runtime.adapters.grpc_client import service_channel
from runtime.adapters.tokens import DevelopmentKeys
from runtime.kernel.identity import Role
from tests.identity import TEST_AUDIENCE, TEST_ISSUER, Identities
from tests.unit.test_bureau_aggregates import applied, intent_submitted, warehouse_registered
from tests.unit.test_cli import StandInNotify, serving

# Every key the dashboard read before names were added; none may go.
DASHBOARD_KEYS = {
    "headline",
    "events_applied",
    "events_skipped",
    "as_of",
    "booths",
    "intents_by_country",
    "intents_by_region",
    "intents_per_hour",
    "warehouses",
    "responses",
}


def figures_of_three_countries() -> BureauFigures:
    return applied(
        intent_submitted("intent-1", country="DE"),
        intent_submitted("intent-2", country="kr"),
        intent_submitted("intent-3", country=""),
        warehouse_registered("WH-LA-1", "US", 500),
    )


def verifier_of(keys: DevelopmentKeys) -> TokenVerifier:
    """What verifier_from makes of the test settings, without their infrastructure."""
    return TokenVerifier(FileKeySet(keys.key_set_file), issuer=TEST_ISSUER, audience=TEST_AUDIENCE)


@pytest.fixture
async def client(
    identity_keys: DevelopmentKeys, identities: Identities
) -> AsyncIterator[TestClient]:
    """A client signed in as an officer by bearer token, as API clients are."""
    app = build_web_app(LiveStats(figures_of_three_countries()), verifier_of(identity_keys))
    officer = identities.token(Role.OFFICER, subject="officer-1")
    headers = {"Authorization": f"Bearer {officer}"}
    async with TestClient(TestServer(app), headers=headers) as client:
        yield client


async def test_the_page_is_self_contained(client: TestClient) -> None:
    reply = await client.get("/")
    assert reply.status == 200 and reply.content_type == "text/html"
    page = await reply.text()
    # No CDN, web font, external script or stylesheet: the bureau may have no internet.
    assert re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page) is None
    assert "@import" not in page and "url(" not in page and "<link" not in page
    assert re.search(r"<script[^>]*\bsrc\b", page) is None
    # The formatting the browser test calls.
    for function in ("formatDuration", "formatMoment", "formatAgo", "countryNames"):
        assert f"function {function}(" in page


async def test_the_dashboard_json_adds_names_and_keeps_every_key(client: TestClient) -> None:
    reply = await client.get("/api/dashboard")
    body = await reply.json()
    assert body.keys() >= DASHBOARD_KEYS
    assert body["intents_by_country"] == {"DE": 1, "KR": 1, UNKNOWN: 1}
    # English names of the buyers' and the warehouses' countries; none for "unknown".
    assert body["country_names"] == {"DE": "Germany", "KR": "South Korea", "US": "United States"}
    assert body["region_names"]["Europe"] == {"en": "Europe", "zh": "欧洲"}
    assert body["region_names"][UNKNOWN_REGION] == {"en": "Unknown", "zh": "未知"}
    assert body == dashboard_json(figures_of_three_countries())


async def test_the_stats_keep_the_keys_the_readme_documents(client: TestClient) -> None:
    reply = await client.get("/api/stats")
    assert await reply.json() == {
        "firms_served": 0,
        "booths_allocated": 0,
        "countries": 0,
        "buyers": 0,
        "intents": 3,
    }


def test_every_region_has_an_english_and_a_chinese_name() -> None:
    assert set(REGION_NAMES) == {*REGIONS, UNKNOWN_REGION}
    assert all(name.en and name.zh for name in REGION_NAMES.values())


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("DE", "Germany"),
        ("de", "Germany"),
        # ISO's common name where it has one.
        ("KR", "South Korea"),
        ("TW", "Taiwan"),
        ("VN", "Vietnam"),
        ("GB", "United Kingdom"),
        ("XX", None),
        (UNKNOWN, None),
        ("", None),
    ],
)
def test_country_names_are_iso_common_names(code: str, name: str | None) -> None:
    assert country_name(code) == name


# Officers only ------------------------------------------------------------------------------

EVERY_PATH = (
    "/",
    "/api/stats",
    "/api/dashboard",
    "/api/report.csv",
    "/api/report.xlsx",
    "/api/notifications",
    "/x",
)


@pytest.fixture
async def anonymous(identity_keys: DevelopmentKeys) -> AsyncIterator[TestClient]:
    app = build_web_app(LiveStats(figures_of_three_countries()), verifier_of(identity_keys))
    async with TestClient(TestServer(app)) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("path", EVERY_PATH)
async def test_every_path_without_a_token_is_401_with_a_bearer_challenge(
    anonymous: TestClient, path: str
) -> None:
    reply = await anonymous.get(path)
    assert reply.status == 401
    # No token, no error code (RFC 6750 section 3.1).
    assert reply.headers["WWW-Authenticate"] == 'Bearer realm="chuhai-bureau"'
    assert (await reply.json())["detail"].startswith("missing bearer token")


@pytest.mark.parametrize("path", EVERY_PATH)
async def test_every_path_refuses_a_non_officer_with_403(
    anonymous: TestClient, identities: Identities, path: str
) -> None:
    for token in (
        identities.token(Role.EXPORTER, "91411000MA0000001X"),
        identities.token(Role.BUYER, "buyer-1"),
        identities.token(Role.OPERATOR, "op-1"),
        identities.token(Role.SERVICE, "expo", subject="expo"),
    ):
        reply = await anonymous.get(path, headers=bearer(token))
        assert reply.status == 403
        assert "for officers" in (await reply.json())["detail"]


async def test_a_bad_token_is_401_saying_why(anonymous: TestClient, identities: Identities) -> None:
    expired = identities.token(Role.OFFICER, ttl_seconds=-120)
    reply = await anonymous.get("/api/stats", headers=bearer(expired))
    assert reply.status == 401
    assert (
        'error="invalid_token", error_description="token expired"'
        in (reply.headers["WWW-Authenticate"])
    )
    for header in ("Bearer", "Basic b2ZmaWNlcjpwdw==", "Bearer not-a-jwt"):
        reply = await anonymous.get("/api/stats", headers={"Authorization": header})
        assert reply.status == 401, header


async def test_a_browser_is_told_how_to_sign_in(anonymous: TestClient) -> None:
    reply = await anonymous.get("/", headers={"Accept": "text/html,*/*;q=0.8"})
    assert reply.status == 401 and reply.content_type == "text/html"
    assert "/login?token=" in await reply.text()


async def test_login_keeps_the_token_in_a_strict_http_only_cookie_and_drops_it_from_the_url(
    anonymous: TestClient, identities: Identities
) -> None:
    token = identities.token(Role.OFFICER, ttl_seconds=600)
    reply = await anonymous.get(f"/login?token={token}", allow_redirects=False)
    assert reply.status == 303 and reply.headers["Location"] == "/"
    assert reply.headers["Referrer-Policy"] == "no-referrer"
    cookie = reply.cookies["chuhai_session"]
    assert cookie.value == token
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    # Plain HTTP: a Secure cookie would never come back.
    assert not cookie["secure"]
    assert 590 <= int(cookie["max-age"]) <= 600
    # The client's cookie jar now signs it in.
    assert (await anonymous.get("/api/stats")).status == 200


@pytest.mark.parametrize("role", [Role.EXPORTER, Role.BUYER, Role.OPERATOR, Role.SERVICE])
async def test_login_refuses_a_non_officer_without_a_cookie(
    anonymous: TestClient, identities: Identities, role: Role
) -> None:
    reply = await anonymous.get(
        f"/login?token={identities.token(role, 'party-1')}", allow_redirects=False
    )
    assert reply.status == 403 and "chuhai_session" not in reply.cookies


async def test_login_without_a_good_token_is_401(
    anonymous: TestClient, identities: Identities
) -> None:
    for query in (
        "",
        "?token=",
        "?token=junk",
        f"?token={identities.token(Role.OFFICER, ttl_seconds=-99)}",
    ):
        reply = await anonymous.get(f"/login{query}", allow_redirects=False)
        assert reply.status == 401, query
        assert "chuhai_session" not in reply.cookies


async def test_an_expired_session_cookie_is_401_and_forgotten(
    anonymous: TestClient, identities: Identities
) -> None:
    expired = identities.token(Role.OFFICER, ttl_seconds=-120)
    reply = await anonymous.get("/api/dashboard", cookies={"chuhai_session": expired})
    assert reply.status == 401
    assert reply.cookies["chuhai_session"]["max-age"] == "0"


async def test_over_tls_the_session_cookie_is_secure(
    identity_keys: DevelopmentKeys, identities: Identities
) -> None:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.configure_cert(context)
    web_server = WebServer(
        LiveStats(BureauFigures()), "127.0.0.1", 0, verifier_of(identity_keys), context
    )
    await web_server.start()
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    token = identities.token(Role.OFFICER)
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
            http.get(
                f"https://127.0.0.1:{web_server.port}/login",
                params={"token": token},
                ssl=trusting,
                allow_redirects=False,
            ) as reply,
        ):
            assert reply.status == 303
            assert reply.cookies["chuhai_session"]["secure"]
    finally:
        await web_server.stop()


# The bell -----------------------------------------------------------------------------------


@dataclass
class Bureau:
    """The dashboard's app with its bell on a notify service of the test's."""

    client: TestClient
    notify: StandInNotify
    officer: str


@pytest.fixture
async def bureau(identity_keys: DevelopmentKeys, identities: Identities) -> AsyncIterator[Bureau]:
    notify = StandInNotify()
    with serving(notify) as target:
        channel = service_channel(target)
        app = build_web_app(
            LiveStats(figures_of_three_countries()),
            verifier_of(identity_keys),
            bell=Bell(channel),
        )
        try:
            async with TestClient(TestServer(app)) as client:
                yield Bureau(client, notify, identities.token(Role.OFFICER, subject="officer-1"))
        finally:
            await channel.close()


def same_origin(client: TestClient) -> dict[str, str]:
    """The Origin a browser sends with a request of the dashboard's own page."""
    return {"Origin": str(client.make_url("/")).rstrip("/")}


async def test_the_bell_shows_the_latest_ten_asked_for_with_the_officers_own_token(
    bureau: Bureau,
) -> None:
    for n in range(12):
        bureau.notify.add(f"通知 {n}", read=n < 3, minutes_ago=12 - n)
    reply = await bureau.client.get("/api/notifications", headers=bearer(bureau.officer))
    assert reply.status == 200 and reply.headers["Cache-Control"] == "no-store"
    body = await reply.json()
    assert body["unread_count"] == 9
    assert [n["title"] for n in body["notifications"]] == [f"通知 {n}" for n in range(11, 1, -1)]
    newest = body["notifications"][0]
    assert newest.keys() == {"notification_id", "kind", "title", "body", "created_at", "read"}
    assert (newest["kind"], newest["read"]) == ("QUOTA_FILLED", False)
    assert body["notifications"][-1]["read"] is True
    assert abs(datetime.fromisoformat(newest["created_at"]) - datetime.now(UTC)) < timedelta(
        minutes=5
    )
    [(request, token)] = bureau.notify.requests("ListNotifications")
    assert token == bureau.officer and request.page_size == 10


async def test_a_signed_in_browser_s_bell_calls_notify_with_the_session_s_token(
    bureau: Bureau, identities: Identities
) -> None:
    token = identities.token(Role.OFFICER, subject="officer-2", ttl_seconds=600)
    login = await bureau.client.get(f"/login?token={token}", allow_redirects=False)
    assert login.status == 303
    assert (await bureau.client.get("/api/notifications")).status == 200
    bureau.notify.add("配额已满")
    marked = await bureau.client.post(
        "/api/notifications/read", json={}, headers=same_origin(bureau.client)
    )
    assert marked.status == 200, await marked.text()
    assert await marked.json() == {"marked": 1, "unread_count": 0}
    [(_, listed_with)] = bureau.notify.requests("ListNotifications")
    [(request, marked_with)] = bureau.notify.requests("MarkRead")
    assert listed_with == marked_with == token
    assert request.all and not request.notification_ids and request.request_id


async def test_marking_read_with_the_cookie_needs_the_dashboard_s_own_origin(
    bureau: Bureau, identities: Identities
) -> None:
    token = identities.token(Role.OFFICER, ttl_seconds=600)
    await bureau.client.get(f"/login?token={token}", allow_redirects=False)
    for headers in ({}, {"Origin": "https://evil.example"}, {"Origin": "null"}):
        refused = await bureau.client.post("/api/notifications/read", headers=headers)
        assert refused.status == 403, headers
        assert "dashboard's own page" in (await refused.json())["detail"]
    assert bureau.notify.requests("MarkRead") == []
    # A bearer token is never sent by a browser on its own: no Origin needed.
    scripted = await bureau.client.post("/api/notifications/read", headers=bearer(bureau.officer))
    assert scripted.status == 200
    [(_, used)] = bureau.notify.requests("MarkRead")
    assert used == bureau.officer


async def test_the_bell_admits_officers_only_and_never_calls_notify_for_others(
    bureau: Bureau, identities: Identities
) -> None:
    anonymous = await bureau.client.get("/api/notifications")
    assert anonymous.status == 401
    assert (await bureau.client.post("/api/notifications/read")).status == 401
    for token in (
        identities.token(Role.EXPORTER, "91411000MA0000001X"),
        identities.token(Role.BUYER, "buyer-1"),
        identities.token(Role.OPERATOR, "op-1"),
        identities.token(Role.SERVICE, "expo", subject="expo"),
    ):
        for method in ("GET", "POST"):
            path = "/api/notifications" if method == "GET" else "/api/notifications/read"
            reply = await bureau.client.request(method, path, headers=bearer(token))
            assert reply.status == 403, (method, token)
    expired = identities.token(Role.OFFICER, ttl_seconds=-120)
    assert (await bureau.client.get("/api/notifications", headers=bearer(expired))).status == 401
    assert bureau.notify.calls == []


async def test_what_notify_answers_is_told_in_the_http_status_of_the_bell(
    bureau: Bureau,
) -> None:
    for status, http in (
        (grpc.StatusCode.PERMISSION_DENIED, 403),
        (grpc.StatusCode.UNAUTHENTICATED, 502),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
        (grpc.StatusCode.INTERNAL, 502),
    ):
        bureau.notify.refuse_with = status
        reply = await bureau.client.get("/api/notifications", headers=bearer(bureau.officer))
        assert reply.status == http, status
        assert (await reply.json())["error"] == "Notifications unavailable"


async def test_without_notify_the_bell_is_503_and_the_figures_are_unchanged(
    identity_keys: DevelopmentKeys, identities: Identities
) -> None:
    """Nobody listening, a notify that never answers in time, and no notify at all: the
    bell's endpoints answer 503 within the bell's deadline, the figures as before."""
    officer = bearer(identities.token(Role.OFFICER))
    hanging = StandInNotify()
    hanging.delay_seconds = 30
    with socket.socket() as unused, serving(hanging) as slow_target:
        unused.bind(("127.0.0.1", 0))
        down_target = f"127.0.0.1:{unused.getsockname()[1]}"
        channels = [service_channel(down_target), service_channel(slow_target)]
        bells = [Bell(channel, deadline_seconds=0.5) for channel in channels]
        try:
            for bell in (*bells, None):
                app = build_web_app(
                    LiveStats(figures_of_three_countries()), verifier_of(identity_keys), bell=bell
                )
                async with TestClient(
                    TestServer(app), timeout=aiohttp.ClientTimeout(total=10)
                ) as client:
                    listed = await client.get("/api/notifications", headers=officer)
                    assert listed.status == 503
                    assert (await listed.json())["error"] == "Notifications unavailable"
                    marked = await client.post("/api/notifications/read", headers=officer)
                    assert marked.status == 503
                    figures = await client.get("/api/dashboard", headers=officer)
                    assert figures.status == 200
                    assert await figures.json() == dashboard_json(figures_of_three_countries())
        finally:
            for channel in channels:
                await channel.close()
    assert [token for _, token in hanging.requests("ListNotifications")] == [
        officer["Authorization"].removeprefix("Bearer ")
    ]
