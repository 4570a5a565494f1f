"""The demo scenario, scaled down, through every real service: the bureau's gRPC API,
/api/stats and the dashboard in a real headless browser show the scenario's figures."""

from __future__ import annotations

import asyncio
import io
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from openpyxl import load_workbook

import booth.grpc_api
import expo.grpc_api
import warehouse.grpc_api
from bureau.host import BureauHost
from demo.scenario import Scale, Targets, expected_figures, play
from runtime.adapters.service import ServiceHost
from runtime.adapters.settings import Settings
from tests.integration.test_bureau import bureau_settings, own_kafka  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration

SMALL = Scale(exporters=12, booth_quota=5, buyers=700, countries=25, intents=60, warehouses=4)
CHROMIUM = "/usr/bin/chromium"


@dataclass
class Running:
    targets: Targets
    dashboard: str


@pytest.fixture
async def platform(bureau_settings: Settings) -> AsyncIterator[Running]:  # noqa: F811
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
            ),
            f"http://127.0.0.1:{bureau_host.web.port}",
        )
    finally:
        for host in (bureau_host, expo_host, warehouse_host, booth_host):
            await host.stop()


async def test_scaled_demo_shows_its_figures_over_grpc_json_and_in_a_browser(
    platform: Running,
) -> None:
    figures = await play(platform.targets, SMALL, pace=0)
    assert figures == expected_figures(SMALL)
    # Played again: deterministic request ids make it change nothing.
    assert await play(platform.targets, SMALL, pace=0) == figures

    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{platform.dashboard}/api/stats") as reply,
    ):
        assert await reply.json() == figures
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{platform.dashboard}/api/report.csv") as reply,
    ):
        report = await reply.text()
    assert "headline,intents,60" in report and "intents_by_country," in report
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{platform.dashboard}/api/report.xlsx") as reply,
    ):
        workbook = load_workbook(io.BytesIO(await reply.read()))
    headline = dict(workbook["headline"].iter_rows(min_row=2, values_only=True))
    assert headline == figures

    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    shown = await asyncio.to_thread(read_dashboard, platform.dashboard)
    assert shown == {key: f"{value:,}" for key, value in figures.items()}


def read_dashboard(url: str) -> dict[str, str]:
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
            page = browser.new_page()
            page.goto(url)
            page.wait_for_function(
                "document.getElementById('intents').textContent !== '0'", timeout=10_000
            )
            keys = ("firms_served", "booths_allocated", "countries", "buyers", "intents")
            return {key: page.text_content(f"#{key}") for key in keys}
        finally:
            browser.close()
