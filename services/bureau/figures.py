"""The commerce bureau's live figures, folded from every domain event.

The booth, expo and warehouse projections each keep their context's figures; the
dispatcher feeds them (see bureau.projections.dispatcher). The bureau's Faust agent
applies the envelopes of every domain topic, a MongoDB adapter persists `snapshot()`
and the applied event ids, and the gRPC API, the dashboard and the reports read the
figures here. Nothing here does I/O.

Figures are computed from per-aggregate records, never from running totals of events,
which is what makes them exact under duplicates and independent of how the topics'
partitions interleave (only each aggregate's own order matters, and Kafka keeps that).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from bureau.projections.base import Projection, utc_datetime
from bureau.projections.booth import BoothFigures, BoothProjection
from bureau.projections.dispatcher import Dispatcher
from bureau.projections.expo import ExpoProjection, IntentFigures, IntentFilter, ResponseFigures
from bureau.projections.warehouse import (
    ReservationFigures,
    WarehouseFigures,
    WarehouseProjection,
)
from chuhai.events.v1.envelope_pb2 import EventEnvelope

PROJECTIONS: tuple[type[Projection], ...] = (BoothProjection, ExpoProjection, WarehouseProjection)


@dataclass(frozen=True)
class Headline:
    """The case's headline counters (bureau.v1.Headline)."""

    firms_served: int
    booths_allocated: int
    countries: int
    buyers: int
    intents: int
    events_applied: int
    # occurred_at of the newest event applied; None before the first one.
    as_of: datetime | None


class BureauFigures:
    """Every figure the bureau watches, kept exact under redelivery."""

    def __init__(self, dispatcher: Dispatcher | None = None) -> None:
        self._dispatcher = dispatcher or Dispatcher([kind() for kind in PROJECTIONS])
        self._booth = self._dispatcher.projection(BoothProjection)
        self._expo = self._dispatcher.projection(ExpoProjection)
        self._warehouse = self._dispatcher.projection(WarehouseProjection)

    def apply(self, envelope: EventEnvelope) -> bool:
        """Apply one event once; False, changing nothing, when its id was applied before
        or it is skipped as unreadable (see events_skipped)."""
        return self._dispatcher.apply(envelope)

    @property
    def dispatcher(self) -> Dispatcher:
        return self._dispatcher

    # Figures ------------------------------------------------------------------------------

    def headline(self) -> Headline:
        newest_us = self._dispatcher.newest_event_us
        return Headline(
            firms_served=self._booth.firms_served(),
            booths_allocated=self._booth.booths_allocated(),
            countries=self._expo.countries(),
            buyers=self._expo.buyers(),
            intents=self._expo.intents_submitted(),
            events_applied=self._dispatcher.applied_count,
            as_of=None if newest_us is None else utc_datetime(newest_us),
        )

    def events_skipped(self) -> int:
        """Events this process could not read (unknown payload type or schema version)."""
        return self._dispatcher.skipped_count

    def booths(self, fair_id: str | None = None) -> list[BoothFigures]:
        return self._booth.booths(fair_id)

    def intents(self, where: IntentFilter | None = None) -> IntentFigures:
        return self._expo.intents(where)

    def responses(self, where: IntentFilter | None = None) -> ResponseFigures:
        return self._expo.responses(where)

    def exhibitors(self) -> dict[str, int]:
        """Exhibitors per expo edition id."""
        return self._expo.exhibitors()

    def warehouses(self, day: date) -> list[WarehouseFigures]:
        return self._warehouse.warehouses(day)

    def reservations(self) -> ReservationFigures:
        return self._warehouse.reservations()

    # Persistence --------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Every projection's state, without the applied event ids (see Dispatcher)."""
        return self._dispatcher.snapshot()

    @classmethod
    def restore(cls, snapshot: dict[str, Any], applied_event_ids: Iterable[str]) -> BureauFigures:
        """The figures `snapshot` was taken of, given the ids of the events it holds."""
        return cls(Dispatcher.restore(snapshot, applied_event_ids, PROJECTIONS))
