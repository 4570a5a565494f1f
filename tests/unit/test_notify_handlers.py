"""The notify use cases over an in-memory repository: which event tells whom, exactly
once, as each reader's preferences say; a batch of events handled as one at a time
would handle them, at a cost that does not grow with the batch; a reader's calls on
its own notifications, preferences and webhooks only; the dispatcher's attempts,
retries and disabling; the consumer's steps for each record and each batch."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pymongo.errors import PyMongoError

from chuhai.expo.v1 import events_pb2 as expo_events
from chuhai.expo.v1 import resources_pb2 as expo_resources
from notify import consumer as notify_consumer
from notify import domain, handlers
from notify.dispatch import Dispatcher
from notify.domain import (
    Channel,
    DeliveryStatus,
    Kind,
    MarkRead,
    Preferences,
    PreferencesUpdate,
    QuietHours,
    Reader,
    RetryPolicy,
    WebhookRegistration,
)
from notify.handlers import DeliveryPolicy
from notify.templates import Mail
from notify.webhooks import SendOutcome
from runtime.adapters.events import envelope_for
from runtime.adapters.pagination import page_request
from runtime.kernel.errors import FailedPrecondition, NotFound
from runtime.kernel.identity import Principal, Role
from runtime.kernel.validation import Validator
from tests.credit_codes import random_credit_code
from tests.fakes import DEFAULT_NOW, FakeUnitOfWork
from tests.unit.notify_memory import MemoryNotifyStore

NOW = DEFAULT_NOW
APPLICANT = random_credit_code()
OTHER = random_credit_code()
BUYER_ID = "buyer-hamburg-1"
OPERATOR_ID = "op-rotterdam"
POLICY = DeliveryPolicy(
    stale_after_hours=72.0,
    mail_configured=True,
    retry=RetryPolicy(base=10.0, max=3600.0, max_attempts=3),
    webhook_disable_after=2,
)


def exporter(code: str) -> Reader:
    return Reader(Role.EXPORTER, code)


BUYER = Reader(Role.BUYER, BUYER_ID)
OPERATOR = Reader(Role.OPERATOR, OPERATOR_ID)
OFFICERS = Reader(Role.OFFICER)


def principal(reader: Reader) -> Principal:
    return Principal(f"user-of-{reader.key}", reader.role, reader.party)


class Events:
    """Facts as notify.messages makes them from envelopes, with fresh event ids."""

    def __init__(self) -> None:
        self.count = 0

    def _id(self) -> str:
        self.count += 1
        return f"event-{self.count}"

    def profiled(self, code: str, *headings: str) -> domain.ExporterProfiled:
        return domain.ExporterProfiled(self._id(), NOW, code, headings)

    def fair_opened(self, *headings: str) -> domain.FairOpened:
        return domain.FairOpened(self._id(), NOW, "canton-139", "Canton Fair", "139", headings)

    def submitted(self, application: str, code: str) -> domain.ApplicationSubmitted:
        return domain.ApplicationSubmitted(
            self._id(), NOW, application, "canton-139", code, "STANDARD"
        )

    def scored(self, application: str) -> domain.ApplicationScored:
        return domain.ApplicationScored(self._id(), NOW, application, "canton-139", "STANDARD", 87)

    def allocated(self, application: str, code: str, quota: int = 2) -> domain.BoothAllocated:
        return domain.BoothAllocated(
            self._id(), NOW, application, "canton-139", code, "STANDARD", "1.1A-07", quota
        )

    def waitlisted(self, application: str) -> domain.ApplicationWaitlisted:
        return domain.ApplicationWaitlisted(
            self._id(), NOW, application, "canton-139", "STANDARD", 3
        )

    def intent(self, kind: str, *recipients: str) -> domain.IntentSubmitted:
        return domain.IntentSubmitted(
            self._id(),
            NOW,
            intent_id="intent-1",
            edition_id="cloud-2026",
            buyer_id=BUYER_ID,
            buyer_country="DE",
            kind=kind,
            hs_code="670420",
            quantity=500,
            unit="piece",
            deadline=NOW + timedelta(days=5),
            recipients=recipients,
        )

    def quote(self, intent: str = "intent-1") -> domain.QuoteSent:
        return domain.QuoteSent(
            self._id(),
            NOW,
            intent_id=intent,
            edition_id="cloud-2026",
            credit_code=APPLICANT,
            currency="USD",
            unit_price=Decimal("12.80"),
            moq=100,
            lead_time_days=20,
            incoterm="CIF",
            valid_until=None,
        )

    def reserved(self, peak: int, operator: str = OPERATOR_ID) -> domain.CapacityReserved:
        return domain.CapacityReserved(
            self._id(),
            NOW,
            reservation_id="res-1",
            warehouse_code="DE-HAM-01",
            exporter_credit_code=APPLICANT,
            pallet_positions=40,
            cubic_metres=60,
            start_date=date(2026, 4, 1),
            end_date=date(2026, 5, 1),
            operator_id=operator,
            peak_utilisation_percent=peak,
        )

    def allocation_completed(self) -> domain.AllocationCompleted:
        return domain.AllocationCompleted(self._id(), NOW, "canton-139", "STANDARD", 2, 2, 1, 0)


@pytest.fixture
def store() -> MemoryNotifyStore:
    return MemoryNotifyStore()


@pytest.fixture
def events() -> Events:
    return Events()


async def handle(
    store: MemoryNotifyStore,
    fact: domain.Fact,
    *,
    now: datetime = NOW,
    policy: DeliveryPolicy = POLICY,
) -> handlers.Handled:
    return await handlers.handle_event(store, fact, type(fact).__name__, now, policy)


def kinds_by_reader(store: MemoryNotifyStore) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for notification in store.notifications.values():
        found.setdefault(notification.reader.key, []).append(notification.kind.name)
    return {key: sorted(kinds) for key, kinds in found.items()}


async def save_preferences(
    store: MemoryNotifyStore, reader: Reader, preferences: Preferences
) -> None:
    await store.save_preferences(reader, preferences)


# Who is told what.


async def test_application_events_reach_the_applicant_through_the_join(
    store: MemoryNotifyStore, events: Events
) -> None:
    await handle(store, events.submitted("app-1", APPLICANT))
    await handle(store, events.submitted("app-2", OTHER))
    await handle(store, events.scored("app-1"))
    await handle(store, events.waitlisted("app-2"))

    assert kinds_by_reader(store) == {
        f"exporter:{APPLICANT}": ["APPLICATION_SCORED"],
        f"exporter:{OTHER}": ["APPLICATION_WAITLISTED"],
    }
    scored = store.of(exporter(APPLICANT))[0]
    assert scored.facts["score"] == "87"
    assert scored.language == "zh" and "87" in scored.body


async def test_an_event_whose_join_is_missing_tells_nobody_and_is_recorded(
    store: MemoryNotifyStore, events: Events
) -> None:
    fact = events.scored("app-from-an-old-history")
    handled = await handle(store, fact)
    assert handled == handlers.Handled(True)
    assert store.notifications == {}
    assert fact.event_id in store.events


async def test_allocation_tells_the_exporter_and_the_officers_once_the_quota_is_filled(
    store: MemoryNotifyStore, events: Events
) -> None:
    await handle(store, events.allocated("app-1", APPLICANT, quota=2))
    assert kinds_by_reader(store) == {f"exporter:{APPLICANT}": ["BOOTH_ALLOCATED"]}

    await handle(store, events.allocated("app-2", OTHER, quota=2))
    # A later allocation of the same type (a redelivery of another event id) says
    # nothing new to the officers.
    await handle(store, events.allocated("app-2", OTHER, quota=2))
    await handle(store, events.allocation_completed())

    assert kinds_by_reader(store) == {
        f"exporter:{APPLICANT}": ["BOOTH_ALLOCATED"],
        f"exporter:{OTHER}": ["BOOTH_ALLOCATED", "BOOTH_ALLOCATED"],
        "officer": ["ALLOCATION_COMPLETED", "QUOTA_FILLED"],
    }
    assert store.allocations == {"canton-139:STANDARD": {"app-1", "app-2"}}


async def test_a_fair_opening_reaches_the_exporters_following_its_headings(
    store: MemoryNotifyStore, events: Events
) -> None:
    by_products, by_preference, elsewhere, preferring_other = (random_credit_code() for _ in "abcd")
    await handle(store, events.profiled(by_products, "6704"))
    await handle(store, events.profiled(elsewhere, "8501"))
    await handle(store, events.profiled(preferring_other, "6704"))
    # Its preferences name other headings: those decide, not its products.
    await save_preferences(
        store, exporter(preferring_other), Preferences(fair_hs_headings=("8501",))
    )
    await save_preferences(store, exporter(by_preference), Preferences(fair_hs_headings=("6704",)))

    await handle(store, events.fair_opened("6704", "9403"))

    assert kinds_by_reader(store) == {
        f"exporter:{by_products}": ["FAIR_OPENED"],
        f"exporter:{by_preference}": ["FAIR_OPENED"],
    }


async def test_intents_tell_their_recipients_and_answers_tell_the_buyer(
    store: MemoryNotifyStore, events: Events
) -> None:
    await handle(store, events.intent("RFQ", APPLICANT, OTHER))
    await handle(store, events.quote())

    assert kinds_by_reader(store) == {
        f"exporter:{APPLICANT}": ["RFQ_MATCHED"],
        f"exporter:{OTHER}": ["RFQ_MATCHED"],
        f"buyer:{BUYER_ID}": ["QUOTE_RECEIVED"],
    }
    told = store.of(exporter(OTHER))[0]
    # The buyer's identity stays with the expo: the exhibitor learns its country.
    assert BUYER_ID not in str(told) and told.facts["buyer_country"] == "DE"
    assert store.of(BUYER)[0].facts["unit_price"] == "12.80"


async def test_warehouse_bookings_alert_at_the_operators_threshold(
    store: MemoryNotifyStore, events: Events
) -> None:
    await handle(store, events.reserved(peak=85))
    assert kinds_by_reader(store) == {f"operator:{OPERATOR_ID}": ["WAREHOUSE_BOOKED"]}

    await save_preferences(store, OPERATOR, Preferences(utilisation_alert_percent=80))
    await handle(store, events.reserved(peak=85))
    assert kinds_by_reader(store)[f"operator:{OPERATOR_ID}"] == [
        "UTILISATION_HIGH",
        "WAREHOUSE_BOOKED",
        "WAREHOUSE_BOOKED",
    ]

    # An old event without the operator tells nobody.
    await handle(store, events.reserved(peak=99, operator=""))
    assert len(store.notifications) == 3


# Exactly once.


async def test_an_event_handled_twice_changes_nothing(
    store: MemoryNotifyStore, events: Events
) -> None:
    await save_preferences(store, exporter(APPLICANT), Preferences(email="sales@example.com"))
    fact = events.intent("INQUIRY", APPLICANT)
    first = await handle(store, fact)
    assert first.fresh and len(first.notifications) == 1 and first.deliveries == 1
    writes = store.writes

    again = await handle(store, fact, now=NOW + timedelta(minutes=5))

    assert again == handlers.SKIPPED
    assert store.writes == writes


async def test_a_crash_halfway_and_the_redelivery_converge(
    store: MemoryNotifyStore, events: Events
) -> None:
    await save_preferences(store, exporter(APPLICANT), Preferences(email="sales@example.com"))
    fact = events.intent("INQUIRY", APPLICANT, OTHER)
    await handle(store, fact)
    whole = (dict(store.notifications), dict(store.deliveries))
    # As if the process died after the notifications, before it recorded the event.
    del store.events[fact.event_id]
    store.deliveries.clear()

    later = await handle(store, fact, now=NOW + timedelta(seconds=3))

    assert later.fresh and later.notifications == () and later.deliveries == 1
    assert store.notifications == whole[0]
    assert store.deliveries.keys() == whole[1].keys()


# Batches.


def typed(facts: list[domain.Fact]) -> list[tuple[domain.Fact, str]]:
    return [(fact, type(fact).__name__) for fact in facts]


async def readers_with_channels(store: MemoryNotifyStore) -> None:
    """E-mail for an exporter and the buyer, a webhook for another exporter, a lower
    threshold for the operator."""
    await save_preferences(store, exporter(APPLICANT), Preferences(email="sales@example.com"))
    await save_preferences(store, BUYER, Preferences(language="en", email="buy@example.com"))
    await save_preferences(store, OPERATOR, Preferences(utilisation_alert_percent=80))
    hook = WebhookRegistration("https://hooks.example.com/a", frozenset())
    await store.add_webhook(hook.webhook("hook-1", exporter(OTHER), "s", NOW))


async def test_a_batch_makes_what_one_event_at_a_time_makes(events: Events) -> None:
    handled_before = events.reserved(peak=95)
    scored = events.scored("app-1")
    batch = [
        events.profiled(APPLICANT, "6704"),
        events.profiled(OTHER, "8501"),
        events.fair_opened("6704"),
        # Joins of the batch's earlier events: an application submitted and scored, an
        # intent submitted and quoted.
        events.submitted("app-1", APPLICANT),
        events.submitted("app-2", OTHER),
        scored,
        events.waitlisted("app-2"),
        events.allocated("app-1", APPLICANT, quota=2),
        # Fills the quota: the officers hear of it from this event, and from no later one.
        events.allocated("app-3", OTHER, quota=2),
        events.allocated("app-3", OTHER, quota=2),
        events.allocation_completed(),
        events.intent("RFQ", APPLICANT, OTHER),
        events.quote(),
        events.reserved(peak=85),
        # Read twice in one batch, and handled before the batch.
        scored,
        handled_before,
    ]
    one_at_a_time, batched = MemoryNotifyStore(), MemoryNotifyStore()
    for store in (one_at_a_time, batched):
        await readers_with_channels(store)
        await handle(store, handled_before)

    expected = [await handle(one_at_a_time, fact) for fact in batch]
    results = await handlers.handle_events(batched, typed(batch), NOW, POLICY)

    assert results == expected
    assert batched.notifications == one_at_a_time.notifications
    assert batched.deliveries == one_at_a_time.deliveries
    assert batched.events == one_at_a_time.events
    assert batched.allocations == one_at_a_time.allocations
    assert results[-2:] == [handlers.SKIPPED, handlers.SKIPPED]
    (quota,) = [n for n in batched.notifications.values() if n.kind is Kind.QUOTA_FILLED]
    assert quota.event_id == batch[8].event_id
    assert Counter(n.kind.name for n in batched.notifications.values()) == {
        "UTILISATION_HIGH": 2,
        "WAREHOUSE_BOOKED": 2,
        "FAIR_OPENED": 1,
        "APPLICATION_SCORED": 1,
        "APPLICATION_WAITLISTED": 1,
        "BOOTH_ALLOCATED": 3,
        "QUOTA_FILLED": 1,
        "ALLOCATION_COMPLETED": 1,
        "RFQ_MATCHED": 2,
        "QUOTE_RECEIVED": 1,
    }
    # The exporter's e-mails (4), the other's webhook (4), the buyer's e-mail.
    assert sum(result.deliveries for result in results) == 9


class Counted:
    """A store whose calls are counted by method name."""

    def __init__(self, store: MemoryNotifyStore) -> None:
        self.store = store
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.store, name)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return await method(*args, **kwargs)

        return counted


async def test_a_batch_costs_the_same_calls_to_the_store_whatever_its_size() -> None:
    def intents(count: int) -> list[domain.Fact]:
        made = []
        for number in range(count):
            events = Events()
            events.count = 1000 * number
            rfq = events.intent("RFQ", APPLICANT, OTHER, random_credit_code())
            made.append(dataclasses.replace(rfq, intent_id=f"i-{number}", buyer_id=f"b-{number}"))
            made.append(dataclasses.replace(events.quote(), intent_id=f"i-{number}"))
        return made

    calls = []
    for count in (1, 50):
        store = Counted(MemoryNotifyStore())
        await readers_with_channels(store.store)
        await handlers.handle_events(store, typed(intents(count)), NOW, POLICY)  # type: ignore[arg-type]
        assert len(store.store.notifications) == 4 * count
        calls.append(store.calls)

    assert calls[0] == calls[1]
    assert sum(calls[1].values()) <= 16


def said(store: MemoryNotifyStore) -> dict[str, tuple[Reader, Kind, dict[str, str], str]]:
    """Each notification's reader, kind, facts and event: all but when it was made."""
    return {
        key: (n.reader, n.kind, dict(n.facts), n.event_id) for key, n in store.notifications.items()
    }


