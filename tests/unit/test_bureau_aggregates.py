"""The bureau's aggregation domain: every figure, exactly once, across snapshot and restore."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pycountry
import pytest
from google.protobuf.message import Message

from bureau.aggregates import (
    Aggregates,
    BoothFigures,
    IntentFilter,
    ResponseFigures,
    TimeBucket,
    WarehouseFigures,
)
from bureau.regions import REGION_BY_ALPHA_2, REGIONS, UNKNOWN_REGION, region_of
from chuhai.booth.v1 import events_pb2 as booth
from chuhai.booth.v1 import resources_pb2 as booth_resources
from chuhai.events.v1.envelope_pb2 import EventEnvelope
from chuhai.expo.v1 import events_pb2 as expo
from chuhai.expo.v1 import resources_pb2 as expo_resources
from chuhai.warehouse.v1 import events_pb2 as warehouse
from chuhai.warehouse.v1 import resources_pb2 as warehouse_resources
from runtime.adapters.events import envelope_for

T0 = datetime(2022, 10, 15, 8, 0, tzinfo=UTC)
STANDARD = booth_resources.BoothType.BOOTH_TYPE_STANDARD
BRAND = booth_resources.BoothType.BOOTH_TYPE_BRAND
State = booth_resources.ApplicationState
INQUIRY = expo_resources.IntentKind.INTENT_KIND_INQUIRY
RFQ = expo_resources.IntentKind.INTENT_KIND_RFQ
ACTIVE = warehouse_resources.WarehouseStatus.WAREHOUSE_STATUS_ACTIVE
SUSPENDED = warehouse_resources.WarehouseStatus.WAREHOUSE_STATUS_SUSPENDED


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
    exporter = booth_resources.Exporter(credit_code=credit_code, name="Xuchang Hair Co")
    return event(booth.ExporterRegistered(exporter=exporter), credit_code)


def fair_created(fair_id: str, standard: int, brand: int, at: datetime = T0) -> EventEnvelope:
    fair = booth_resources.Fair(
        fair_id=fair_id,
        booth_quotas=[
            booth_resources.BoothQuota(booth_type=STANDARD, quota=standard),
            booth_resources.BoothQuota(booth_type=BRAND, quota=brand),
        ],
    )
    return event(booth.FairCreated(fair=fair), fair_id, at)


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


def response(credit_code: str, seconds: int, kind: int) -> expo_resources.Response:
    return expo_resources.Response(credit_code=credit_code, kind=kind, response_seconds=seconds)


def quote_sent(intent_id: str, credit_code: str, seconds: int) -> EventEnvelope:
    answer = response(credit_code, seconds, expo_resources.ResponseKind.RESPONSE_KIND_QUOTED)
    return event(expo.QuoteSent(intent_id=intent_id, response=answer), intent_id)


def intent_declined(intent_id: str, credit_code: str, seconds: int) -> EventEnvelope:
    answer = response(credit_code, seconds, expo_resources.ResponseKind.RESPONSE_KIND_DECLINED)
    return event(expo.IntentDeclined(intent_id=intent_id, response=answer), intent_id)


def warehouse_message(code: str, country: str, pallets: int, status: int) -> Any:
    profile = warehouse_resources.WarehouseProfile(
        country_code=country, capacity=warehouse_resources.Space(pallet_positions=pallets)
    )
    return warehouse_resources.Warehouse(code=code, profile=profile, status=status)


def warehouse_event(
    kind: type[Message],
    code: str,
    country: str,
    pallets: int,
    status: int = ACTIVE,
    at: datetime = T0,
) -> EventEnvelope:
    return event(kind(warehouse=warehouse_message(code, country, pallets, status)), code, at)


def capacity_reserved(
    reservation_id: str, code: str, pallets: int, start: str, end: str
) -> EventEnvelope:
    reserved = warehouse.CapacityReserved(
        reservation_id=reservation_id,
        warehouse_code=code,
        pallet_positions=pallets,
        start_date=start,
        end_date=end,
    )
    return event(reserved, code)


def reservation_cancelled(
    reservation_id: str, code: str, pallets: int, start: str, end: str
) -> EventEnvelope:
    cancelled = warehouse.ReservationCancelled(
        reservation_id=reservation_id,
        warehouse_code=code,
        pallet_positions=pallets,
        start_date=start,
        end_date=end,
    )
    return event(cancelled, code)


def applied(*envelopes: EventEnvelope) -> Aggregates:
    aggregates = Aggregates()
    for envelope in envelopes:
        aggregates.apply(envelope)
    return aggregates


# Exactly once -----------------------------------------------------------------------------


def test_an_event_applied_twice_counts_once() -> None:
    aggregates = Aggregates()
    submitted = intent_submitted("intent-1")

    assert aggregates.apply(submitted) is True
    assert aggregates.apply(submitted) is False

    headline = aggregates.headline()
    assert (headline.intents, headline.events_applied) == (1, 1)


def test_the_same_event_redelivered_at_another_offset_after_newer_ones_is_refused() -> None:
    application = Application("app-1")
    submitted, scored, allocated = (
        application.submitted(),
        application.scored(),
        application.allocated(),
    )
    aggregates = applied(submitted, scored, allocated)

    assert aggregates.apply(scored) is False
    assert aggregates.apply(submitted) is False
    assert aggregates.booths()[0].allocated == 1
    assert aggregates.headline().events_applied == 3


def test_an_older_application_event_recorded_again_does_not_regress_its_state() -> None:
    application = Application("app-1")
    submitted, scored, waitlisted = (
        application.submitted(),
        application.scored(),
        application.waitlisted(),
    )
    promotion = application.promoted()
    aggregates = applied(submitted, scored, waitlisted, *promotion)

    # A copy under a new id passes the id check; the lifecycle must still refuse it.
    assert aggregates.apply(copy_with_new_id(waitlisted)) is True
    assert aggregates.apply(copy_with_new_id(submitted)) is True

    [figures] = aggregates.booths()
    assert (figures.applied, figures.allocated, figures.waitlisted) == (1, 1, 0)
    assert aggregates.headline().booths_allocated == 1


def test_a_copy_of_an_intent_under_a_new_id_counts_once() -> None:
    submitted = intent_submitted("intent-1")
    quoted = quote_sent("intent-1", "exporter-a", 600)
    aggregates = applied(submitted, rfq_matched("intent-1", ["exporter-a"]), quoted)

    aggregates.apply(copy_with_new_id(submitted))
    aggregates.apply(copy_with_new_id(quoted))

    assert aggregates.intents().intents == 1
    assert aggregates.headline().intents == 1
    assert aggregates.responses().answered == 1


def test_a_payload_without_a_figure_still_counts_as_applied() -> None:
    aggregates = Aggregates()
    fair_opened = event(booth.FairOpened(fair_id="canton-132"), "canton-132", T0)
    no_payload = EventEnvelope(event_id="no-payload", type="chuhai.future.v1.Unknown")
    no_payload.occurred_at.FromDatetime(T0 + timedelta(hours=1))

    assert aggregates.apply(fair_opened) is True
    assert aggregates.apply(no_payload) is True
    assert aggregates.apply(no_payload) is False

    headline = aggregates.headline()
    assert headline.events_applied == 2
    assert headline.as_of == T0 + timedelta(hours=1)


def test_an_envelope_without_an_event_id_is_refused() -> None:
    nameless = intent_submitted("intent-1")
    nameless.event_id = ""

    with pytest.raises(ValueError, match="event_id"):
        Aggregates().apply(nameless)


# Headline ---------------------------------------------------------------------------------


def test_firms_served_are_distinct_firms_that_registered_or_applied() -> None:
    aggregates = applied(
        exporter_registered("firm-a"),
        exporter_registered("firm-b"),
        Application("app-b", credit_code="firm-b").submitted(),
        Application("app-c", credit_code="firm-c").submitted(),
        Application("app-c2", credit_code="firm-c", booth_type=BRAND).submitted(),
    )

    assert aggregates.headline().firms_served == 3


def test_buyers_and_countries_are_those_of_visits_only() -> None:
    registered = expo.BuyerRegistered(buyer_id="buyer-never-visited", country="FR")
    aggregates = applied(
        event(registered, "buyer-never-visited"),
        exhibitor_visited("buyer-1", "DE"),
        exhibitor_visited("buyer-1", "DE", T0 + timedelta(minutes=5)),
        exhibitor_visited("buyer-2", "DE"),
        exhibitor_visited("buyer-3", "US"),
    )

    headline = aggregates.headline()
    assert (headline.buyers, headline.countries) == (3, 2)


def test_as_of_is_the_newest_event_even_when_an_older_one_arrives_last() -> None:
    aggregates = applied(
        intent_submitted("intent-new", T0 + timedelta(days=1)),
        intent_submitted("intent-old", T0),
    )

    assert aggregates.headline().as_of == T0 + timedelta(days=1)
    assert Aggregates().headline().as_of is None


# Booths -----------------------------------------------------------------------------------


def test_booths_count_applications_by_current_state_against_quota() -> None:
    kept = Application("app-kept")
    given_up = Application("app-given-up")
    promoted = Application("app-promoted")
    waiting = Application("app-waiting")
    refused = Application("app-refused")
    brand = Application("app-brand", booth_type=BRAND)
    aggregates = applied(
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

    assert aggregates.booths() == [
        BoothFigures("canton-132", "standard", 3, 5, 2, 1, 1),
        BoothFigures("canton-132", "brand", 1, 1, 1, 0, 0),
    ]
    assert aggregates.headline().booths_allocated == 3


def test_a_promotion_alone_is_enough_to_hold_the_booth() -> None:
    """WaitlistPromoted says the booth is held, whether or not BoothAllocated came too."""
    application = Application("app-1")
    aggregates = applied(application.submitted(), application.scored(), application.waitlisted())

    aggregates.apply(application.promoted()[1])

    [figures] = aggregates.booths()
    assert (figures.allocated, figures.waitlisted) == (1, 0)


def test_booths_are_listed_per_fair_and_can_be_filtered_by_fair() -> None:
    aggregates = applied(
        fair_created("canton-132", standard=2, brand=0),
        fair_created("china-asean-19", standard=4, brand=1),
        Application("app-1", fair_id="china-asean-19").submitted(),
    )

    assert [(b.fair_id, b.booth_type, b.quota) for b in aggregates.booths()] == [
        ("canton-132", "standard", 2),
        ("canton-132", "brand", 0),
        ("china-asean-19", "standard", 4),
        ("china-asean-19", "brand", 1),
    ]
    assert aggregates.booths("china-asean-19")[0] == BoothFigures(
        "china-asean-19", "standard", 4, 1, 0, 0, 0
    )
    assert aggregates.booths("no-such-fair") == []


def test_booths_allocated_over_every_fair_exclude_withdrawn_ones() -> None:
    first = Application("app-1", fair_id="canton-132")
    second = Application("app-2", fair_id="china-asean-19")
    aggregates = applied(
        first.submitted(),
        first.scored(),
        first.allocated(),
        second.submitted(),
        second.scored(),
        second.allocated(),
    )
    assert aggregates.headline().booths_allocated == 2

    aggregates.apply(second.withdrawn(State.APPLICATION_STATE_ALLOCATED))

    assert aggregates.headline().booths_allocated == 1


# Intents ----------------------------------------------------------------------------------


def test_intents_break_down_by_country_region_chapter_and_industry() -> None:
    aggregates = applied(
        intent_submitted("i-1", country="DE", hs_code="670420", industries=["hair products"]),
        intent_submitted(
            "i-2", country="FR", hs_code="8504.40", industries=["hair products", "power"]
        ),
        intent_submitted("i-3", country="NG", hs_code="670411", industries=[]),
        intent_submitted("i-4", country="", hs_code="", industries=["agriculture"]),
    )

    figures = aggregates.intents()
    assert figures.intents == 4
    assert figures.by_country == {"DE": 1, "FR": 1, "NG": 1, "unknown": 1}
    assert figures.by_region == {"Africa": 1, "Europe": 2, UNKNOWN_REGION: 1}
    assert figures.by_hs_chapter == {"67": 2, "85": 1, "unknown": 1}
    assert figures.by_industry == {"agriculture": 1, "hair products": 2, "power": 1}
    assert aggregates.headline().intents == 4


def test_an_intent_listing_an_industry_twice_counts_once_in_it() -> None:
    aggregates = applied(intent_submitted("i-1", industries=["power", "power", "hair"]))

    assert aggregates.intents().by_industry == {"hair": 1, "power": 1}


def test_intent_filters_take_a_half_open_time_range_and_combine() -> None:
    aggregates = applied(
        intent_submitted("at-start", T0, country="DE", hs_code="670420"),
        intent_submitted("inside", T0 + timedelta(hours=1), country="US", hs_code="670420"),
        intent_submitted("inside-2", T0 + timedelta(hours=2), country="DE", hs_code="850440"),
        intent_submitted("at-end", T0 + timedelta(hours=3), country="DE", hs_code="670420"),
    )
    window = {"since": T0, "until": T0 + timedelta(hours=3)}

    def matching(**criteria: Any) -> int:
        return aggregates.intents(IntentFilter(**criteria)).intents

    assert matching(**window) == 3
    assert matching(since=T0 + timedelta(microseconds=1)) == 3
    assert matching(until=T0 + timedelta(hours=3, microseconds=1)) == 4
    assert matching(country="DE") == 3
    assert matching(country="de") == 3
    assert matching(hs_chapter="85") == 1
    assert matching(**window, country="DE") == 2
    assert matching(**window, country="DE", hs_chapter="67") == 1
    assert matching(country="JP") == 0
    assert aggregates.intents(IntentFilter(**window, country="DE")).by_hs_chapter == {
        "67": 1,
        "85": 1,
    }


def test_a_filter_time_without_a_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        Aggregates().intents(IntentFilter(since=datetime(2022, 10, 15)))


def test_intents_per_hour_and_day_fall_in_tumbling_utc_windows() -> None:
    beijing = timezone(timedelta(hours=8))
    aggregates = applied(
        intent_submitted("i-1", datetime(2022, 10, 15, 8, 59, 59, 999999, tzinfo=UTC)),
        intent_submitted("i-2", datetime(2022, 10, 15, 9, 0, tzinfo=UTC)),
        intent_submitted("i-3", datetime(2022, 10, 15, 9, 30, tzinfo=UTC)),
        # 07:10 in Beijing is 23:10 UTC on the day before.
        intent_submitted("i-4", datetime(2022, 10, 16, 7, 10, tzinfo=beijing)),
        intent_submitted("i-5", datetime(2022, 10, 16, 0, 0, tzinfo=UTC)),
    )

    figures = aggregates.intents()
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
    aggregates = applied(
        intent_submitted("inquiry", kind=INQUIRY),
        quote_sent("inquiry", "exporter-a", 600),
        intent_submitted("rfq", kind=RFQ),
        rfq_matched("rfq", ["exporter-a", "exporter-b", "exporter-c"]),
        intent_declined("rfq", "exporter-b", 86_400),
        quote_sent("rfq", "exporter-c", 90_000),
        intent_submitted("unanswered", kind=INQUIRY),
    )

    assert aggregates.responses() == ResponseFigures(
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
    aggregates = applied(
        intent_submitted("rfq"),
        rfq_matched("rfq", recipients),
        *(quote_sent("rfq", code, taken) for code, taken in zip(recipients, seconds, strict=True)),
    )

    assert aggregates.responses().median_response_seconds == median


def test_responses_without_any_answer_are_zero() -> None:
    aggregates = applied(intent_submitted("rfq"), rfq_matched("rfq", ["exporter-a"]))

    assert aggregates.responses() == ResponseFigures(1, 0, 0.0, 0.0, 0.0)
    assert Aggregates().responses() == ResponseFigures(0, 0, 0.0, 0.0, 0.0)


def test_responses_follow_the_intent_filter() -> None:
    aggregates = applied(
        intent_submitted("german", country="DE", kind=INQUIRY),
        quote_sent("german", "exporter-a", 100),
        intent_submitted("american", country="US", kind=INQUIRY),
        intent_declined("american", "exporter-b", 300),
    )

    german = aggregates.responses(IntentFilter(country="DE"))
    assert (german.addressed, german.answered, german.median_response_seconds) == (1, 1, 100.0)
    assert aggregates.responses().median_response_seconds == 200.0


# Warehouses -------------------------------------------------------------------------------


def test_warehouse_capacity_by_country_follows_updates_suspensions_and_reactivations() -> None:
    hour = timedelta(hours=1)
    aggregates = applied(
        warehouse_event(warehouse.WarehouseRegistered, "DE-HAM-1", "DE", 100),
        warehouse_event(warehouse.WarehouseRegistered, "DE-HAM-2", "DE", 50),
        warehouse_event(warehouse.WarehouseRegistered, "FR-PAR-1", "FR", 80),
        warehouse_event(warehouse.WarehouseUpdated, "DE-HAM-2", "FR", 60, at=T0 + hour),
        warehouse_event(warehouse.WarehouseSuspended, "FR-PAR-1", "FR", 80, SUSPENDED, T0 + hour),
    )
    day = date(2022, 10, 15)
    assert aggregates.warehouses(day) == [
        WarehouseFigures("DE", 1, 100, 0, 0.0),
        WarehouseFigures("FR", 1, 60, 0, 0.0),
    ]

    aggregates.apply(
        warehouse_event(warehouse.WarehouseReactivated, "FR-PAR-1", "FR", 80, at=T0 + 2 * hour)
    )

    assert aggregates.warehouses(day)[1] == WarehouseFigures("FR", 2, 140, 0, 0.0)


def test_a_late_older_warehouse_version_does_not_replace_a_newer_one() -> None:
    registered = warehouse_event(warehouse.WarehouseRegistered, "DE-HAM-1", "DE", 100)
    updated = warehouse_event(
        warehouse.WarehouseUpdated, "DE-HAM-1", "DE", 300, at=T0 + timedelta(hours=1)
    )
    aggregates = applied(registered, updated, copy_with_new_id(registered))

    assert aggregates.warehouses(date(2022, 10, 15)) == [WarehouseFigures("DE", 1, 300, 0, 0.0)]


def test_reserved_pallets_count_on_each_day_of_a_half_open_period() -> None:
    aggregates = applied(
        warehouse_event(warehouse.WarehouseRegistered, "DE-HAM-1", "DE", 100),
        capacity_reserved("r-1", "DE-HAM-1", 20, "2022-10-15", "2022-10-17"),
        capacity_reserved("r-2", "DE-HAM-1", 30, "2022-10-16", "2022-10-18"),
        capacity_reserved("r-3", "DE-HAM-1", 40, "2022-10-16", "2022-10-17"),
        reservation_cancelled("r-3", "DE-HAM-1", 40, "2022-10-16", "2022-10-17"),
    )

    def reserved_on(day: date) -> tuple[int, float]:
        [figures] = aggregates.warehouses(day)
        return figures.reserved_pallets, figures.utilisation

    assert reserved_on(date(2022, 10, 14)) == (0, 0.0)
    assert reserved_on(date(2022, 10, 15)) == (20, 0.2)
    assert reserved_on(date(2022, 10, 16)) == (50, 0.5)
    assert reserved_on(date(2022, 10, 17)) == (30, 0.3)
    assert reserved_on(date(2022, 10, 18)) == (0, 0.0)


def test_reservations_follow_their_warehouse_and_leave_with_its_suspension() -> None:
    hour = timedelta(hours=1)
    day = date(2022, 10, 15)
    aggregates = applied(
        # The booking is seen before its warehouse: topics interleave freely.
        capacity_reserved("r-1", "HAM-1", 25, "2022-10-15", "2022-10-16"),
        warehouse_event(warehouse.WarehouseRegistered, "HAM-1", "DE", 100),
        warehouse_event(warehouse.WarehouseRegistered, "ROT-1", "NL", 50),
    )
    assert aggregates.warehouses(day)[0] == WarehouseFigures("DE", 1, 100, 25, 0.25)

    aggregates.apply(warehouse_event(warehouse.WarehouseUpdated, "HAM-1", "NL", 150, at=T0 + hour))
    assert aggregates.warehouses(day) == [WarehouseFigures("NL", 2, 200, 25, 0.125)]

    aggregates.apply(
        warehouse_event(warehouse.WarehouseSuspended, "HAM-1", "NL", 150, SUSPENDED, T0 + 2 * hour)
    )
    assert aggregates.warehouses(day) == [WarehouseFigures("NL", 1, 50, 0, 0.0)]


def test_utilisation_is_zero_where_there_is_no_capacity() -> None:
    aggregates = applied(
        warehouse_event(warehouse.WarehouseRegistered, "EMPTY-1", "PL", 0),
        capacity_reserved("r-1", "EMPTY-1", 5, "2022-10-15", "2022-10-16"),
    )

    assert aggregates.warehouses(date(2022, 10, 15)) == [WarehouseFigures("PL", 1, 0, 5, 0.0)]


def test_a_cancellation_seen_before_its_reservation_keeps_it_cancelled() -> None:
    reserved = capacity_reserved("r-1", "HAM-1", 25, "2022-10-15", "2022-10-16")
    cancelled = reservation_cancelled("r-1", "HAM-1", 25, "2022-10-15", "2022-10-16")
    aggregates = applied(
        warehouse_event(warehouse.WarehouseRegistered, "HAM-1", "DE", 100), cancelled, reserved
    )

    assert aggregates.warehouses(date(2022, 10, 15))[0].reserved_pallets == 0


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
    aggregates = applied(*history)

    snapshot = aggregates.snapshot()

    _assert_plain(snapshot)
    text = json.dumps(snapshot)
    assert not any(envelope.event_id in text for envelope in history)
    assert len(snapshot["intents"]) > 0 and len(snapshot["reservations"]) > 0


def test_a_restored_instance_refuses_the_events_it_already_holds() -> None:
    submitted = intent_submitted("i-1")
    original = applied(submitted)

    restored = Aggregates.restore(original.snapshot(), [submitted.event_id])

    assert restored.apply(submitted) is False
    assert restored.headline() == original.headline()


def test_a_snapshot_of_another_format_is_refused() -> None:
    snapshot = Aggregates().snapshot() | {"format": 99}

    with pytest.raises(ValueError, match="format"):
        Aggregates.restore(snapshot, [])


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

    def _intents(self) -> list[EventEnvelope]:
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
            for recipient in recipients:
                answer = rng.choice([quote_sent, intent_declined, None])
                if answer is not None:
                    history.append(answer(intent_id, recipient, rng.randrange(60, 200_000)))
        return history

    def _warehouses_and_reservations(self) -> list[EventEnvelope]:
        rng = self.rng
        history: list[EventEnvelope] = []
        codes = [f"WH-{index}" for index in range(6)]
        for code in codes:
            country, pallets = rng.choice(["DE", "US", "NL"]), rng.randrange(50, 500)
            history.append(
                warehouse_event(warehouse.WarehouseRegistered, code, country, pallets, ACTIVE)
            )
            for _ in range(rng.randrange(0, 4)):
                kind = rng.choice(
                    [
                        warehouse.WarehouseUpdated,
                        warehouse.WarehouseSuspended,
                        warehouse.WarehouseReactivated,
                    ]
                )
                status = SUSPENDED if kind is warehouse.WarehouseSuspended else ACTIVE
                if kind is warehouse.WarehouseUpdated:
                    country, pallets = rng.choice(["DE", "US", "NL"]), rng.randrange(50, 500)
                history.append(warehouse_event(kind, code, country, pallets, status, self.at(code)))
        for index in range(20):
            code, pallets = rng.choice(codes), rng.randrange(1, 40)
            start = date(2022, 10, 14) + timedelta(days=rng.randrange(0, 4))
            period = (start.isoformat(), (start + timedelta(days=rng.randrange(1, 4))).isoformat())
            history.append(capacity_reserved(f"res-{index}", code, pallets, *period))
            if rng.random() < 0.3:
                history.append(reservation_cancelled(f"res-{index}", code, pallets, *period))
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


def all_figures(aggregates: Aggregates) -> dict[str, Any]:
    filters = [
        None,
        IntentFilter(country="DE"),
        IntentFilter(hs_chapter="67"),
        IntentFilter(since=T0 + timedelta(days=1), until=T0 + timedelta(days=2)),
        IntentFilter(since=T0 + timedelta(hours=30), country="US", hs_chapter="85"),
    ]
    days = [date(2022, 10, 14) + timedelta(days=offset) for offset in range(6)]
    return {
        "headline": aggregates.headline(),
        "booths": aggregates.booths(),
        "intents": [aggregates.intents(where) for where in filters],
        "responses": [aggregates.responses(where) for where in filters],
        "warehouses": [aggregates.warehouses(day) for day in days],
    }


@pytest.mark.parametrize("seed", range(8))
def test_restoring_a_mid_stream_snapshot_gives_the_figures_of_one_pass(seed: int) -> None:
    rng = random.Random(seed)
    delivered = deliveries(Scenario(rng).events(), rng)
    middle = rng.randrange(len(delivered) // 4, 3 * len(delivered) // 4)
    before = Aggregates()
    persisted_ids: list[str] = []
    for envelope in delivered[:middle]:
        if before.apply(envelope):
            persisted_ids.append(envelope.event_id)
    # Through JSON, as a document store would hand it back.
    snapshot = json.loads(json.dumps(before.snapshot()))

    after = Aggregates.restore(snapshot, persisted_ids)
    for envelope in delivered[middle:]:
        after.apply(envelope)
    one_pass = applied(*delivered)

    assert all_figures(after) == all_figures(one_pass)
    assert after.headline().events_applied == len({e.event_id for e in delivered})
    assert all(after.apply(envelope) is False for envelope in delivered)


@pytest.mark.parametrize("seed", range(8))
def test_a_rebuild_in_another_interleaving_gives_the_same_figures(seed: int) -> None:
    rng = random.Random(seed)
    history = Scenario(rng).events()

    first = applied(*deliveries(history, random.Random(seed + 100)))
    second = applied(*deliveries(history, random.Random(seed + 200)))

    assert all_figures(first) == all_figures(second)
    assert all_figures(first) == all_figures(applied(*history))
