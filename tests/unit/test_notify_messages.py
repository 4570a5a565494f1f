"""Notify's protobuf boundary: the events it reads as facts (and the ones it skips),
domain objects as API resources, requests as commands naming every wrong field, and
the webhook body that is signed as sent."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message

from chuhai.booth.v1 import events_pb2 as booth_events
from chuhai.booth.v1 import resources_pb2 as booth_resources
from chuhai.events.v1.envelope_pb2 import EventEnvelope
from chuhai.expo.v1 import events_pb2 as expo_events
from chuhai.expo.v1 import resources_pb2 as expo_resources
from chuhai.notify.v1 import notify_service_pb2 as api
from chuhai.notify.v1 import resources_pb2 as pb
from chuhai.warehouse.v1 import events_pb2 as warehouse_events
from notify import domain, messages
from notify.domain import (
    Channel,
    Delivery,
    DeliveryStatus,
    Kind,
    Notification,
    Preferences,
    QuietHours,
    Reader,
    Webhook,
)
from runtime.adapters.events import UndecodableEvent, envelope_for
from runtime.kernel.errors import InvalidArgument
from runtime.kernel.identity import Role
from tests.credit_codes import random_credit_code

NOW = datetime(2026, 7, 1, 9, 30, 15, 250_000, tzinfo=UTC)
EXPORTER = random_credit_code()
OTHER = random_credit_code()


def violated(error: pytest.ExceptionInfo[InvalidArgument]) -> set[str]:
    return {v.field for v in error.value.violations}


def envelope(payload: Message, event_id: str = "e-1") -> EventEnvelope:
    return envelope_for(
        payload, aggregate_id="agg", producer="test", occurred_at=NOW, event_id=event_id
    )


# Events to facts.

BOOTH = {"application_id": "app-1", "fair_id": "canton-139"}
AT = {"event_id": "e-1", "occurred_at": NOW}
PERIOD = {
    "reservation_id": "r-1",
    "warehouse_code": "HAM-1",
    "exporter_credit_code": EXPORTER,
    "pallet_positions": 40,
    "cubic_metres": 120,
    "start_date": "2026-07-01",
    "end_date": "2026-08-01",
}
PERIOD_FACTS = PERIOD | {"start_date": date(2026, 7, 1), "end_date": date(2026, 8, 1)}

READ: list[tuple[Message, domain.Fact]] = [
    (
        booth_events.ExporterRegistered(
            credit_code=EXPORTER, main_product_hs_codes=["6704.20", "670490", "8501 10", "12"]
        ),
        domain.ExporterProfiled(**AT, credit_code=EXPORTER, hs_headings=("6704", "8501")),
    ),
    (
        booth_events.ExporterUpdated(credit_code=EXPORTER, main_product_hs_codes=["090111"]),
        domain.ExporterProfiled(**AT, credit_code=EXPORTER, hs_headings=("0901",)),
    ),
    (
        booth_events.FairOpened(
            fair_id="canton-139", name="Canton", session="I", hs_headings=["8501", "6704"]
        ),
        domain.FairOpened(
            **AT, fair_id="canton-139", name="Canton", session="I", hs_headings=("6704", "8501")
        ),
    ),
    (
        booth_events.BoothApplicationSubmitted(
            **BOOTH, credit_code=EXPORTER, booth_type=booth_resources.BOOTH_TYPE_BRAND
        ),
        domain.ApplicationSubmitted(**AT, **BOOTH, credit_code=EXPORTER, booth_type="BRAND"),
    ),
    (
        booth_events.BoothApplicationScored(
            **BOOTH, booth_type=booth_resources.BOOTH_TYPE_STANDARD, score=87
        ),
        domain.ApplicationScored(**AT, **BOOTH, booth_type="STANDARD", score=87),
    ),
    (
        booth_events.BoothAllocated(
            **BOOTH,
            credit_code=EXPORTER,
            booth_type=booth_resources.BOOTH_TYPE_STANDARD,
            booth_number="12.1A01",
            quota=5,
            from_waitlist=True,
        ),
        domain.BoothAllocated(
            **AT,
            **BOOTH,
            credit_code=EXPORTER,
            booth_type="STANDARD",
            booth_number="12.1A01",
            quota=5,
            from_waitlist=True,
        ),
    ),
    (
        booth_events.BoothApplicationWaitlisted(
            **BOOTH, booth_type=booth_resources.BOOTH_TYPE_BRAND, waitlist_position=2
        ),
        domain.ApplicationWaitlisted(**AT, **BOOTH, booth_type="BRAND", position=2),
    ),
    (
        booth_events.WaitlistPromoted(
            **BOOTH,
            booth_type=booth_resources.BOOTH_TYPE_BRAND,
            booth_number="B-7",
            freed_by_application_id="app-0",
        ),
        domain.WaitlistPromoted(**AT, **BOOTH, booth_type="BRAND", booth_number="B-7"),
    ),
    (
        booth_events.BoothApplicationRejected(
            **BOOTH, booth_type=booth_resources.BOOTH_TYPE_BRAND, reason="no licence"
        ),
        domain.ApplicationRejected(**AT, **BOOTH, booth_type="BRAND", reason="no licence"),
    ),
    (
        booth_events.BoothApplicationWithdrawn(
            **BOOTH,
            credit_code=EXPORTER,
            booth_type=booth_resources.BOOTH_TYPE_BRAND,
            booth_number="B-7",
            penalty_fen=50_000,
        ),
        domain.ApplicationWithdrawn(
            **AT,
            **BOOTH,
            credit_code=EXPORTER,
            booth_type="BRAND",
            booth_number="B-7",
            penalty_fen=50_000,
        ),
    ),
    (
        booth_events.AllocationCompleted(
            fair_id="canton-139",
            booth_type=booth_resources.BOOTH_TYPE_BRAND,
            quota=10,
            allocated=9,
            waitlisted=0,
            rejected=2,
        ),
        domain.AllocationCompleted(
            **AT,
            fair_id="canton-139",
            booth_type="BRAND",
            quota=10,
            allocated=9,
            waitlisted=0,
            rejected=2,
        ),
    ),
    (
        expo_events.IntentSubmitted(
            intent_id="intent-1",
            edition_id="cloud",
            buyer_id="buyer-1",
            buyer_country="DE",
            kind=expo_resources.INTENT_KIND_RFQ,
            hs_code="670420",
            quantity=5000,
            unit="pieces",
            target_price=expo_resources.Money(currency="USD", units=9),
            deadline=datetime(2026, 7, 8, tzinfo=UTC),
            recipients=[EXPORTER, OTHER],
        ),
        domain.IntentSubmitted(
            **AT,
            intent_id="intent-1",
            edition_id="cloud",
            buyer_id="buyer-1",
            buyer_country="DE",
            kind="RFQ",
            hs_code="670420",
            quantity=5000,
            unit="pieces",
            deadline=datetime(2026, 7, 8, tzinfo=UTC),
            recipients=(EXPORTER, OTHER),
        ),
    ),
    (
        expo_events.QuoteSent(
            intent_id="intent-1",
            edition_id="cloud",
            credit_code=EXPORTER,
            unit_price=expo_resources.Money(currency="USD", units=12, nanos=500_000_000),
            moq=100,
            lead_time_days=30,
            incoterm=expo_resources.INCOTERM_FOB,
        ),
        domain.QuoteSent(
            **AT,
            intent_id="intent-1",
            edition_id="cloud",
            credit_code=EXPORTER,
            currency="USD",
            unit_price=Decimal("12.5"),
            moq=100,
            lead_time_days=30,
            incoterm="FOB",
            valid_until=None,
        ),
    ),
    (
        expo_events.IntentDeclined(
            intent_id="intent-1", edition_id="cloud", credit_code=EXPORTER, all_declined=True
        ),
        domain.IntentDeclined(
            **AT,
            intent_id="intent-1",
            edition_id="cloud",
            credit_code=EXPORTER,
            reason="",
            all_declined=True,
        ),
    ),
    (
        expo_events.IntentClosed(
            intent_id="intent-1", edition_id="cloud", quotes=3, reason="buyer"
        ),
        domain.IntentClosed(
            **AT, intent_id="intent-1", edition_id="cloud", quotes=3, reason="buyer"
        ),
    ),
    (
        expo_events.IntentExpired(intent_id="intent-1", edition_id="cloud"),
        domain.IntentExpired(**AT, intent_id="intent-1", edition_id="cloud"),
    ),
    (
        warehouse_events.CapacityReserved(
            **PERIOD, days=31, operator_id="op-1", peak_utilisation_percent=93
        ),
        domain.CapacityReserved(
            **AT, **PERIOD_FACTS, operator_id="op-1", peak_utilisation_percent=93
        ),
    ),
    (
        warehouse_events.ReservationCancelled(
            **PERIOD, days=31, reason="plans changed", operator_id="op-1"
        ),
        domain.ReservationCancelled(
            **AT, **PERIOD_FACTS, reason="plans changed", operator_id="op-1"
        ),
    ),
]


@pytest.mark.parametrize(("payload", "fact"), READ, ids=lambda v: type(v).__name__)
def test_each_event_notify_reads_becomes_its_fact(payload: Message, fact: domain.Fact) -> None:
    assert messages.fact_of(envelope(payload)) == fact


def test_every_fact_type_is_read_from_some_event() -> None:
    read = {type(fact) for _, fact in READ}
    assert read == set(domain.Fact.__args__)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "payload",
    [
        expo_events.BuyerRegistered(buyer_id="b", company="Hamburg Hair GmbH", country="DE"),
        expo_events.RfqMatched(intent_id="i", recipients=[EXPORTER]),
        booth_events.FairCreated(fair_id="f"),
        booth_events.FairClosed(fair_id="f"),
        warehouse_events.WarehouseRegistered(code="HAM-1"),
    ],
    ids=lambda v: type(v).__name__,
)
def test_events_notify_does_not_read_are_none(payload: Message) -> None:
    assert messages.fact_of(envelope(payload)) is None


@pytest.mark.parametrize(
    "payload",
    [
        # Version 1 carried these facts in a resource message (now a reserved field).
        booth_events.ExporterRegistered(),
        expo_events.QuoteSent(intent_id="intent-1"),
        expo_events.IntentDeclined(intent_id="intent-1"),
        expo_events.IntentSubmitted(intent_id="intent-1"),
        booth_events.FairOpened(),
        booth_events.BoothApplicationSubmitted(application_id="app-1"),
    ],
    ids=lambda v: type(v).__name__,
)
def test_payloads_without_what_notify_needs_are_skipped(payload: Message) -> None:
    assert messages.fact_of(envelope(payload)) is None


def test_unknown_enum_values_read_as_empty_names() -> None:
    payload = booth_events.BoothApplicationScored(**BOOTH, booth_type=7, score=1)
    fact = messages.fact_of(envelope(payload))
    assert isinstance(fact, domain.ApplicationScored)
    assert fact.booth_type == ""


def test_a_malformed_date_is_undecodable() -> None:
    payload = warehouse_events.CapacityReserved(**(PERIOD | {"end_date": "August"}))
    with pytest.raises(UndecodableEvent, match="end_date"):
        messages.fact_of(envelope(payload))


def test_an_event_without_its_moment_is_undecodable() -> None:
    event = envelope(expo_events.IntentExpired(intent_id="i", edition_id="e"))
    event.ClearField("occurred_at")
    with pytest.raises(UndecodableEvent):
        messages.fact_of(event)


# Domain objects to resources.


def test_a_notification_as_the_api_shows_it() -> None:
    note = Notification(
        notification_id="n-1",
        reader=Reader(Role.EXPORTER, EXPORTER),
        kind=Kind.BOOTH_ALLOCATED,
        title="t",
        body="b",
        language="en",
        facts={"booth_number": "12.1A01"},
        event_id="e-1",
        created_at=NOW,
    )
    message = messages.notification_message(note)
    assert message.kind == pb.NOTIFICATION_KIND_BOOTH_ALLOCATED
    assert dict(message.facts) == {"booth_number": "12.1A01"}
    assert message.created_at.ToDatetime(UTC) == NOW
    assert not message.HasField("read_at")
    read = messages.notification_message(
        Notification(**{**note.__dict__, "read_at": NOW + timedelta(minutes=1)})
    )
    assert read.read_at.ToDatetime(UTC) == NOW + timedelta(minutes=1)


def test_the_kind_channel_and_status_enums_match_the_protos() -> None:
    for kind in Kind:
        assert pb.NotificationKind.Name(kind) == f"NOTIFICATION_KIND_{kind.name}"
    assert len(Kind) == len(pb.NotificationKind.keys()) - 1
    for channel in Channel:
        assert pb.Channel.Name(channel) == f"CHANNEL_{channel.name}"
    for status in DeliveryStatus:
        assert pb.DeliveryStatus.Name(status) == f"DELIVERY_STATUS_{status.name}"


def test_preferences_as_the_api_shows_them() -> None:
    preferences = Preferences(
        language="en",
        email="sales@example.com",
        kinds=((Kind.DAILY_DIGEST, frozenset()), (Kind.RFQ_MATCHED, frozenset(Channel))),
        quiet_hours=QuietHours(time(22), time(7, 5), "Asia/Shanghai"),
        fair_hs_headings=("6704",),
        utilisation_alert_percent=80,
    )
    message = messages.preferences_message(preferences)
    assert message.quiet_hours == pb.QuietHours(
        start="22:00", end="07:05", time_zone="Asia/Shanghai"
    )
    assert {k.kind: list(k.channels) for k in message.kinds} == {
        Kind.RFQ_MATCHED: [Channel.IN_APP, Channel.WEBHOOK, Channel.EMAIL],
        Kind.DAILY_DIGEST: [],
    }
    assert not messages.preferences_message(domain.DEFAULT).HasField("quiet_hours")


def test_preferences_sent_back_unchanged_read_as_the_same() -> None:
    preferences = Preferences(
        language="en",
        email="sales@example.com",
        kinds=((Kind.RFQ_MATCHED, frozenset({Channel.EMAIL})),),
        quiet_hours=QuietHours(time(22), time(7), "Europe/Berlin"),
        fair_hs_headings=("6704", "8501"),
        utilisation_alert_percent=80,
    )
    request = api.UpdatePreferencesRequest(
        request_id="r-1", preferences=messages.preferences_message(preferences)
    )
    assert messages.preferences_update(request).apply(domain.DEFAULT) == preferences


def test_a_webhook_as_the_api_shows_it_never_has_its_secret() -> None:
    webhook = Webhook(
        webhook_id="wh-1",
        reader=Reader(Role.EXPORTER, EXPORTER),
        url="https://example.com/hook",
        kinds=frozenset({Kind.RFQ_MATCHED, Kind.INQUIRY_RECEIVED}),
        secret="s3cr3t-value",
        created_at=NOW,
        enabled=False,
        disabled_reason="disabled after 10 failed deliveries in a row",
        consecutive_failures=10,
    )
    message = messages.webhook_message(webhook)
    assert list(message.kinds) == [Kind.INQUIRY_RECEIVED, Kind.RFQ_MATCHED]
    assert (message.enabled, message.consecutive_failures) == (False, 10)
    assert b"s3cr3t-value" not in message.SerializeToString()


def delivery(**changes: object) -> Delivery:
    made = Delivery(
        delivery_id="d-1",
        notification_id="n-1",
        reader=Reader(Role.EXPORTER, EXPORTER),
        channel=Channel.WEBHOOK,
        target="wh-1",
        status=DeliveryStatus.PENDING,
        next_attempt_at=NOW,
        created_at=NOW,
    )
    return Delivery(**{**made.__dict__, **changes})


def test_a_delivery_as_the_api_shows_it() -> None:
    message = messages.delivery_message(delivery(attempts=2, last_error="HTTP 503"))
    assert message.channel == pb.CHANNEL_WEBHOOK
    assert message.status == pb.DELIVERY_STATUS_PENDING
    assert (message.attempts, message.last_error) == (2, "HTTP 503")
    assert not message.HasField("delivered_at")
    done = messages.delivery_message(delivery(status=DeliveryStatus.DELIVERED, delivered_at=NOW))
    assert done.delivered_at.ToDatetime(UTC) == NOW


# Requests to commands.


def test_a_preferences_update_names_every_wrong_field_at_once() -> None:
    request = api.UpdatePreferencesRequest(
        preferences=pb.Preferences(
            language="fr",
            quiet_hours=pb.QuietHours(start="25:00", end="07:00", time_zone="Asia/Shanghai"),
            kinds=[pb.KindChannels(kind=Kind.RFQ_MATCHED, channels=[7])],
        ),
        update_mask=FieldMask(paths=["language", "quiet_hours", "kinds", "favourite_colour"]),
    )
    with pytest.raises(InvalidArgument) as error:
        messages.preferences_update(request)
    assert violated(error) == {
        "request_id",
        "preferences.language",
        "preferences.quiet_hours.start",
        "preferences.kinds[0].channels[0]",
        "update_mask.paths[3]",
    }


def test_a_preferences_update_takes_only_the_masked_fields() -> None:
    request = api.UpdatePreferencesRequest(
        request_id="r-1",
        preferences=pb.Preferences(language="en", email="ops@example.com"),
        update_mask=FieldMask(paths=["email"]),
    )
    current = Preferences(language="zh", fair_hs_headings=("6704",))
    changed = messages.preferences_update(request).apply(current)
    assert changed == Preferences(
        language="zh", email="ops@example.com", fair_hs_headings=("6704",)
    )


def test_a_webhook_registration_names_every_wrong_field() -> None:
    request = api.RegisterWebhookRequest(url="http://example.com/hook", kinds=[Kind.RFQ_MATCHED, 0])
    with pytest.raises(InvalidArgument) as error:
        messages.webhook_registration(request)
    assert violated(error) == {"request_id", "url", "kinds[1]"}
    ok = messages.webhook_registration(
        api.RegisterWebhookRequest(
            request_id="r-1", url="https://example.com/hook", kinds=[Kind.RFQ_MATCHED]
        )
    )
    assert (ok.url, ok.kinds) == ("https://example.com/hook", {Kind.RFQ_MATCHED})


def test_enable_and_delete_name_a_webhook() -> None:
    with pytest.raises(InvalidArgument) as error:
        messages.webhook_reference(api.DeleteWebhookRequest())
    assert violated(error) == {"request_id", "webhook_id"}
    request = api.EnableWebhookRequest(request_id="r-1", webhook_id=" wh-1 ")
    assert messages.webhook_reference(request) == "wh-1"


def test_mark_read_takes_ids_or_all_but_not_both() -> None:
    marked = messages.mark_read(
        api.MarkReadRequest(request_id="r-1", notification_ids=["n-1", "n-2", "n-1"])
    )
    assert marked == domain.MarkRead(("n-1", "n-2"), False)
    assert messages.mark_read(api.MarkReadRequest(request_id="r-1", all=True)) == domain.MarkRead(
        (), True
    )
    with pytest.raises(InvalidArgument) as both:
        messages.mark_read(api.MarkReadRequest(request_id="r", notification_ids=["n"], all=True))
    assert violated(both) == {"notification_ids"}
    with pytest.raises(InvalidArgument) as neither:
        messages.mark_read(api.MarkReadRequest())
    assert violated(neither) == {"request_id", "notification_ids"}
    with pytest.raises(InvalidArgument) as empty:
        messages.mark_read(api.MarkReadRequest(request_id="r", notification_ids=["n", " "]))
    assert violated(empty) == {"notification_ids[1]"}


@pytest.mark.parametrize(("asked", "size"), [(0, 20), (1, 1), (100, 100), (5000, 100)])
def test_page_sizes_default_to_20_and_stop_at_100(asked: int, size: int) -> None:
    unread, page = messages.notification_listing(
        api.ListNotificationsRequest(page_size=asked, unread_only=True)
    )
    assert unread is True
    assert page.size == size
    webhook_id, page = messages.delivery_listing(
        api.ListDeliveriesRequest(webhook_id="wh-1", page_size=asked)
    )
    assert (webhook_id, page.size) == ("wh-1", size)


def test_a_negative_page_size_or_a_foreign_token_is_named() -> None:
    with pytest.raises(InvalidArgument) as error:
        messages.notification_listing(
            api.ListNotificationsRequest(page_size=-1, page_token="not-a-token")
        )
    assert violated(error) == {"page_size", "page_token"}


def test_a_page_token_is_bound_to_its_list() -> None:
    _, first = messages.notification_listing(api.ListNotificationsRequest())
    token = first.token_after([NOW, "n-1"])
    _, second = messages.notification_listing(api.ListNotificationsRequest(page_token=token))
    assert second.after is not None and second.after[1] == "n-1"
    with pytest.raises(InvalidArgument) as error:
        messages.notification_listing(
            api.ListNotificationsRequest(unread_only=True, page_token=token)
        )
    assert violated(error) == {"page_token"}
    with pytest.raises(InvalidArgument):
        messages.delivery_listing(api.ListDeliveriesRequest(page_token=token))


# The webhook body.


def test_the_webhook_body_is_compact_sorted_json_signed_as_sent() -> None:
    note = Notification(
        notification_id="n-1",
        reader=Reader(Role.EXPORTER, EXPORTER),
        kind=Kind.BOOTH_ALLOCATED,
        title="展位分配结果",
        body="b",
        language="zh",
        facts={"fair_id": "canton-139", "booth_number": "12.1A01"},
        event_id="e-1",
        created_at=NOW,
    )
    body = messages.webhook_body(delivery(), note)
    document = json.loads(body)
    assert document == {
        "delivery_id": "d-1",
        "webhook_id": "wh-1",
        "notification": {
            "notification_id": "n-1",
            "kind": "BOOTH_ALLOCATED",
            "title": "展位分配结果",
            "body": "b",
            "language": "zh",
            "facts": {"booth_number": "12.1A01", "fair_id": "canton-139"},
            "event_id": "e-1",
            "created_at": "2026-07-01T09:30:15.250Z",
        },
    }
    assert body == json.dumps(
        document, ensure_ascii=False, separators=(",", ":"), sort_keys=True
    ).encode("utf-8")
    assert b" " not in body
    stamp = int(NOW.timestamp())
    signature = domain.sign("secret", stamp, body)
    assert domain.signature_valid("secret", stamp, body, signature, NOW)
    assert not domain.signature_valid(
        "secret", stamp, body.replace(b"12.1A01", b"12.1A02"), signature, NOW
    )
