"""The commerce bureau's live figures, folded from every domain event.

A pure domain object: the bureau's Faust agent feeds it the envelopes of every domain
topic, a MongoDB adapter persists `snapshot()` and the applied event ids, and the gRPC
API reads the figures. Nothing here does I/O.

Exactly once, twice over. `apply()` refuses an event id it has applied before, and on
top of that every handler is idempotent on the state of its own aggregate: an
application only moves forward in its lifecycle, an intent is submitted once, an answer
counts once per (intent, exhibitor), a warehouse keeps its newest version, a
reservation stays cancelled. So a copy of an event under a new id, or an event applied
again after a restore whose id set lagged the snapshot, changes no figure either.

Figures are computed from per-aggregate records, never from running totals of events,
which is what makes them exact under duplicates and independent of how the topics'
partitions interleave (only each aggregate's own order matters, and Kafka keeps that).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

from google.protobuf.timestamp_pb2 import Timestamp

from bureau.regions import region_of
from chuhai.booth.v1 import events_pb2 as booth_events
from chuhai.booth.v1.resources_pb2 import ApplicationState, BoothType
from chuhai.events.v1.envelope_pb2 import EventEnvelope
from chuhai.expo.v1 import events_pb2 as expo_events
from chuhai.expo.v1.resources_pb2 import IntentKind
from chuhai.warehouse.v1 import events_pb2 as warehouse_events
from chuhai.warehouse.v1.resources_pb2 import WarehouseStatus
from runtime.kernel.standards import hs_chapter, normalise_hs_code

SNAPSHOT_FORMAT = 1
# A breakdown key for an intent whose country or HS code is missing, so that every
# breakdown but the one by industry adds up to the number of intents.
UNKNOWN = "unknown"
# Replies are expected within 24 hours (the brief); exactly 24 h still counts as on time.
RESPONSE_TARGET_SECONDS = 24 * 60 * 60

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_HOUR_US = 3_600 * 1_000_000
_DAY_US = 24 * _HOUR_US

_BOOTH_TYPE_NAMES: dict[int, str] = {
    BoothType.BOOTH_TYPE_STANDARD: "standard",
    BoothType.BOOTH_TYPE_BRAND: "brand",
}

# The booth service's application lifecycle is acyclic (submitted -> scored ->
# waitlisted -> allocated -> withdrawn, with rejection and withdrawal as exits along the
# way), so how deep a state lies orders it. An event that would move an application to
# a state no deeper than its current one is a repeated or late copy and is ignored.
_LIFECYCLE_DEPTH: dict[int, int] = {
    ApplicationState.APPLICATION_STATE_SUBMITTED: 1,
    ApplicationState.APPLICATION_STATE_SCORED: 2,
    ApplicationState.APPLICATION_STATE_WAITLISTED: 3,
    ApplicationState.APPLICATION_STATE_ALLOCATED: 4,
    ApplicationState.APPLICATION_STATE_REJECTED: 5,
    ApplicationState.APPLICATION_STATE_WITHDRAWN: 5,
}
_ALLOCATED = ApplicationState.APPLICATION_STATE_ALLOCATED
_WAITLISTED = ApplicationState.APPLICATION_STATE_WAITLISTED
_WITHDRAWN = ApplicationState.APPLICATION_STATE_WITHDRAWN


# Figures ----------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class BoothFigures:
    """One fair's booths of one type; applied counts every application ever submitted,
    the others count applications by their current state."""

    fair_id: str
    booth_type: str
    quota: int
    applied: int
    allocated: int
    waitlisted: int
    withdrawn: int


@dataclass(frozen=True)
class IntentFilter:
    """Which intents a figure covers; every part is optional and the parts combine."""

    # Submitted in [since, until), by the IntentSubmitted envelope's occurred_at.
    since: datetime | None = None
    until: datetime | None = None
    # ISO 3166-1 alpha-2 of the buyer.
    country: str | None = None
    # The first two digits of the HS code.
    hs_chapter: str | None = None


@dataclass(frozen=True)
class TimeBucket:
    """A tumbling UTC window, keyed by its start, and the intents submitted in it."""

    start: datetime
    intents: int


@dataclass(frozen=True)
class IntentFigures:
    """Intents matching a filter and their breakdowns, each sorted by key. An intent
    counts once under each of its industries, so that breakdown need not add up."""

    intents: int
    by_country: dict[str, int]
    by_region: dict[str, int]
    by_hs_chapter: dict[str, int]
    by_industry: dict[str, int]
    per_hour: list[TimeBucket]
    per_day: list[TimeBucket]


@dataclass(frozen=True)
class ResponseFigures:
    """How exhibitors answer: addressed counts (intent, recipient) pairs, answered
    counts quotes and declines, one per pair."""

    addressed: int
    answered: int
    response_rate: float
    median_response_seconds: float
    # Of the answers, the share given within RESPONSE_TARGET_SECONDS.
    answered_within_24h_share: float


@dataclass(frozen=True)
class WarehouseFigures:
    """One country's active warehouses on one day."""

    country: str
    warehouses: int
    capacity_pallets: int
    reserved_pallets: int
    utilisation: float


