"""The notify service's use cases.

Event handling (``handle_events``) takes a consumer batch at once and runs outside
transactions, as a sequence of idempotent writes for the whole batch: the joins it
keeps, the notifications (each id derived from its source, reader and kind), the
deliveries planned for them (ids derived from the notification, channel and target),
and last the record that each event was handled. A crash between any two writes and
the batch's redelivery converge on what handling it once makes; an event recorded as
handled is skipped at once.

The calls of a reader (list, mark read, preferences, webhooks, the delivery log) act
on the caller's own reader only (domain.Reader.of): a principal without one (a buyer
not registered yet) sees empty lists and may change nothing (NO_READER).

No pymongo and no protobuf here: unit tests run these over an in-memory repository."""

from __future__ import annotations

import bisect
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from notify import domain
from notify.domain import (
    DEFAULT,
    Delivery,
    DeliveryStatus,
    Draft,
    Fact,
    Known,
    MarkRead,
    Notification,
    Preferences,
    PreferencesUpdate,
    Reader,
    RetryPolicy,
    Webhook,
    WebhookRegistration,
)
from notify.templates import render
from runtime.adapters.pagination import PageRequest
from runtime.adapters.unit_of_work import UnitOfWork
from runtime.kernel.errors import NotFound
from runtime.kernel.identity import Principal, Role

if TYPE_CHECKING:
    from notify.storage import NotifyStore

log = logging.getLogger(__name__)

WEBHOOK_REMOVED = "webhook removed"
WEBHOOK_DISABLED = "webhook disabled"


@dataclass(frozen=True)
class DeliveryPolicy:
    """How notifications travel beyond the platform (from the settings)."""

    # Events older than this when handled notify in the platform only.
    stale_after_hours: float
    # False without an SMTP server: no e-mail is planned at all.
    mail_configured: bool
    retry: RetryPolicy
    # Failed attempts in a row that disable a webhook.
    webhook_disable_after: int


@dataclass(frozen=True)
class Handled:
    """What handling one event (or making one digest) did."""

    # False: the event had been handled before and was skipped.
    fresh: bool
    # The notifications made now (not those made before).
    notifications: tuple[Notification, ...] = ()
    # The e-mail and webhook deliveries planned now.
    deliveries: int = 0


SKIPPED = Handled(fresh=False)


@dataclass(frozen=True)
class NotificationPage:
    notifications: list[Notification]
    next_page_token: str
    unread_count: int


@dataclass(frozen=True)
class DeliveryPage:
    deliveries: list[Delivery]
    next_page_token: str


@dataclass(frozen=True)
class Registered:
    webhook: Webhook
    # Told once, in the answer to the registration.
    secret: str


@dataclass(frozen=True)
class Marked:
    marked: int
    unread_count: int


# Events.

# One event as the consumer read it: its fact, and its envelope's type.
Event = tuple[Fact, str]


async def handle_event(
    store: NotifyStore, fact: Fact, event_type: str, now: datetime, policy: DeliveryPolicy
) -> Handled:
    """Turn one event (``fact``, of envelope type ``event_type``) into the notifications
    it makes, each with its deliveries, once."""
    return (await handle_events(store, [(fact, event_type)], now, policy))[0]


