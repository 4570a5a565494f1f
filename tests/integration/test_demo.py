"""The demo scenario, scaled down, through every real service: the bureau's gRPC API,
/api/stats and the dashboard in a real headless browser show the scenario's figures, and
the dashboard reads well on a desktop and on a phone (screenshots of both are kept in the
test's temporary directory). Every role plays with its own token: the events say who
made each change. Notify tells the exporters their allocation results, by e-mail to
those who gave an address (in the mail catcher `make run` starts), and a notify that is
down or slow costs the play nothing else."""

from __future__ import annotations

import asyncio
import io
import math
import re
import shutil
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import jwt
import pytest
from openpyxl import load_workbook
from pymongo import AsyncMongoClient

import booth.grpc_api
import demo.scenario as scenario
import expo.grpc_api
import warehouse.grpc_api
from bureau.host import BureauHost
from bureau.regions import country_name
from chuhai.booth.v1 import booth_service_pb2 as booth_pb
from chuhai.booth.v1 import booth_service_pb2_grpc as booth_grpc
from chuhai.booth.v1 import resources_pb2 as booth_res
from chuhai.notify.v1 import notify_service_pb2 as notify_pb
from chuhai.notify.v1 import notify_service_pb2_grpc as notify_grpc
from chuhai.notify.v1 import resources_pb2 as notify_res
from demo.principals import EXPO_WEB, OPERATOR_ID, Credentials
from demo.scenario import (
    FAIR_ID,
    INDUSTRIES,
    Demo,
    Played,
    Scale,
    Targets,
    expected_figures,
    notified,
    play,
)
from launcher.embedded import free_port
from launcher.mailbox import Mailbox, list_messages
from notify.host import NotifyHost
from runtime.adapters.events import decode_envelope
from runtime.adapters.grpc_client import service_channel
from runtime.adapters.outbox import OUTBOX_COLLECTION
from runtime.adapters.service import ServiceHost
from runtime.adapters.settings import Settings
from runtime.kernel.identity import Role
from tests.identity import Identities
from tests.integration.test_bureau import bureau_settings, own_kafka  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration

SMALL = Scale(exporters=12, booth_quota=5, buyers=700, countries=25, intents=60, warehouses=4)
CHROMIUM = "/usr/bin/chromium"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Seconds and how the dashboard must show them.
DURATIONS = {
    0: "0 s",
    22: "22 s",
    59.6: "1 min",
    95: "1 min 35 s",
    120: "2 min",
    3_600: "1 h",
    11_100: "3 h 5 min",
    90_000: "1 d 1 h",
}


@dataclass(frozen=True)
class Window:
    """A browser window a reader might have: its size, language and time zone."""

    width: int
    height: int
    locale: str
    time_zone: str


# The bureau's desktop, and a phone set to Chinese in another time zone (so the page
# cannot pass by showing the server's or China's time).
WINDOWS = (
    Window(1280, 800, "en-GB", "Asia/Shanghai"),
    Window(400, 800, "zh-CN", "Europe/Berlin"),
)


@dataclass
class Running:
    targets: Targets
    dashboard: str
    mailbox: Mailbox