class Crashing(MemoryNotifyStore):
    """Dies once, right after one write (``crash_after``) was made."""

    def __init__(self, crash_after: str) -> None:
        super().__init__()
        self.crash_after = crash_after

    def __getattribute__(self, name: str) -> Any:
        method = super().__getattribute__(name)
        if name != super().__getattribute__("crash_after"):
            return method

        async def crashing(*args: Any, **kwargs: Any) -> Any:
            await method(*args, **kwargs)
            self.crash_after = ""
            raise PyMongoError("connection reset")

        return crashing


@pytest.mark.parametrize(
    "crash_after", ["save_intents", "add_notifications", "add_deliveries", "record_events"]
)
async def test_a_batch_that_dies_halfway_converges_when_read_again(
    events: Events, crash_after: str
) -> None:
    batch = [
        events.submitted("app-1", APPLICANT),
        events.scored("app-1"),
        events.intent("RFQ", APPLICANT, OTHER),
        events.quote(),
    ]
    once, crashing = MemoryNotifyStore(), Crashing(crash_after)
    for store in (once, crashing):
        await readers_with_channels(store)
    await handlers.handle_events(once, typed(batch), NOW, POLICY)

    with pytest.raises(PyMongoError):
        await handlers.handle_events(crashing, typed(batch), NOW, POLICY)
    # Recorded as handled only once its notifications and deliveries were written.
    assert crashing.events == ({} if crash_after != "record_events" else once.events)
    await handlers.handle_events(crashing, typed(batch), NOW + timedelta(seconds=3), POLICY)

    assert said(crashing) == said(once)
    assert crashing.deliveries.keys() == once.deliveries.keys()
    assert crashing.events == once.events


