"""An in-memory notify.storage.NotifyStore: the same methods over dicts, for unit tests
of the use cases (tests/unit/test_notify_handlers.py) and of the consumer's record step
(tests/unit/test_consumer_fuzz.py) without MongoDB. ``writes`` counts the writes, so a
test can tell that something changed nothing."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import replace
from datetime import datetime

from notify.domain import (
    ApplicationSubmitted,
    BoothAllocated,
    Channel,
    Delivery,
    DeliveryStatus,
    ExporterProfiled,
    IntentSubmitted,
    Notification,
    Preferences,
    Reader,
    Webhook,
)
from runtime.adapters.pagination import PageRequest
from runtime.kernel.identity import Role


def _newest_first(items: Iterable[Notification | Delivery]) -> list:
    return sorted(
        items,
        key=lambda item: (item.created_at, _id(item)),
        reverse=True,
    )


def _id(item: Notification | Delivery) -> str:
    return item.notification_id if isinstance(item, Notification) else item.delivery_id


def _page(items: list, page: PageRequest) -> tuple[list, str]:
    """Keyset slicing of a newest-first list: the token carries the last item's key."""
    start = 0
    if page.after is not None:
        after = (page.after[0], page.after[1])
        start = next(
            (index for index, item in enumerate(items) if (item.created_at, _id(item)) < after),
            len(items),
        )
    shown = items[start : start + page.size]
    token = ""
    if start + page.size < len(items):
        token = page.token_after([shown[-1].created_at, _id(shown[-1])])
    return shown, token