async def handle_events(
    store: NotifyStore, events: Sequence[Event], now: datetime, policy: DeliveryPolicy
) -> list[Handled]:
    """Turn a batch of events, in the order they were read, into the notifications each
    makes, each with its deliveries, once; what handling each one did, in that order.

    A batch costs about a dozen round trips whatever its size (a question about more
    than a hundred ids takes one more per hundred): which events were handled before;
    the joins the batch adds, saved before any is looked up, so that an event sees
    those of earlier events of its batch as it would one at a time (an application
    submitted and scored, an intent submitted and quoted); one look-up per join; the
    readers' preferences and webhooks; one write each for the notifications and their
    deliveries; last, one for the events handled. An event read twice in one batch is
    handled at its first place."""
    before = await store.handled_among(fact.event_id for fact, _ in events)
    fresh: dict[str, Event] = {}
    for fact, event_type in events:
        if fact.event_id not in before:
            fresh.setdefault(fact.event_id, (fact, event_type))
    if not fresh:
        return [SKIPPED] * len(events)
    facts = [fact for fact, _ in fresh.values()]
    knowns = await _known(store, facts)
    drafts = [
        (draft, domain.is_stale(fact.occurred_at, now, policy.stale_after_hours))
        for fact, known in zip(facts, knowns, strict=True)
        for draft in domain.drafts_for(fact, known)
    ]
    made, planned = await _make(store, drafts, now, policy)
    await store.record_events(
        [(fact.event_id, event_type, fact.occurred_at) for fact, event_type in fresh.values()],
        now,
    )
    # Each event's share: the notifications its drafts made, the deliveries planned now
    # for any of them (made now or before).
    made_by: dict[str, list[Notification]] = {}
    for notification in made:
        made_by.setdefault(notification.event_id, []).append(notification)
    planned_by: dict[str, int] = {}
    for draft, _ in drafts:
        count = planned.pop(draft.notification_id, 0)
        planned_by[draft.event_id] = planned_by.get(draft.event_id, 0) + count
    results = []
    for fact, _ in events:
        if fresh.pop(fact.event_id, None) is None:
            results.append(SKIPPED)
        else:
            results.append(
                Handled(
                    True,
                    tuple(made_by.get(fact.event_id, ())),
                    planned_by.get(fact.event_id, 0),
                )
            )
    return results


async def _known(store: NotifyStore, facts: Sequence[Fact]) -> list[Known]:
    """Keep the joins ``facts`` add, then look up those each one needs."""
    await store.save_exporters([f for f in facts if isinstance(f, domain.ExporterProfiled)])
    await store.save_applications([f for f in facts if isinstance(f, domain.ApplicationSubmitted)])
    await store.save_intents([f for f in facts if isinstance(f, domain.IntentSubmitted)])
    allocations = [f for f in facts if isinstance(f, domain.BoothAllocated)]
    allocated = await store.add_allocated(allocations)
    applicants = await store.applicants(
        {f.application_id for f in facts if isinstance(f, domain.NEEDS_APPLICANT)}
    )
    buyers = await store.buyers_of(
        {f.intent_id for f in facts if isinstance(f, domain.NEEDS_BUYER)}
    )
    operators = await store.preferences_of(
        {
            Reader(Role.OPERATOR, f.operator_id)
            for f in facts
            if isinstance(f, domain.CapacityReserved) and f.operator_id
        }
    )
    counts = _allocated_so_far(allocations, allocated)
    knowns = []
    for fact in facts:
        match fact:
            case domain.FairOpened():
                candidates = await store.fair_candidates(fact.hs_headings)
                followers = tuple(
                    code
                    for code, (preferred, registered) in candidates.items()
                    if domain.follows(fact.hs_headings, preferred, registered)
                )
                known = Known(followers=followers)
            case domain.BoothAllocated():
                known = Known(allocated=counts[fact.event_id])
            case domain.CapacityReserved() if fact.operator_id:
                operator = Reader(Role.OPERATOR, fact.operator_id)
                known = Known(alert_percent=operators.get(operator, DEFAULT).alert_percent)
            case _ if isinstance(fact, domain.NEEDS_APPLICANT):
                known = Known(applicant=applicants.get(fact.application_id, ""))
                if not known.applicant:
                    log.debug("application not known: no notification", extra=_about(fact))
            case _ if isinstance(fact, domain.NEEDS_BUYER):
                known = Known(buyer=buyers.get(fact.intent_id, ""))
                if not known.buyer:
                    log.debug("intent not known: no notification", extra=_about(fact))
            case _:
                known = Known()
        knowns.append(known)
    return knowns


def _allocated_so_far(
    allocations: Sequence[domain.BoothAllocated],
    allocated: dict[tuple[str, str], frozenset[str]],
) -> dict[str, int]:
    """Event id -> how many applications of its fair's booth type were allocated once
    it was, as handling the batch one event at a time counts them: those allocated now
    less those that only later events of the batch add."""
    first_at: dict[tuple[str, str], dict[str, int]] = {}
    for position, fact in enumerate(allocations):
        first_at.setdefault((fact.fair_id, fact.booth_type), {}).setdefault(
            fact.application_id, position
        )
    # Per fair and booth type: where the batch first adds each application allocated now.
    added_at = {
        key: sorted(at for application, at in firsts.items() if application in allocated[key])
        for key, firsts in first_at.items()
    }
    counts = {}
    for position, fact in enumerate(allocations):
        key = (fact.fair_id, fact.booth_type)
        later = len(added_at[key]) - bisect.bisect_right(added_at[key], position)
        counts[fact.event_id] = len(allocated[key]) - later
    return counts


