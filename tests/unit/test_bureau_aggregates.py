"""The bureau's projections and their dispatcher: every figure, exactly once, across
snapshot and restore; unreadable events skipped and counted."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pycountry
import pytest
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from bureau.figures import BureauFigures
from bureau.projections.base import Projection, Route, route
from bureau.projections.booth import BoothFigures, BoothProjection
from bureau.projections.dispatcher import Dispatcher
from bureau.projections.expo import (
    INTENT_STATES,
    ExpoProjection,
    IntentFilter,
    ResponseFigures,
    TimeBucket,
)
from bureau.projections.warehouse import (
    ReservationCounts,
    ReservationFigures,
    WarehouseFigures,
    WarehouseProjection,
)
from bureau.regions import REGION_BY_ALPHA_2, REGIONS, UNKNOWN_REGION, region_of
from chuhai.booth.v1 import events_pb2 as booth
from chuhai.booth.v1 import resources_pb2 as booth_resources
from chuhai.events.v1.envelope_pb2 import EventEnvelope
from chuhai.expo.v1 import events_pb2 as expo
from chuhai.expo.v1 import resources_pb2 as expo_resources
from chuhai.warehouse.v1 import events_pb2 as warehouse
from runtime.adapters.events import envelope_for, schema_version

T0 = datetime(2022, 10, 15, 8, 0, tzinfo=UTC)
STANDARD = booth_resources.BoothType.BOOTH_TYPE_STANDARD
BRAND = booth_resources.BoothType.BOOTH_TYPE_BRAND
State = booth_resources.ApplicationState
INQUIRY = expo_resources.IntentKind.INTENT_KIND_INQUIRY
RFQ = expo_resources.IntentKind.INTENT_KIND_RFQ


# Building real envelopes ------------------------------------------------------------------


def event(payload: Message, aggregate_id: str, at: datetime = T0) -> EventEnvelope:
    producer = payload.DESCRIPTOR.full_name.split(".")[1]
    return envelope_for(payload, aggregate_id=aggregate_id, producer=producer, occurred_at=at)


def copy_with_new_id(envelope: EventEnvelope) -> EventEnvelope:
    """The same payload recorded again under another event id."""
    copy = EventEnvelope()
    copy.CopyFrom(envelope)
    copy.event_id = envelope.event_id + "-copy"
    return copy


def exporter_registered(credit_code: str) -> EventEnvelope:
    registered = booth.ExporterRegistered(credit_code=credit_code, name="Xuchang Hair Co")
    return event(registered, credit_code)


def fair_created(fair_id: str, standard: int, brand: int, at: datetime = T0) -> EventEnvelope:
    created = booth.FairCreated(
        fair_id=fair_id,
        quotas=[
            booth.FairCreated.Quota(booth_type=STANDARD, quota=standard),
            booth.FairCreated.Quota(booth_type=BRAND, quota=brand),
        ],
    )
    return event(created, fair_id, at)


@dataclass
class Application:
    """Builds the events of one booth application, in its lifecycle order."""

    application_id: str
    fair_id: str = "canton-132"
    credit_code: str = "91411000MA0000001X"
    booth_type: int = STANDARD
    clock: datetime = T0

    def _next(self, payload: Message) -> EventEnvelope:
        self.clock += timedelta(minutes=1)
        return event(payload, self.application_id, self.clock)

    def _ids(self) -> dict[str, Any]:
        return {
            "application_id": self.application_id,
            "fair_id": self.fair_id,
            "booth_type": self.booth_type,
        }

    def submitted(self) -> EventEnvelope:
        return self._next(
            booth.BoothApplicationSubmitted(
                **self._ids(), credit_code=self.credit_code, main_product_hs_code="670420"
            )
        )

    def scored(self) -> EventEnvelope:
        return self._next(booth.BoothApplicationScored(**self._ids(), score=70))

    def allocated(self) -> EventEnvelope:
        return self._next(booth.BoothAllocated(**self._ids(), credit_code=self.credit_code))

    def waitlisted(self) -> EventEnvelope:
        return self._next(booth.BoothApplicationWaitlisted(**self._ids(), waitlist_position=1))

    def rejected(self) -> EventEnvelope:
        return self._next(booth.BoothApplicationRejected(**self._ids(), reason="incomplete"))

    def withdrawn(self, previous_state: int) -> EventEnvelope:
        return self._next(
            booth.BoothApplicationWithdrawn(
                **self._ids(), credit_code=self.credit_code, previous_state=previous_state
            )
        )

    def promoted(self) -> list[EventEnvelope]:
        """What the booth service records for a promotion: the allocation, then the news."""
        return [self.allocated(), self._next(booth.WaitlistPromoted(**self._ids()))]


def exhibitor_visited(buyer_id: str, country: str, at: datetime = T0) -> EventEnvelope:
    visit = expo.ExhibitorVisited(
        visit_id=f"{buyer_id}-{at.isoformat()}", buyer_id=buyer_id, buyer_country=country
    )
    return event(visit, buyer_id, at)


def intent_submitted(
    intent_id: str,
    at: datetime = T0,
    country: str = "DE",
    hs_code: str = "670420",
    kind: int = RFQ,
    industries: Iterable[str] = ("hair products",),
) -> EventEnvelope:
    intent = expo.IntentSubmitted(
        intent_id=intent_id,
        buyer_id=f"buyer-of-{intent_id}",
        buyer_country=country,
        kind=kind,
        hs_code=hs_code,
        industries=list(industries),
    )
    return event(intent, intent_id, at)


def rfq_matched(intent_id: str, recipients: Iterable[str]) -> EventEnvelope:
    return event(expo.RfqMatched(intent_id=intent_id, recipients=list(recipients)), intent_id)


def quote_sent(intent_id: str, credit_code: str, seconds: int) -> EventEnvelope:
    quote = expo.QuoteSent(intent_id=intent_id, credit_code=credit_code, response_seconds=seconds)
    return event(quote, intent_id)


def intent_declined(
    intent_id: str, credit_code: str, seconds: int, *, all_declined: bool = False
) -> EventEnvelope:
    declined = expo.IntentDeclined(
        intent_id=intent_id,
        credit_code=credit_code,
        response_seconds=seconds,
        all_declined=all_declined,
    )
    return event(declined, intent_id)


def intent_closed(intent_id: str, reason: str = "buyer") -> EventEnvelope:
    return event(expo.IntentClosed(intent_id=intent_id, reason=reason), intent_id)


def intent_expired(intent_id: str) -> EventEnvelope:
    return event(expo.IntentExpired(intent_id=intent_id), intent_id)


def exhibitor_joined(edition_id: str, credit_code: str) -> EventEnvelope:
    joined = expo.ExhibitorJoined(edition_id=edition_id, credit_code=credit_code)
    return event(joined, f"{edition_id}:{credit_code}")


def warehouse_registered(code: str, country: str, pallets: int, at: datetime = T0) -> EventEnvelope:
    registered = warehouse.WarehouseRegistered(
        code=code, country_code=country, capacity_pallet_positions=pallets
    )
    return event(registered, code, at)


def warehouse_updated(
    code: str,
    country: str,
    pallets: int,
    at: datetime,
    previous: tuple[str, int] = ("", 0),
) -> EventEnvelope:
    """The profile after the update, and (country, pallets) before it."""
    updated = warehouse.WarehouseUpdated(
        code=code,
        country_code=country,
        capacity_pallet_positions=pallets,
        changed_fields=["country_code", "capacity"],
        previous_country_code=previous[0],
        previous_capacity_pallet_positions=previous[1],
    )
    return event(updated, code, at)


def warehouse_suspended(code: str, country: str, at: datetime) -> EventEnvelope:
    suspended = warehouse.WarehouseSuspended(code=code, country_code=country, reason="audit")
    return event(suspended, code, at)


def warehouse_reactivated(code: str, country: str, at: datetime) -> EventEnvelope:
    return event(warehouse.WarehouseReactivated(code=code, country_code=country), code, at)


def capacity_reserved(
    reservation_id: str, code: str, pallets: int, start: str, end: str, country: str = ""
) -> EventEnvelope:
    reserved = warehouse.CapacityReserved(
        reservation_id=reservation_id,
        warehouse_code=code,
        country_code=country,
        pallet_positions=pallets,
        start_date=start,
        end_date=end,
    )
    return event(reserved, code)


def reservation_cancelled(
    reservation_id: str, code: str, pallets: int, start: str, end: str, country: str = ""
) -> EventEnvelope:
    cancelled = warehouse.ReservationCancelled(
        reservation_id=reservation_id,
        warehouse_code=code,
        country_code=country,
        pallet_positions=pallets,
        start_date=start,
        end_date=end,
    )
    return event(cancelled, code)


def applied(*envelopes: EventEnvelope) -> BureauFigures:
    bureau = BureauFigures()
    for envelope in envelopes:
        bureau.apply(envelope)
    return bureau


# Exactly once -----------------------------------------------------------------------------


def test_an_event_applied_twice_counts_once() -> None:
    bureau = BureauFigures()
    submitted = intent_submitted("intent-1")

    assert bureau.apply(submitted) is True
    assert bureau.apply(submitted) is False

    headline = bureau.headline()
    assert (headline.intents, headline.events_applied) == (1, 1)
    assert bureau.dispatcher.redelivered_count == 1


def test_the_same_event_redelivered_at_another_offset_after_newer_ones_is_refused() -> None:
    application = Application("app-1")
    submitted, scored, allocated = (
        application.submitted(),
        application.scored(),
        application.allocated(),
    )
    bureau = applied(submitted, scored, allocated)

    assert bureau.apply(scored) is False
    assert bureau.apply(submitted) is False
    assert bureau.booths()[0].allocated == 1
    assert bureau.headline().events_applied == 3


def test_an_older_application_event_recorded_again_does_not_regress_its_state() -> None:
    application = Application("app-1")
    submitted, scored, waitlisted = (
        application.submitted(),
        application.scored(),
        application.waitlisted(),
    )
    promotion = application.promoted()
    bureau = applied(submitted, scored, waitlisted, *promotion)

    # A copy under a new id passes the id check; the lifecycle must still refuse it.
    assert bureau.apply(copy_with_new_id(waitlisted)) is True
    assert bureau.apply(copy_with_new_id(submitted)) is True

    [figures] = bureau.booths()
    assert (figures.applied, figures.allocated, figures.waitlisted) == (1, 1, 0)
    assert bureau.headline().booths_allocated == 1


def test_a_copy_of_an_intent_under_a_new_id_counts_once() -> None:
    submitted = intent_submitted("intent-1")
    quoted = quote_sent("intent-1", "exporter-a", 600)
    bureau = applied(submitted, rfq_matched("intent-1", ["exporter-a"]), quoted)

    bureau.apply(copy_with_new_id(submitted))
    bureau.apply(copy_with_new_id(quoted))

    assert bureau.intents().intents == 1
    assert bureau.headline().intents == 1
    assert bureau.responses().answered == 1


def test_a_payload_without_a_figure_still_counts_as_applied() -> None:
    bureau = BureauFigures()
    fair_opened = event(booth.FairOpened(fair_id="canton-132"), "canton-132", T0)
    fair_closed = event(
        booth.FairClosed(fair_id="canton-132"), "canton-132", T0 + timedelta(hours=1)
    )

    assert bureau.apply(fair_opened) is True
    assert bureau.apply(fair_closed) is True
    assert bureau.apply(fair_closed) is False

    headline = bureau.headline()
    assert headline.events_applied == 2
    assert headline.as_of == T0 + timedelta(hours=1)
    assert bureau.events_skipped() == 0


# Skipping what the bureau cannot read -----------------------------------------------------


def test_an_unknown_payload_type_is_skipped_and_counted_never_applied() -> None:
    bureau = applied(intent_submitted("i-1", T0))
    # What a producer ahead of this build sends: a payload field this envelope lacks.
    unknown = EventEnvelope(event_id="from-the-future", type="chuhai.future.v1.Unknown")
    unknown.occurred_at.FromDatetime(T0 + timedelta(hours=1))

    assert bureau.apply(unknown) is False
    # Delivered again: still not applied, and counted once.
    assert bureau.apply(unknown) is False

    headline = bureau.headline()
    assert (headline.events_applied, headline.intents) == (1, 1)
    assert headline.as_of == T0
    assert bureau.events_skipped() == 1
    assert bureau.dispatcher.skipped_by_kind() == {"chuhai.future.v1.Unknown v1": 1}


def test_a_schema_version_neither_read_nor_upcast_is_skipped_and_counted() -> None:
    """Version 1 of a changed payload is read (see test_bureau_upcast); a version from
    a producer ahead of this build is not."""
    bureau = BureauFigures()
    future_fair = fair_created("canton-131", standard=3, brand=1)
    future_fair.schema_version = 3
    future_exporter = exporter_registered("firm-a")
    future_exporter.schema_version = 3

    assert bureau.apply(future_fair) is False
    assert bureau.apply(future_exporter) is False

    assert bureau.booths() == []
    assert bureau.headline().firms_served == 0
    assert bureau.headline().events_applied == 0
    assert bureau.headline().as_of is None
    assert bureau.events_skipped() == 2
    assert bureau.dispatcher.skipped_by_kind() == {
        "chuhai.booth.v1.ExporterRegistered v3": 1,
        "chuhai.booth.v1.FairCreated v3": 1,
    }


def test_a_skipped_event_is_not_remembered_as_applied() -> None:
    """A bureau that learns to read it applies it when it is delivered again."""
    unreadable = exporter_registered("firm-a")
    unreadable.schema_version = 3
    today = BureauFigures()
    assert today.apply(unreadable) is False

    class FutureBooth(BoothProjection):
        def routes(self) -> list[Route]:
            return [
                route(booth.ExporterRegistered, self._on_exporter_registered, versions=[2, 3]),
            ]

    upgraded = BureauFigures(
        Dispatcher.restore(today.snapshot(), [], [FutureBooth, ExpoProjection, WarehouseProjection])
    )
    assert upgraded.apply(unreadable) is True
    assert upgraded.headline().firms_served == 1
    assert upgraded.events_skipped() == 0


def test_an_envelope_from_before_versioning_is_read_as_version_one() -> None:
    visit = exhibitor_visited("buyer-1", "DE")
    visit.schema_version = 0

    bureau = applied(visit)

    assert (bureau.headline().buyers, bureau.events_skipped()) == (1, 0)


# The dispatcher ---------------------------------------------------------------------------


class Recording(Projection):
    """Records what it is handed, for one payload type at version 1."""

    name = "recording"

    def __init__(self) -> None:
        self.handled: list[tuple[Message, int]] = []

    def routes(self) -> list[Route]:
        return [route(expo.ExhibitorVisited, self._record, versions=[1])]

    def _record(self, payload: Message, occurred_us: int) -> None:
        self.handled.append((payload, occurred_us))

    def snapshot(self) -> dict[str, Any]:
        return {"handled": len(self.handled)}

    @classmethod
    def restore(cls, snapshot: dict[str, Any]) -> Recording:
        return cls()


def test_the_dispatcher_routes_by_the_payload_type() -> None:
    recording = Recording()
    dispatcher = Dispatcher([recording])
    visit = exhibitor_visited("buyer-1", "DE", T0)
    # The envelope's type text is not what routes it: the payload's own type is.
    visit.type = "chuhai.booth.v1.FairOpened"
    fair_opened = event(booth.FairOpened(fair_id="canton-132"), "canton-132")

    assert dispatcher.apply(visit) is True
    assert dispatcher.apply(fair_opened) is False

    [(payload, occurred_us)] = recording.handled
    assert payload == visit.exhibitor_visited
    assert occurred_us == (T0 - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    assert dispatcher.skipped_by_kind() == {"chuhai.booth.v1.FairOpened v1": 1}


def test_a_payload_type_routed_to_two_projections_is_refused() -> None:
    class AlsoVisits(Recording):
        name = "also-visits"

    with pytest.raises(ValueError, match=r"chuhai\.expo\.v1\.ExhibitorVisited"):
        Dispatcher([Recording(), AlsoVisits()])


def test_every_event_the_services_publish_is_read_at_its_current_version() -> None:
    """Nothing a producer of this build records is skipped; a new payload type, or a
    version bump in a .proto, fails here until a projection declares it."""
    # The reservation handlers read dates, which an empty payload lacks.
    dated = {
        warehouse.CapacityReserved: capacity_reserved("r-1", "WH-1", 1, "2024-01-01", "2024-01-02"),
        warehouse.ReservationCancelled: reservation_cancelled(
            "r-1", "WH-1", 1, "2024-01-01", "2024-01-02"
        ),
    }
    bureau = BureauFigures()

    for payload_field in EventEnvelope.DESCRIPTOR.oneofs_by_name["payload"].fields:
        payload_type = GetMessageClass(payload_field.message_type)
        # envelope_for stamps the payload type's current schema version.
        envelope = dated.get(payload_type) or event(payload_type(), "aggregate")
        assert envelope.schema_version == schema_version(payload_type)
        assert bureau.apply(envelope) is True, payload_field.message_type.full_name

    assert bureau.events_skipped() == 0


def test_an_envelope_without_an_event_id_is_refused() -> None:
    nameless = intent_submitted("intent-1")
    nameless.event_id = ""

    with pytest.raises(ValueError, match="event_id"):
        BureauFigures().apply(nameless)


# Headline ---------------------------------------------------------------------------------


def test_firms_served_are_distinct_firms_that_registered_or_applied() -> None:
    bureau = applied(
        exporter_registered("firm-a"),
        exporter_registered("firm-b"),
        Application("app-b", credit_code="firm-b").submitted(),
        Application("app-c", credit_code="firm-c").submitted(),
        Application("app-c2", credit_code="firm-c", booth_type=BRAND).submitted(),
    )

    assert bureau.headline().firms_served == 3


def test_buyers_and_countries_are_those_of_visits_only() -> None:
    registered = expo.BuyerRegistered(buyer_id="buyer-never-visited", country="FR")
    bureau = applied(
        event(registered, "buyer-never-visited"),
        exhibitor_visited("buyer-1", "DE"),
        exhibitor_visited("buyer-1", "DE", T0 + timedelta(minutes=5)),
        exhibitor_visited("buyer-2", "DE"),
        exhibitor_visited("buyer-3", "US"),
    )

    headline = bureau.headline()
    assert (headline.buyers, headline.countries) == (3, 2)


def test_as_of_is_the_newest_event_even_when_an_older_one_arrives_last() -> None:
    bureau = applied(
        intent_submitted("intent-new", T0 + timedelta(days=1)),
        intent_submitted("intent-old", T0),
    )

    assert bureau.headline().as_of == T0 + timedelta(days=1)
    assert BureauFigures().headline().as_of is None


# Booths -----------------------------------------------------------------------------------


def test_booths_count_applications_by_current_state_against_quota() -> None:
    kept = Application("app-kept")
    given_up = Application("app-given-up")
    promoted = Application("app-promoted")
    waiting = Application("app-waiting")
    refused = Application("app-refused")
    brand = Application("app-brand", booth_type=BRAND)
    bureau = applied(
        fair_created("canton-132", standard=3, brand=1),
        *(a.submitted() for a in (kept, given_up, promoted, waiting, refused, brand)),
        *(a.scored() for a in (kept, given_up, promoted, waiting, refused, brand)),
        kept.allocated(),
        given_up.allocated(),
        brand.allocated(),
        promoted.waitlisted(),
        waiting.waitlisted(),
        refused.rejected(),
        given_up.withdrawn(State.APPLICATION_STATE_ALLOCATED),
        *promoted.promoted(),
    )

    assert bureau.booths() == [
        BoothFigures("canton-132", "standard", 3, 5, 2, 1, 1),
        BoothFigures("canton-132", "brand", 1, 1, 1, 0, 0),
    ]
    assert bureau.headline().booths_allocated == 3


def test_an_allocation_run_summary_is_applied_and_changes_no_figure() -> None:
    """AllocationCompleted repeats counts the application events already gave: the
    bureau reads it (never skips it) and counts nothing twice."""
    first, second = Application("app-1"), Application("app-2")
    bureau = applied(
        fair_created("canton-132", standard=1, brand=0),
        *(e for a in (first, second) for e in (a.submitted(), a.scored())),
        first.allocated(),
        second.waitlisted(),
    )
    before = (bureau.booths(), bureau.headline().booths_allocated)
    completed = booth.AllocationCompleted(
        fair_id="canton-132", booth_type=STANDARD, quota=1, allocated=1, waitlisted=1
    )

    assert bureau.apply(event(completed, "canton-132", T0 + timedelta(hours=1))) is True

    assert (bureau.booths(), bureau.headline().booths_allocated) == before
    assert bureau.headline().events_applied == 8
    assert bureau.events_skipped() == 0


def test_a_promotion_alone_is_enough_to_hold_the_booth() -> None:
    """WaitlistPromoted says the booth is held, whether or not BoothAllocated came too."""
    application = Application("app-1")
    bureau = applied(application.submitted(), application.scored(), application.waitlisted())

    bureau.apply(application.promoted()[1])

    [figures] = bureau.booths()
    assert (figures.allocated, figures.waitlisted) == (1, 0)


def test_booths_are_listed_per_fair_and_can_be_filtered_by_fair() -> None:
    bureau = applied(
        fair_created("canton-132", standard=2, brand=0),
        fair_created("china-asean-19", standard=4, brand=1),
        Application("app-1", fair_id="china-asean-19").submitted(),
    )

    assert [(b.fair_id, b.booth_type, b.quota) for b in bureau.booths()] == [
        ("canton-132", "standard", 2),
        ("canton-132", "brand", 0),
        ("china-asean-19", "standard", 4),
        ("china-asean-19", "brand", 1),
    ]
    assert bureau.booths("china-asean-19")[0] == BoothFigures(
        "china-asean-19", "standard", 4, 1, 0, 0, 0
    )
    assert bureau.booths("no-such-fair") == []


def test_booths_allocated_over_every_fair_exclude_withdrawn_ones() -> None:
    first = Application("app-1", fair_id="canton-132")
    second = Application("app-2", fair_id="china-asean-19")
    bureau = applied(
        first.submitted(),
        first.scored(),
        first.allocated(),
        second.submitted(),
        second.scored(),
        second.allocated(),
    )
    assert bureau.headline().booths_allocated == 2

    bureau.apply(second.withdrawn(State.APPLICATION_STATE_ALLOCATED))

    assert bureau.headline().booths_allocated == 1


# Intents ----------------------------------------------------------------------------------


def test_intents_break_down_by_country_region_chapter_and_industry() -> None:
    bureau = applied(
        intent_submitted("i-1", country="DE", hs_code="670420", industries=["hair products"]),
        intent_submitted(
            "i-2", country="FR", hs_code="8504.40", industries=["hair products", "power"]
        ),
        intent_submitted("i-3", country="NG", hs_code="670411", industries=[]),
        intent_submitted("i-4", country="", hs_code="", industries=["agriculture"]),
    )

    figures = bureau.intents()
    assert figures.intents == 4
    assert figures.by_country == {"DE": 1, "FR": 1, "NG": 1, "unknown": 1}
    assert figures.by_region == {"Africa": 1, "Europe": 2, UNKNOWN_REGION: 1}
    assert figures.by_hs_chapter == {"67": 2, "85": 1, "unknown": 1}
    assert figures.by_industry == {"agriculture": 1, "hair products": 2, "power": 1}
    assert bureau.headline().intents == 4


def test_an_intent_listing_an_industry_twice_counts_once_in_it() -> None:
    bureau = applied(intent_submitted("i-1", industries=["power", "power", "hair"]))

    assert bureau.intents().by_industry == {"hair": 1, "power": 1}


def test_intent_filters_take_a_half_open_time_range_and_combine() -> None:
    bureau = applied(
        intent_submitted("at-start", T0, country="DE", hs_code="670420"),
        intent_submitted("inside", T0 + timedelta(hours=1), country="US", hs_code="670420"),
        intent_submitted("inside-2", T0 + timedelta(hours=2), country="DE", hs_code="850440"),
        intent_submitted("at-end", T0 + timedelta(hours=3), country="DE", hs_code="670420"),
    )
    window = {"since": T0, "until": T0 + timedelta(hours=3)}

    def matching(**criteria: Any) -> int:
        return bureau.intents(IntentFilter(**criteria)).intents

    assert matching(**window) == 3
    assert matching(since=T0 + timedelta(microseconds=1)) == 3
    assert matching(until=T0 + timedelta(hours=3, microseconds=1)) == 4
    assert matching(country="DE") == 3
    assert matching(country="de") == 3
    assert matching(hs_chapter="85") == 1
    assert matching(**window, country="DE") == 2
    assert matching(**window, country="DE", hs_chapter="67") == 1
    assert matching(country="JP") == 0
    assert bureau.intents(IntentFilter(**window, country="DE")).by_hs_chapter == {
        "67": 1,
        "85": 1,
    }


def test_a_filter_time_without_a_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        BureauFigures().intents(IntentFilter(since=datetime(2022, 10, 15)))


def test_intents_per_hour_and_day_fall_in_tumbling_utc_windows() -> None:
    beijing = timezone(timedelta(hours=8))
    bureau = applied(
        intent_submitted("i-1", datetime(2022, 10, 15, 8, 59, 59, 999999, tzinfo=UTC)),
        intent_submitted("i-2", datetime(2022, 10, 15, 9, 0, tzinfo=UTC)),
        intent_submitted("i-3", datetime(2022, 10, 15, 9, 30, tzinfo=UTC)),
        # 07:10 in Beijing is 23:10 UTC on the day before.
        intent_submitted("i-4", datetime(2022, 10, 16, 7, 10, tzinfo=beijing)),
        intent_submitted("i-5", datetime(2022, 10, 16, 0, 0, tzinfo=UTC)),
    )

    figures = bureau.intents()
    assert figures.per_hour == [
        TimeBucket(datetime(2022, 10, 15, 8, tzinfo=UTC), 1),
        TimeBucket(datetime(2022, 10, 15, 9, tzinfo=UTC), 2),
        TimeBucket(datetime(2022, 10, 15, 23, tzinfo=UTC), 1),
        TimeBucket(datetime(2022, 10, 16, 0, tzinfo=UTC), 1),
    ]
    assert figures.per_day == [
        TimeBucket(datetime(2022, 10, 15, tzinfo=UTC), 4),
        TimeBucket(datetime(2022, 10, 16, tzinfo=UTC), 1),
    ]


# Exhibitor responses ----------------------------------------------------------------------


def test_responses_count_one_addressed_per_inquiry_and_per_rfq_recipient() -> None:
    bureau = applied(
        intent_submitted("inquiry", kind=INQUIRY),
        quote_sent("inquiry", "exporter-a", 600),
        intent_submitted("rfq", kind=RFQ),
        rfq_matched("rfq", ["exporter-a", "exporter-b", "exporter-c"]),
        intent_declined("rfq", "exporter-b", 86_400),
        quote_sent("rfq", "exporter-c", 90_000),
        intent_submitted("unanswered", kind=INQUIRY),
    )

    assert bureau.responses() == ResponseFigures(
        addressed=5,
        answered=3,
        response_rate=3 / 5,
        median_response_seconds=86_400.0,
        answered_within_24h_share=2 / 3,
    )


@pytest.mark.parametrize(
    ("seconds", "median"),
    [
        ([30, 7_200, 600], 600.0),
        ([30, 7_200, 600, 100_000], (600 + 7_200) / 2),
        ([45], 45.0),
    ],
)
def test_median_response_time_is_exact(seconds: list[int], median: float) -> None:
    recipients = [f"exporter-{index}" for index in range(len(seconds))]
    bureau = applied(
        intent_submitted("rfq"),
        rfq_matched("rfq", recipients),
        *(quote_sent("rfq", code, taken) for code, taken in zip(recipients, seconds, strict=True)),
    )

    assert bureau.responses().median_response_seconds == median


def test_responses_without_any_answer_are_zero() -> None:
    bureau = applied(intent_submitted("rfq"), rfq_matched("rfq", ["exporter-a"]))

    assert bureau.responses() == ResponseFigures(1, 0, 0.0, 0.0, 0.0)
    assert BureauFigures().responses() == ResponseFigures(0, 0, 0.0, 0.0, 0.0)


def test_responses_follow_the_intent_filter() -> None:
    bureau = applied(
        intent_submitted("german", country="DE", kind=INQUIRY),
        quote_sent("german", "exporter-a", 100),
        intent_submitted("american", country="US", kind=INQUIRY),
        intent_declined("american", "exporter-b", 300),
    )

    german = bureau.responses(IntentFilter(country="DE"))
    assert (german.addressed, german.answered, german.median_response_seconds) == (1, 1, 100.0)
    assert bureau.responses().median_response_seconds == 200.0


# Intents by state -------------------------------------------------------------------------


def by_state(**counts: int) -> dict[str, int]:
    """Every state, those not named at 0, in the order the bureau lists them."""
    return {state: counts.get(state, 0) for state in INTENT_STATES}


# One history per path through expo's intent state machine, in the order expo records it,
# and the state it ends in.
INTENT_HISTORIES = {
    "open": lambda i: [intent_submitted(i, kind=RFQ), rfq_matched(i, ["a", "b"])],
    "open after one of two declined": lambda i: [
        intent_submitted(i, kind=RFQ),
        rfq_matched(i, ["a", "b"]),
        intent_declined(i, "a", 60),
    ],
    "quoted": lambda i: [
        intent_submitted(i, kind=RFQ),
        rfq_matched(i, ["a", "b"]),
        quote_sent(i, "a", 60),
    ],
    "quoted, then the other declined": lambda i: [
        intent_submitted(i, kind=RFQ),
        rfq_matched(i, ["a", "b"]),
        quote_sent(i, "a", 60),
        intent_declined(i, "b", 90),
    ],
    "declined": lambda i: [
        intent_submitted(i, kind=INQUIRY),
        intent_declined(i, "a", 60, all_declined=True),
    ],
    "closed by enough quotes": lambda i: [
        intent_submitted(i, kind=RFQ),
        rfq_matched(i, ["a", "b"]),
        quote_sent(i, "a", 60),
        intent_closed(i, "max_quotes"),
    ],
    "closed by the buyer": lambda i: [intent_submitted(i, kind=INQUIRY), intent_closed(i)],
    "closed at the deadline after a quote": lambda i: [
        intent_submitted(i, kind=INQUIRY),
        quote_sent(i, "a", 60),
        intent_closed(i, "deadline"),
    ],
    "expired": lambda i: [intent_submitted(i, kind=INQUIRY), intent_expired(i)],
}


def _ends_in(path: str) -> str:
    return path.split(" ")[0].rstrip(",")


@pytest.mark.parametrize("path", sorted(INTENT_HISTORIES))
def test_an_intent_is_in_the_state_its_events_took_it_to(path: str) -> None:
    bureau = applied(*INTENT_HISTORIES[path]("i-1"))

    assert bureau.intents().by_state == by_state(**{_ends_in(path): 1})


def test_each_event_kind_moves_one_intent_from_one_state_to_the_next() -> None:
    bureau = BureauFigures()
    steps = [
        (intent_submitted("i-1", kind=RFQ), by_state(open=1)),
        (rfq_matched("i-1", ["a", "b", "c"]), by_state(open=1)),
        (intent_declined("i-1", "a", 60), by_state(open=1)),
        (quote_sent("i-1", "b", 70), by_state(quoted=1)),
        (intent_declined("i-1", "c", 80), by_state(quoted=1)),
        (intent_closed("i-1", "deadline"), by_state(closed=1)),
        (intent_submitted("i-2", kind=INQUIRY), by_state(open=1, closed=1)),
        (intent_expired("i-2"), by_state(expired=1, closed=1)),
        (intent_submitted("i-3", kind=INQUIRY), by_state(open=1, expired=1, closed=1)),
        (
            intent_declined("i-3", "a", 60, all_declined=True),
            by_state(declined=1, expired=1, closed=1),
        ),
    ]
    for envelope, expected in steps:
        bureau.apply(envelope)
        assert bureau.intents().by_state == expected, envelope.type


@pytest.mark.parametrize("path", sorted(INTENT_HISTORIES))
def test_an_intents_state_is_the_same_in_every_order_and_under_copies(path: str) -> None:
    history = INTENT_HISTORIES[path]("i-1")
    expected = by_state(**{_ends_in(path): 1})
    for order in itertools.permutations(history):
        # Each event delivered twice, and recorded again under a new id.
        bureau = BureauFigures()
        for envelope in [*order, *order, *map(copy_with_new_id, order)]:
            bureau.apply(envelope)
            counted = bureau.intents()
            # An answer or an ending seen before its submission counts nowhere yet.
            assert sum(counted.by_state.values()) == counted.intents <= 1
            assert min(counted.by_state.values()) >= 0
        assert bureau.intents().by_state == expected, [e.type for e in order]


def test_intents_by_state_follow_the_filter() -> None:
    bureau = applied(
        intent_submitted("german", country="DE", kind=INQUIRY),
        quote_sent("german", "a", 60),
        intent_submitted("american", country="US", kind=INQUIRY),
        intent_expired("american"),
    )

    assert bureau.intents(IntentFilter(country="DE")).by_state == by_state(quoted=1)
    assert bureau.intents(IntentFilter(country="US")).by_state == by_state(expired=1)
    assert bureau.intents(IntentFilter(country="FR")).by_state == by_state()


# Exhibitors -------------------------------------------------------------------------------


def test_exhibitors_count_once_per_edition_they_joined() -> None:
    joined = exhibitor_joined("cloud-132", "firm-a")
    bureau = applied(
        joined,
        exhibitor_joined("cloud-132", "firm-b"),
        exhibitor_joined("cloud-133", "firm-a"),
        joined,
        copy_with_new_id(joined),
    )

    assert bureau.exhibitors() == {"cloud-132": 2, "cloud-133": 1}
    assert BureauFigures().exhibitors() == {}


# Warehouses -------------------------------------------------------------------------------


def test_warehouse_capacity_by_country_follows_updates_suspensions_and_reactivations() -> None:
    hour = timedelta(hours=1)
    bureau = applied(
        warehouse_registered("DE-HAM-1", "DE", 100),
        warehouse_registered("DE-HAM-2", "DE", 50),
        warehouse_registered("FR-PAR-1", "FR", 80),
        warehouse_updated("DE-HAM-2", "FR", 60, T0 + hour, previous=("DE", 50)),
        warehouse_suspended("FR-PAR-1", "FR", T0 + hour),
    )
    day = date(2022, 10, 15)
    assert bureau.warehouses(day) == [
        WarehouseFigures("DE", 1, 100, 0, 0.0),
        WarehouseFigures("FR", 1, 60, 0, 0.0),
    ]

    bureau.apply(warehouse_reactivated("FR-PAR-1", "FR", T0 + 2 * hour))

    assert bureau.warehouses(day)[1] == WarehouseFigures("FR", 2, 140, 0, 0.0)


def test_a_late_older_warehouse_version_does_not_replace_a_newer_one() -> None:
    registered = warehouse_registered("DE-HAM-1", "DE", 100)
    updated = warehouse_updated("DE-HAM-1", "DE", 300, T0 + timedelta(hours=1), ("DE", 100))
    bureau = applied(registered, updated, copy_with_new_id(registered))

    assert bureau.warehouses(date(2022, 10, 15)) == [WarehouseFigures("DE", 1, 300, 0, 0.0)]


def test_reserved_pallets_count_on_each_day_of_a_half_open_period() -> None:
    bureau = applied(
        warehouse_registered("DE-HAM-1", "DE", 100),
        capacity_reserved("r-1", "DE-HAM-1", 20, "2022-10-15", "2022-10-17"),
        capacity_reserved("r-2", "DE-HAM-1", 30, "2022-10-16", "2022-10-18"),
        capacity_reserved("r-3", "DE-HAM-1", 40, "2022-10-16", "2022-10-17"),
        reservation_cancelled("r-3", "DE-HAM-1", 40, "2022-10-16", "2022-10-17"),
    )

    def reserved_on(day: date) -> tuple[int, float]:
        [figures] = bureau.warehouses(day)
        return figures.reserved_pallets, figures.utilisation

    assert reserved_on(date(2022, 10, 14)) == (0, 0.0)
    assert reserved_on(date(2022, 10, 15)) == (20, 0.2)
    assert reserved_on(date(2022, 10, 16)) == (50, 0.5)
    assert reserved_on(date(2022, 10, 17)) == (30, 0.3)
    assert reserved_on(date(2022, 10, 18)) == (0, 0.0)


def test_reservations_follow_their_warehouse_and_leave_with_its_suspension() -> None:
    hour = timedelta(hours=1)
    day = date(2022, 10, 15)
    bureau = applied(
        # The booking is seen before its warehouse: topics interleave freely.
        capacity_reserved("r-1", "HAM-1", 25, "2022-10-15", "2022-10-16"),
        warehouse_registered("HAM-1", "DE", 100),
        warehouse_registered("ROT-1", "NL", 50),
    )
    assert bureau.warehouses(day)[0] == WarehouseFigures("DE", 1, 100, 25, 0.25)

    bureau.apply(warehouse_updated("HAM-1", "NL", 150, T0 + hour, ("DE", 100)))
    assert bureau.warehouses(day) == [WarehouseFigures("NL", 2, 200, 25, 0.125)]

    bureau.apply(warehouse_suspended("HAM-1", "NL", T0 + 2 * hour))
    assert bureau.warehouses(day) == [WarehouseFigures("NL", 1, 50, 0, 0.0)]


def test_utilisation_is_zero_where_there_is_no_capacity() -> None:
    bureau = applied(
        warehouse_registered("EMPTY-1", "PL", 0),
        capacity_reserved("r-1", "EMPTY-1", 5, "2022-10-15", "2022-10-16"),
    )

    assert bureau.warehouses(date(2022, 10, 15)) == [WarehouseFigures("PL", 1, 0, 5, 0.0)]


def test_a_cancellation_seen_before_its_reservation_keeps_it_cancelled() -> None:
    reserved = capacity_reserved("r-1", "HAM-1", 25, "2022-10-15", "2022-10-16")
    cancelled = reservation_cancelled("r-1", "HAM-1", 25, "2022-10-15", "2022-10-16")
    bureau = applied(warehouse_registered("HAM-1", "DE", 100), cancelled, reserved)

    assert bureau.warehouses(date(2022, 10, 15))[0].reserved_pallets == 0


def test_reservations_count_by_status_and_the_country_they_were_made_in() -> None:
    first = ("r-1", "HAM-1", 25, "2022-10-15", "2022-10-16", "DE")
    second = ("r-2", "HAM-1", 5, "2022-10-15", "2022-10-16", "de")
    third = ("r-3", "NYC-1", 5, "2022-10-15", "2022-10-16", "US")
    cancelled = reservation_cancelled(*first)
    bureau = applied(
        # The cancellation before its reservation, and both again, under new ids too.
        cancelled,
        capacity_reserved(*first),
        capacity_reserved(*second),
        capacity_reserved(*third),
        cancelled,
        copy_with_new_id(cancelled),
        copy_with_new_id(capacity_reserved(*first)),
        capacity_reserved("r-4", "OLD-1", 1, "2022-10-15", "2022-10-16"),
    )

    assert bureau.reservations() == ReservationFigures(
        by_status={"confirmed": 3, "cancelled": 1},
        by_country=[
            ReservationCounts("DE", confirmed=1, cancelled=1),
            ReservationCounts("US", confirmed=1, cancelled=0),
            ReservationCounts("unknown", confirmed=1, cancelled=0),
        ],
    )
    assert BureauFigures().reservations() == ReservationFigures(
        by_status={"confirmed": 0, "cancelled": 0}, by_country=[]
    )


# Regions ----------------------------------------------------------------------------------


def test_every_iso_3166_code_has_exactly_one_region() -> None:
    assert set(REGION_BY_ALPHA_2) == {country.alpha_2 for country in pycountry.countries}
    assert set(REGION_BY_ALPHA_2.values()) == set(REGIONS)


@pytest.mark.parametrize(
    ("alpha_2", "region"),
    [
        ("CN", "Asia"),
        ("TR", "Asia"),
        ("CY", "Asia"),
        ("RU", "Europe"),
        ("GB", "Europe"),
        ("EG", "Africa"),
        ("TF", "Africa"),
        ("MX", "Americas"),
        ("GL", "Americas"),
        ("BV", "Americas"),
        ("NZ", "Oceania"),
        ("UM", "Oceania"),
        ("AQ", "Antarctica"),
        ("de", "Europe"),
        ("XK", UNKNOWN_REGION),
        ("", UNKNOWN_REGION),
    ],
)
def test_region_of_follows_un_m49(alpha_2: str, region: str) -> None:
    assert region_of(alpha_2) == region


# Persistence ------------------------------------------------------------------------------


def _assert_plain(value: Any, path: str = "snapshot") -> None:
    """Only what both JSON and BSON store as is: no sets, no tuples, string keys."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str), f"{path} has the key {key!r}"
            assert "." not in key and not key.startswith("$"), f"{path}.{key} is no BSON name"
            _assert_plain(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _assert_plain(item, f"{path}[{index}]")
    else:
        assert value is None or isinstance(value, str | int | float | bool | datetime), (
            f"{path} is a {type(value).__name__}"
        )


def test_a_snapshot_is_plain_data_without_the_event_ids() -> None:
    history = Scenario(random.Random(7)).events()
    bureau = applied(*history)

    snapshot = bureau.snapshot()

    _assert_plain(snapshot)
    text = json.dumps(snapshot)
    assert not any(envelope.event_id in text for envelope in history)
    sections = snapshot["projections"]
    assert len(sections["expo"]["intents"]) > 0 and len(sections["warehouse"]["reservations"]) > 0


def test_a_restored_instance_refuses_the_events_it_already_holds() -> None:
    submitted = intent_submitted("i-1")
    original = applied(submitted)

    restored = BureauFigures.restore(original.snapshot(), [submitted.event_id])

    assert restored.apply(submitted) is False
    assert restored.headline() == original.headline()


def unordered(value: Any) -> Any:
    """A snapshot with every list sorted: its lists come from sets and dicts."""
    if isinstance(value, dict):
        return {key: unordered(item) for key, item in value.items()}
    if isinstance(value, list):
        return sorted((unordered(item) for item in value), key=json.dumps)
    return value


def _booth_figures(projection: Any) -> Any:
    return (projection.firms_served(), projection.booths_allocated(), projection.booths())


def _expo_figures(projection: Any) -> Any:
    where = IntentFilter(country="DE")
    return (
        projection.buyers(),
        projection.countries(),
        projection.intents_submitted(),
        projection.exhibitors(),
        projection.intents(),
        projection.intents(where),
        projection.responses(),
        projection.responses(where),
    )


def _warehouse_figures(projection: Any) -> Any:
    days = [projection.warehouses(date(2022, 10, 14) + timedelta(days=n)) for n in range(6)]
    return days, projection.reservations()


@pytest.mark.parametrize(
    ("kind", "figures_of"),
    [
        (BoothProjection, _booth_figures),
        (ExpoProjection, _expo_figures),
        (WarehouseProjection, _warehouse_figures),
    ],
)
def test_each_projection_snapshot_round_trips_alone(
    kind: type[Projection], figures_of: Any
) -> None:
    original = applied(*Scenario(random.Random(11)).events()).dispatcher.projection(kind)
    snapshot = original.snapshot()
    _assert_plain(snapshot)

    # Through JSON, as a document store would hand it back.
    restored = kind.restore(json.loads(json.dumps(snapshot)))

    assert figures_of(restored) == figures_of(original)
    assert unordered(restored.snapshot()) == unordered(snapshot)
    assert figures_of(kind.restore(kind().snapshot())) == figures_of(kind())


def test_a_snapshot_missing_a_projection_is_refused() -> None:
    snapshot = BureauFigures().snapshot()
    del snapshot["projections"]["warehouse"]

    with pytest.raises(ValueError, match="warehouse"):
        BureauFigures.restore(snapshot, [])


def test_a_snapshot_of_another_format_is_refused() -> None:
    snapshot = BureauFigures().snapshot() | {"format": 99}

    with pytest.raises(ValueError, match="format"):
        BureauFigures.restore(snapshot, [])


def format_2(snapshot: dict[str, Any]) -> dict[str, Any]:
    """What a bureau before intent states, exhibitors and reservation countries saved."""
    old = json.loads(json.dumps(snapshot)) | {"format": 2}
    expo_section = old["projections"]["expo"]
    del expo_section["exhibitors"]
    for intent in expo_section["intents"]:
        del intent["state"]
    for reservation in old["projections"]["warehouse"]["reservations"]:
        del reservation["country"]
    return old


def test_a_snapshot_of_format_2_is_refused_so_that_the_journal_rebuilds_the_figures() -> None:
    """Restoring it with empty states would lose them for good: its events are in the
    applied set and never count again. Refused, bureau.store rebuilds the figures from the
    journal (tests/integration/test_reconcile.py upgrades a real one that way)."""
    history = Scenario(random.Random(5)).events()
    current = applied(*history)

    with pytest.raises(ValueError, match="format 2"):
        BureauFigures.restore(format_2(current.snapshot()), [e.event_id for e in history])
    # The journal holds the applied events: what the store applies to empty figures.
    assert all_figures(applied(*history)) == all_figures(current)
    # This history has every state, and what else format 2 lacked.
    assert 0 not in current.intents().by_state.values()
    assert current.exhibitors() and current.reservations().by_status["cancelled"]


# Property-style: random histories, duplicates, restore, rebuild ---------------------------


def stream_of(envelope: EventEnvelope) -> tuple[str, str]:
    """The topic and key of an event: Kafka keeps the order only within one of them."""
    payload = envelope.WhichOneof("payload") or ""
    if payload in {"booth_allocated", "waitlist_promoted"} or payload.startswith("booth_"):
        topic = "applications"
    elif payload in {"capacity_reserved", "reservation_cancelled"}:
        topic = "reservations"
    elif payload in {"rfq_matched", "quote_sent"} or payload.startswith("intent_"):
        topic = "intents"
    else:
        # exporter_*, fair_*, exhibitor_*, warehouse_*, ...
        topic = payload.split("_")[0]
    return topic, envelope.aggregate_id


@dataclass
class Scenario:
    """A random but causally sound history of every domain."""

    rng: random.Random
    clocks: dict[str, datetime] = field(default_factory=dict)

    def at(self, aggregate_id: str) -> datetime:
        """Each aggregate's own clock moves forward; clocks of different ones overlap."""
        start = T0 + timedelta(minutes=self.rng.randrange(0, 3 * 24 * 60))
        now = self.clocks.get(aggregate_id, start) + timedelta(seconds=self.rng.randrange(1, 5_000))
        self.clocks[aggregate_id] = now
        return now

    def events(self) -> list[EventEnvelope]:
        return [
            *self._fairs_and_applications(),
            *self._visits(),
            *self._exhibitors(),
            *self._intents(),
            *self._warehouses_and_reservations(),
        ]

    def _fairs_and_applications(self) -> list[EventEnvelope]:
        rng = self.rng
        fairs = ["canton-132", "china-asean-19"]
        history = [
            fair_created(fair, rng.randrange(1, 6), rng.randrange(0, 3), self.at(fair))
            for fair in fairs
        ]
        history.append(event(booth.FairOpened(fair_id=fairs[0]), fairs[0], self.at(fairs[0])))
        firms = [f"firm-{index}" for index in range(15)]
        history += [exporter_registered(firm) for firm in firms[:10]]
        for index, firm in enumerate(firms):
            fair, booth_type = rng.choice(fairs), rng.choice([STANDARD, BRAND])
            application = Application(
                f"app-{index}", fair, firm, booth_type, self.at(f"app-{index}")
            )
            history += [application.submitted(), application.scored()]
            outcome = rng.choice(["allocated", "waitlisted", "rejected", "withdrawn", "none"])
            if outcome == "allocated":
                history.append(application.allocated())
                if rng.random() < 0.3:
                    history.append(application.withdrawn(State.APPLICATION_STATE_ALLOCATED))
            elif outcome == "waitlisted":
                history.append(application.waitlisted())
                if rng.random() < 0.5:
                    history += application.promoted()
            elif outcome == "rejected":
                history.append(application.rejected())
            elif outcome == "withdrawn":
                history.append(application.withdrawn(State.APPLICATION_STATE_SCORED))
        return history

    def _visits(self) -> list[EventEnvelope]:
        countries = ["DE", "US", "NG", "BR", "JP", "AU", "FR"]
        buyers = {f"buyer-{index}": self.rng.choice(countries) for index in range(12)}
        return [
            exhibitor_visited(buyer, country, self.at(buyer))
            for buyer, country in self.rng.choices(sorted(buyers.items()), k=25)
        ]

    def _exhibitors(self) -> list[EventEnvelope]:
        editions = ["cloud-132", "cloud-133"]
        return [
            exhibitor_joined(edition, f"firm-{index}")
            for edition in editions
            for index in self.rng.sample(range(15), self.rng.randrange(1, 8))
        ]

    def _intents(self) -> list[EventEnvelope]:
        """Each intent's events as expo records them: answers, the last decline of all
        recipients marked, then maybe the buyer or the deadline settles it."""
        rng = self.rng
        history: list[EventEnvelope] = []
        for index in range(30):
            intent_id = f"intent-{index}"
            kind = rng.choice([INQUIRY, RFQ])
            history.append(
                intent_submitted(
                    intent_id,
                    self.at(intent_id),
                    country=rng.choice(["DE", "US", "NG", "VN", ""]),
                    hs_code=rng.choice(["670420", "850440", "200811", "0813.40"]),
                    kind=kind,
                    industries=rng.sample(["hair products", "power", "agriculture"], 2),
                )
            )
            recipients = [f"firm-{n}" for n in rng.sample(range(15), 1 if kind == INQUIRY else 4)]
            if kind == RFQ:
                history.append(rfq_matched(intent_id, recipients))
            answers = [rng.choice(["quote", "decline", None]) for _ in recipients]
            all_declined = answers.count("decline") == len(recipients)
            for recipient, answer in zip(recipients, answers, strict=True):
                seconds = rng.randrange(60, 200_000)
                if answer == "quote":
                    history.append(quote_sent(intent_id, recipient, seconds))
                elif answer == "decline":
                    last = all_declined and recipient == recipients[-1]
                    history.append(
                        intent_declined(intent_id, recipient, seconds, all_declined=last)
                    )
            if all_declined:
                continue
            ending = rng.choice(["deadline", "buyer", None])
            if ending == "deadline" and "quote" not in answers:
                history.append(intent_expired(intent_id))
            elif ending is not None:
                history.append(intent_closed(intent_id, ending))
        return history

    def _warehouses_and_reservations(self) -> list[EventEnvelope]:
        rng = self.rng
        history: list[EventEnvelope] = []
        codes = [f"WH-{index}" for index in range(6)]
        country_of: dict[str, str] = {}
        for code in codes:
            country, pallets = rng.choice(["DE", "US", "NL"]), rng.randrange(50, 500)
            history.append(warehouse_registered(code, country, pallets))
            for _ in range(rng.randrange(0, 4)):
                change = rng.choice(["updated", "suspended", "reactivated"])
                if change == "updated":
                    previous = (country, pallets)
                    country, pallets = rng.choice(["DE", "US", "NL"]), rng.randrange(50, 500)
                    history.append(
                        warehouse_updated(code, country, pallets, self.at(code), previous)
                    )
                elif change == "suspended":
                    history.append(warehouse_suspended(code, country, self.at(code)))
                else:
                    history.append(warehouse_reactivated(code, country, self.at(code)))
            country_of[code] = country
        for index in range(20):
            code, pallets = rng.choice(codes), rng.randrange(1, 40)
            start = date(2022, 10, 14) + timedelta(days=rng.randrange(0, 4))
            period = (start.isoformat(), (start + timedelta(days=rng.randrange(1, 4))).isoformat())
            reservation = (f"res-{index}", code, pallets, *period, country_of[code])
            history.append(capacity_reserved(*reservation))
            if rng.random() < 0.3:
                history.append(reservation_cancelled(*reservation))
        return history


def deliveries(history: list[EventEnvelope], rng: random.Random) -> list[EventEnvelope]:
    """One interleaving of the streams, each kept in order, with about a fifth of the
    events delivered again later (redelivery, or the relay republishing after a crash)."""
    streams: dict[tuple[str, str], list[EventEnvelope]] = {}
    for envelope in history:
        streams.setdefault(stream_of(envelope), []).append(envelope)
    queues = [list(reversed(stream)) for stream in streams.values()]
    delivered: list[EventEnvelope] = []
    while queues:
        queue = rng.choice(queues)
        delivered.append(queue.pop())
        if not queue:
            queues.remove(queue)
    for _ in range(len(history) // 5):
        position = rng.randrange(len(delivered))
        delivered.insert(rng.randrange(position + 1, len(delivered) + 1), delivered[position])
    return delivered


def all_figures(bureau: BureauFigures) -> dict[str, Any]:
    filters = [
        None,
        IntentFilter(country="DE"),
        IntentFilter(hs_chapter="67"),
        IntentFilter(since=T0 + timedelta(days=1), until=T0 + timedelta(days=2)),
        IntentFilter(since=T0 + timedelta(hours=30), country="US", hs_chapter="85"),
    ]
    days = [date(2022, 10, 14) + timedelta(days=offset) for offset in range(6)]
    return {
        "headline": bureau.headline(),
        "booths": bureau.booths(),
        "intents": [bureau.intents(where) for where in filters],
        "responses": [bureau.responses(where) for where in filters],
        "exhibitors": bureau.exhibitors(),
        "warehouses": [bureau.warehouses(day) for day in days],
        "reservations": bureau.reservations(),
    }


@pytest.mark.parametrize("seed", range(8))
def test_restoring_a_mid_stream_snapshot_gives_the_figures_of_one_pass(seed: int) -> None:
    rng = random.Random(seed)
    delivered = deliveries(Scenario(rng).events(), rng)
    middle = rng.randrange(len(delivered) // 4, 3 * len(delivered) // 4)
    before = BureauFigures()
    persisted_ids: list[str] = []
    for envelope in delivered[:middle]:
        if before.apply(envelope):
            persisted_ids.append(envelope.event_id)
    # Through JSON, as a document store would hand it back.
    snapshot = json.loads(json.dumps(before.snapshot()))

    after = BureauFigures.restore(snapshot, persisted_ids)
    for envelope in delivered[middle:]:
        after.apply(envelope)
    one_pass = applied(*delivered)

    assert all_figures(after) == all_figures(one_pass)
    assert after.headline().events_applied == len({e.event_id for e in delivered})
    assert all(after.apply(envelope) is False for envelope in delivered)


@pytest.mark.parametrize("seed", range(8))
def test_intent_states_add_up_to_the_intents_after_every_delivery(seed: int) -> None:
    rng = random.Random(seed)
    history = Scenario(rng).events()
    bureau = BureauFigures()
    for envelope in deliveries(history, rng):
        bureau.apply(envelope)
        intents = bureau.intents()
        assert sum(intents.by_state.values()) == intents.intents
        assert min(intents.by_state.values()) >= 0
    assert bureau.intents().by_state == applied(*history).intents().by_state


@pytest.mark.parametrize("seed", range(8))
def test_a_rebuild_in_another_interleaving_gives_the_same_figures(seed: int) -> None:
    rng = random.Random(seed)
    history = Scenario(rng).events()

    first = applied(*deliveries(history, random.Random(seed + 100)))
    second = applied(*deliveries(history, random.Random(seed + 200)))

    assert all_figures(first) == all_figures(second)
    assert all_figures(first) == all_figures(applied(*history))


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [(253_402_300_800, 0), (-62_135_596_801, 0), (2**62, 0), (0, -1), (0, 1_000_000_000)],
)
def test_an_event_outside_the_timestamp_range_is_refused_changing_nothing(
    seconds: int, nanos: int
) -> None:
    bureau = applied(exhibitor_visited("buyer-1", "DE"))
    absurd = exhibitor_visited("buyer-2", "KE")
    absurd.occurred_at.seconds, absurd.occurred_at.nanos = seconds, nanos
    with pytest.raises(ValueError, match="is not a time"):
        bureau.apply(absurd)
    headline = bureau.headline()
    assert (headline.buyers, headline.events_applied, headline.as_of) == (1, 1, T0)
    # The last second a Timestamp holds is still a time.
    absurd.occurred_at.seconds, absurd.occurred_at.nanos = 253_402_300_799, 999_999_999
    assert bureau.apply(absurd)