# Preferences.


async def test_a_kind_turned_off_is_not_made_at_all(
    store: MemoryNotifyStore, events: Events
) -> None:
    await save_preferences(store, BUYER, Preferences(kinds=((Kind.QUOTE_RECEIVED, frozenset()),)))
    await handle(store, events.intent("INQUIRY", APPLICANT))
    await handle(store, events.quote())
    assert f"buyer:{BUYER_ID}" not in kinds_by_reader(store)


async def test_channels_follow_the_preferences_and_the_configuration(
    store: MemoryNotifyStore, events: Events
) -> None:
    reader = exporter(APPLICANT)
    registration = WebhookRegistration("https://hooks.example.com/a", frozenset())
    everything = registration.webhook("hook-all", reader, "s", NOW)
    quotes_only = dataclasses.replace(
        everything, webhook_id="hook-quotes", kinds=frozenset({Kind.QUOTE_RECEIVED})
    )
    disabled = dataclasses.replace(everything, webhook_id="hook-off", enabled=False)
    for hook in (everything, quotes_only, disabled):
        await store.add_webhook(hook)
    await save_preferences(store, reader, Preferences(email="sales@example.com"))

    await handle(store, events.intent("INQUIRY", APPLICANT))
    planned = {(d.channel, d.target) for d in store.deliveries.values()}
    assert planned == {(Channel.EMAIL, "sales@example.com"), (Channel.WEBHOOK, "hook-all")}

    # Webhook only for inquiries; no mail server: no e-mail either way.
    store.deliveries.clear()
    await save_preferences(
        store,
        reader,
        Preferences(
            email="sales@example.com",
            kinds=((Kind.INQUIRY_RECEIVED, frozenset({Channel.WEBHOOK})),),
        ),
    )
    await handle(store, events.intent("INQUIRY", APPLICANT))
    await handle(
        store,
        events.intent("RFQ", APPLICANT),
        policy=dataclasses.replace(POLICY, mail_configured=False),
    )
    assert {(d.channel, d.target) for d in store.deliveries.values()} == {
        (Channel.WEBHOOK, "hook-all")
    }
    assert len(store.deliveries) == 2