@pytest.fixture
async def platform(bureau_settings: Settings, tmp_path: Path) -> AsyncIterator[Running]:  # noqa: F811
    # Notify e-mails through the catcher `make run` starts, polling for due deliveries
    # often: the test waits on them.
    mailbox = Mailbox(tmp_path / "mail")
    await mailbox.start()
    notify_host = NotifyHost(
        bureau_settings.model_copy(
            update={
                "smtp_host": "127.0.0.1",
                "smtp_port": mailbox.smtp_port,
                "notify_dispatch_poll_seconds": 0.2,
            }
        )
    )
    await notify_host.start()
    # The dashboard's bell asks notify.
    bureau_settings = bureau_settings.model_copy(
        update={"notify_grpc_target": notify_host.server.address}
    )
    booth_host = ServiceHost("booth", booth.grpc_api.build, bureau_settings)
    warehouse_host = ServiceHost("warehouse", warehouse.grpc_api.build, bureau_settings)
    await booth_host.start()
    await warehouse_host.start()
    expo_host = ServiceHost(
        "expo",
        expo.grpc_api.build,
        bureau_settings.model_copy(
            update={
                "booth_grpc_target": booth_host.server.address,
                "warehouse_grpc_target": warehouse_host.server.address,
            }
        ),
    )
    bureau_host = BureauHost(bureau_settings)
    await expo_host.start()
    await bureau_host.start()
    try:
        yield Running(
            Targets(
                booth=booth_host.server.address,
                expo=expo_host.server.address,
                warehouse=warehouse_host.server.address,
                bureau=bureau_host.server.address,
                notify=notify_host.server.address,
            ),
            f"http://127.0.0.1:{bureau_host.web.port}",
            mailbox,
        )
    finally:
        for host in (bureau_host, expo_host, warehouse_host, booth_host, notify_host):
            await host.stop()
        await mailbox.stop()


async def test_scaled_demo_shows_its_figures_over_grpc_json_and_in_a_browser(
    platform: Running,
    tmp_path: Path,
    identities: Identities,
    bureau_settings: Settings,  # noqa: F811
    mongo: AsyncMongoClient,
) -> None:
    played = await play(platform.targets, SMALL, pace=0, tokens=identities.issuer)
    figures = played.figures
    assert figures == expected_figures(SMALL)
    # Played again: deterministic request ids make it change nothing.
    replayed = await play(platform.targets, SMALL, pace=0, tokens=identities.issuer)
    assert replayed.figures == figures
    await check_who_made_the_changes(mongo, bureau_settings)
    await check_the_notifications(platform, played, identities)

    # The dashboard is the bureau's: an officer reads it.
    officer = dict(identities.officer())
    async with aiohttp.ClientSession(headers=officer) as http:
        async with http.get(f"{platform.dashboard}/api/stats") as reply:
            assert await reply.json() == figures
        async with http.get(f"{platform.dashboard}/api/report.csv") as reply:
            report = await reply.text()
        assert "headline,intents,60" in report and "intents_by_country," in report
        async with http.get(f"{platform.dashboard}/api/report.xlsx") as reply:
            workbook = load_workbook(io.BytesIO(await reply.read()))
    headline = dict(workbook["headline"].iter_rows(min_row=2, values_only=True))
    assert headline == figures

    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    shown = await asyncio.to_thread(read_dashboard, platform.dashboard, tmp_path, officer)
    assert shown == {key: f"{value:,}" for key, value in figures.items()}


# The role each kind of change is made by in the demo, as its events' actors say.
ACTORS = {
    "chuhai.booth.v1.ExporterRegistered": "exporter",
    "chuhai.booth.v1.FairCreated": "officer",
    "chuhai.booth.v1.BoothApplicationSubmitted": "exporter",
    "chuhai.booth.v1.BoothAllocated": "officer",
    "chuhai.expo.v1.ExpoOpened": "officer",
    "chuhai.expo.v1.ExhibitorJoined": "exporter",
    "chuhai.expo.v1.ProductListed": "exporter",
    "chuhai.expo.v1.BuyerRegistered": "officer",
    "chuhai.expo.v1.ExhibitorVisited": "service",
    "chuhai.expo.v1.IntentSubmitted": "buyer",
    "chuhai.expo.v1.QuoteSent": "exporter",
    "chuhai.warehouse.v1.WarehouseRegistered": "operator",
    "chuhai.warehouse.v1.CapacityReserved": "exporter",
}


