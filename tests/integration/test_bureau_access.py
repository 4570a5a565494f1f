"""Who may read the bureau's figures, over a real gRPC server and the real dashboard:
officers only, at both doors. Every BureauService method by every role (and no token);
the dashboard's bearer tokens, its login link and its session cookie; the bell, without
notify and, in a real browser, with a notify of the test's that then stops."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from bureau.figures import BureauFigures
from bureau.grpc_api import ACCESS
from bureau.host import BureauHost
from bureau.live import LiveStats
from bureau.web import Bell, WebServer
from chuhai.bureau.v1 import bureau_service_pb2 as pb
from chuhai.bureau.v1 import bureau_service_pb2_grpc as pb_grpc
from chuhai.notify.v1 import resources_pb2 as notify_res
from runtime.adapters.grpc_client import service_channel
from runtime.adapters.tokens import DevelopmentKeys
from runtime.kernel.identity import Role
from tests.conftest import Infrastructure, settings_for
from tests.identity import Identities, Metadata
from tests.unit.test_bureau_web import verifier_of
from tests.unit.test_cli import StandInNotify, serving

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
CHROMIUM = "/usr/bin/chromium"


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


# The bell ---------------------------------------------------------------------------------


async def test_the_bell_without_notify_is_503_while_the_figures_answer(
    bureau: BureauHost, identities: Identities
) -> None:
    """The module's bureau has no notify to reach: the bell says so, for officers only,
    and the figures answer as ever."""
    officer = bearer(identities.token(Role.OFFICER, subject="officer-1"))
    exporter = bearer(identities.token(Role.EXPORTER, PARTIES[Role.EXPORTER]))
    async with session() as http:
        async with http.get(url_of(bureau, "/api/notifications"), headers=officer) as reply:
            assert reply.status == 503
            assert (await reply.json())["error"] == "Notifications unavailable"
        async with http.post(url_of(bureau, "/api/notifications/read"), headers=officer) as reply:
            assert reply.status == 503
        async with http.get(url_of(bureau, "/api/dashboard"), headers=officer) as reply:
            assert reply.status == 200 and "headline" in await reply.json()
        for method, path in (("GET", "/api/notifications"), ("POST", "/api/notifications/read")):
            async with http.request(method, url_of(bureau, path)) as reply:
                assert reply.status == 401
            async with http.request(method, url_of(bureau, path), headers=exporter) as reply:
                assert reply.status == 403


async def test_the_bell_in_a_browser_counts_lists_marks_read_and_survives_notify_going_down(
    identity_keys: DevelopmentKeys, identities: Identities, tmp_path: Path
) -> None:
    """On a phone-sized window in Chinese: the badge counts the unread, the dropdown
    lists them newest first, "mark all read" marks them (the browser's own POST passes
    the Origin check), and with notify stopped the badge shows "—" while the page stays
    signed in."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    notify = StandInNotify()
    notify.add(
        "配额已满 canton-139 标准展位", body="43/43 个展位已分配。", read=True, minutes_ago=90
    )
    notify.add(
        "分配完成 canton-139",
        kind=notify_res.NOTIFICATION_KIND_ALLOCATION_COMPLETED,
        body="分配 43 个 候补 12 个",
        minutes_ago=3,
    )
    notify.add(
        "每日摘要",
        kind=notify_res.NOTIFICATION_KIND_DAILY_DIGEST,
        body="昨日新增采购意向 120 条。",
        minutes_ago=1,
    )
    token = identities.token(Role.OFFICER, subject="officer-1")
    with contextlib.ExitStack() as notify_running:
        target = notify_running.enter_context(serving(notify))
        channel = service_channel(target)
        web = WebServer(
            LiveStats(BureauFigures()),
            "127.0.0.1",
            0,
            verifier_of(identity_keys),
            bell=Bell(channel),
        )
        await web.start()
        try:
            seen = await asyncio.to_thread(
                look_at_the_bell,
                f"http://127.0.0.1:{web.port}",
                token,
                tmp_path,
                stop_notify=notify_running.close,
            )
        finally:
            await web.stop()
            await channel.close()
    assert seen["titles"] == ["每日摘要", "分配完成 canton-139", "配额已满 canton-139 标准展位"]
    assert seen["classes"] == ["unread", "unread", "read"]
    # Times as a reader reads them, never raw ISO strings.
    assert all(time == "just now" or time.endswith(" ago") for time in seen["times"])
    assert seen["times"][-1] == "1 h 30 min ago"
    assert seen["overflow"] <= 0, "the page scrolls sideways with the bell open"
    assert seen["after_marking"] == ["read", "read", "read"]
    [(request, used)] = notify.requests("MarkRead")
    assert request.all and used == token
    assert {used for _, used in notify.requests("ListNotifications")} == {token}
    assert "通知服务暂不可用" in seen["down_text"]
    assert seen["dashboard_status"] == 200 and seen["signed_out_hidden"]


def look_at_the_bell(
    url: str, token: str, screenshots: Path, *, stop_notify: Callable[[], None]
) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    seen: dict[str, Any] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(
                viewport={"width": 400, "height": 800},
                locale="zh-CN",
                timezone_id="Europe/Berlin",
            )
            page.goto(f"{url}/login?token={token}")
            count = "document.getElementById('bell_count').textContent"
            page.wait_for_function(f"{count} === '2'", timeout=10_000)
            page.click("#bell")
            page.wait_for_selector("#bell_list li", timeout=10_000)
            items = page.eval_on_selector_all(
                "#bell_list li",
                """items => items.map(item => ({
                    title: item.querySelector("b").textContent,
                    className: item.className,
                    time: item.querySelector("time").textContent}))""",
            )
            seen["titles"] = [item["title"] for item in items]
            seen["classes"] = [item["className"] for item in items]
            seen["times"] = [item["time"] for item in items]
            seen["overflow"] = page.evaluate("document.scrollingElement.scrollWidth - innerWidth")
            page.screenshot(path=screenshots / "bell-400x800.png")

            page.click("#mark_all_read")
            page.wait_for_function(f"{count} === '0'", timeout=10_000)
            seen["after_marking"] = page.eval_on_selector_all(
                "#bell_list li", "items => items.map(item => item.className)"
            )

            stop_notify()
            # Closing and opening the dropdown asks at once, not at the next poll.
            page.click("#bell")
            page.click("#bell")
            page.wait_for_function(f"{count} === '\N{EM DASH}'", timeout=10_000)
            seen["down_text"] = page.text_content("#bell_panel")
            seen["dashboard_status"] = page.evaluate(
                "fetch('/api/dashboard').then(reply => reply.status)"
            )
            seen["signed_out_hidden"] = page.is_hidden("#signed_out")
        finally:
            browser.close()
    return seen