async def test_quiet_hours_hold_deliveries_and_stale_events_stay_in_the_platform(
    store: MemoryNotifyStore, events: Events
) -> None:
    reader = exporter(APPLICANT)
    # NOW is 09:00 UTC, 17:00 in Shanghai: quiet from 16:00 to 08:00 there.
    quiet = QuietHours(time(16, 0), time(8, 0), "Asia/Shanghai")
    await save_preferences(
        store, reader, Preferences(language="en", email="sales@example.com", quiet_hours=quiet)
    )
    await handle(store, events.intent("INQUIRY", APPLICANT))
    (held,) = store.deliveries.values()
    assert held.next_attempt_at == datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
    (told,) = store.of(reader)
    assert told.language == "en" and told.title == "New inquiry: HS 670420"

    stale = await handle(store, events.intent("RFQ", APPLICANT), now=NOW + timedelta(hours=73))
    assert len(stale.notifications) == 1 and stale.deliveries == 0


async def test_preferences_are_the_callers_own(store: MemoryNotifyStore) -> None:
    uow = FakeUnitOfWork(store, actor=principal(exporter(APPLICANT)))
    check = Validator()
    draft = domain.PreferencesDraft(language="en", email="a@example.com")
    update = PreferencesUpdate.validated(draft, ["email"], check)
    check.raise_if_invalid()

    saved = await handlers.update_preferences(uow, update)

    assert saved == Preferences(email="a@example.com")
    assert await handlers.get_preferences(store, principal(exporter(APPLICANT))) == saved
    assert await handlers.get_preferences(store, principal(exporter(OTHER))) == domain.DEFAULT


