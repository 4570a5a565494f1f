"""Figures as API messages (gRPC) and as plain JSON (the dashboard)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from bureau.figures import BureauFigures, Headline
from bureau.projections.expo import IntentFilter
from bureau.regions import REGION_NAMES, country_name
from chuhai.bureau.v1 import bureau_service_pb2 as pb
from runtime.adapters.timestamps import timestamp


def headline_message(headline: Headline) -> pb.Headline:
    message = pb.Headline(
        firms_served=headline.firms_served,
        booths_allocated=headline.booths_allocated,
        countries=headline.countries,
        buyers=headline.buyers,
        intents=headline.intents,
        events_applied=headline.events_applied,
    )
    if headline.as_of is not None:
        message.as_of.CopyFrom(timestamp(headline.as_of))
    return message


def _counts(values: dict[str, int]) -> list[pb.Count]:
    return [pb.Count(key=key, value=value) for key, value in values.items()]


def query_response(
    figures: BureauFigures, fair_id: str, where: IntentFilter
) -> pb.QueryStatsResponse:
    intents = figures.intents(where)
    responses = figures.responses(where)
    reservations = figures.reservations()
    return pb.QueryStatsResponse(
        headline=headline_message(figures.headline()),
        booths=[pb.BoothFigures(**asdict(figures)) for figures in figures.booths(fair_id or None)],
        intents=intents.intents,
        intents_by_state=_counts(intents.by_state),
        intents_by_country=_counts(intents.by_country),
        intents_by_region=_counts(intents.by_region),
        intents_by_hs_chapter=_counts(intents.by_hs_chapter),
        intents_by_industry=_counts(intents.by_industry),
        intents_per_hour=[
            pb.TimeBucket(start=timestamp(b.start), intents=b.intents) for b in intents.per_hour
        ],
        intents_per_day=[
            pb.TimeBucket(start=timestamp(b.start), intents=b.intents) for b in intents.per_day
        ],
        warehouses=[
            pb.WarehouseFigures(**asdict(figures))
            for figures in figures.warehouses(datetime.now(UTC).date())
        ],
        responses=pb.ResponseFigures(
            addressed=responses.addressed,
            answered=responses.answered,
            response_rate=responses.response_rate,
            median_response_seconds=responses.median_response_seconds,
        ),
        exhibitors_by_edition=_counts(figures.exhibitors()),
        reservations_by_status=_counts(reservations.by_status),
        reservations_by_country=[
            pb.ReservationCounts(**asdict(counts)) for counts in reservations.by_country
        ],
    )


def headline_json(headline: Headline) -> dict[str, Any]:
    """The keys /api/stats promises."""
    return {
        "firms_served": headline.firms_served,
        "booths_allocated": headline.booths_allocated,
        "countries": headline.countries,
        "buyers": headline.buyers,
        "intents": headline.intents,
    }


def dashboard_json(figures: BureauFigures) -> dict[str, Any]:
    """Everything the dashboard page draws.

    Times are UTC (ISO 8601) and the page shows them in the viewer's time zone: it draws
    intents per day from the hourly buckets, so that its days are the viewer's days
    rather than UTC's."""
    headline = figures.headline()
    intents = figures.intents()
    responses = figures.responses()
    warehouses = figures.warehouses(datetime.now(UTC).date())
    return {
        "headline": headline_json(headline),
        "events_applied": headline.events_applied,
        # Events this process could not read (unknown payload type or schema version).
        "events_skipped": figures.events_skipped(),
        "as_of": headline.as_of.isoformat() if headline.as_of else None,
        "booths": [asdict(b) for b in figures.booths()],
        "intents_by_country": intents.by_country,
        "intents_by_region": intents.by_region,
        "intents_per_hour": [
            {"start": b.start.isoformat(), "intents": b.intents} for b in intents.per_hour
        ],
        "warehouses": [asdict(w) for w in warehouses],
        "responses": asdict(responses),
        # English names of the countries above (Chinese ones come from the browser).
        "country_names": _country_names([*intents.by_country, *(w.country for w in warehouses)]),
        "region_names": {region: asdict(name) for region, name in REGION_NAMES.items()},
    }


def _country_names(codes: list[str]) -> dict[str, str]:
    """Codes outside ISO 3166-1 (such as the key of intents without a country) have no
    name: the page shows the code itself."""
    return {code: name for code in sorted(set(codes)) if (name := country_name(code))}