# Per-aggregate records --------------------------------------------------------------------


@dataclass(slots=True)
class _Application:
    fair_id: str
    booth_type: int
    state: int


@dataclass(slots=True)
class _Intent:
    # None until IntentSubmitted is applied (its other events never come first on the
    # intents topic, but a record must not need that to be right).
    submitted_us: int | None = None
    country: str = UNKNOWN
    hs_chapter: str = UNKNOWN
    industries: tuple[str, ...] = ()
    kind: int = IntentKind.INTENT_KIND_UNSPECIFIED
    recipients: set[str] = field(default_factory=set)
    # Exhibitor credit code -> seconds it took to quote or decline.
    response_seconds: dict[str, int] = field(default_factory=dict)

    @property
    def addressed(self) -> int:
        # IntentSubmitted names no recipient for an inquiry: it always has exactly one.
        if self.kind == IntentKind.INTENT_KIND_INQUIRY:
            return 1
        return len(self.recipients)


@dataclass(slots=True)
class _Warehouse:
    country: str
    capacity_pallets: int
    active: bool
    # occurred_at of the event this version came from: a late older one must not win.
    version_us: int


@dataclass(slots=True)
class _Reservation:
    warehouse_code: str
    pallets: int
    # Proleptic Gregorian ordinals of [start_date, end_date).
    start_day: int
    end_day: int
    cancelled: bool


@dataclass(slots=True)
class _CountryLoad:
    warehouses: int = 0
    capacity_pallets: int = 0
    reserved_pallets: int = 0


_Handler = Callable[["Aggregates", Any, int], None]


def _moving_application_to(state: int) -> _Handler:
    """A handler for the application events whose only news for the figures is a state."""

    def handle(aggregates: Aggregates, event: Any, _: int) -> None:
        aggregates._move_application(event.application_id, event.fair_id, event.booth_type, state)

    return handle