# A reader's notifications.


async def test_lists_marks_and_counts_are_the_readers_own(
    store: MemoryNotifyStore, events: Events
) -> None:
    for minute in range(3):
        fact = dataclasses.replace(events.intent("INQUIRY", APPLICANT), event_id=f"i-{minute}")
        await handle(store, fact, now=NOW + timedelta(minutes=minute))
    await handle(store, events.intent("INQUIRY", OTHER))
    me, other = principal(exporter(APPLICANT)), principal(exporter(OTHER))
    check = Validator()
    first = page_request(2, "", ("notifications", False), check, key_length=2)

    page = await handlers.list_notifications(store, me, False, first)
    assert [n.created_at for n in page.notifications] == [
        NOW + timedelta(minutes=2),
        NOW + timedelta(minutes=1),
    ]
    assert page.unread_count == 3 and page.next_page_token
    after = page_request(2, page.next_page_token, ("notifications", False), check, key_length=2)
    rest = await handlers.list_notifications(store, me, False, after)
    assert [n.created_at for n in rest.notifications] == [NOW] and not rest.next_page_token

    others = (await handlers.list_notifications(store, other, False, first)).notifications
    uow = FakeUnitOfWork(store, actor=me)
    # Another reader's id is not marked.
    marked = await handlers.mark_read(
        uow, MarkRead((page.notifications[0].notification_id, others[0].notification_id))
    )
    assert (marked.marked, marked.unread_count) == (1, 2)
    assert (await handlers.mark_read(uow, MarkRead(all=True))).marked == 2
    assert await handlers.count_unread(store, me) == 0
    assert await handlers.count_unread(store, other) == 1


async def test_a_principal_without_a_reader_sees_nothing_and_changes_nothing(
    store: MemoryNotifyStore, events: Events
) -> None:
    await handle(store, events.intent("INQUIRY", APPLICANT))
    unregistered = Principal("new-buyer", Role.BUYER)
    check = Validator()
    first = page_request(0, "", ("notifications", False), check, key_length=2)

    assert (await handlers.list_notifications(store, unregistered, False, first)).unread_count == 0
    assert await handlers.count_unread(store, unregistered) == 0
    assert await handlers.list_webhooks(store, unregistered) == []
    with pytest.raises(FailedPrecondition) as refused:
        await handlers.mark_read(FakeUnitOfWork(store, actor=unregistered), MarkRead(all=True))
    assert refused.value.reason == "NO_READER"
    with pytest.raises(FailedPrecondition):
        await handlers.get_preferences(store, unregistered)


