"""The notify service's use cases.

Event handling (``handle_event``) runs outside transactions, as a sequence of idempotent
writes: the joins it keeps, each notification (its id derived from its source, reader
and kind), the deliveries planned for it (ids derived from the notification, channel
and target), and last the record that the event was handled. A crash between any two
steps and the event's redelivery converge on what handling it once makes; an event
recorded as handled is skipped at once.

The calls of a reader (list, mark read, preferences, webhooks, the delivery log) act
on the caller's own reader only (domain.Reader.of): a principal without one (a buyer
not registered yet) sees empty lists and may change nothing (NO_READER).

No pymongo and no protobuf here: unit tests run these over an in-memory repository."""

from __future__ import annotations

import logging
import uuid
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


async def handle_event(
    store: NotifyStore, fact: Fact, event_type: str, now: datetime, policy: DeliveryPolicy
) -> Handled:
    """Turn one event (``fact``, of envelope type ``event_type``) into the notifications
    it makes, each with its deliveries, once."""
    if await store.handled(fact.event_id):
        return SKIPPED
    known = await _known(store, fact)
    drafts = domain.drafts_for(fact, known)
    stale = domain.is_stale(fact.occurred_at, now, policy.stale_after_hours)
    made, planned = await _make(store, drafts, now, stale, policy)
    await store.record_event(fact.event_id, event_type, fact.occurred_at, now)
    return Handled(True, made, planned)


async def _known(store: NotifyStore, fact: Fact) -> Known:
    """Keep the joins ``fact`` adds, and look up those it needs."""
    match fact:
        case domain.ExporterProfiled():
            await store.save_exporter(fact.credit_code, fact.hs_headings)
        case domain.ApplicationSubmitted():
            await store.save_application(
                fact.application_id, fact.credit_code, fact.fair_id, fact.booth_type
            )
        case domain.IntentSubmitted():
            await store.save_intent(
                fact.intent_id, fact.buyer_id, fact.kind, fact.hs_code, fact.edition_id
            )
        case domain.FairOpened():
            candidates = await store.fair_candidates(fact.hs_headings)
            followers = tuple(
                code
                for code, (preferred, registered) in candidates.items()
                if domain.follows(fact.hs_headings, preferred, registered)
            )
            return Known(followers=followers)
        case domain.BoothAllocated():
            allocated = await store.add_allocated(
                fact.fair_id, fact.booth_type, fact.application_id
            )
            return Known(allocated=allocated)
        case domain.CapacityReserved() if fact.operator_id:
            operator = Reader(Role.OPERATOR, fact.operator_id)
            preferences = await store.preferences(operator) or DEFAULT
            return Known(alert_percent=preferences.alert_percent)
    if isinstance(fact, domain.NEEDS_APPLICANT):
        applicant = await store.applicant(fact.application_id)
        if not applicant:
            log.debug("application not known: no notification", extra=_about(fact))
        return Known(applicant=applicant)
    if isinstance(fact, domain.NEEDS_BUYER):
        buyer = await store.buyer_of(fact.intent_id)
        if not buyer:
            log.debug("intent not known: no notification", extra=_about(fact))
        return Known(buyer=buyer)
    return Known()


def _about(fact: Fact) -> dict[str, str]:
    return {"event_id": fact.event_id, "fact": type(fact).__name__}


async def _make(
    store: NotifyStore, drafts: list[Draft], now: datetime, stale: bool, policy: DeliveryPolicy
) -> tuple[tuple[Notification, ...], int]:
    """Each draft the reader wants, rendered in its language, stored with its planned
    deliveries. A notification made before (the same id) stays as it was; its
    deliveries are planned again, which changes nothing when they were planned then."""
    made: list[Notification] = []
    planned = 0
    for draft in drafts:
        preferences = await store.preferences(draft.reader) or DEFAULT
        if not preferences.wants(draft.kind):
            continue
        rendered = render(draft.kind, dict(draft.facts), preferences.language)
        notification = draft.notification(rendered.title, rendered.body, preferences.language, now)
        if await store.add_notification(notification):
            made.append(notification)
        else:
            notification = await store.notification(draft.notification_id) or notification
        webhooks = await store.webhooks_of(draft.reader)
        deliveries = domain.plan_deliveries(
            notification, preferences, webhooks, now, stale, policy.mail_configured
        )
        planned += await store.add_deliveries(deliveries)
    return tuple(made), planned


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
    made, planned = await _make(store, [domain.digest_draft(day, counts)], now, False, policy)
    return Handled(True, made, planned)


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