async def check_who_made_the_changes(mongo: AsyncMongoClient, settings: Settings) -> None:
    """Every event of the demo names the principal whose call made it: the officer, the
    exporter applying for itself, the buyer sending its intent, the expo's web front end
    recording visits, the operator registering its warehouses."""
    roles: dict[str, set[str]] = {}
    for service in ("booth", "expo", "warehouse"):
        outbox = mongo.get_database(settings.database_name(service))[OUTBOX_COLLECTION]
        async for doc in outbox.find({"type": {"$in": list(ACTORS)}}):
            envelope = decode_envelope(bytes(doc["envelope"]))
            roles.setdefault(envelope.type, set()).add(envelope.actor.role)
            payload = envelope.WhichOneof("payload")
            if payload == "booth_application_submitted":
                assert envelope.actor.party == envelope.booth_application_submitted.credit_code
            elif payload == "intent_submitted":
                assert envelope.actor.party == envelope.intent_submitted.buyer_id
            elif payload == "exhibitor_visited":
                assert envelope.actor.party == EXPO_WEB.party
            elif payload == "warehouse_registered":
                assert envelope.actor.party == OPERATOR_ID
    assert roles == {event_type: {ACTORS[event_type]} for event_type in roles}
    # Whether an exhibitor quotes is drawn by intent id, new on every play.
    assert set(ACTORS) - set(roles) <= {"chuhai.expo.v1.QuoteSent"}


async def check_the_notifications(
    platform: Running, played: Played, identities: Identities
) -> None:
    """Notify caught up with the play: the exporters allocated a booth, and they only,
    were told so; those who gave an address got e-mail in the catcher's directory, in
    their language."""
    report = await notified(
        played,
        platform.targets.notify,
        identities.issuer,
        mail_dir=platform.mailbox.directory,
        within_seconds=60,
    )
    assert report.caught_up and not report.error, report
    assert report.emails == len(list(platform.mailbox.directory.glob("*.eml"))) > 0
    async with (
        service_channel(platform.targets.booth) as booth_channel,
        service_channel(platform.targets.notify) as notify_channel,
    ):
        applications = await booth_grpc.BoothServiceStub(booth_channel).ListApplications(
            booth_pb.ListApplicationsRequest(fair_id=FAIR_ID, page_size=500),
            metadata=identities.officer(),
        )
        allocated = {
            a.credit_code
            for a in applications.applications
            if a.state == booth_res.APPLICATION_STATE_ALLOCATED
        }
        assert len(allocated) == SMALL.booth_quota
        notify = notify_grpc.NotifyServiceStub(notify_channel)
        told = set()
        for credit_code in {a.credit_code for a in applications.applications}:
            reply = await notify.ListNotifications(
                notify_pb.ListNotificationsRequest(page_size=100),
                metadata=identities.exporter(credit_code),
            )
            assert not reply.next_page_token
            kinds = {n.kind for n in reply.notifications}
            if notify_res.NOTIFICATION_KIND_BOOTH_ALLOCATED in kinds:
                told.add(credit_code)
        assert told == allocated

    caught = list_messages(platform.mailbox.directory, limit=10_000)
    emailed = [r for r in played.recipients if r.email]
    # Buyers give an address when their intents are quoted, which is drawn by intent id
    # (new on every play): at this scale, none is in about one play in 300.
    assert {r.role for r in emailed} - {Role.BUYER} == {Role.EXPORTER}
    for recipient in emailed:
        subjects = [m.subject for m in caught if recipient.email in m.envelope_to]
        assert len(subjects) >= recipient.emails > 0, recipient
        # Chinese for zh readers, English (no Chinese character) for en ones.
        chinese = [bool(re.search("[\u4e00-\u9fff]", subject)) for subject in subjects]
        assert chinese == [recipient.language == "zh"] * len(subjects), (recipient, subjects)