# Webhooks.


async def test_webhooks_are_registered_enabled_and_deleted_by_their_reader(
    store: MemoryNotifyStore, events: Events
) -> None:
    me = principal(exporter(APPLICANT))
    uow = FakeUnitOfWork(store, actor=me)
    registered = await handlers.register_webhook(
        uow, WebhookRegistration("https://hooks.example.com/chuhai", frozenset())
    )
    hook = registered.webhook
    # 32 random bytes, base64url without padding.
    assert len(registered.secret) == 43 and hook.secret == registered.secret
    await handle(store, events.intent("INQUIRY", APPLICANT))

    someone_else = FakeUnitOfWork(store, actor=principal(exporter(OTHER)))
    with pytest.raises(NotFound):
        await handlers.enable_webhook(someone_else, hook.webhook_id)
    with pytest.raises(NotFound):
        await handlers.delete_webhook(someone_else, hook.webhook_id)

    await store.save_webhook(hook.failed(disable_after=1))
    enabled = await handlers.enable_webhook(uow, hook.webhook_id)
    assert enabled.enabled and enabled.consecutive_failures == 0

    await handlers.delete_webhook(uow, hook.webhook_id)
    assert await handlers.list_webhooks(store, me) == []
    (delivery,) = store.deliveries.values()
    assert (delivery.status, delivery.last_error) == (DeliveryStatus.FAILED, "webhook removed")
    # The log of a removed webhook stays.
    check = Validator()
    page = page_request(0, "", ("deliveries", hook.webhook_id), check, key_length=2)
    log = await handlers.list_deliveries(store, me, hook.webhook_id, page)
    assert [d.delivery_id for d in log.deliveries] == [delivery.delivery_id]
    assert (
        await handlers.list_deliveries(store, principal(exporter(OTHER)), "", page)
    ).deliveries == []


# The digest.


async def test_the_digest_counts_the_local_day_once(store: MemoryNotifyStore) -> None:
    # 2026-03-01 in Shanghai is [2026-02-28 16:00, 2026-03-01 16:00) UTC.
    moments = {
        "in-1": datetime(2026, 2, 28, 16, 0, tzinfo=UTC),
        "in-2": datetime(2026, 3, 1, 15, 59, tzinfo=UTC),
        "before": datetime(2026, 2, 28, 15, 59, tzinfo=UTC),
        "after": datetime(2026, 3, 1, 16, 0, tzinfo=UTC),
    }
    await store.record_events(
        [(event_id, "chuhai.booth.v1.BoothAllocated", at) for event_id, at in moments.items()],
        NOW,
    )
    day = date(2026, 3, 1)
    later = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)

    made = await handlers.make_digest(store, day, "Asia/Shanghai", later, POLICY)
    again = await handlers.make_digest(store, day, "Asia/Shanghai", later, POLICY)

    (digest,) = made.notifications
    assert digest.reader == OFFICERS and digest.kind is Kind.DAILY_DIGEST
    assert digest.facts["total"] == "2" and digest.facts["count_BoothAllocated"] == "2"
    assert again.notifications == ()
    quiet_day = await handlers.make_digest(store, date(2026, 1, 1), "Asia/Shanghai", later, POLICY)
    assert quiet_day == handlers.SKIPPED


# The dispatcher.


class FakeMail:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Mail, str]] = []
        self.outcome = SendOutcome.delivered()

    async def send(self, to: str, mail: Mail, *, message_key: str = "") -> SendOutcome:
        self.sent.append((to, mail, message_key))
        return self.outcome


class FakeWebhooks:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict, bytes]] = []
        self.outcome = SendOutcome.delivered()

    async def send(self, url: str, headers: dict, body: bytes) -> SendOutcome:
        self.sent.append((url, dict(headers), body))
        return self.outcome


class MovableClock:
    def __init__(self) -> None:
        self.moment = NOW

    def now(self) -> datetime:
        return self.moment


def dispatcher_for(
    store: MemoryNotifyStore, mail: FakeMail, webhooks: FakeWebhooks, clock: MovableClock
) -> Dispatcher:
    return Dispatcher(
        store,
        mail,  # type: ignore[arg-type]
        webhooks,  # type: ignore[arg-type]
        POLICY,
        clock,
        poll_seconds=0.01,
        lease_seconds=5,
        attempted=lambda channel, outcome: None,
    )


