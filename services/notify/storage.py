"""How notify keeps its state in MongoDB: the one module that knows its collections,
indexes, queries and documents.

What it makes: ``notifications`` (one per reader and source, _id the notification id),
``deliveries`` (one per notification, channel and target: the delivery log and the
queue the dispatcher works from), ``preferences`` (one per reader, _id the reader key)
and ``webhooks``. What it keeps to know whom an event concerns (the joins):
``exporters`` (credit code -> HS headings of its main products), ``applications``
(application id -> applicant), ``intents`` (intent id -> buyer) and ``allocations``
(fair and booth type -> the applications allocated). ``events`` records each event
handled (for the digest's counts, and to skip an event delivered again).

Every write of event handling is idempotent: documents are keyed by deterministic ids
and written with upserts, ``$addToSet`` or inserts that leave a taken id as it was, so
handling an event twice, or again after a crash halfway, leaves what handling it once
left.

Event handling reads and writes a consumer batch at a time: each question names every
id the batch needs (``$in``) and each write is one ``insert_many``/``bulk_write`` by
``_id``, so a batch costs about a dozen round trips whatever its size. On SecantusDB every
write outside a transaction syncs its journal: 500 notifications inserted one at a time
are 500 syncs, in one ``insert_many`` one. Writes go by ``_id`` (SecantusDB's fast path;
its ``find_one_and_update`` scans under the write lock: docs/architecture.md, "Limits of
the embedded infrastructure")."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime, time
from typing import Any

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, PyMongoError

from notify.domain import (
    ApplicationSubmitted,
    BoothAllocated,
    Channel,
    Delivery,
    DeliveryStatus,
    ExporterProfiled,
    IntentSubmitted,
    Kind,
    Notification,
    Preferences,
    QuietHours,
    Reader,
    Webhook,
)
from runtime.adapters.pagination import PageRequest, keyset_find
from runtime.kernel.identity import Role

NOTIFICATIONS = "notifications"
DELIVERIES = "deliveries"
PREFERENCES = "preferences"
WEBHOOKS = "webhooks"
EVENTS = "events"
EXPORTERS = "exporters"
APPLICATIONS = "applications"
INTENTS = "intents"
ALLOCATIONS = "allocations"

# Newest first; the id breaks ties, so the order is total as keyset pages need.
NEWEST_FIRST = (("created_at", DESCENDING), ("_id", DESCENDING))

Document = dict[str, Any]

# The database's failures (unreachable, timed out, refused): the store's trouble, never
# that of the event or call that met them.
STORE_ERRORS: tuple[type[Exception], ...] = (PyMongoError,)

DUPLICATE_KEY = 11000
# Ids per ``$in`` question. SecantusDB answers one in a time that grows faster than its
# list (measured: 50 us an id at 100 ids, 290 us at 1,000): a batch's ids go in chunks.
IN_CHUNK = 100


async def ensure_indexes(db: AsyncDatabase) -> None:
    notifications = db[NOTIFICATIONS]
    await notifications.create_index([("reader", ASCENDING), *NEWEST_FIRST])
    await notifications.create_index([("reader", ASCENDING), ("read_at", ASCENDING), *NEWEST_FIRST])
    deliveries = db[DELIVERIES]
    # The dispatcher's question: which pending deliveries are due.
    await deliveries.create_index([("status", ASCENDING), ("next_attempt_at", ASCENDING)])
    await deliveries.create_index([("reader", ASCENDING), *NEWEST_FIRST])
    await deliveries.create_index([("target", ASCENDING), ("status", ASCENDING)])
    await db[WEBHOOKS].create_index([("reader", ASCENDING), ("created_at", ASCENDING)])
    await db[EVENTS].create_index([("occurred_at", ASCENDING)])
    await db[EXPORTERS].create_index([("hs_headings", ASCENDING)])
    await db[PREFERENCES].create_index([("fair_hs_headings", ASCENDING)])


class NotifyStore:
    """The notify repository, inside the runner's transaction (``session``) or outside
    any (``session`` None: event handling, the dispatcher and queries)."""

    def __init__(self, db: AsyncDatabase, session: AsyncClientSession | None = None) -> None:
        self._db = db
        self._session = session

    async def _find_in(
        self, collection: str, field: str, values: Iterable[str], projection: Document | None = None
    ) -> list[Document]:
        """The documents whose ``field`` is one of ``values``, a chunk at a time."""
        wanted = sorted(set(values))
        found: list[Document] = []
        for start in range(0, len(wanted), IN_CHUNK):
            cursor = self._db[collection].find(
                {field: {"$in": wanted[start : start + IN_CHUNK]}},
                projection=projection,
                session=self._session,
            )
            found.extend([doc async for doc in cursor])
        return found

    async def _upsert_all(self, collection: str, updates: Sequence[tuple[str, Document]]) -> None:
        """Apply each (id, update) to its document, made first when missing, in order, in
        one round trip. Two writers making one document at once (two notify instances
        while their group rebalances) may meet a duplicate key: the document exists then,
        and the updates from that one on are applied again, to it."""
        if not updates:
            return
        try:
            await self._db[collection].bulk_write(
                [UpdateOne({"_id": key}, update, upsert=True) for key, update in updates],
                ordered=True,
                session=self._session,
            )
        except BulkWriteError as error:
            if not _only_duplicates(error):
                raise
            await self._upsert_all(collection, updates[error.details["writeErrors"][0]["index"] :])

    async def _insert_new(self, collection: str, documents: Sequence[Document]) -> set[str]:
        """Insert the documents, in one round trip; the ids of those inserted. A taken id
        (made before, or by another instance at the same time) keeps its document."""
        if not documents:
            return set()
        try:
            await self._db[collection].insert_many(
                list(documents), ordered=False, session=self._session
            )
        except BulkWriteError as error:
            if not _only_duplicates(error):
                raise
            taken = {failed["index"] for failed in error.details["writeErrors"]}
            return {doc["_id"] for index, doc in enumerate(documents) if index not in taken}
        return {doc["_id"] for doc in documents}

    # Events handled.

    async def handled_among(self, event_ids: Iterable[str]) -> set[str]:
        """Those of ``event_ids`` handled before."""
        docs = await self._find_in(EVENTS, "_id", event_ids, {"_id": True})
        return {doc["_id"] for doc in docs}

    async def record_events(
        self, events: Sequence[tuple[str, str, datetime]], handled_at: datetime
    ) -> None:
        """Record (event id, type, occurred at) of each event handled; once each."""
        await self._insert_new(
            EVENTS,
            [
                {
                    "_id": event_id,
                    "type": event_type,
                    "occurred_at": occurred_at,
                    "handled_at": handled_at,
                }
                for event_id, event_type, occurred_at in events
            ],
        )

    async def event_counts(self, start: datetime, end: datetime) -> dict[str, int]:
        """Events that occurred in [start, end), by type."""
        cursor = await self._db[EVENTS].aggregate(
            [
                {"$match": {"occurred_at": {"$gte": start, "$lt": end}}},
                {"$group": {"_id": "$type", "count": {"$sum": 1}}},
            ],
            session=self._session,
        )
        return {doc["_id"]: doc["count"] async for doc in cursor}

    # Joins.

    async def save_exporters(self, profiles: Sequence[ExporterProfiled]) -> None:
        """Each exporter's headings, the last profile of one exporter winning."""
        await self._upsert_all(
            EXPORTERS,
            [
                (profile.credit_code, {"$set": {"hs_headings": sorted(set(profile.hs_headings))}})
                for profile in profiles
            ],
        )

    async def fair_candidates(
        self, hs_headings: Sequence[str]
    ) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
        """Exporters that may follow a fair of ``hs_headings``: credit code -> (the
        headings its preferences follow, the headings of its registered products).
        Whether each one does is the domain's rule (domain.follows)."""
        headings = sorted(set(hs_headings))
        if not headings:
            return {}
        preferred: dict[str, tuple[str, ...]] = {}
        cursor = self._db[PREFERENCES].find(
            {"fair_hs_headings": {"$in": headings}},
            projection={"fair_hs_headings": True},
            session=self._session,
        )
        async for doc in cursor:
            reader = Reader.parse(doc["_id"])
            if reader.role is Role.EXPORTER:
                preferred[reader.party] = tuple(doc["fair_hs_headings"])
        registered: dict[str, tuple[str, ...]] = {}
        cursor = self._db[EXPORTERS].find({"hs_headings": {"$in": headings}}, session=self._session)
        async for doc in cursor:
            registered[doc["_id"]] = tuple(doc["hs_headings"])
        # An exporter found by its products whose preferences name other headings is
        # decided by those: they are read for it too.
        unknown = [code for code in registered if code not in preferred]
        if unknown:
            cursor = self._db[PREFERENCES].find(
                {
                    "_id": {"$in": [f"exporter:{code}" for code in unknown]},
                    "fair_hs_headings.0": {"$exists": True},
                },
                projection={"fair_hs_headings": True},
                session=self._session,
            )
            async for doc in cursor:
                preferred[Reader.parse(doc["_id"]).party] = tuple(doc["fair_hs_headings"])
        return {
            code: (preferred.get(code, ()), registered.get(code, ()))
            for code in sorted(preferred.keys() | registered.keys())
        }

    async def save_applications(self, submitted: Sequence[ApplicationSubmitted]) -> None:
        """Who submitted each application. What an application id joins to never changes
        (the id names the fair, the exporter and the booth type), so one saved before
        stays: inserted, not upserted (on SecantusDB an upsert costs several inserts)."""
        await self._insert_new(
            APPLICATIONS,
            [
                {
                    "_id": fact.application_id,
                    "credit_code": fact.credit_code,
                    "fair_id": fact.fair_id,
                    "booth_type": fact.booth_type,
                }
                for fact in submitted
            ],
        )

    async def applicants(self, application_ids: Collection[str]) -> dict[str, str]:
        """Application id -> the credit code that submitted it, for those known."""
        docs = await self._find_in(APPLICATIONS, "_id", application_ids, {"credit_code": True})
        return {doc["_id"]: str(doc["credit_code"]) for doc in docs}

    async def save_intents(self, submitted: Sequence[IntentSubmitted]) -> None:
        """Whose each intent is. An intent is submitted once and keeps its buyer: one
        saved before stays, as for applications."""
        await self._insert_new(
            INTENTS,
            [
                {
                    "_id": fact.intent_id,
                    "buyer_id": fact.buyer_id,
                    "kind": fact.kind,
                    "hs_code": fact.hs_code,
                    "edition_id": fact.edition_id,
                }
                for fact in submitted
            ],
        )

    async def buyers_of(self, intent_ids: Collection[str]) -> dict[str, str]:
        """Intent id -> its buyer id, for those known."""
        docs = await self._find_in(INTENTS, "_id", intent_ids, {"buyer_id": True})
        return {doc["_id"]: str(doc["buyer_id"]) for doc in docs}

    async def add_allocated(
        self, allocated: Sequence[BoothAllocated]
    ) -> dict[tuple[str, str], frozenset[str]]:
        """Count each allocation's application among the allocated applications of its
        fair's booth type (once, however often it is told); (fair id, booth type) ->
        the applications allocated now, read after the write, so that those another
        instance added meanwhile count too."""
        added: dict[tuple[str, str], list[str]] = {}
        for fact in allocated:
            added.setdefault((fact.fair_id, fact.booth_type), []).append(fact.application_id)
        keys = {f"{fair_id}:{booth_type}": (fair_id, booth_type) for fair_id, booth_type in added}
        await self._upsert_all(
            ALLOCATIONS,
            [
                (f"{fair_id}:{booth_type}", {"$addToSet": {"application_ids": {"$each": ids}}})
                for (fair_id, booth_type), ids in added.items()
            ],
        )
        now = {key: frozenset[str]() for key in added}
        for doc in await self._find_in(ALLOCATIONS, "_id", keys):
            now[keys[doc["_id"]]] = frozenset(doc["application_ids"])
        return now

    # Preferences.

    async def preferences(self, reader: Reader) -> Preferences | None:
        doc = await self._db[PREFERENCES].find_one({"_id": reader.key}, session=self._session)
        return None if doc is None else _preferences_from(doc)

    async def preferences_of(self, readers: Iterable[Reader]) -> dict[Reader, Preferences]:
        """The preferences of those of ``readers`` who have any."""
        docs = await self._find_in(PREFERENCES, "_id", (reader.key for reader in readers))
        return {Reader.parse(doc["_id"]): _preferences_from(doc) for doc in docs}

    async def save_preferences(self, reader: Reader, preferences: Preferences) -> None:
        await self._db[PREFERENCES].replace_one(
            {"_id": reader.key},
            _preferences_document(preferences),
            upsert=True,
            session=self._session,
        )

    # Notifications.

    async def add_notifications(self, notifications: Sequence[Notification]) -> set[str]:
        """The ids of those not made before (the same id): a notification made before
        stays as it was."""
        return await self._insert_new(
            NOTIFICATIONS, [_notification_document(n) for n in notifications]
        )

    async def notification(self, notification_id: str) -> Notification | None:
        doc = await self._db[NOTIFICATIONS].find_one(
            {"_id": notification_id}, session=self._session
        )
        return None if doc is None else _notification_from(doc)

    async def list_notifications(
        self, reader: Reader, unread_only: bool, page: PageRequest
    ) -> tuple[list[Notification], str]:
        """One page of the reader's notifications, newest first, and the next token."""
        query: Document = {"reader": reader.key}
        if unread_only:
            query["read_at"] = None
        docs, token = await keyset_find(
            self._db[NOTIFICATIONS], query, NEWEST_FIRST, page, session=self._session
        )
        return [_notification_from(doc) for doc in docs], token

    async def unread_count(self, reader: Reader) -> int:
        return await self._db[NOTIFICATIONS].count_documents(
            {"reader": reader.key, "read_at": None}, session=self._session
        )

    async def unread_oldest_first(self, reader: Reader, limit: int) -> list[Notification]:
        cursor = (
            self._db[NOTIFICATIONS]
            .find({"reader": reader.key, "read_at": None}, session=self._session)
            .sort([("created_at", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return [_notification_from(doc) async for doc in cursor]

    async def made_since(self, reader: Reader, since: datetime, limit: int) -> list[Notification]:
        """The reader's notifications made at ``since`` or later, oldest first."""
        cursor = (
            self._db[NOTIFICATIONS]
            .find({"reader": reader.key, "created_at": {"$gte": since}}, session=self._session)
            .sort([("created_at", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return [_notification_from(doc) async for doc in cursor]

    async def mark_read(
        self, reader: Reader, notification_ids: Sequence[str] | None, now: datetime
    ) -> int:
        """Mark the reader's unread notifications named (None: all of them) read; how
        many this changed. Ids of other readers' notifications change nothing."""
        query: Document = {"reader": reader.key, "read_at": None}
        if notification_ids is not None:
            query["_id"] = {"$in": list(notification_ids)}
        result = await self._db[NOTIFICATIONS].update_many(
            query, {"$set": {"read_at": now}}, session=self._session
        )
        return result.modified_count

    # Webhooks.

    async def add_webhook(self, webhook: Webhook) -> None:
        await self._db[WEBHOOKS].insert_one(_webhook_document(webhook), session=self._session)

    async def webhook(self, webhook_id: str) -> Webhook | None:
        doc = await self._db[WEBHOOKS].find_one({"_id": webhook_id}, session=self._session)
        return None if doc is None else _webhook_from(doc)

    async def webhooks_of(self, reader: Reader) -> list[Webhook]:
        """The reader's webhooks, oldest first."""
        cursor = (
            self._db[WEBHOOKS]
            .find({"reader": reader.key}, session=self._session)
            .sort([("created_at", ASCENDING), ("_id", ASCENDING)])
        )
        return [_webhook_from(doc) async for doc in cursor]

    async def webhooks_of_readers(self, readers: Iterable[Reader]) -> dict[Reader, list[Webhook]]:
        """The webhooks of those of ``readers`` who have any, each reader's oldest first."""
        docs = await self._find_in(WEBHOOKS, "reader", (reader.key for reader in readers))
        found: dict[Reader, list[Webhook]] = {}
        for doc in sorted(docs, key=lambda doc: (doc["created_at"], doc["_id"])):
            webhook = _webhook_from(doc)
            found.setdefault(webhook.reader, []).append(webhook)
        return found

    async def save_webhook(self, webhook: Webhook) -> None:
        """Its state: enabled, why not, failures in a row."""
        await self._db[WEBHOOKS].update_one(
            {"_id": webhook.webhook_id},
            {
                "$set": {
                    "enabled": webhook.enabled,
                    "disabled_reason": webhook.disabled_reason,
                    "consecutive_failures": webhook.consecutive_failures,
                }
            },
            session=self._session,
        )

    async def delete_webhook(self, webhook_id: str) -> None:
        await self._db[WEBHOOKS].delete_one({"_id": webhook_id}, session=self._session)

    # Deliveries.

    async def add_deliveries(self, deliveries: Sequence[Delivery]) -> set[str]:
        """Plan the deliveries not planned before (by id); the ids of those new."""
        return await self._insert_new(DELIVERIES, [_delivery_document(d) for d in deliveries])

    async def list_deliveries(
        self, reader: Reader, webhook_id: str, page: PageRequest
    ) -> tuple[list[Delivery], str]:
        """One page of the reader's delivery log (one webhook's, when named), newest first."""
        query: Document = {"reader": reader.key}
        if webhook_id:
            query.update(channel=Channel.WEBHOOK.name, target=webhook_id)
        docs, token = await keyset_find(
            self._db[DELIVERIES], query, NEWEST_FIRST, page, session=self._session
        )
        return [_delivery_from(doc) for doc in docs], token

    async def delivery(self, delivery_id: str) -> Delivery | None:
        doc = await self._db[DELIVERIES].find_one({"_id": delivery_id}, session=self._session)
        return None if doc is None else _delivery_from(doc)

    async def due_deliveries(self, now: datetime, limit: int) -> list[Delivery]:
        """Pending deliveries whose next attempt is due, the longest waiting first."""
        cursor = (
            self._db[DELIVERIES]
            .find(
                {"status": DeliveryStatus.PENDING.name, "next_attempt_at": {"$lte": now}},
                session=self._session,
            )
            .sort([("next_attempt_at", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return [_delivery_from(doc) async for doc in cursor]

    async def claim(self, delivery: Delivery, lease_until: datetime, claim: str) -> bool:
        """Take a due delivery for one attempt, or False when another dispatcher took it
        (or it changed) since it was read. The claim moves its next attempt to
        ``lease_until``: a dispatcher that dies mid-attempt leaves it due again then,
        and no other dispatcher sends it meanwhile."""
        result = await self._db[DELIVERIES].update_one(
            {
                "_id": delivery.delivery_id,
                "status": DeliveryStatus.PENDING.name,
                "next_attempt_at": delivery.next_attempt_at,
            },
            {"$set": {"next_attempt_at": lease_until, "claim": claim}},
            session=self._session,
        )
        return result.modified_count == 1

    async def save_attempt(self, delivery: Delivery, claim: str) -> bool:
        """The outcome of an attempt made under ``claim``; False when the claim was lost
        (its lease ran out and another dispatcher took the delivery)."""
        result = await self._db[DELIVERIES].update_one(
            {"_id": delivery.delivery_id, "claim": claim},
            {
                "$set": {
                    "status": delivery.status.name,
                    "attempts": delivery.attempts,
                    "last_error": delivery.last_error,
                    "next_attempt_at": delivery.next_attempt_at,
                    "delivered_at": delivery.delivered_at,
                    "claim": None,
                }
            },
            session=self._session,
        )
        return result.modified_count == 1

    async def fail_pending(self, webhook_id: str, reason: str) -> int:
        """Give up every pending delivery to the webhook (disabled or removed)."""
        result = await self._db[DELIVERIES].update_many(
            {
                "target": webhook_id,
                "channel": Channel.WEBHOOK.name,
                "status": DeliveryStatus.PENDING.name,
            },
            {"$set": {"status": DeliveryStatus.FAILED.name, "last_error": reason}},
            session=self._session,
        )
        return result.modified_count


def _only_duplicates(error: BulkWriteError) -> bool:
    """Whether every write the error reports failed on a taken id, and nothing else."""
    details = error.details
    return not details.get("writeConcernErrors") and all(
        failed.get("code") == DUPLICATE_KEY for failed in details.get("writeErrors", [])
    )


# Documents. Enums are stored by name: readable in the database and in dumps.


def _clock_text(moment: time) -> str:
    return moment.strftime("%H:%M")


def _preferences_document(preferences: Preferences) -> Document:
    quiet = preferences.quiet_hours
    return {
        "language": preferences.language,
        "email": preferences.email,
        "kinds": [
            {"kind": kind.name, "channels": sorted(channel.name for channel in channels)}
            for kind, channels in preferences.kinds
        ],
        "quiet_hours": None
        if quiet is None
        else {
            "start": _clock_text(quiet.start),
            "end": _clock_text(quiet.end),
            "time_zone": quiet.time_zone,
        },
        "fair_hs_headings": list(preferences.fair_hs_headings),
        "utilisation_alert_percent": preferences.utilisation_alert_percent,
    }


def _preferences_from(doc: Document) -> Preferences:
    quiet = doc["quiet_hours"]
    return Preferences(
        language=doc["language"],
        email=doc["email"],
        kinds=tuple(
            (Kind[entry["kind"]], frozenset(Channel[name] for name in entry["channels"]))
            for entry in doc["kinds"]
        ),
        quiet_hours=None
        if quiet is None
        else QuietHours(
            time.fromisoformat(quiet["start"]),
            time.fromisoformat(quiet["end"]),
            quiet["time_zone"],
        ),
        fair_hs_headings=tuple(doc["fair_hs_headings"]),
        utilisation_alert_percent=doc["utilisation_alert_percent"],
    )


def _notification_document(notification: Notification) -> Document:
    return {
        "_id": notification.notification_id,
        "reader": notification.reader.key,
        "kind": notification.kind.name,
        "title": notification.title,
        "body": notification.body,
        "language": notification.language,
        "facts": dict(notification.facts),
        "event_id": notification.event_id,
        "created_at": notification.created_at,
        "read_at": notification.read_at,
    }


def _notification_from(doc: Document) -> Notification:
    facts: Mapping[str, str] = doc["facts"]
    return Notification(
        notification_id=doc["_id"],
        reader=Reader.parse(doc["reader"]),
        kind=Kind[doc["kind"]],
        title=doc["title"],
        body=doc["body"],
        language=doc["language"],
        facts=dict(facts),
        event_id=doc["event_id"],
        created_at=doc["created_at"],
        read_at=doc["read_at"],
    )


def _webhook_document(webhook: Webhook) -> Document:
    return {
        "_id": webhook.webhook_id,
        "reader": webhook.reader.key,
        "url": webhook.url,
        "kinds": sorted(kind.name for kind in webhook.kinds),
        "secret": webhook.secret,
        "created_at": webhook.created_at,
        "enabled": webhook.enabled,
        "disabled_reason": webhook.disabled_reason,
        "consecutive_failures": webhook.consecutive_failures,
    }


def _webhook_from(doc: Document) -> Webhook:
    return Webhook(
        webhook_id=doc["_id"],
        reader=Reader.parse(doc["reader"]),
        url=doc["url"],
        kinds=frozenset(Kind[name] for name in doc["kinds"]),
        secret=doc["secret"],
        created_at=doc["created_at"],
        enabled=doc["enabled"],
        disabled_reason=doc["disabled_reason"],
        consecutive_failures=doc["consecutive_failures"],
    )


def _delivery_document(delivery: Delivery) -> Document:
    return {
        "_id": delivery.delivery_id,
        "notification_id": delivery.notification_id,
        "reader": delivery.reader.key,
        "channel": delivery.channel.name,
        "target": delivery.target,
        "status": delivery.status.name,
        "attempts": delivery.attempts,
        "last_error": delivery.last_error,
        "next_attempt_at": delivery.next_attempt_at,
        "delivered_at": delivery.delivered_at,
        "created_at": delivery.created_at,
        # The dispatcher attempt that holds it (see NotifyStore.claim); None between.
        "claim": None,
    }


def _delivery_from(doc: Document) -> Delivery:
    return Delivery(
        delivery_id=doc["_id"],
        notification_id=doc["notification_id"],
        reader=Reader.parse(doc["reader"]),
        channel=Channel[doc["channel"]],
        target=doc["target"],
        status=DeliveryStatus[doc["status"]],
        next_attempt_at=doc["next_attempt_at"],
        created_at=doc["created_at"],
        attempts=doc["attempts"],
        last_error=doc["last_error"],
        delivered_at=doc["delivered_at"],
    )
