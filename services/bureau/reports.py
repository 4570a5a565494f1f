"""A period's figures for the bureau, as CSV and XLSX."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

from openpyxl import Workbook

from bureau.figures import BureauFigures
from bureau.projections.expo import IntentFilter

Row = tuple[str, str, object]


def report_rows(figures: BureauFigures, since: date | None, until: date | None) -> list[Row]:
    """(section, key, value) rows: headline, intents over [since, until) broken down by
    country, region, HS chapter, industry and day, exhibitor responses, booths and
    warehouses (today)."""
    where = IntentFilter(
        since=datetime(since.year, since.month, since.day, tzinfo=UTC) if since else None,
        until=datetime(until.year, until.month, until.day, tzinfo=UTC) if until else None,
    )
    headline = figures.headline()
    intents = figures.intents(where)
    responses = figures.responses(where)
    rows: list[Row] = [
        ("period", "since", since.isoformat() if since else ""),
        ("period", "until", until.isoformat() if until else ""),
        ("headline", "firms_served", headline.firms_served),
        ("headline", "booths_allocated", headline.booths_allocated),
        ("headline", "countries", headline.countries),
        ("headline", "buyers", headline.buyers),
        ("headline", "intents", headline.intents),
        ("intents", "in_period", intents.intents),
    ]
    breakdowns = {
        "intents_by_country": intents.by_country,
        "intents_by_region": intents.by_region,
        "intents_by_hs_chapter": intents.by_hs_chapter,
        "intents_by_industry": intents.by_industry,
    }
    for section, counts in breakdowns.items():
        rows += [(section, key, value) for key, value in counts.items()]
    rows += [("intents_per_day", b.start.date().isoformat(), b.intents) for b in intents.per_day]
    rows += [
        ("responses", "addressed", responses.addressed),
        ("responses", "answered", responses.answered),
        ("responses", "response_rate", round(responses.response_rate, 4)),
        ("responses", "median_response_seconds", responses.median_response_seconds),
    ]
    for booth in figures.booths():
        key = f"{booth.fair_id}/{booth.booth_type}"
        rows += [
            ("booths", f"{key}/quota", booth.quota),
            ("booths", f"{key}/applied", booth.applied),
            ("booths", f"{key}/allocated", booth.allocated),
            ("booths", f"{key}/waitlisted", booth.waitlisted),
            ("booths", f"{key}/withdrawn", booth.withdrawn),
        ]
    for warehouse in figures.warehouses(datetime.now(UTC).date()):
        rows += [
            ("warehouses", f"{warehouse.country}/capacity_pallets", warehouse.capacity_pallets),
            ("warehouses", f"{warehouse.country}/reserved_pallets", warehouse.reserved_pallets),
            ("warehouses", f"{warehouse.country}/utilisation", round(warehouse.utilisation, 4)),
        ]
    return rows


def as_csv(rows: list[Row]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(("section", "key", "value"))
    writer.writerows(rows)
    return text.getvalue().encode("utf-8")


def as_xlsx(rows: list[Row]) -> bytes:
    """One sheet per section, so each breakdown opens as its own table."""
    workbook = Workbook()
    workbook.remove(workbook.active)
    sheets: dict[str, object] = {}
    for section, key, value in rows:
        sheet = sheets.get(section)
        if sheet is None:
            sheet = workbook.create_sheet(section[:31])
            sheet.append(("key", "value"))
            sheets[section] = sheet
        sheet.append((key, value))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