async def test_the_dispatcher_sends_signed_requests_and_mail(
    store: MemoryNotifyStore, events: Events
) -> None:
    reader = exporter(APPLICANT)
    uow = FakeUnitOfWork(store, actor=principal(reader))
    registered = await handlers.register_webhook(
        uow, WebhookRegistration("https://hooks.example.com/a", frozenset())
    )
    await save_preferences(store, reader, Preferences(email="sales@example.com"))
    await handle(store, events.intent("INQUIRY", APPLICANT))
    mail, webhooks, clock = FakeMail(), FakeWebhooks(), MovableClock()
    dispatcher = dispatcher_for(store, mail, webhooks, clock)

    assert await dispatcher.dispatch_due() == 2
    assert await dispatcher.dispatch_due() == 0

    ((to, message, key),) = mail.sent
    assert to == "sales@example.com" and "HS 670420" in message.subject
    # A stable Message-ID: sent again after a lost answer, it is the same message.
    assert store.deliveries[key].channel is Channel.EMAIL
    ((url, headers, body),) = webhooks.sent
    assert url == "https://hooks.example.com/a"
    assert domain.signature_valid(
        registered.secret,
        headers["Chuhai-Timestamp"],
        body,
        headers["Chuhai-Signature"],
        NOW,
    )
    assert {d.status for d in store.deliveries.values()} == {DeliveryStatus.DELIVERED}
    assert {d.delivered_at for d in store.deliveries.values()} == {NOW}


async def test_failures_retry_with_backoff_then_disable_the_webhook(
    store: MemoryNotifyStore, events: Events
) -> None:
    reader = exporter(APPLICANT)
    uow = FakeUnitOfWork(store, actor=principal(reader))
    hook = (
        await handlers.register_webhook(
            uow, WebhookRegistration("https://hooks.example.com/a", frozenset())
        )
    ).webhook
    await handle(store, events.intent("INQUIRY", APPLICANT))
    await handle(store, events.intent("RFQ", APPLICANT))
    mail, webhooks, clock = FakeMail(), FakeWebhooks(), MovableClock()
    webhooks.outcome = SendOutcome.retry("HTTP 503")
    dispatcher = dispatcher_for(store, mail, webhooks, clock)

    # The two deliveries go one after the other; the second failure in a row disables
    # the hook (POLICY: after 2), which gives up what is still pending, saying why.
    assert await dispatcher.dispatch_due() == 2
    hook_now = store.webhooks[hook.webhook_id]
    assert not hook_now.enabled
    assert hook_now.disabled_reason == "disabled after 2 failed deliveries in a row"
    statuses = sorted((d.attempts, d.status.name, d.last_error) for d in store.deliveries.values())
    assert statuses == [(1, "FAILED", "disabled after 2 failed deliveries in a row")] * 2
    clock.moment += timedelta(hours=1)
    assert await dispatcher.dispatch_due() == 0
    assert len(webhooks.sent) == 2


async def test_a_delivery_is_given_up_after_its_last_attempt(
    store: MemoryNotifyStore, events: Events
) -> None:
    await save_preferences(store, exporter(APPLICANT), Preferences(email="sales@example.com"))
    await handle(store, events.intent("INQUIRY", APPLICANT))
    mail, webhooks, clock = FakeMail(), FakeWebhooks(), MovableClock()
    mail.outcome = SendOutcome.retry("451 try later")
    dispatcher = dispatcher_for(store, mail, webhooks, clock)

    assert await dispatcher.dispatch_due() == 1
    (delivery,) = store.deliveries.values()
    assert delivery.next_attempt_at == NOW + timedelta(seconds=10)
    assert await dispatcher.dispatch_due() == 0
    clock.moment += timedelta(seconds=10)
    assert await dispatcher.dispatch_due() == 1
    (delivery,) = store.deliveries.values()
    # The wait doubles.
    assert delivery.next_attempt_at == clock.moment + timedelta(seconds=20)
    clock.moment += timedelta(seconds=20)
    assert await dispatcher.dispatch_due() == 1
    (delivery,) = store.deliveries.values()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 3)
    assert len(mail.sent) == 3


async def test_a_claimed_delivery_is_not_sent_twice(
    store: MemoryNotifyStore, events: Events
) -> None:
    await save_preferences(store, exporter(APPLICANT), Preferences(email="sales@example.com"))
    await handle(store, events.intent("INQUIRY", APPLICANT))
    (due,) = store.deliveries.values()
    assert await store.claim(due, NOW + timedelta(minutes=1), "another-instance")
    mail, webhooks, clock = FakeMail(), FakeWebhooks(), MovableClock()
    dispatcher = dispatcher_for(store, mail, webhooks, clock)

    assert await dispatcher.dispatch_due() == 0
    # Its lease ran out (that instance died): due again.
    clock.moment += timedelta(minutes=1)
    assert await dispatcher.dispatch_due() == 1
    assert len(mail.sent) == 1
    # The dead instance's late answer is not recorded over it.
    assert not await store.save_attempt(due.delivered(NOW), "another-instance")


# The consumer's step.


