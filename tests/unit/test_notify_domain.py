"""The notify domain on its own: who is told what about each event (and nobody else),
notification ids, preferences and quiet hours, webhooks, retries, delivery plans and
webhook signatures."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from notify import domain
from notify.domain import (
    OFFICERS,
    AllocationCompleted,
    ApplicationRejected,
    ApplicationScored,
    ApplicationSubmitted,
    ApplicationWaitlisted,
    ApplicationWithdrawn,
    BoothAllocated,
    CapacityReserved,
    Channel,
    Delivery,
    DeliveryStatus,
    Draft,
    ExporterProfiled,
    Fact,
    FairOpened,
    IntentClosed,
    IntentDeclined,
    IntentExpired,
    IntentSubmitted,
    Kind,
    Known,
    Notification,
    Preferences,
    PreferencesDraft,
    PreferencesUpdate,
    QuietHours,
    QuietHoursDraft,
    QuoteSent,
    Reader,
    ReservationCancelled,
    RetryPolicy,
    WaitlistPromoted,
    Webhook,
    WebhookRegistration,
)
from runtime.kernel.errors import FailedPrecondition, InvalidArgument
from runtime.kernel.identity import Principal, Role
from runtime.kernel.validation import validated
from tests.credit_codes import random_credit_code

NOW = datetime(2026, 7, 1, 9, 30, tzinfo=UTC)
APPLICANT = random_credit_code()
OTHER = random_credit_code()
RECIPIENTS = tuple(random_credit_code() for _ in range(3))
BUYER = "buyer-7f3a"
OPERATOR = "henan-overseas-logistics"
FAIR = "canton-139"


def violated(error: pytest.ExceptionInfo[InvalidArgument]) -> set[str]:
    return {v.field for v in error.value.violations}


def exporter(code: str) -> str:
    return f"exporter:{code}"


# Readers.


def test_a_reader_key_names_role_and_party_and_parses_back() -> None:
    for reader in (
        Reader(Role.EXPORTER, APPLICANT),
        Reader(Role.BUYER, BUYER),
        Reader(Role.OPERATOR, OPERATOR),
        OFFICERS,
    ):
        assert Reader.parse(reader.key) == reader
    assert Reader(Role.BUYER, BUYER).key == f"buyer:{BUYER}"
    assert OFFICERS.key == "officer"


@pytest.mark.parametrize("key", ["", "exporter:", "service:booth", "nobody:x", "officer:x"])
def test_a_key_that_names_no_reader_is_refused(key: str) -> None:
    with pytest.raises(ValueError):
        Reader.parse(key)


def test_every_officer_reads_the_bureau_and_parties_read_their_own() -> None:
    assert Reader.of(Principal("alice", Role.OFFICER)) == OFFICERS
    assert Reader.of(Principal("bob", Role.OFFICER)) == OFFICERS
    assert Reader.of(Principal("s", Role.EXPORTER, APPLICANT)) == Reader(Role.EXPORTER, APPLICANT)
    assert Reader.of(Principal("s", Role.OPERATOR, OPERATOR)) == Reader(Role.OPERATOR, OPERATOR)


def test_a_service_and_an_unregistered_buyer_have_no_reader() -> None:
    for principal in (Principal("booth", Role.SERVICE, "booth"), Principal("b", Role.BUYER)):
        assert Reader.of(principal) is None
        with pytest.raises(FailedPrecondition) as error:
            domain.require_reader(principal)
        assert error.value.reason == "NO_READER"


# What each event makes.

# Every join filled in, so that a fact which must not use one cannot hide behind its
# absence: the tests below prove each fact reaches its readers and nobody else.
EVERYTHING_KNOWN = Known(
    applicant=APPLICANT,
    buyer=BUYER,
    followers=(RECIPIENTS[0], RECIPIENTS[1]),
    allocated=0,
    alert_percent=90,
)


def at(event_id: str = "e-1") -> dict[str, object]:
    return {"event_id": event_id, "occurred_at": NOW}


def submitted(kind: str, recipients: tuple[str, ...]) -> IntentSubmitted:
    return IntentSubmitted(
        **at(),
        intent_id="intent-1",
        edition_id="cloud-expo-2026",
        buyer_id=BUYER,
        buyer_country="DE",
        kind=kind,
        hs_code="670420",
        quantity=5000,
        unit="pieces",
        deadline=NOW + timedelta(days=7),
        recipients=recipients,
    )


def reserved(peak: int, operator: str = OPERATOR) -> CapacityReserved:
    return CapacityReserved(
        **at(),
        reservation_id="r-1",
        warehouse_code="HAM-1",
        exporter_credit_code=APPLICANT,
        pallet_positions=40,
        cubic_metres=0,
        start_date=date(2026, 7, 1),
        end_date=date(2026, 8, 1),
        operator_id=operator,
        peak_utilisation_percent=peak,
    )


def cancelled(operator: str = OPERATOR) -> ReservationCancelled:
    return ReservationCancelled(
        **at(),
        reservation_id="r-1",
        warehouse_code="HAM-1",
        exporter_credit_code=APPLICANT,
        pallet_positions=40,
        cubic_metres=0,
        start_date=date(2026, 7, 1),
        end_date=date(2026, 8, 1),
        reason="plans changed",
        operator_id=operator,
    )


def allocated(quota: int, credit_code: str = OTHER) -> BoothAllocated:
    return BoothAllocated(
        **at(),
        application_id="app-1",
        fair_id=FAIR,
        credit_code=credit_code,
        booth_type="STANDARD",
        booth_number="12.1A01",
        quota=quota,
    )


def withdrawn(penalty_fen: int) -> ApplicationWithdrawn:
    return ApplicationWithdrawn(
        **at(),
        application_id="app-1",
        fair_id=FAIR,
        credit_code=OTHER,
        booth_type="BRAND",
        booth_number="12.1A01",
        penalty_fen=penalty_fen,
    )


def quote() -> QuoteSent:
    return QuoteSent(
        **at(),
        intent_id="intent-1",
        edition_id="e",
        credit_code=OTHER,
        currency="USD",
        unit_price=Decimal("12.5"),
        moq=100,
        lead_time_days=30,
        incoterm="FOB",
        valid_until=None,
    )


CASES: list[tuple[str, Fact, Known, set[tuple[str, Kind]]]] = [
    (
        "exporter profile: a join only",
        ExporterProfiled(**at(), credit_code=APPLICANT, hs_headings=("6704",)),
        EVERYTHING_KNOWN,
        set(),
    ),
    (
        "fair opened: every follower",
        FairOpened(**at(), fair_id=FAIR, name="Canton Fair", session="1", hs_headings=("6704",)),
        EVERYTHING_KNOWN,
        {(exporter(RECIPIENTS[0]), Kind.FAIR_OPENED), (exporter(RECIPIENTS[1]), Kind.FAIR_OPENED)},
    ),
    (
        "fair opened: no followers",
        FairOpened(**at(), fair_id=FAIR, name="Canton Fair", session="1", hs_headings=("6704",)),
        Known(),
        set(),
    ),
    (
        "application submitted: a join only",
        ApplicationSubmitted(
            **at(),
            application_id="app-1",
            fair_id=FAIR,
            credit_code=APPLICANT,
            booth_type="STANDARD",
        ),
        EVERYTHING_KNOWN,
        set(),
    ),
    (
        "scored: the applicant",
        ApplicationScored(
            **at(), application_id="app-1", fair_id=FAIR, booth_type="STANDARD", score=87
        ),
        EVERYTHING_KNOWN,
        {(exporter(APPLICANT), Kind.APPLICATION_SCORED)},
    ),
    (
        "allocated below the quota: the credit code only",
        allocated(quota=5),
        replace(EVERYTHING_KNOWN, allocated=4),
        {(exporter(OTHER), Kind.BOOTH_ALLOCATED)},
    ),
    (
        "allocated from the waitlist: the promotion tells the exporter, not this",
        replace(allocated(quota=5), from_waitlist=True),
        replace(EVERYTHING_KNOWN, allocated=4),
        set(),
    ),
    (
        "allocated reaching the quota: and the officers",
        allocated(quota=5),
        replace(EVERYTHING_KNOWN, allocated=5),
        {(exporter(OTHER), Kind.BOOTH_ALLOCATED), ("officer", Kind.QUOTA_FILLED)},
    ),
    (
        "waitlisted: the applicant",
        ApplicationWaitlisted(
            **at(), application_id="app-1", fair_id=FAIR, booth_type="STANDARD", position=3
        ),
        EVERYTHING_KNOWN,
        {(exporter(APPLICANT), Kind.APPLICATION_WAITLISTED)},
    ),
    (
        "promoted: the applicant",
        WaitlistPromoted(
            **at(),
            application_id="app-1",
            fair_id=FAIR,
            booth_type="STANDARD",
            booth_number="12.1A02",
        ),
        EVERYTHING_KNOWN,
        {(exporter(APPLICANT), Kind.WAITLIST_PROMOTED)},
    ),
    (
        "rejected: the applicant",
        ApplicationRejected(
            **at(),
            application_id="app-1",
            fair_id=FAIR,
            booth_type="STANDARD",
            reason="no export licence",
        ),
        EVERYTHING_KNOWN,
        {(exporter(APPLICANT), Kind.APPLICATION_REJECTED)},
    ),
    ("withdrawn without a penalty: nobody", withdrawn(0), EVERYTHING_KNOWN, set()),
    (
        "withdrawn with a penalty: the credit code",
        withdrawn(1),
        EVERYTHING_KNOWN,
        {(exporter(OTHER), Kind.PENALTY_CHARGED)},
    ),
    (
        "allocation completed: the officers",
        AllocationCompleted(
            **at(),
            fair_id=FAIR,
            booth_type="BRAND",
            quota=10,
            allocated=10,
            waitlisted=4,
            rejected=1,
        ),
        EVERYTHING_KNOWN,
        {("officer", Kind.ALLOCATION_COMPLETED)},
    ),
    (
        "RFQ: every recipient",
        submitted("RFQ", RECIPIENTS),
        EVERYTHING_KNOWN,
        {(exporter(code), Kind.RFQ_MATCHED) for code in RECIPIENTS},
    ),
    (
        "inquiry: its one recipient",
        submitted("INQUIRY", (RECIPIENTS[2],)),
        EVERYTHING_KNOWN,
        {(exporter(RECIPIENTS[2]), Kind.INQUIRY_RECEIVED)},
    ),
    ("intent from before recipients: nobody", submitted("RFQ", ()), EVERYTHING_KNOWN, set()),
    (
        "quote: the buyer",
        quote(),
        EVERYTHING_KNOWN,
        {(f"buyer:{BUYER}", Kind.QUOTE_RECEIVED)},
    ),
    (
        "declined: the buyer",
        IntentDeclined(
            **at(),
            intent_id="intent-1",
            edition_id="e",
            credit_code=OTHER,
            reason="",
            all_declined=True,
        ),
        EVERYTHING_KNOWN,
        {(f"buyer:{BUYER}", Kind.INTENT_DECLINED)},
    ),
    (
        "closed: the buyer",
        IntentClosed(**at(), intent_id="intent-1", edition_id="e", quotes=2, reason="buyer"),
        EVERYTHING_KNOWN,
        {(f"buyer:{BUYER}", Kind.INTENT_CLOSED)},
    ),
    (
        "expired: the buyer",
        IntentExpired(**at(), intent_id="intent-1", edition_id="e"),
        EVERYTHING_KNOWN,
        {(f"buyer:{BUYER}", Kind.INTENT_EXPIRED)},
    ),
    (
        "reserved below the threshold: the operator",
        reserved(89),
        EVERYTHING_KNOWN,
        {(f"operator:{OPERATOR}", Kind.WAREHOUSE_BOOKED)},
    ),
    (
        "reserved at the threshold: and an alert",
        reserved(90),
        EVERYTHING_KNOWN,
        {
            (f"operator:{OPERATOR}", Kind.WAREHOUSE_BOOKED),
            (f"operator:{OPERATOR}", Kind.UTILISATION_HIGH),
        },
    ),
    (
        "reserved above the default but below the operator's threshold",
        reserved(94),
        replace(EVERYTHING_KNOWN, alert_percent=95),
        {(f"operator:{OPERATOR}", Kind.WAREHOUSE_BOOKED)},
    ),
    ("reserved before operators were named: nobody", reserved(99, ""), EVERYTHING_KNOWN, set()),
    (
        "cancelled: the operator",
        cancelled(),
        EVERYTHING_KNOWN,
        {(f"operator:{OPERATOR}", Kind.BOOKING_CANCELLED)},
    ),
    ("cancelled before operators were named: nobody", cancelled(""), EVERYTHING_KNOWN, set()),
]


@pytest.mark.parametrize(
    ("fact", "known", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_event_reaches_its_readers_and_nobody_else(
    fact: Fact, known: Known, expected: set[tuple[str, Kind]]
) -> None:
    drafts = domain.drafts_for(fact, known)
    assert {(draft.reader.key, draft.kind) for draft in drafts} == expected
    assert len(drafts) == len(expected)
    # Every draft says which event caused it.
    assert all(draft.event_id == fact.event_id for draft in drafts)


@pytest.mark.parametrize(
    "fact",
    [
        ApplicationScored(**at(), application_id="a", fair_id=FAIR, booth_type="STANDARD", score=1),
        ApplicationWaitlisted(
            **at(), application_id="a", fair_id=FAIR, booth_type="BRAND", position=1
        ),
        WaitlistPromoted(
            **at(), application_id="a", fair_id=FAIR, booth_type="BRAND", booth_number="1"
        ),
        ApplicationRejected(
            **at(), application_id="a", fair_id=FAIR, booth_type="BRAND", reason=""
        ),
        quote(),
        IntentClosed(**at(), intent_id="i", edition_id="e", quotes=0, reason="deadline"),
        IntentExpired(**at(), intent_id="i", edition_id="e"),
    ],
    ids=lambda fact: type(fact).__name__,
)
def test_an_event_whose_join_is_missing_notifies_nobody(fact: Fact) -> None:
    assert domain.drafts_for(fact, Known()) == []
    assert isinstance(fact, domain.NEEDS_APPLICANT + domain.NEEDS_BUYER)


def test_no_fact_of_an_intent_can_carry_the_buyers_company_or_contact() -> None:
    names = {f.name for f in dataclasses.fields(IntentSubmitted)}
    assert not names & {"company", "contact", "email", "phone", "name", "contact_name"}
    for draft in domain.drafts_for(submitted("RFQ", RECIPIENTS), EVERYTHING_KNOWN):
        facts = dict(draft.facts)
        # Not even the buyer id, which exhibitors have no need of to answer in the expo.
        assert BUYER not in facts.values()
        assert facts["buyer_country"] == "DE"
        assert facts["quantity"] == "5000"


def test_the_quota_is_filled_when_the_count_reaches_it_and_said_once() -> None:
    below = domain.drafts_for(allocated(quota=3), Known(allocated=2))
    assert [d.kind for d in below] == [Kind.BOOTH_ALLOCATED]
    first = domain.drafts_for(allocated(quota=3), Known(allocated=3))
    # Another event (a later promotion counted in, a redelivery under a new id) makes the
    # same notification id: inserting it again changes nothing.
    later = domain.drafts_for(replace(allocated(quota=3), event_id="e-2"), Known(allocated=4))
    filled = [d for d in first if d.kind is Kind.QUOTA_FILLED]
    again = [d for d in later if d.kind is Kind.QUOTA_FILLED]
    assert filled[0].notification_id == again[0].notification_id
    assert filled[0].source == f"quota:{FAIR}:STANDARD"
    assert dict(filled[0].facts) == {"fair_id": FAIR, "booth_type": "STANDARD", "quota": "3"}


def test_a_quota_of_zero_is_never_filled() -> None:
    assert [d.kind for d in domain.drafts_for(allocated(quota=0), Known(allocated=1))] == [
        Kind.BOOTH_ALLOCATED
    ]


def test_facts_are_text_dates_and_moments_in_their_standard_forms() -> None:
    (booked,) = domain.drafts_for(reserved(10), EVERYTHING_KNOWN)
    facts = dict(booked.facts)
    assert facts["start_date"] == "2026-07-01"
    assert facts["end_date"] == "2026-08-01"
    (rfq, *_) = domain.drafts_for(submitted("RFQ", RECIPIENTS), EVERYTHING_KNOWN)
    assert dict(rfq.facts)["deadline"] == "2026-07-08T09:30:00Z"
    (quoted,) = domain.drafts_for(quote(), EVERYTHING_KNOWN)
    assert dict(quoted.facts)["unit_price"] == "12.50"
    assert dict(quoted.facts)["valid_until"] == ""
    (penalty,) = domain.drafts_for(withdrawn(123_450), EVERYTHING_KNOWN)
    assert dict(penalty.facts)["penalty_fen"] == "123450"


@pytest.mark.parametrize(
    ("amount", "text"),
    [("12.5", "12.50"), ("12", "12.00"), ("0.125", "0.125"), ("1E+2", "100.00"), ("3.10", "3.10")],
)
def test_amounts_show_two_decimals_or_more_when_they_have_them(amount: str, text: str) -> None:
    assert domain.decimal_text(Decimal(amount)) == text


# Notification ids.


def test_notification_ids_are_deterministic() -> None:
    fact = submitted("RFQ", RECIPIENTS)
    first = [d.notification_id for d in domain.drafts_for(fact, EVERYTHING_KNOWN)]
    second = [d.notification_id for d in domain.drafts_for(fact, EVERYTHING_KNOWN)]
    assert first == second
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in first)


def test_notification_ids_differ_per_reader_kind_and_source() -> None:
    base = Draft("e-1", Reader(Role.EXPORTER, APPLICANT), Kind.BOOTH_ALLOCATED, ())
    variants = [
        base,
        replace(base, reader=Reader(Role.EXPORTER, OTHER)),
        replace(base, kind=Kind.WAITLIST_PROMOTED),
        replace(base, source="e-2"),
    ]
    assert len({d.notification_id for d in variants}) == len(variants)
    # The facts are not part of the identity: the same event renders the same way.
    assert replace(base, facts=(("x", "1"),)).notification_id == base.notification_id


def test_a_draft_makes_an_unread_notification() -> None:
    (draft,) = domain.drafts_for(withdrawn(500), EVERYTHING_KNOWN)
    made = draft.notification("title", "body", "en", NOW)
    assert made.notification_id == draft.notification_id
    assert made.reader == Reader(Role.EXPORTER, OTHER)
    assert made.facts["penalty_fen"] == "500"
    assert (made.event_id, made.created_at, made.read_at) == ("e-1", NOW, None)


def test_followers_are_found_by_preferred_headings_else_registered_ones() -> None:
    fair = ("6704", "8501")
    assert domain.follows(fair, (), ["6704"])
    assert not domain.follows(fair, (), ["0901"])
    assert domain.follows(fair, ["8501"], ["0901"])
    assert not domain.follows(fair, ["0901"], ["6704"])


# The daily digest.


def test_the_digest_counts_the_days_events_by_type_for_the_officers() -> None:
    draft = domain.digest_draft(
        date(2026, 6, 30),
        {"chuhai.booth.v1.BoothAllocated": 3, "chuhai.expo.v1.IntentSubmitted": 7, "X": 0},
    )
    assert draft.reader == OFFICERS
    assert draft.kind is Kind.DAILY_DIGEST
    assert draft.source == "digest:2026-06-30"
    assert draft.event_id == ""
    assert dict(draft.facts) == {
        "day": "2026-06-30",
        "total": "10",
        "count_BoothAllocated": "3",
        "count_IntentSubmitted": "7",
    }
    assert draft.notification_id == domain.digest_draft(date(2026, 6, 30), {}).notification_id


def test_the_digest_of_the_previous_local_day_is_due_once_past_the_hour() -> None:
    shanghai = "Asia/Shanghai"
    # 07:59 in Shanghai on 2 July.
    assert domain.digest_day_due(datetime(2026, 7, 1, 23, 59, tzinfo=UTC), 8, shanghai) is None
    # 08:00 in Shanghai on 2 July: 1 July's digest, though it is still 1 July in UTC.
    due = domain.digest_day_due(datetime(2026, 7, 2, 0, 0, tzinfo=UTC), 8, shanghai)
    assert due == date(2026, 7, 1)
    late = domain.digest_day_due(datetime(2026, 7, 2, 15, 0, tzinfo=UTC), 8, ZoneInfo(shanghai))
    assert late == date(2026, 7, 1)


# Preferences.


def update(draft: PreferencesDraft, *paths: str) -> PreferencesUpdate:
    return validated(lambda check: PreferencesUpdate.validated(draft, paths, check))


def test_default_preferences_are_chinese_without_email_or_quiet_hours() -> None:
    default = domain.DEFAULT
    assert (default.language, default.email, default.kinds) == ("zh", "", ())
    assert (default.quiet_hours, default.fair_hs_headings) == (None, ())
    assert domain.DEFAULT.alert_percent == 90
    assert domain.DEFAULT.release_at(NOW) == NOW
    assert all(domain.DEFAULT.channels_for(kind) == set(Channel) for kind in Kind)


def test_preferences_name_every_wrong_field() -> None:
    draft = PreferencesDraft(
        language="fr",
        email="not-an-address",
        kinds=((Kind.RFQ_MATCHED, (Channel.EMAIL, 9)), (0, ()), (Kind.RFQ_MATCHED, ())),
        quiet_hours=QuietHoursDraft("24:00", "7", "Mars/Olympus_Mons"),
        fair_hs_headings=("6704", "67"),
        utilisation_alert_percent=101,
    )
    with pytest.raises(InvalidArgument) as error:
        update(draft)
    assert violated(error) == {
        "preferences.language",
        "preferences.email",
        "preferences.kinds[0].channels[1]",
        "preferences.kinds[1].kind",
        "preferences.kinds[2].kind",
        "preferences.quiet_hours.start",
        "preferences.quiet_hours.end",
        "preferences.quiet_hours.time_zone",
        "preferences.fair_hs_headings[1]",
        "preferences.utilisation_alert_percent",
    }


def test_quiet_hours_must_not_start_and_end_at_once() -> None:
    with pytest.raises(InvalidArgument) as error:
        update(PreferencesDraft(quiet_hours=QuietHoursDraft("22:00", "22:00", "Asia/Shanghai")))
    assert violated(error) == {"preferences.quiet_hours.end"}


def test_an_unknown_mask_path_is_named_and_fields_outside_the_mask_are_not_checked() -> None:
    with pytest.raises(InvalidArgument) as error:
        update(PreferencesDraft(language="fr", email="x"), "email", "colour")
    assert violated(error) == {"preferences.email", "update_mask.paths[1]"}


def test_an_empty_mask_replaces_everything() -> None:
    current = Preferences(language="en", email="a@example.com", fair_hs_headings=("6704",))
    replaced = update(PreferencesDraft(email=" sales@xuchang-hair.cn ")).apply(current)
    # An empty language is the default one.
    assert replaced == Preferences(language="zh", email="sales@xuchang-hair.cn")


def test_a_mask_changes_only_the_fields_it_names() -> None:
    current = Preferences(language="en", email="a@example.com", utilisation_alert_percent=80)
    draft = PreferencesDraft(
        language="zh",
        quiet_hours=QuietHoursDraft("22:00", "07:30", "Europe/Berlin"),
        fair_hs_headings=("8501", "6704", "8501"),
    )
    changed = update(draft, "quiet_hours", "fair_hs_headings").apply(current)
    assert changed == replace(
        current,
        quiet_hours=QuietHours(time(22), time(7, 30), "Europe/Berlin"),
        fair_hs_headings=("6704", "8501"),
    )
    cleared = update(PreferencesDraft(), "quiet_hours").apply(changed)
    assert cleared.quiet_hours is None
    assert cleared.fair_hs_headings == ("6704", "8501")


def test_kind_channels_turn_kinds_off_or_choose_channels() -> None:
    draft = PreferencesDraft(
        kinds=((Kind.DAILY_DIGEST, ()), (Kind.RFQ_MATCHED, (Channel.EMAIL, Channel.EMAIL)))
    )
    preferences = update(draft).apply(domain.DEFAULT)
    assert not preferences.wants(Kind.DAILY_DIGEST)
    assert preferences.channels_for(Kind.DAILY_DIGEST) == frozenset()
    # In the platform always, once a kind is made at all.
    assert preferences.channels_for(Kind.RFQ_MATCHED) == {Channel.IN_APP, Channel.EMAIL}
    assert preferences.channels_for(Kind.QUOTE_RECEIVED) == set(Channel)


def test_an_alert_percent_of_zero_is_the_default() -> None:
    assert Preferences(utilisation_alert_percent=0).alert_percent == 90
    assert Preferences(utilisation_alert_percent=75).alert_percent == 75


# Quiet hours.

OVERNIGHT_SHANGHAI = QuietHours(time(22), time(7), "Asia/Shanghai")


def shanghai(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 7, day, hour, minute, tzinfo=ZoneInfo("Asia/Shanghai"))


def test_quiet_hours_across_midnight_hold_until_the_morning() -> None:
    # Late evening: until 07:00 the next day (Shanghai), i.e. 23:00 UTC.
    assert OVERNIGHT_SHANGHAI.release_at(shanghai(1, 23, 30)) == datetime(
        2026, 7, 1, 23, 0, tzinfo=UTC
    )
    assert OVERNIGHT_SHANGHAI.release_at(shanghai(1, 22)) == shanghai(2, 7)
    # After midnight: until 07:00 the same day.
    assert OVERNIGHT_SHANGHAI.release_at(shanghai(2, 3)) == shanghai(2, 7)
    # Outside: at once.
    for moment in (shanghai(2, 7), shanghai(2, 12), shanghai(2, 21, 59)):
        assert OVERNIGHT_SHANGHAI.release_at(moment) == moment


def test_quiet_hours_are_read_on_the_readers_clock() -> None:
    berlin_lunch = QuietHours(time(12), time(14), "Europe/Berlin")
    # 10:30 UTC is 12:30 in Berlin in summer: until 14:00 Berlin, 12:00 UTC.
    assert berlin_lunch.release_at(datetime(2026, 7, 1, 10, 30, tzinfo=UTC)) == datetime(
        2026, 7, 1, 12, 0, tzinfo=UTC
    )
    # 12:30 UTC is 14:30 in Berlin: after them.
    outside = datetime(2026, 7, 1, 12, 30, tzinfo=UTC)
    assert berlin_lunch.release_at(outside) == outside
    # In winter Berlin is UTC+1: 11:30 UTC is 12:30 there, released at 13:00 UTC.
    assert berlin_lunch.release_at(datetime(2026, 1, 15, 11, 30, tzinfo=UTC)) == datetime(
        2026, 1, 15, 13, 0, tzinfo=UTC
    )


def test_preferences_release_through_their_quiet_hours() -> None:
    preferences = Preferences(quiet_hours=OVERNIGHT_SHANGHAI)
    assert preferences.release_at(shanghai(2, 3)) == shanghai(2, 7)


# Webhooks.


def registration(url: str, kinds: tuple[int, ...] = ()) -> WebhookRegistration:
    return validated(lambda check: WebhookRegistration.validated(url, kinds, check))


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.xuchang-hair.cn/chuhai",
        "HTTPS://example.com:8443/x?y=1",
        "http://127.0.0.1:8080/hook",
        "http://127.5.6.7/hook",
        "http://localhost:9000/",
        "http://[::1]:9000/hook",
    ],
)
def test_webhook_urls_are_https_or_http_to_this_machine(url: str) -> None:
    assert registration(f"  {url} ").url == url


@pytest.mark.parametrize(
    "url",
    [
        "",
        "http://example.com/hook",
        "http://10.0.0.1/hook",
        "ftp://example.com/",
        "https://",
        "hooks.example.com",
        "https://example.com:port/",
        "https://example.com/" + "x" * 2048,
    ],
)
def test_other_webhook_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        registration(url)
    assert violated(error) == {"url"}


def test_a_registration_names_unknown_kinds() -> None:
    with pytest.raises(InvalidArgument) as error:
        registration("https://example.com", (Kind.RFQ_MATCHED, 0, 99))
    assert violated(error) == {"kinds[1]", "kinds[2]"}
    assert registration("https://example.com", (Kind.RFQ_MATCHED,)).kinds == {Kind.RFQ_MATCHED}


def hook(**changes: object) -> Webhook:
    made = registration("https://example.com/hook").webhook(
        "wh-1", Reader(Role.EXPORTER, APPLICANT), domain.new_secret(), NOW
    )
    return replace(made, **changes)


def test_a_webhook_without_kinds_accepts_every_kind() -> None:
    assert all(hook().accepts(kind) for kind in Kind)
    chosen = hook(kinds=frozenset({Kind.RFQ_MATCHED}))
    assert chosen.accepts(Kind.RFQ_MATCHED)
    assert not chosen.accepts(Kind.INQUIRY_RECEIVED)


def test_a_webhook_is_disabled_after_failures_in_a_row_and_enabled_again() -> None:
    webhook = hook()
    for _ in range(2):
        webhook = webhook.failed(disable_after=3)
    assert webhook.enabled and webhook.consecutive_failures == 2
    assert webhook.succeeded().consecutive_failures == 0
    webhook = webhook.failed(disable_after=3)
    assert not webhook.enabled
    assert webhook.disabled_reason == "disabled after 3 failed deliveries in a row"
    again = webhook.enabled_again()
    assert (again.enabled, again.disabled_reason, again.consecutive_failures) == (True, "", 0)


def test_a_reader_has_at_most_ten_webhooks() -> None:
    domain.check_webhook_limit(9)
    with pytest.raises(FailedPrecondition) as error:
        domain.check_webhook_limit(10)
    assert error.value.reason == "TOO_MANY_WEBHOOKS"


def test_secrets_are_32_random_bytes_base64url_without_padding() -> None:
    secret = domain.new_secret()
    assert "=" not in secret
    assert len(base64.urlsafe_b64decode(secret + "=")) == 32
    assert secret != domain.new_secret()


# Retries.

POLICY = RetryPolicy(base=10, max=60, max_attempts=5)


def test_retries_back_off_doubling_up_to_the_cap() -> None:
    assert [POLICY.delay(n).total_seconds() for n in range(1, 6)] == [10, 20, 40, 60, 60]


def pending(**changes: object) -> Delivery:
    delivery = Delivery(
        delivery_id="d-1",
        notification_id="n-1",
        reader=Reader(Role.EXPORTER, APPLICANT),
        channel=Channel.WEBHOOK,
        target="wh-1",
        status=DeliveryStatus.PENDING,
        next_attempt_at=NOW,
        created_at=NOW,
    )
    return replace(delivery, **changes)


def test_a_failed_delivery_waits_longer_each_time_and_fails_after_the_last_attempt() -> None:
    delivery = pending()
    waits = []
    while delivery.status is DeliveryStatus.PENDING:
        delivery = delivery.failed("HTTP 503", NOW, POLICY, retryable=True)
        waits.append(delivery.next_attempt_at - NOW)
    assert delivery.status is DeliveryStatus.FAILED
    assert delivery.attempts == POLICY.max_attempts
    assert delivery.last_error == "HTTP 503"
    assert [w.total_seconds() for w in waits[:-1]] == [10, 20, 40, 60]


def test_a_permanent_failure_fails_at_once() -> None:
    failed = pending().failed("HTTP 410", NOW, POLICY, retryable=False)
    assert (failed.status, failed.attempts) == (DeliveryStatus.FAILED, 1)


def test_a_delivered_delivery_records_when() -> None:
    done = pending(attempts=2, last_error="timeout").delivered(NOW + timedelta(minutes=1))
    assert done.status is DeliveryStatus.DELIVERED
    assert (done.attempts, done.last_error) == (3, "")
    assert done.delivered_at == NOW + timedelta(minutes=1)


# Delivery plans.


def notification(kind: Kind = Kind.RFQ_MATCHED, reader: Reader | None = None) -> Notification:
    return Notification(
        notification_id="n-1",
        reader=reader or Reader(Role.EXPORTER, APPLICANT),
        kind=kind,
        title="t",
        body="b",
        language="zh",
        facts={},
        event_id="e-1",
        created_at=NOW,
    )


WITH_MAIL = Preferences(email="sales@xuchang-hair.cn")


def planned(
    note: Notification,
    preferences: Preferences,
    webhooks: list[Webhook],
    *,
    stale: bool = False,
    mail: bool = True,
) -> set[tuple[Channel, str]]:
    return {
        (d.channel, d.target)
        for d in domain.plan_deliveries(note, preferences, webhooks, NOW, stale, mail)
    }


def test_a_notification_goes_by_email_and_to_every_enabled_accepting_webhook() -> None:
    hooks = [
        hook(webhook_id="wh-all"),
        hook(webhook_id="wh-rfq", kinds=frozenset({Kind.RFQ_MATCHED})),
        hook(webhook_id="wh-quotes", kinds=frozenset({Kind.QUOTE_RECEIVED})),
        hook(webhook_id="wh-off", enabled=False),
        hook(webhook_id="wh-other", reader=Reader(Role.EXPORTER, OTHER)),
    ]
    assert planned(notification(), WITH_MAIL, hooks) == {
        (Channel.EMAIL, "sales@xuchang-hair.cn"),
        (Channel.WEBHOOK, "wh-all"),
        (Channel.WEBHOOK, "wh-rfq"),
    }


def test_no_email_without_an_address_or_a_mail_server() -> None:
    assert planned(notification(), domain.DEFAULT, []) == set()
    assert planned(notification(), WITH_MAIL, [], mail=False) == set()


def test_the_kinds_channels_decide() -> None:
    only_mail = replace(WITH_MAIL, kinds=((Kind.RFQ_MATCHED, frozenset({Channel.EMAIL})),))
    assert planned(notification(), only_mail, [hook()]) == {(Channel.EMAIL, WITH_MAIL.email)}
    only_hooks = replace(WITH_MAIL, kinds=((Kind.RFQ_MATCHED, frozenset({Channel.WEBHOOK})),))
    assert planned(notification(), only_hooks, [hook()]) == {(Channel.WEBHOOK, "wh-1")}
    off = replace(WITH_MAIL, kinds=((Kind.RFQ_MATCHED, frozenset()),))
    assert planned(notification(), off, [hook()]) == set()


def test_a_stale_events_notification_stays_in_the_platform() -> None:
    assert planned(notification(), WITH_MAIL, [hook()], stale=True) == set()
    assert domain.is_stale(NOW - timedelta(hours=73), NOW, 72)
    assert not domain.is_stale(NOW - timedelta(hours=71), NOW, 72)


def test_deliveries_wait_for_the_end_of_quiet_hours() -> None:
    quiet = replace(WITH_MAIL, quiet_hours=QuietHours(time(9), time(18), "UTC"))
    deliveries = domain.plan_deliveries(notification(), quiet, [hook()], NOW, False, True)
    assert {d.next_attempt_at for d in deliveries} == {datetime(2026, 7, 1, 18, tzinfo=UTC)}
    assert {d.status for d in deliveries} == {DeliveryStatus.PENDING}
    assert {d.created_at for d in deliveries} == {NOW}
    loud = domain.plan_deliveries(notification(), WITH_MAIL, [hook()], NOW, False, True)
    assert {d.next_attempt_at for d in loud} == {NOW}


def test_delivery_ids_are_deterministic_per_notification_channel_and_target() -> None:
    first = domain.plan_deliveries(notification(), WITH_MAIL, [hook()], NOW, False, True)
    again = domain.plan_deliveries(
        notification(), WITH_MAIL, [hook()], NOW + timedelta(hours=1), False, True
    )
    assert [d.delivery_id for d in first] == [d.delivery_id for d in again]
    assert len({d.delivery_id for d in first}) == 2
    assert first[0].delivery_id == domain.delivery_id("n-1", Channel.EMAIL, WITH_MAIL.email)


# Signatures.

SECRET = "c2VjcmV0LXRoYXQtaXMtbm90LXJlYWxseS0zMi1ieXRlcw"
BODY = b'{"delivery_id":"d-1"}'
STAMP = int(NOW.timestamp())


def test_a_signature_is_the_hmac_of_timestamp_and_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{STAMP}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert domain.sign(SECRET, STAMP, BODY) == f"v1={expected}"


def test_a_receiver_accepts_the_signature_of_what_was_sent() -> None:
    signature = domain.sign(SECRET, STAMP, BODY)
    assert domain.signature_valid(SECRET, STAMP, BODY, signature, NOW)
    assert domain.signature_valid(SECRET, str(STAMP), BODY, signature, NOW + timedelta(seconds=300))


def test_a_receiver_refuses_a_changed_body_a_wrong_secret_or_an_old_timestamp() -> None:
    signature = domain.sign(SECRET, STAMP, BODY)
    assert not domain.signature_valid(SECRET, STAMP, BODY + b" ", signature, NOW)
    assert not domain.signature_valid(SECRET + "x", STAMP, BODY, signature, NOW)
    assert not domain.signature_valid(SECRET, STAMP + 1, BODY, signature, NOW)
    late = NOW + timedelta(seconds=301)
    assert not domain.signature_valid(SECRET, STAMP, BODY, signature, late)
    early = NOW - timedelta(seconds=301)
    assert not domain.signature_valid(SECRET, STAMP, BODY, signature, early)
    assert not domain.signature_valid(SECRET, "yesterday", BODY, signature, NOW)
