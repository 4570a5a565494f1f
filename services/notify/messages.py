"""The notify service's protobuf boundary, and the only module that knows protobuf: the
events it reads to domain facts, requests to domain commands (validated with the
kernel Validator, naming every wrong field at once), domain objects to the API's
resources, and the JSON body a webhook delivery POSTs."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.message import Message

from chuhai.booth.v1 import resources_pb2 as booth_resources
from chuhai.events.v1.envelope_pb2 import EventEnvelope
from chuhai.expo.v1 import resources_pb2 as expo_resources
from chuhai.notify.v1 import notify_service_pb2 as api
from chuhai.notify.v1 import resources_pb2 as pb
from notify import domain
from notify.domain import (
    Delivery,
    Fact,
    MarkRead,
    Notification,
    Preferences,
    PreferencesDraft,
    PreferencesUpdate,
    QuietHoursDraft,
    Webhook,
    WebhookRegistration,
)
from runtime.adapters.events import UndecodableEvent
from runtime.adapters.pagination import PageRequest, page_request
from runtime.adapters.timestamps import moment, timestamp
from runtime.kernel.standards import hs_heading, is_hs_heading, normalise_hs_code
from runtime.kernel.validation import Validator, validated

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
# Both lists are newest first by (created_at, id).
PAGE_KEY_LENGTH = 2
# Far more than a page: a client marks what it listed, or everything.
MAX_MARK_READ_IDS = 1000


# Events to facts.


def _name(enum_type: EnumTypeWrapper, value: int, prefix: str) -> str:
    """An enum value's name without its prefix ("BOOTH_TYPE_BRAND" -> "BRAND"); empty
    for the unspecified value and numbers this build does not know."""
    if value == 0:
        return ""
    try:
        return enum_type.Name(value).removeprefix(prefix)
    except ValueError:
        return ""


def _booth_type(value: int) -> str:
    return _name(booth_resources.BoothType, value, "BOOTH_TYPE_")


def _day(payload: Message, field: str) -> date:
    text = getattr(payload, field)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UndecodableEvent(
            f"{payload.DESCRIPTOR.full_name}.{field} is not a date YYYY-MM-DD: {text!r}"
        ) from None


def _headings(hs_codes: list[str]) -> tuple[str, ...]:
    headings = {hs_heading(normalise_hs_code(code)) for code in hs_codes}
    return tuple(sorted(h for h in headings if is_hs_heading(h)))


def _amount(money: expo_resources.Money) -> Decimal:
    return Decimal(money.units) + Decimal(money.nanos).scaleb(-9)


# Each reader gets the payload, event id and occurrence; None when the payload lacks
# what notify needs (an old version that carried it elsewhere: notify upcasts nothing).
_Reader = Callable[[Any, str, datetime], Fact | None]


def _exporter_profiled(p: Any, event_id: str, at: datetime) -> Fact | None:
    if not p.credit_code:
        return None
    return domain.ExporterProfiled(
        event_id, at, p.credit_code, _headings(list(p.main_product_hs_codes))
    )


def _fair_opened(p: Any, event_id: str, at: datetime) -> Fact | None:
    if not p.fair_id:
        return None
    return domain.FairOpened(
        event_id, at, p.fair_id, p.name, p.session, tuple(sorted(set(p.hs_headings)))
    )


def _submitted(p: Any, event_id: str, at: datetime) -> Fact | None:
    if not (p.application_id and p.credit_code):
        return None
    return domain.ApplicationSubmitted(
        event_id, at, p.application_id, p.fair_id, p.credit_code, _booth_type(p.booth_type)
    )


def _scored(p: Any, event_id: str, at: datetime) -> Fact | None:
    return domain.ApplicationScored(
        event_id, at, p.application_id, p.fair_id, _booth_type(p.booth_type), p.score
    )


def _allocated(p: Any, event_id: str, at: datetime) -> Fact | None:
    return domain.BoothAllocated(
        event_id,
        at,
        p.application_id,
        p.fair_id,
        p.credit_code,
        _booth_type(p.booth_type),
        p.booth_number,
        p.quota,
        p.from_waitlist,
    )


def _waitlisted(p: Any, event_id: str, at: datetime) -> Fact | None:
    return domain.ApplicationWaitlisted(
        event_id, at, p.application_id, p.fair_id, _booth_type(p.booth_type), p.waitlist_position
    )


def _promoted(p: Any, event_id: str, at: datetime) -> Fact | None:
    return domain.WaitlistPromoted(
        event_id, at, p.application_id, p.fair_id, _booth_type(p.booth_type), p.booth_number
    )


def _rejected(p: Any, event_id: str, at: datetime) -> Fact | None:
    return domain.ApplicationRejected(
        event_id, at, p.application_id, p.fair_id, _booth_type(p.booth_type), p.reason
    )


def _withdrawn(p: Any, event_id: str, at: datetime) -> Fact | None:
    return domain.ApplicationWithdrawn(
        event_id,
        at,
        p.application_id,
        p.fair_id,
        p.credit_code,
        _booth_type(p.booth_type),
        p.booth_number,
        p.penalty_fen,
    )


def _allocation_completed(p: Any, event_id: str, at: datetime) -> Fact | None:
    return domain.AllocationCompleted(
        event_id,
        at,
        p.fair_id,
        _booth_type(p.booth_type),
        p.quota,
        p.allocated,
        p.waitlisted,
        p.rejected,
    )


def _intent_submitted(p: Any, event_id: str, at: datetime) -> Fact | None:
    if not (p.intent_id and p.buyer_id):
        return None
    # Company, contact and target price are left behind: exhibitors learn of the buyer
    # only what the expo shows them (its country) until they read the intent there.
    return domain.IntentSubmitted(
        event_id,
        at,
        intent_id=p.intent_id,
        edition_id=p.edition_id,
        buyer_id=p.buyer_id,
        buyer_country=p.buyer_country,
        kind=_name(expo_resources.IntentKind, p.kind, "INTENT_KIND_"),
        hs_code=p.hs_code,
        quantity=p.quantity,
        unit=p.unit,
        deadline=moment(p, "deadline"),
        recipients=tuple(p.recipients),
    )


def _quote_sent(p: Any, event_id: str, at: datetime) -> Fact | None:
    # Version 1 carried the exhibitor and its price in a resource message (field 3).
    if not (p.intent_id and p.credit_code):
        return None
    return domain.QuoteSent(
        event_id,
        at,
        intent_id=p.intent_id,
        edition_id=p.edition_id,
        credit_code=p.credit_code,
        currency=p.unit_price.currency,
        unit_price=_amount(p.unit_price),
        moq=p.moq,
        lead_time_days=p.lead_time_days,
        incoterm=_name(expo_resources.Incoterm, p.incoterm, "INCOTERM_"),
        valid_until=moment(p, "valid_until"),
    )


def _intent_declined(p: Any, event_id: str, at: datetime) -> Fact | None:
    if not (p.intent_id and p.credit_code):
        return None
    return domain.IntentDeclined(
        event_id, at, p.intent_id, p.edition_id, p.credit_code, p.reason, p.all_declined
    )


def _intent_closed(p: Any, event_id: str, at: datetime) -> Fact | None:
    return domain.IntentClosed(event_id, at, p.intent_id, p.edition_id, p.quotes, p.reason)


def _intent_expired(p: Any, event_id: str, at: datetime) -> Fact | None:
    return domain.IntentExpired(event_id, at, p.intent_id, p.edition_id)


def _capacity_reserved(p: Any, event_id: str, at: datetime) -> Fact | None:
    return domain.CapacityReserved(
        event_id,
        at,
        reservation_id=p.reservation_id,
        warehouse_code=p.warehouse_code,
        exporter_credit_code=p.exporter_credit_code,
        pallet_positions=p.pallet_positions,
        cubic_metres=p.cubic_metres,
        start_date=_day(p, "start_date"),
        end_date=_day(p, "end_date"),
        operator_id=p.operator_id,
        peak_utilisation_percent=p.peak_utilisation_percent,
    )


def _reservation_cancelled(p: Any, event_id: str, at: datetime) -> Fact | None:
    return domain.ReservationCancelled(
        event_id,
        at,
        reservation_id=p.reservation_id,
        warehouse_code=p.warehouse_code,
        exporter_credit_code=p.exporter_credit_code,
        pallet_positions=p.pallet_positions,
        cubic_metres=p.cubic_metres,
        start_date=_day(p, "start_date"),
        end_date=_day(p, "end_date"),
        reason=p.reason,
        operator_id=p.operator_id,
    )


# The envelope's payload field -> how notify reads it.
_READERS: dict[str, _Reader] = {
    "exporter_registered": _exporter_profiled,
    "exporter_updated": _exporter_profiled,
    "fair_opened": _fair_opened,
    "booth_application_submitted": _submitted,
    "booth_application_scored": _scored,
    "booth_allocated": _allocated,
    "booth_application_waitlisted": _waitlisted,
    "waitlist_promoted": _promoted,
    "booth_application_rejected": _rejected,
    "booth_application_withdrawn": _withdrawn,
    "allocation_completed": _allocation_completed,
    "intent_submitted": _intent_submitted,
    "quote_sent": _quote_sent,
    "intent_declined": _intent_declined,
    "intent_closed": _intent_closed,
    "intent_expired": _intent_expired,
    "capacity_reserved": _capacity_reserved,
    "reservation_cancelled": _reservation_cancelled,
}


def fact_of(envelope: EventEnvelope) -> Fact | None:
    """The fact an event tells notify; None for events notify does not read, and for
    old versions without the fields it needs. Raises UndecodableEvent (or
    InvalidArgument for a moment out of range) when a payload it reads is malformed."""
    field = envelope.WhichOneof("payload")
    reader = _READERS.get(field or "")
    if reader is None:
        return None
    occurred_at = moment(envelope, "occurred_at")
    if occurred_at is None:
        raise UndecodableEvent(f"event {envelope.event_id} has no occurred_at")
    return reader(getattr(envelope, field or ""), envelope.event_id, occurred_at)


# Domain objects to resources.


def _clock(value: time) -> str:
    return f"{value.hour:02d}:{value.minute:02d}"


def notification_message(notification: Notification) -> pb.Notification:
    message = pb.Notification(
        notification_id=notification.notification_id,
        kind=notification.kind,
        title=notification.title,
        body=notification.body,
        language=notification.language,
        facts=dict(notification.facts),
        event_id=notification.event_id,
        created_at=timestamp(notification.created_at),
    )
    if notification.read_at is not None:
        message.read_at.CopyFrom(timestamp(notification.read_at))
    return message


def preferences_message(preferences: Preferences) -> pb.Preferences:
    message = pb.Preferences(
        language=preferences.language,
        email=preferences.email,
        kinds=[
            pb.KindChannels(kind=kind, channels=sorted(channels))
            for kind, channels in preferences.kinds
        ],
        fair_hs_headings=list(preferences.fair_hs_headings),
        utilisation_alert_percent=preferences.utilisation_alert_percent,
    )
    quiet = preferences.quiet_hours
    if quiet is not None:
        message.quiet_hours.CopyFrom(
            pb.QuietHours(
                start=_clock(quiet.start), end=_clock(quiet.end), time_zone=quiet.time_zone
            )
        )
    return message


def webhook_message(webhook: Webhook) -> pb.Webhook:
    """Without the secret: RegisterWebhookResponse carries it, once."""
    return pb.Webhook(
        webhook_id=webhook.webhook_id,
        url=webhook.url,
        kinds=sorted(webhook.kinds),
        enabled=webhook.enabled,
        disabled_reason=webhook.disabled_reason,
        consecutive_failures=webhook.consecutive_failures,
        created_at=timestamp(webhook.created_at),
    )


def delivery_message(delivery: Delivery) -> pb.Delivery:
    message = pb.Delivery(
        delivery_id=delivery.delivery_id,
        notification_id=delivery.notification_id,
        channel=delivery.channel,
        target=delivery.target,
        status=delivery.status,
        attempts=delivery.attempts,
        last_error=delivery.last_error,
        next_attempt_at=timestamp(delivery.next_attempt_at),
        created_at=timestamp(delivery.created_at),
    )
    if delivery.delivered_at is not None:
        message.delivered_at.CopyFrom(timestamp(delivery.delivered_at))
    return message


# Requests to commands and queries.


def _page(page_size: int, page_token: str, query: object, check: Validator) -> PageRequest:
    """Page sizes above the maximum are cut to it; 0 is the default."""
    check.require(page_size >= 0, "page_size", f"0 (the default, {DEFAULT_PAGE_SIZE}) or more")
    size = min(page_size, MAX_PAGE_SIZE) if page_size > 0 else DEFAULT_PAGE_SIZE
    return page_request(
        size, page_token, query, check, key_length=PAGE_KEY_LENGTH, maximum=MAX_PAGE_SIZE
    )


def notification_listing(request: api.ListNotificationsRequest) -> tuple[bool, PageRequest]:
    """Whether only unread notifications are asked for, and the page."""
    return validated(
        lambda check: (
            request.unread_only,
            _page(
                request.page_size,
                request.page_token,
                ("notifications", request.unread_only),
                check,
            ),
        )
    )


def delivery_listing(request: api.ListDeliveriesRequest) -> tuple[str, PageRequest]:
    """The webhook whose deliveries are asked for (empty: every channel's), and the page."""

    def build(check: Validator) -> tuple[str, PageRequest]:
        webhook_id = check.text(request.webhook_id, "webhook_id", required=False)
        return webhook_id, _page(
            request.page_size, request.page_token, ("deliveries", webhook_id), check
        )

    return validated(build)


def mark_read(request: api.MarkReadRequest) -> MarkRead:
    def build(check: Validator) -> MarkRead:
        check.request_id(request.request_id)
        ids = [
            check.identifier(value, f"notification_ids[{index}]")
            for index, value in enumerate(request.notification_ids)
        ]
        if request.all:
            check.require(not ids, "notification_ids", "must be empty when all is set")
        else:
            check.require(bool(ids), "notification_ids", "name at least one, or set all")
        check.require(
            len(ids) <= MAX_MARK_READ_IDS, "notification_ids", f"at most {MAX_MARK_READ_IDS}"
        )
        return MarkRead(tuple(dict.fromkeys(ids)), request.all)

    return validated(build)


def preferences_draft(message: pb.Preferences) -> PreferencesDraft:
    quiet = None
    if message.HasField("quiet_hours"):
        quiet = QuietHoursDraft(
            message.quiet_hours.start, message.quiet_hours.end, message.quiet_hours.time_zone
        )
    return PreferencesDraft(
        language=message.language,
        email=message.email,
        kinds=tuple((entry.kind, tuple(entry.channels)) for entry in message.kinds),
        quiet_hours=quiet,
        fair_hs_headings=tuple(message.fair_hs_headings),
        utilisation_alert_percent=message.utilisation_alert_percent,
    )


def preferences_update(request: api.UpdatePreferencesRequest) -> PreferencesUpdate:
    def build(check: Validator) -> PreferencesUpdate:
        check.request_id(request.request_id)
        return PreferencesUpdate.validated(
            preferences_draft(request.preferences), tuple(request.update_mask.paths), check
        )

    return validated(build)


def webhook_registration(request: api.RegisterWebhookRequest) -> WebhookRegistration:
    def build(check: Validator) -> WebhookRegistration:
        check.request_id(request.request_id)
        return WebhookRegistration.validated(request.url, list(request.kinds), check)

    return validated(build)


def webhook_reference(request: api.EnableWebhookRequest | api.DeleteWebhookRequest) -> str:
    """The id of the webhook an EnableWebhook or DeleteWebhook request names."""

    def build(check: Validator) -> str:
        check.request_id(request.request_id)
        return check.identifier(request.webhook_id, "webhook_id")

    return validated(build)


# The webhook request's body.


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def webhook_body(delivery: Delivery, notification: Notification) -> bytes:
    """The JSON a webhook delivery POSTs, serialized once (compact, keys sorted, UTF-8):
    the signature is over exactly these bytes."""
    document = {
        "delivery_id": delivery.delivery_id,
        "webhook_id": delivery.target,
        "notification": {
            "notification_id": notification.notification_id,
            "kind": notification.kind.name,
            "title": notification.title,
            "body": notification.body,
            "language": notification.language,
            "facts": dict(notification.facts),
            "event_id": notification.event_id,
            "created_at": _rfc3339(notification.created_at),
        },
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