async def test_the_record_step_dead_letters_junk_and_waits_out_the_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(notify_consumer, "BACKOFF_SECONDS", 0.001)
    handled: list[tuple[domain.Fact, str]] = []
    outages = [PyMongoError("connection refused"), PyMongoError("connection refused")]

    async def handle(fact: domain.Fact, event_type: str) -> None:
        if outages:
            raise outages.pop()
        handled.append((fact, event_type))

    dead: list[tuple[str, bytes | None, bytes, dict[str, bytes]]] = []

    async def send(topic: str, key: bytes | None, value: bytes, headers: list) -> None:
        dead.append((topic, key, value, dict(headers)))

    counted: list[str] = []
    step = notify_consumer.RecordStep(handle, send, counted.append)
    topic = "chuhai.expo.intents.v1"

    junk = notify_consumer.Record(topic, 2, 7, b"key", b"\x01 not an envelope")
    assert not await notify_consumer.handle_until_done(step, junk)
    ((dlq, key, value, headers),) = dead
    assert (dlq, key, value) == (f"{topic}.dlq", b"key", b"\x01 not an envelope")
    assert headers["consumer"] == b"notify" and headers["error_type"] == b"UndecodableEvent"
    assert headers["original_offset"] == b"7" and counted == [topic]

    # MongoDB away: the event is tried again until it is handled, never dead-lettered.
    inquiry = envelope_for(
        expo_events.IntentSubmitted(
            intent_id="intent-9",
            buyer_id=BUYER_ID,
            kind=expo_resources.INTENT_KIND_INQUIRY,
            hs_code="670420",
            recipients=[APPLICANT],
        ),
        aggregate_id="intent-9",
        producer="expo",
    )
    record = notify_consumer.Record(topic, 2, 8, b"intent-9", inquiry.SerializeToString())
    with pytest.raises(PyMongoError):
        await step(record)
    assert await notify_consumer.handle_until_done(step, record)
    ((fact, event_type),) = handled
    assert fact.event_id == inquiry.event_id and event_type == "chuhai.expo.v1.IntentSubmitted"
    assert len(dead) == 1

    # An event notify does not read is passed over.
    visit = envelope_for(
        expo_events.ExhibitorVisited(visit_id="v-1", buyer_id=BUYER_ID),
        aggregate_id=BUYER_ID,
        producer="expo",
    )
    passed = notify_consumer.Record(topic, 2, 9, b"b", visit.SerializeToString())
    assert not await notify_consumer.handle_until_done(step, passed)
    assert len(handled) == 1 and len(dead) == 1


def envelope_record(offset: int, payload: Any, key: str) -> notify_consumer.Record:
    envelope = envelope_for(payload, aggregate_id=key, producer="expo")
    return notify_consumer.Record(
        "chuhai.expo.intents.v1", 0, offset, key.encode(), envelope.SerializeToString()
    )


def inquiry(intent_id: str) -> expo_events.IntentSubmitted:
    return expo_events.IntentSubmitted(
        intent_id=intent_id,
        buyer_id=BUYER_ID,
        kind=expo_resources.INTENT_KIND_INQUIRY,
        hs_code="670420",
        recipients=[APPLICANT],
    )


async def test_the_batch_step_dead_letters_only_the_records_at_fault(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(notify_consumer, "BACKOFF_SECONDS", 0.001)
    batches: list[list[str]] = []
    outages = [PyMongoError("connection refused")]

    async def handle(facts: Any) -> None:
        if outages:
            raise outages.pop()
        intents = [fact.intent_id for fact, _ in facts]
        if "intent-poison" in intents:
            raise ValueError("a template failed")
        batches.append(intents)

    dead: list[tuple[str, int]] = []

    async def send(topic: str, key: bytes | None, value: bytes, headers: list) -> None:
        dead.append((topic, int(dict(headers)["original_offset"])))

    counted: list[str] = []
    step = notify_consumer.BatchStep(handle, send, counted.append)
    visit = expo_events.ExhibitorVisited(visit_id="v-1", buyer_id=BUYER_ID)
    records = [
        envelope_record(1, inquiry("intent-1"), "intent-1"),
        notify_consumer.Record("chuhai.expo.intents.v1", 0, 2, b"k", b"\x01 junk"),
        envelope_record(3, visit, BUYER_ID),
        envelope_record(4, inquiry("intent-poison"), "intent-poison"),
        envelope_record(5, inquiry("intent-5"), "intent-5"),
    ]

    # MongoDB away first: waited out. Then the poisoned batch goes one record at a time.
    assert await step(records) == 2
    assert batches == [["intent-1"], ["intent-5"]]
    dlq = "chuhai.expo.intents.v1.dlq"
    assert dead == [(dlq, 2), (dlq, 4)] and len(counted) == 2

    # A batch without fault is handled at once.
    assert await step([records[0], records[2], records[4]]) == 2
    assert batches[-1] == ["intent-1", "intent-5"] and len(dead) == 2