def read_dashboard(url: str, screenshots: Path, headers: dict[str, str]) -> dict[str, str]:
    """Look at the dashboard in every window (asserting that it reads well there) and
    return the headline figures it shows, the same in each."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            headlines = [
                look_at_dashboard(browser, url, window, screenshots, headers) for window in WINDOWS
            ]
        finally:
            browser.close()
    assert headlines[0] == headlines[1]
    return headlines[0]


# Everything the checks read, in one evaluation, so that no refresh falls between them;
# `data` is the /api/dashboard body the page drew.
SEEN = """durations => ({
    data,
    overflow: document.scrollingElement.scrollWidth - innerWidth,
    text: document.body.innerText,
    footer: document.querySelector("footer").innerText,
    countries: document.getElementById("countries_chart").innerText,
    regions: document.getElementById("regions_chart").innerText,
    names: Object.fromEntries(Object.keys(data.intents_by_country).map(
        code => [code, countryNames(code, data.country_names)])),
    germany: countryNames("DE"),
    hourColumns: [...document.querySelectorAll("#hours_chart rect")].map(
        rect => [rect.querySelector("title").textContent, Number(rect.dataset.value)]),
    hourTicks: [...document.querySelectorAll("#hours_chart text.tick.x")].map(
        text => text.firstChild.textContent),
    hourAxis: [...document.querySelectorAll("#hours_chart text.tick.y")].map(t => t.textContent),
    hourValues: [...document.querySelectorAll("#hours_chart text.value")].map(t => t.textContent),
    dayValues: [...document.querySelectorAll("#days_chart rect")].map(
        rect => Number(rect.dataset.value)),
    dayTicks: [...document.querySelectorAll("#days_chart text.tick.x")].map(t => t.textContent),
    median: document.getElementById("median_response").textContent,
    durations: durations.map(formatDuration),
})"""


def look_at_dashboard(
    browser: Any, url: str, window: Window, screenshots: Path, headers: dict[str, str]
) -> dict[str, str]:
    page = browser.new_page(
        viewport={"width": window.width, "height": window.height},
        locale=window.locale,
        timezone_id=window.time_zone,
    )
    try:
        # Signed in as an officer's browser is: by the login link, which keeps the token
        # in a session cookie and sends the browser on to the dashboard without it.
        token = headers["authorization"].removeprefix("Bearer ")
        page.goto(f"{url}/login?token={token}")
        assert page.url == f"{url}/"
        assert [cookie["name"] for cookie in page.context.cookies()] == ["chuhai_session"]
        page.wait_for_function(
            "document.getElementById('intents').textContent !== '0'", timeout=10_000
        )
        keys = ("firms_served", "booths_allocated", "countries", "buyers", "intents")
        headline = {key: page.text_content(f"#{key}") for key in keys}
        check_what_is_seen(page.evaluate(SEEN, list(DURATIONS)), window)
        screenshot = screenshots / f"dashboard-{window.width}x{window.height}.png"
        page.screenshot(path=screenshot, full_page=True)
        check_screenshot(screenshot, window)
        return headline
    finally:
        page.close()


def check_what_is_seen(seen: dict[str, Any], window: Window) -> None:
    data = seen["data"]
    zone = ZoneInfo(window.time_zone)
    assert seen["overflow"] <= 0, f"the page scrolls sideways at {window.width} px"

    # Countries and regions by name: English from the server, Chinese from the browser.
    assert seen["germany"] == {"en": "Germany", "zh": "德国"}
    by_country = data["intents_by_country"]
    top = max(by_country, key=by_country.__getitem__)
    names = seen["names"][top]
    assert data["country_names"][top] == names["en"] == country_name(top)
    assert names["zh"] and names["zh"] != top
    assert names["en"] in seen["countries"] and names["zh"] in seen["countries"]
    by_region = data["intents_by_region"]
    top_region = data["region_names"][max(by_region, key=by_region.__getitem__)]
    assert top_region["en"] in seen["regions"] and top_region["zh"] in seen["regions"]

    # Times in the viewer's time zone, never as raw ISO strings.
    as_of = datetime.fromisoformat(data["as_of"]).astimezone(zone)
    assert f"{as_of:%H:%M:%S}" in seen["footer"]
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:", seen["text"]) is None
    titles = [title for title, _ in seen["hourColumns"]]
    for bucket in data["intents_per_hour"]:
        start = datetime.fromisoformat(bucket["start"]).astimezone(zone)
        end = start + timedelta(hours=1)
        assert f"{start:%H:%M}\N{EN DASH}{end:%H:%M}: {bucket['intents']:,} intents" in titles

    # Charts with axes, labels and every intent of the demo.
    intents = data["headline"]["intents"]
    assert len(seen["hourColumns"]) == 24
    assert sum(value for _, value in seen["hourColumns"]) == intents
    assert sum(seen["dayValues"]) == intents
    assert len(seen["hourTicks"]) >= 4
    assert all(re.fullmatch(r"\d\d:\d\d", tick) for tick in seen["hourTicks"])
    assert seen["hourAxis"][0] == "0" and len(seen["hourAxis"]) >= 2
    peak = max(bucket["intents"] for bucket in data["intents_per_hour"])
    assert f"{peak:,}" in seen["hourValues"]
    assert len(seen["dayTicks"]) >= 2

    # Durations in sensible units; the demo's exhibitors answer within seconds.
    assert seen["durations"] == list(DURATIONS.values())
    responses = data["responses"]
    assert responses["answered"] > 0 and responses["median_response_seconds"] < 60
    # Rounded half up, as JavaScript's Math.round does.
    assert seen["median"] == f"{math.floor(responses['median_response_seconds'] + 0.5)} s"


def check_screenshot(path: Path, window: Window) -> None:
    png = path.read_bytes()
    assert png[:8] == PNG_SIGNATURE and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    assert width == window.width and height >= window.height
    # A drawn page: a blank one of this size compresses to a few kilobytes.
    assert len(png) > 30_000


def test_each_principal_gets_one_token_reused_until_it_is_due_for_renewal(
    identities: Identities,
) -> None:
    clock = [1000.0]
    credentials = Credentials(identities.issuer, clock=lambda: clock[0])
    code = "91411000MA9EXAMPLK"
    first = credentials.exporter(code)
    assert credentials.exporter(code) is first
    assert credentials.buyer("b-1") != credentials.buyer("b-2")
    claims = jwt.decode(first[0][1].removeprefix("Bearer "), options={"verify_signature": False})
    assert (claims["chuhai_role"], claims["chuhai_party"]) == ("exporter", code)
    assert claims["exp"] - claims["iat"] == Credentials.LIFETIME_SECONDS
    visits = jwt.decode(
        credentials.expo_web()[0][1].removeprefix("Bearer "), options={"verify_signature": False}
    )
    assert (visits["chuhai_role"], visits["chuhai_party"]) == ("service", "expo-web")

    clock[0] += Credentials.LIFETIME_SECONDS - Credentials.RENEW_BEFORE_SECONDS - 1
    assert credentials.exporter(code) is first
    clock[0] += 1
    assert credentials.exporter(code) != first


async def test_a_notify_that_is_down_or_slow_costs_the_play_only_its_notifications(
    identities: Identities, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Notify is not on the figures' path: its calls fail fast when nothing listens, are
    given up after NOTIFY_TIMEOUT when it does not answer, and the play goes on."""
    monkeypatch.setattr(scenario, "NOTIFY_TIMEOUT", 0.5)

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Takes the connection and never says a word: a notify stuck on its database.
        await reader.read()
        writer.close()

    slow = await asyncio.start_server(silent, "127.0.0.1", 0)
    targets = {
        "down": f"127.0.0.1:{free_port()}",
        "slow": f"127.0.0.1:{slow.sockets[0].getsockname()[1]}",
    }
    try:
        for state, target in targets.items():
            channels = {
                name: service_channel(target)
                for name in ("booth", "expo", "warehouse", "bureau", "notify")
            }
            try:
                demo = Demo(channels, SMALL, 0.0, Credentials(identities.issuer))
                code = "91411000MA9EXAMPLK"
                demo.exporters = [(code, INDUSTRIES[0])]
                demo.products = {code: ["670420"]}
                started = time.monotonic()
                await demo.subscribe_exporters()
                await demo.subscribe_buyers(["b" * 32])
                assert time.monotonic() - started < 4 * scenario.NOTIFY_TIMEOUT, state
                assert "notify did not take the demo's calls" in caplog.text, state
                played = Played({}, demo.recipients())
                report = await notified(played, target, identities.issuer, within_seconds=5)
                assert report.error and not report.caught_up, state
            finally:
                for channel in channels.values():
                    await channel.close()
            caplog.clear()
    finally:
        slow.close()
        await slow.wait_closed()