def _about(fact: Fact) -> dict[str, str]:
    return {"event_id": fact.event_id, "fact": type(fact).__name__}


async def _make(
    store: NotifyStore,
    drafts: Sequence[tuple[Draft, bool]],
    now: datetime,
    policy: DeliveryPolicy,
) -> tuple[list[Notification], dict[str, int]]:
    """Each (draft, whether its event is stale) the reader wants, rendered in its
    language, stored with its planned deliveries: the notifications made now, and the
    deliveries planned now per notification id. A notification made before (the same
    id) stays as it was; its deliveries are planned again, which changes nothing when
    they were planned then. A draft whose id an earlier one of ``drafts`` has is said
    by that one."""
    readers = {draft.reader for draft, _ in drafts}
    preferences = await store.preferences_of(readers)
    webhooks = await store.webhooks_of_readers(readers)
    notifications: dict[str, Notification] = {}
    deliveries: dict[str, Delivery] = {}
    for draft, stale in drafts:
        wanted = preferences.get(draft.reader, DEFAULT)
        if draft.notification_id in notifications or not wanted.wants(draft.kind):
            continue
        rendered = render(draft.kind, dict(draft.facts), wanted.language)
        notification = draft.notification(rendered.title, rendered.body, wanted.language, now)
        notifications[notification.notification_id] = notification
        for delivery in domain.plan_deliveries(
            notification,
            wanted,
            webhooks.get(draft.reader, []),
            now,
            stale,
            policy.mail_configured,
        ):
            deliveries.setdefault(delivery.delivery_id, delivery)
    new = await store.add_notifications(list(notifications.values()))
    planned: dict[str, int] = {}
    for delivery_id in await store.add_deliveries(list(deliveries.values())):
        notification_id = deliveries[delivery_id].notification_id
        planned[notification_id] = planned.get(notification_id, 0) + 1
    made = [n for notification_id, n in notifications.items() if notification_id in new]
    return made, planned


async def make_digest(
    store: NotifyStore, day: date, time_zone: str, now: datetime, policy: DeliveryPolicy
) -> Handled:
    """The officers' digest of ``day`` (a local day in ``time_zone``), once; a day
    without events has none."""
    zone = ZoneInfo(time_zone)
    start = datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)
    counts = await store.event_counts(start, end)
    if not counts:
        return SKIPPED
    made, planned = await _make(store, [(domain.digest_draft(day, counts), False)], now, policy)
    return Handled(True, tuple(made), sum(planned.values()))


# A reader's notifications.


async def list_notifications(
    store: NotifyStore, viewer: Principal, unread_only: bool, page: PageRequest
) -> NotificationPage:
    reader = Reader.of(viewer)
    if reader is None:
        return NotificationPage([], "", 0)
    notifications, token = await store.list_notifications(reader, unread_only, page)
    return NotificationPage(notifications, token, await store.unread_count(reader))


async def count_unread(store: NotifyStore, viewer: Principal) -> int:
    reader = Reader.of(viewer)
    return 0 if reader is None else await store.unread_count(reader)


async def mark_read(uow: UnitOfWork[NotifyStore], command: MarkRead) -> Marked:
    reader = domain.require_reader(uow.actor)
    ids = None if command.all else command.notification_ids
    marked = await uow.store.mark_read(reader, ids, uow.now)
    return Marked(marked, await uow.store.unread_count(reader))


async def unread_oldest_first(store: NotifyStore, reader: Reader, limit: int) -> list[Notification]:
    return await store.unread_oldest_first(reader, limit)


async def made_since(
    store: NotifyStore, reader: Reader, since: datetime, limit: int
) -> list[Notification]:
    """The reader's notifications made at ``since`` or later, oldest first."""
    return await store.made_since(reader, since, limit)


# Preferences.


async def get_preferences(store: NotifyStore, viewer: Principal) -> Preferences:
    reader = domain.require_reader(viewer)
    return await store.preferences(reader) or DEFAULT


async def update_preferences(
    uow: UnitOfWork[NotifyStore], update: PreferencesUpdate
) -> Preferences:
    reader = domain.require_reader(uow.actor)
    current = await uow.store.preferences(reader) or DEFAULT
    preferences = update.apply(current)
    await uow.store.save_preferences(reader, preferences)
    return preferences


