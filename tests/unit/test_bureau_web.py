"""The bureau's web app: the dashboard page is self-contained, /api/dashboard carries the
names the page shows, /api/stats keeps its promised keys. (The page itself is looked at
in a real browser by tests/integration/test_demo.py.)"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bureau.figures import BureauFigures
from bureau.live import LiveStats
from bureau.messages import dashboard_json
from bureau.projections.expo import UNKNOWN
from bureau.regions import REGION_NAMES, REGIONS, UNKNOWN_REGION, country_name
from bureau.web import build_web_app
from tests.unit.test_bureau_aggregates import applied, intent_submitted, warehouse_registered

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


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    app = build_web_app(LiveStats(figures_of_three_countries()))
    async with TestClient(TestServer(app)) as client:
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