class Aggregates:
    """Every figure the bureau watches, kept exact under redelivery."""

    def __init__(self) -> None:
        self._applied_event_ids: set[str] = set()
        self._newest_event_us: int | None = None
        self._firms: set[str] = set()
        self._quotas: dict[tuple[str, int], int] = {}
        self._applications: dict[str, _Application] = {}
        self._visiting_buyers: set[str] = set()
        self._visiting_countries: set[str] = set()
        self._intents: dict[str, _Intent] = {}
        self._warehouses: dict[str, _Warehouse] = {}
        self._reservations: dict[str, _Reservation] = {}
        # Derived from the records above (rebuilt on restore), so reads need no scan.
        self._applied_by_booth: Counter[tuple[str, int]] = Counter()
        self._states_by_booth: Counter[tuple[str, int, int]] = Counter()
        self._booths_allocated = 0
        self._intents_submitted = 0

    # Applying events ----------------------------------------------------------------------

    def apply(self, envelope: EventEnvelope) -> bool:
        """Apply one event once; False, changing nothing, when its id was applied before.

        A payload the bureau has no figure for still counts as applied.
        """
        event_id = envelope.event_id
        if not event_id:
            raise ValueError("an envelope without an event_id cannot be applied exactly once")
        if event_id in self._applied_event_ids:
            return False
        occurred_us = _timestamp_us(envelope.occurred_at)
        payload_field = envelope.WhichOneof("payload")
        handler = self._HANDLERS.get(payload_field) if payload_field else None
        if handler is not None:
            handler(self, getattr(envelope, payload_field), occurred_us)
        self._applied_event_ids.add(event_id)
        if self._newest_event_us is None or occurred_us > self._newest_event_us:
            self._newest_event_us = occurred_us
        return True

    def _on_exporter_registered(self, event: booth_events.ExporterRegistered, _: int) -> None:
        self._firms.add(event.exporter.credit_code)

    def _on_fair_created(self, event: booth_events.FairCreated, _: int) -> None:
        for quota in event.fair.booth_quotas:
            self._quotas[(event.fair.fair_id, quota.booth_type)] = quota.quota

    def _on_application_submitted(
        self, event: booth_events.BoothApplicationSubmitted, _: int
    ) -> None:
        self._firms.add(event.credit_code)
        self._move_application(
            event.application_id,
            event.fair_id,
            event.booth_type,
            ApplicationState.APPLICATION_STATE_SUBMITTED,
        )

    def _on_application_scored(self, event: booth_events.BoothApplicationScored, _: int) -> None:
        self._move_application(
            event.application_id,
            event.fair_id,
            event.booth_type,
            ApplicationState.APPLICATION_STATE_SCORED,
        )

    def _move_application(
        self, application_id: str, fair_id: str, booth_type: int, state: int
    ) -> None:
        record = self._applications.get(application_id)
        if record is None:
            record = _Application(fair_id, booth_type, state)
            self._applications[application_id] = record
            self._count_application(record, 1)
            return
        if _LIFECYCLE_DEPTH[state] <= _LIFECYCLE_DEPTH[record.state]:
            return
        self._count_state(record, -1)
        record.state = state
        self._count_state(record, 1)

    def _count_application(self, record: _Application, change: int) -> None:
        self._applied_by_booth[(record.fair_id, record.booth_type)] += change
        self._count_state(record, change)

    def _count_state(self, record: _Application, change: int) -> None:
        self._states_by_booth[(record.fair_id, record.booth_type, record.state)] += change
        if record.state == _ALLOCATED:
            self._booths_allocated += change

    def _on_exhibitor_visited(self, event: expo_events.ExhibitorVisited, _: int) -> None:
        self._visiting_buyers.add(event.buyer_id)
        if event.buyer_country:
            self._visiting_countries.add(event.buyer_country.upper())

    def _on_intent_submitted(self, event: expo_events.IntentSubmitted, occurred_us: int) -> None:
        record = self._intents.setdefault(event.intent_id, _Intent())
        if record.submitted_us is not None:
            return
        record.submitted_us = occurred_us
        record.country = event.buyer_country.upper() or UNKNOWN
        record.hs_chapter = hs_chapter(normalise_hs_code(event.hs_code)) or UNKNOWN
        record.industries = tuple(sorted(set(event.industries)))
        record.kind = event.kind
        self._intents_submitted += 1

    def _on_rfq_matched(self, event: expo_events.RfqMatched, _: int) -> None:
        self._intents.setdefault(event.intent_id, _Intent()).recipients.update(event.recipients)

    def _on_answered(self, event: Any, _: int) -> None:
        """QuoteSent or IntentDeclined: an exhibitor answered; its first answer counts."""
        record = self._intents.setdefault(event.intent_id, _Intent())
        response = event.response
        record.response_seconds.setdefault(response.credit_code, response.response_seconds)

    def _on_warehouse_changed(self, event: Any, occurred_us: int) -> None:
        """Every registry event carries the whole warehouse after the change."""
        warehouse = event.warehouse
        current = self._warehouses.get(warehouse.code)
        if current is not None and current.version_us > occurred_us:
            return
        self._warehouses[warehouse.code] = _Warehouse(
            country=warehouse.profile.country_code.upper(),
            capacity_pallets=warehouse.profile.capacity.pallet_positions,
            active=warehouse.status == WarehouseStatus.WAREHOUSE_STATUS_ACTIVE,
            version_us=occurred_us,
        )

    def _on_capacity_reserved(self, event: warehouse_events.CapacityReserved, _: int) -> None:
        # A cancellation seen first (or a copy of this event) already made the record.
        if event.reservation_id not in self._reservations:
            self._reservations[event.reservation_id] = _reservation_from(event, cancelled=False)

    def _on_reservation_cancelled(
        self, event: warehouse_events.ReservationCancelled, _: int
    ) -> None:
        self._reservations[event.reservation_id] = _reservation_from(event, cancelled=True)

    _HANDLERS: ClassVar[dict[str, _Handler]] = {
        "exporter_registered": _on_exporter_registered,
        "fair_created": _on_fair_created,
        "booth_application_submitted": _on_application_submitted,
        "booth_application_scored": _on_application_scored,
        "booth_allocated": _moving_application_to(_ALLOCATED),
        "booth_application_waitlisted": _moving_application_to(_WAITLISTED),
        "booth_application_rejected": _moving_application_to(
            ApplicationState.APPLICATION_STATE_REJECTED
        ),
        "booth_application_withdrawn": _moving_application_to(_WITHDRAWN),
        "waitlist_promoted": _moving_application_to(_ALLOCATED),
        "exhibitor_visited": _on_exhibitor_visited,
        "intent_submitted": _on_intent_submitted,
        "rfq_matched": _on_rfq_matched,
        "quote_sent": _on_answered,
        "intent_declined": _on_answered,
        "warehouse_registered": _on_warehouse_changed,
        "warehouse_updated": _on_warehouse_changed,
        "warehouse_suspended": _on_warehouse_changed,
        "warehouse_reactivated": _on_warehouse_changed,
        "capacity_reserved": _on_capacity_reserved,
        "reservation_cancelled": _on_reservation_cancelled,
    }

    # Figures ------------------------------------------------------------------------------

    def headline(self) -> Headline:
        return Headline(
            firms_served=len(self._firms),
            booths_allocated=self._booths_allocated,
            countries=len(self._visiting_countries),
            buyers=len(self._visiting_buyers),
            intents=self._intents_submitted,
            events_applied=len(self._applied_event_ids),
            as_of=None if self._newest_event_us is None else _datetime(self._newest_event_us),
        )

    def booths(self, fair_id: str | None = None) -> list[BoothFigures]:
        """Every (fair, booth type) with a quota or an application, by fair then type."""
        booths = sorted(
            {
                booth
                for booth in (*self._quotas, *self._applied_by_booth)
                if fair_id is None or booth[0] == fair_id
            }
        )
        return [
            BoothFigures(
                fair_id=booth_fair_id,
                booth_type=_BOOTH_TYPE_NAMES.get(booth_type, "unspecified"),
                quota=self._quotas.get((booth_fair_id, booth_type), 0),
                applied=self._applied_by_booth[(booth_fair_id, booth_type)],
                allocated=self._states_by_booth[(booth_fair_id, booth_type, _ALLOCATED)],
                waitlisted=self._states_by_booth[(booth_fair_id, booth_type, _WAITLISTED)],
                withdrawn=self._states_by_booth[(booth_fair_id, booth_type, _WITHDRAWN)],
            )
            for booth_fair_id, booth_type in booths
        ]

    def intents(self, where: IntentFilter | None = None) -> IntentFigures:
        """Intents matching `where` (all intents without it) and their breakdowns.

        Computed from one record per intent, so any combination of filters is exact; a
        query costs a scan of the intents, fine for a city (7,442 intents) and for a
        national fair's few hundred thousand at dashboard rates. At national scale
        with many readers the agent would instead keep a pre-aggregated cube: counts
        keyed by (UTC hour, buyer country, HS chapter), plus (UTC hour, industry) for the
        industry breakdown, updated in apply(). Days, regions and every filter combination
        then roll up from at most hours x countries x chapters cells, exactly for ranges
        on hour boundaries; only a range cut inside an hour would still need the records
        of its two edge hours, and old records can be dropped once outside every range
        the API accepts.
        """
        by_country: Counter[str] = Counter()
        by_region: Counter[str] = Counter()
        by_hs_chapter: Counter[str] = Counter()
        by_industry: Counter[str] = Counter()
        per_hour: Counter[int] = Counter()
        per_day: Counter[int] = Counter()
        matching = 0
        for submitted_us, record in self._submitted_intents(where):
            matching += 1
            by_country[record.country] += 1
            by_region[region_of(record.country)] += 1
            by_hs_chapter[record.hs_chapter] += 1
            by_industry.update(record.industries)
            per_hour[submitted_us - submitted_us % _HOUR_US] += 1
            per_day[submitted_us - submitted_us % _DAY_US] += 1
        return IntentFigures(
            intents=matching,
            by_country=_sorted_by_key(by_country),
            by_region=_sorted_by_key(by_region),
            by_hs_chapter=_sorted_by_key(by_hs_chapter),
            by_industry=_sorted_by_key(by_industry),
            per_hour=_buckets(per_hour),
            per_day=_buckets(per_day),
        )

    def responses(self, where: IntentFilter | None = None) -> ResponseFigures:
        """Exhibitors' answers to the intents matching `where` (to all without it)."""
        records = (
            self._intents.values()
            if where is None
            else (record for _, record in self._submitted_intents(where))
        )
        addressed = 0
        seconds: list[int] = []
        for record in records:
            addressed += record.addressed
            seconds.extend(record.response_seconds.values())
        answered = len(seconds)
        if not answered:
            return ResponseFigures(addressed, 0, 0.0, 0.0, 0.0)
        on_time = sum(1 for taken in seconds if taken <= RESPONSE_TARGET_SECONDS)
        return ResponseFigures(
            addressed=addressed,
            answered=answered,
            response_rate=answered / addressed if addressed else 0.0,
            # statistics.median averages the two middle values of an even count.
            median_response_seconds=float(statistics.median(seconds)),
            answered_within_24h_share=on_time / answered,
        )

    def warehouses(self, day: date) -> list[WarehouseFigures]:
        """Active warehouses by country on `day`, sorted by country.

        A suspended warehouse leaves its country's capacity, and so do its reservations:
        they stand, but counting them against capacity that no longer counts would push
        utilisation past what is really in use. Reservations follow their warehouse's
        current country, like its capacity does.
        """
        loads: dict[str, _CountryLoad] = {}
        for warehouse in self._warehouses.values():
            if warehouse.active:
                load = loads.setdefault(warehouse.country, _CountryLoad())
                load.warehouses += 1
                load.capacity_pallets += warehouse.capacity_pallets
        day_number = day.toordinal()
        for reservation in self._reservations.values():
            if reservation.cancelled or not (
                reservation.start_day <= day_number < reservation.end_day
            ):
                continue
            warehouse = self._warehouses.get(reservation.warehouse_code)
            if warehouse is not None and warehouse.active:
                loads[warehouse.country].reserved_pallets += reservation.pallets
        return [
            WarehouseFigures(
                country=country,
                warehouses=load.warehouses,
                capacity_pallets=load.capacity_pallets,
                reserved_pallets=load.reserved_pallets,
                utilisation=(
                    load.reserved_pallets / load.capacity_pallets if load.capacity_pallets else 0.0
                ),
            )
            for country, load in sorted(loads.items())
        ]

    def _submitted_intents(self, where: IntentFilter | None) -> Iterator[tuple[int, _Intent]]:
        """Submitted intents matching `where`, with their submission times."""
        where = where or IntentFilter()
        since_us = None if where.since is None else _datetime_us(where.since)
        until_us = None if where.until is None else _datetime_us(where.until)
        country = where.country.upper() if where.country else None
        for record in self._intents.values():
            submitted_us = record.submitted_us
            if submitted_us is None:
                continue
            if since_us is not None and submitted_us < since_us:
                continue
            if until_us is not None and submitted_us >= until_us:
                continue
            if country is not None and record.country != country:
                continue
            if where.hs_chapter is not None and record.hs_chapter != where.hs_chapter:
                continue
            yield submitted_us, record

    # Persistence --------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything but the applied event ids, as JSON- and BSON-friendly values.

        Collections are lists of records, never dicts keyed by data: ids may contain
        "." or "$", which BSON field names must not. Times are integer microseconds
        since the epoch because BSON dates keep only milliseconds, and a restored
        instance must compare times exactly as this one does.
        """
        return {
            "format": SNAPSHOT_FORMAT,
            "newest_event_us": self._newest_event_us,
            "firms": list(self._firms),
            "quotas": [
                {"fair_id": fair_id, "booth_type": booth_type, "quota": quota}
                for (fair_id, booth_type), quota in self._quotas.items()
            ],
            "applications": [
                {
                    "application_id": application_id,
                    "fair_id": record.fair_id,
                    "booth_type": record.booth_type,
                    "state": record.state,
                }
                for application_id, record in self._applications.items()
            ],
            "visiting_buyers": list(self._visiting_buyers),
            "visiting_countries": list(self._visiting_countries),
            "intents": [
                {
                    "intent_id": intent_id,
                    "submitted_us": record.submitted_us,
                    "country": record.country,
                    "hs_chapter": record.hs_chapter,
                    "industries": list(record.industries),
                    "kind": record.kind,
                    "recipients": list(record.recipients),
                    "responses": [
                        {"credit_code": credit_code, "seconds": seconds}
                        for credit_code, seconds in record.response_seconds.items()
                    ],
                }
                for intent_id, record in self._intents.items()
            ],
            "warehouses": [
                {
                    "code": code,
                    "country": record.country,
                    "capacity_pallets": record.capacity_pallets,
                    "active": record.active,
                    "version_us": record.version_us,
                }
                for code, record in self._warehouses.items()
            ],
            "reservations": [
                {
                    "reservation_id": reservation_id,
                    "warehouse_code": record.warehouse_code,
                    "pallets": record.pallets,
                    "start_date": date.fromordinal(record.start_day).isoformat(),
                    "end_date": date.fromordinal(record.end_day).isoformat(),
                    "cancelled": record.cancelled,
                }
                for reservation_id, record in self._reservations.items()
            ],
        }

    @classmethod
    def restore(cls, snapshot: dict[str, Any], applied_event_ids: Iterable[str]) -> Aggregates:
        """The instance `snapshot` was taken of, given the ids of the events it holds.

        The ids must be those whose effects the snapshot holds. Persist both in one
        write, or the snapshot first: since every handler is idempotent on its own
        aggregate, an id missing from the set only lets its event be applied again
        harmlessly, whereas an id persisted without its effect would lose the event.
        """
        if snapshot.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"unknown bureau snapshot format {snapshot.get('format')!r}")
        restored = cls()
        restored._applied_event_ids = set(applied_event_ids)
        restored._newest_event_us = snapshot["newest_event_us"]
        restored._firms = set(snapshot["firms"])
        restored._quotas = {
            (quota["fair_id"], quota["booth_type"]): quota["quota"] for quota in snapshot["quotas"]
        }
        for application in snapshot["applications"]:
            record = _Application(
                application["fair_id"], application["booth_type"], application["state"]
            )
            restored._applications[application["application_id"]] = record
            restored._count_application(record, 1)
        restored._visiting_buyers = set(snapshot["visiting_buyers"])
        restored._visiting_countries = set(snapshot["visiting_countries"])
        for intent in snapshot["intents"]:
            restored._intents[intent["intent_id"]] = _Intent(
                submitted_us=intent["submitted_us"],
                country=intent["country"],
                hs_chapter=intent["hs_chapter"],
                industries=tuple(intent["industries"]),
                kind=intent["kind"],
                recipients=set(intent["recipients"]),
                response_seconds={
                    response["credit_code"]: response["seconds"] for response in intent["responses"]
                },
            )
            if intent["submitted_us"] is not None:
                restored._intents_submitted += 1
        restored._warehouses = {
            warehouse["code"]: _Warehouse(
                country=warehouse["country"],
                capacity_pallets=warehouse["capacity_pallets"],
                active=warehouse["active"],
                version_us=warehouse["version_us"],
            )
            for warehouse in snapshot["warehouses"]
        }
        restored._reservations = {
            reservation["reservation_id"]: _Reservation(
                warehouse_code=reservation["warehouse_code"],
                pallets=reservation["pallets"],
                start_day=date.fromisoformat(reservation["start_date"]).toordinal(),
                end_day=date.fromisoformat(reservation["end_date"]).toordinal(),
                cancelled=reservation["cancelled"],
            )
            for reservation in snapshot["reservations"]
        }
        return restored


# Helpers ----------------------------------------------------------------------------------


def _reservation_from(
    event: warehouse_events.CapacityReserved | warehouse_events.ReservationCancelled,
    *,
    cancelled: bool,
) -> _Reservation:
    return _Reservation(
        warehouse_code=event.warehouse_code,
        pallets=event.pallet_positions,
        start_day=date.fromisoformat(event.start_date).toordinal(),
        end_day=date.fromisoformat(event.end_date).toordinal(),
        cancelled=cancelled,
    )


def _timestamp_us(timestamp: Timestamp) -> int:
    # Integer arithmetic on the fields: much cheaper than ToDatetime() per event, and
    # truncating nanoseconds the same way datetime does.
    return timestamp.seconds * 1_000_000 + timestamp.nanos // 1_000


def _datetime_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"{moment.isoformat()} has no time zone; figures are kept in UTC")
    return (moment - _EPOCH) // _MICROSECOND


def _datetime(microseconds: int) -> datetime:
    return _EPOCH + timedelta(microseconds=microseconds)


def _sorted_by_key(counts: Counter[str]) -> dict[str, int]:
    return dict(sorted(counts.items()))


def _buckets(counts: Counter[int]) -> list[TimeBucket]:
    return [TimeBucket(_datetime(start), intents) for start, intents in sorted(counts.items())]