# Webhooks.


async def register_webhook(
    uow: UnitOfWork[NotifyStore], registration: WebhookRegistration
) -> Registered:
    reader = domain.require_reader(uow.actor)
    domain.check_webhook_limit(len(await uow.store.webhooks_of(reader)))
    secret = domain.new_secret()
    webhook = registration.webhook(uuid.uuid4().hex, reader, secret, uow.now)
    await uow.store.add_webhook(webhook)
    return Registered(webhook, secret)


async def _own_webhook(store: NotifyStore, reader: Reader, webhook_id: str) -> Webhook:
    """The reader's webhook; another reader's is not found, like a missing one."""
    webhook = await store.webhook(webhook_id)
    if webhook is None or webhook.reader != reader:
        raise NotFound(f"no webhook with id {webhook_id!r}")
    return webhook


async def enable_webhook(uow: UnitOfWork[NotifyStore], webhook_id: str) -> Webhook:
    reader = domain.require_reader(uow.actor)
    webhook = (await _own_webhook(uow.store, reader, webhook_id)).enabled_again()
    await uow.store.save_webhook(webhook)
    return webhook


async def delete_webhook(uow: UnitOfWork[NotifyStore], webhook_id: str) -> None:
    """Remove it; its pending deliveries fail ("webhook removed"), its log stays."""
    reader = domain.require_reader(uow.actor)
    await _own_webhook(uow.store, reader, webhook_id)
    await uow.store.delete_webhook(webhook_id)
    await uow.store.fail_pending(webhook_id, WEBHOOK_REMOVED)


async def list_webhooks(store: NotifyStore, viewer: Principal) -> list[Webhook]:
    reader = Reader.of(viewer)
    return [] if reader is None else await store.webhooks_of(reader)


async def list_deliveries(
    store: NotifyStore, viewer: Principal, webhook_id: str, page: PageRequest
) -> DeliveryPage:
    """The reader's delivery log, newest first; one webhook's (removed ones' too) when
    ``webhook_id`` names it. Nobody sees another reader's deliveries."""
    reader = Reader.of(viewer)
    if reader is None:
        return DeliveryPage([], "")
    deliveries, token = await store.list_deliveries(reader, webhook_id, page)
    return DeliveryPage(deliveries, token)


# Attempts (the dispatcher's use cases).


async def attempt_succeeded(
    store: NotifyStore, delivery: Delivery, claim: str, webhook: Webhook | None, now: datetime
) -> Delivery:
    """Record a delivered attempt; a webhook's failures in a row start again."""
    done = delivery.delivered(now)
    await store.save_attempt(done, claim)
    if webhook is not None and webhook.consecutive_failures:
        await store.save_webhook(webhook.succeeded())
    return done


async def attempt_failed(
    store: NotifyStore,
    delivery: Delivery,
    claim: str,
    webhook: Webhook | None,
    error: str,
    retryable: bool,
    now: datetime,
    policy: DeliveryPolicy,
) -> tuple[Delivery, Webhook | None]:
    """Record a failed attempt: the delivery waits for its next one or is given up; a
    webhook failing once too often in a row is disabled, and its pending deliveries
    are given up with it (this one too)."""
    after = delivery.failed(error, now, policy.retry, retryable)
    if webhook is None:
        await store.save_attempt(after, claim)
        return after, None
    hook = webhook.failed(policy.webhook_disable_after)
    disabled = webhook.enabled and not hook.enabled
    if disabled and after.status is DeliveryStatus.PENDING:
        after = replace(after, status=DeliveryStatus.FAILED, last_error=hook.disabled_reason)
    await store.save_attempt(after, claim)
    await store.save_webhook(hook)
    if disabled:
        log.warning(
            "webhook disabled",
            extra={"webhook_id": hook.webhook_id, "reason": hook.disabled_reason},
        )
        await store.fail_pending(hook.webhook_id, hook.disabled_reason)
    return after, hook


async def attempt_impossible(
    store: NotifyStore, delivery: Delivery, claim: str, error: str
) -> Delivery:
    """Give a delivery up without an attempt: its webhook was removed or disabled, or
    its notification is gone."""
    given_up = replace(delivery, status=DeliveryStatus.FAILED, last_error=error)
    await store.save_attempt(given_up, claim)
    return given_up