class MemoryNotifyStore:
    def __init__(self) -> None:
        self.events: dict[str, tuple[str, datetime]] = {}
        self.exporters: dict[str, tuple[str, ...]] = {}
        self.applications: dict[str, str] = {}
        self.intents: dict[str, str] = {}
        self.allocations: dict[str, set[str]] = {}
        self.preference_docs: dict[str, Preferences] = {}
        self.notifications: dict[str, Notification] = {}
        self.webhooks: dict[str, Webhook] = {}
        self.deliveries: dict[str, Delivery] = {}
        self.claims: dict[str, str | None] = {}
        self.writes = 0

    # Events handled.

    async def handled_among(self, event_ids: Iterable[str]) -> set[str]:
        return {event_id for event_id in event_ids if event_id in self.events}

    async def record_events(
        self, events: Sequence[tuple[str, str, datetime]], handled_at: datetime
    ) -> None:
        for event_id, event_type, occurred_at in events:
            self.writes += 1
            self.events.setdefault(event_id, (event_type, occurred_at))

    async def event_counts(self, start: datetime, end: datetime) -> dict[str, int]:
        counts: dict[str, int] = {}
        for event_type, occurred_at in self.events.values():
            if start <= occurred_at < end:
                counts[event_type] = counts.get(event_type, 0) + 1
        return counts

    # Joins.

    async def save_exporters(self, profiles: Sequence[ExporterProfiled]) -> None:
        for profile in profiles:
            self.writes += 1
            self.exporters[profile.credit_code] = tuple(sorted(set(profile.hs_headings)))

    async def fair_candidates(
        self, hs_headings: Sequence[str]
    ) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
        headings = set(hs_headings)
        codes = {code for code, registered in self.exporters.items() if headings & set(registered)}
        for key, preferences in self.preference_docs.items():
            reader = Reader.parse(key)
            if reader.role is Role.EXPORTER and headings & set(preferences.fair_hs_headings):
                codes.add(reader.party)
        found = {}
        for code in sorted(codes):
            preferences = self.preference_docs.get(f"exporter:{code}")
            preferred = () if preferences is None else preferences.fair_hs_headings
            found[code] = (tuple(preferred), self.exporters.get(code, ()))
        return found

    async def save_applications(self, submitted: Sequence[ApplicationSubmitted]) -> None:
        for fact in submitted:
            self.writes += 1
            self.applications.setdefault(fact.application_id, fact.credit_code)

    async def applicants(self, application_ids: Collection[str]) -> dict[str, str]:
        return {i: self.applications[i] for i in application_ids if i in self.applications}

    async def save_intents(self, submitted: Sequence[IntentSubmitted]) -> None:
        for fact in submitted:
            self.writes += 1
            self.intents.setdefault(fact.intent_id, fact.buyer_id)

    async def buyers_of(self, intent_ids: Collection[str]) -> dict[str, str]:
        return {i: self.intents[i] for i in intent_ids if i in self.intents}

    async def add_allocated(
        self, allocated: Sequence[BoothAllocated]
    ) -> dict[tuple[str, str], frozenset[str]]:
        for fact in allocated:
            self.writes += 1
            key = f"{fact.fair_id}:{fact.booth_type}"
            self.allocations.setdefault(key, set()).add(fact.application_id)
        return {
            (f.fair_id, f.booth_type): frozenset(self.allocations[f"{f.fair_id}:{f.booth_type}"])
            for f in allocated
        }

    # Preferences.

    async def preferences(self, reader: Reader) -> Preferences | None:
        return self.preference_docs.get(reader.key)

    async def preferences_of(self, readers: Iterable[Reader]) -> dict[Reader, Preferences]:
        return {
            reader: self.preference_docs[reader.key]
            for reader in readers
            if reader.key in self.preference_docs
        }

    async def save_preferences(self, reader: Reader, preferences: Preferences) -> None:
        self.writes += 1
        self.preference_docs[reader.key] = preferences

    # Notifications.

    async def add_notifications(self, notifications: Sequence[Notification]) -> set[str]:
        added = set()
        for notification in notifications:
            self.writes += 1
            if notification.notification_id not in self.notifications:
                self.notifications[notification.notification_id] = notification
                added.add(notification.notification_id)
        return added

    async def notification(self, notification_id: str) -> Notification | None:
        return self.notifications.get(notification_id)

    def of(self, reader: Reader) -> list[Notification]:
        return [n for n in self.notifications.values() if n.reader == reader]

    async def list_notifications(
        self, reader: Reader, unread_only: bool, page: PageRequest
    ) -> tuple[list[Notification], str]:
        mine = [n for n in self.of(reader) if not unread_only or n.read_at is None]
        return _page(_newest_first(mine), page)

    async def unread_count(self, reader: Reader) -> int:
        return sum(n.read_at is None for n in self.of(reader))

    async def unread_oldest_first(self, reader: Reader, limit: int) -> list[Notification]:
        unread = [n for n in self.of(reader) if n.read_at is None]
        return list(reversed(_newest_first(unread)))[:limit]

    async def made_since(self, reader: Reader, since: datetime, limit: int) -> list[Notification]:
        made = [n for n in self.of(reader) if n.created_at >= since]
        return list(reversed(_newest_first(made)))[:limit]

    async def mark_read(
        self, reader: Reader, notification_ids: Sequence[str] | None, now: datetime
    ) -> int:
        marked = 0
        for notification in self.of(reader):
            named = notification_ids is None or notification.notification_id in notification_ids
            if named and notification.read_at is None:
                self.notifications[notification.notification_id] = replace(
                    notification, read_at=now
                )
                marked += 1
        self.writes += marked
        return marked

    # Webhooks.

    async def add_webhook(self, webhook: Webhook) -> None:
        self.writes += 1
        self.webhooks[webhook.webhook_id] = webhook

    async def webhook(self, webhook_id: str) -> Webhook | None:
        return self.webhooks.get(webhook_id)

    async def webhooks_of(self, reader: Reader) -> list[Webhook]:
        return sorted(
            (w for w in self.webhooks.values() if w.reader == reader),
            key=lambda w: (w.created_at, w.webhook_id),
        )

    async def webhooks_of_readers(self, readers: Iterable[Reader]) -> dict[Reader, list[Webhook]]:
        found: dict[Reader, list[Webhook]] = {}
        for reader in readers:
            webhooks = await self.webhooks_of(reader)
            if webhooks:
                found[reader] = webhooks
        return found

    async def save_webhook(self, webhook: Webhook) -> None:
        self.writes += 1
        if webhook.webhook_id in self.webhooks:
            self.webhooks[webhook.webhook_id] = webhook

    async def delete_webhook(self, webhook_id: str) -> None:
        self.writes += 1
        self.webhooks.pop(webhook_id, None)

    # Deliveries.

    async def add_deliveries(self, deliveries: Sequence[Delivery]) -> set[str]:
        added = set()
        for delivery in deliveries:
            self.writes += 1
            if delivery.delivery_id not in self.deliveries:
                self.deliveries[delivery.delivery_id] = delivery
                self.claims[delivery.delivery_id] = None
                added.add(delivery.delivery_id)
        return added

    async def list_deliveries(
        self, reader: Reader, webhook_id: str, page: PageRequest
    ) -> tuple[list[Delivery], str]:
        mine = [
            d
            for d in self.deliveries.values()
            if d.reader == reader
            and (not webhook_id or (d.channel is Channel.WEBHOOK and d.target == webhook_id))
        ]
        return _page(_newest_first(mine), page)

    async def delivery(self, delivery_id: str) -> Delivery | None:
        return self.deliveries.get(delivery_id)

    async def due_deliveries(self, now: datetime, limit: int) -> list[Delivery]:
        due = [
            d
            for d in self.deliveries.values()
            if d.status is DeliveryStatus.PENDING and d.next_attempt_at <= now
        ]
        return sorted(due, key=lambda d: (d.next_attempt_at, d.delivery_id))[:limit]

    async def claim(self, delivery: Delivery, lease_until: datetime, claim: str) -> bool:
        current = self.deliveries.get(delivery.delivery_id)
        if (
            current is None
            or current.status is not DeliveryStatus.PENDING
            or current.next_attempt_at != delivery.next_attempt_at
        ):
            return False
        self.writes += 1
        self.deliveries[delivery.delivery_id] = replace(current, next_attempt_at=lease_until)
        self.claims[delivery.delivery_id] = claim
        return True

    async def save_attempt(self, delivery: Delivery, claim: str) -> bool:
        if self.claims.get(delivery.delivery_id) != claim:
            return False
        self.writes += 1
        self.deliveries[delivery.delivery_id] = delivery
        self.claims[delivery.delivery_id] = None
        return True

    async def fail_pending(self, webhook_id: str, reason: str) -> int:
        failed = 0
        for delivery in list(self.deliveries.values()):
            if (
                delivery.channel is Channel.WEBHOOK
                and delivery.target == webhook_id
                and delivery.status is DeliveryStatus.PENDING
            ):
                self.deliveries[delivery.delivery_id] = replace(
                    delivery, status=DeliveryStatus.FAILED, last_error=reason
                )
                failed += 1
        self.writes += failed
        return failed
