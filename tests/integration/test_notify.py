"""Notify end to end: the real booth, expo and warehouse services make events on a broker
of this module's own, and the notify host turns them into notifications for the
principals they concern, each calling as itself. A real SMTP server (aiosmtpd) and a
webhook receiver (aiohttp, verifying every signature with the secret RegisterWebhook
gave) run in the test.

The tests share one platform and run in order: each plays its own exporters, buyers and
operators, so "exactly these notifications, and nobody else's" holds per party; the
last one stops notify, and brings it back on a new consumer group. One test, on a
database of its own, checks the store's batch writes on the real MongoDB."""

from __future__ import annotations

import asyncio
import email
import email.policy
import hashlib
import hmac
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiosmtpd.smtp import SMTP, Envelope, Session
from google.protobuf.timestamp_pb2 import Timestamp
from pymongo import AsyncMongoClient

import booth.grpc_api
import expo.grpc_api
import warehouse.grpc_api
from chuhai.booth.v1 import booth_service_pb2 as booth_pb
from chuhai.booth.v1 import booth_service_pb2_grpc as booth_grpc
from chuhai.booth.v1 import resources_pb2 as booth_res
from chuhai.expo.v1 import expo_service_pb2 as expo_pb
from chuhai.expo.v1 import expo_service_pb2_grpc as expo_grpc
from chuhai.expo.v1 import resources_pb2 as expo_res
from chuhai.notify.v1 import notify_service_pb2 as pb
from chuhai.notify.v1 import notify_service_pb2_grpc as pb_grpc
from chuhai.notify.v1 import resources_pb2 as res
from chuhai.warehouse.v1 import resources_pb2 as wh_res
from chuhai.warehouse.v1 import warehouse_service_pb2 as wh_pb
from chuhai.warehouse.v1 import warehouse_service_pb2_grpc as wh_grpc
from launcher.cli import replay_outboxes
from launcher.embedded import EmbeddedInfrastructure
from notify import domain
from notify.domain import Channel, Delivery, Draft, Kind, Preferences, Reader, WebhookRegistration
from notify.host import NotifyHost
from notify.storage import IN_CHUNK, NotifyStore
from runtime.adapters.grpc_errors import error_reason
from runtime.adapters.service import ServiceHost
from runtime.adapters.settings import Settings
from runtime.adapters.tokens import DevelopmentKeys
from runtime.adapters.topics import DOMAIN_TOPICS, provision_topics
from runtime.kernel.identity import Role
from tests.conftest import Infrastructure, settings_for
from tests.credit_codes import random_credit_code
from tests.fakes import ShiftedClock
from tests.identity import Identities, Metadata
from tests.integration.test_booth import fair_request
from tests.kafka_reading import read_records
from tests.waiting import eventually

pytestmark = pytest.mark.integration

HAIR, FURNITURE = "670420", "940360"
STANDARD = booth_res.BOOTH_TYPE_STANDARD
# How long notify may take to catch up with what the services did.
SETTLE_SECONDS = 30.0


# The channels' far ends, written here.


@dataclass
class Inbox:
    """An SMTP server's handler keeping every message it accepts."""

    port: int = 0
    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [message for rcpt, message in self.messages if address in rcpt]


@dataclass
class Received:
    webhook_id: str
    delivery_id: str
    body: dict[str, Any]
    raw: bytes


@dataclass
class Receiver:
    """Webhook receivers: /ok verifies each request as a receiver should (the secret of
    the webhook it names, HMAC-SHA256 over "<timestamp>.<body>", a timestamp within 5
    minutes) and keeps it; /fail answers 503 to everything."""

    port: int = 0
    secrets: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    failed: Counter[str] = field(default_factory=Counter)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    async def ok(self, request: web.Request) -> web.Response:
        body = await request.read()
        webhook_id = request.headers.get("Chuhai-Webhook-Id", "")
        secret = self.secrets.get(webhook_id)
        timestamp = request.headers.get("Chuhai-Timestamp", "")
        signature = request.headers.get("Chuhai-Signature", "")
        if secret is None or not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
            self.refused.append(webhook_id)
            return web.Response(status=401)
        expected = hmac.new(
            secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(f"v1={expected}", signature):
            self.refused.append(webhook_id)
            return web.Response(status=401)
        self.received.append(
            Received(
                webhook_id, request.headers["Chuhai-Delivery-Id"], json.loads(body.decode()), body
            )
        )
        return web.Response(status=204)

    async def fail(self, request: web.Request) -> web.Response:
        self.failed[request.headers.get("Chuhai-Webhook-Id", "")] += 1
        return web.Response(status=503, text="down for maintenance")

    def to(self, webhook_id: str) -> list[Received]:
        return [r for r in self.received if r.webhook_id == webhook_id]


# The platform.


@dataclass
class World:
    settings: Settings
    ids: Identities
    booth: booth_grpc.BoothServiceStub
    expo: expo_grpc.ExpoServiceStub
    warehouse: wh_grpc.WarehouseServiceStub
    booth_clock: ShiftedClock
    inbox: Inbox
    receiver: Receiver
    mongo: AsyncMongoClient
    notify_host: NotifyHost
    notify_channel: grpc.aio.Channel

    @property
    def notify(self) -> pb_grpc.NotifyServiceStub:
        return pb_grpc.NotifyServiceStub(self.notify_channel)

    async def start_notify(self, settings: Settings) -> None:
        self.notify_host = NotifyHost(settings)
        await self.notify_host.start()
        assert self.notify_host.server is not None
        self.notify_channel = grpc.aio.insecure_channel(self.notify_host.server.address)

    async def stop_notify(self) -> None:
        await self.notify_channel.close()
        await self.notify_host.stop()

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        value = self.notify_host.metrics.registry.get_sample_value(name, labels or {})
        return value or 0.0

    def handled(self) -> float:
        return self.metric("chuhai_notify_events_handled_total")

    async def handled_past(self, before: float, count: int) -> None:
        """Until notify handled ``count`` more events than ``before``."""

        async def enough() -> bool:
            return self.handled() >= before + count

        await eventually(enough, equals=True, within_seconds=SETTLE_SECONDS)


@pytest.fixture(scope="module")
def own_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker of the module's own: notify reads every topic from its start."""
    with EmbeddedInfrastructure(tmp_path_factory.mktemp("notify-kafka")) as broker:
        broker.start(mongo=False)
        provision_topics(broker.kafka_bootstrap_servers)
        yield broker.kafka_bootstrap_servers


@pytest.fixture(scope="module")
async def world(
    infra: Infrastructure, identity_keys: DevelopmentKeys, identities: Identities, own_kafka: str
) -> AsyncIterator[World]:
    unique = f"n{time.time_ns() % 10**10}"
    loop = asyncio.get_running_loop()
    inbox, receiver = Inbox(), Receiver()
    smtp = await loop.create_server(
        lambda: SMTP(inbox, hostname="localhost", loop=loop), "127.0.0.1", 0
    )
    inbox.port = int(smtp.sockets[0].getsockname()[1])
    app = web.Application()
    app.router.add_post("/ok", receiver.ok)
    app.router.add_post("/fail", receiver.fail)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
    settings = settings_for(
        infra,
        identity_keys,
        unique,
        kafka_bootstrap_servers=own_kafka,
        notify_consumer_group=f"notify-{unique}",
        smtp_host="127.0.0.1",
        smtp_port=inbox.port,
        notify_dispatch_poll_seconds=0.05,
        notify_retry_base_seconds=0.05,
        notify_retry_max_seconds=0.2,
        notify_max_attempts=5,
        notify_webhook_disable_after=3,
        expo_expiry_sweep_seconds=3600.0,
        rate_limit_per_second=10_000.0,
        rate_limit_burst=10_000,
    )
    booth_clock = ShiftedClock()
    booth_host = ServiceHost("booth", booth.grpc_api.build, settings, clock=booth_clock)
    warehouse_host = ServiceHost("warehouse", warehouse.grpc_api.build, settings)
    await booth_host.start()
    await warehouse_host.start()
    assert booth_host.server is not None and warehouse_host.server is not None
    wired = settings.model_copy(
        update={
            "booth_grpc_target": booth_host.server.address,
            "warehouse_grpc_target": warehouse_host.server.address,
        }
    )
    expo_host = ServiceHost("expo", expo.grpc_api.build, wired)
    await expo_host.start()
    assert expo_host.server is not None
    notify_host = NotifyHost(settings)
    await notify_host.start()
    assert notify_host.server is not None
    channels = [
        grpc.aio.insecure_channel(host.server.address)  # type: ignore[union-attr]
        for host in (booth_host, expo_host, warehouse_host)
    ]
    mongo: AsyncMongoClient = AsyncMongoClient(infra.mongodb_uri, tz_aware=True)
    world = World(
        settings,
        identities,
        booth_grpc.BoothServiceStub(channels[0]),
        expo_grpc.ExpoServiceStub(channels[1]),
        wh_grpc.WarehouseServiceStub(channels[2]),
        booth_clock,
        inbox,
        receiver,
        mongo,
        notify_host,
        grpc.aio.insecure_channel(notify_host.server.address),
    )
    try:
        yield world
    finally:
        await world.stop_notify()
        for channel in channels:
            await channel.close()
        for host in (expo_host, warehouse_host, booth_host):
            await host.stop()
        await mongo.close()
        await runner.cleanup()
        smtp.close()
        await smtp.wait_closed()


# Calls, each as the principal that makes it.


def kind_name(kind: int) -> str:
    return res.NotificationKind.Name(kind).removeprefix("NOTIFICATION_KIND_")


async def notifications(world: World, who: Metadata) -> list[res.Notification]:
    reply = await world.notify.ListNotifications(
        pb.ListNotificationsRequest(page_size=100), metadata=who, timeout=10
    )
    return list(reply.notifications)


async def kinds(world: World, who: Metadata) -> list[str]:
    return sorted(kind_name(n.kind) for n in await notifications(world, who))


async def told(world: World, who: Metadata, expected: list[str]) -> list[res.Notification]:
    """Wait until ``who`` has exactly the notifications of ``expected`` kinds."""

    async def probe() -> list[str]:
        return await kinds(world, who)

    await eventually(probe, equals=sorted(expected), within_seconds=SETTLE_SECONDS)
    return await notifications(world, who)


async def prefer(world: World, who: Metadata, preferences: res.Preferences) -> None:
    await world.notify.UpdatePreferences(
        pb.UpdatePreferencesRequest(request_id=f"prefs-{time.time_ns()}", preferences=preferences),
        metadata=who,
        timeout=10,
    )


async def hook(world: World, who: Metadata, path: str = "ok") -> str:
    reply = await world.notify.RegisterWebhook(
        pb.RegisterWebhookRequest(
            request_id=f"hook-{time.time_ns()}", url=world.receiver.url(path)
        ),
        metadata=who,
        timeout=10,
    )
    assert reply.webhook.enabled and reply.secret
    world.receiver.secrets[reply.webhook.webhook_id] = reply.secret
    return reply.webhook.webhook_id


async def deliveries(world: World, who: Metadata, webhook_id: str = "") -> list[res.Delivery]:
    reply = await world.notify.ListDeliveries(
        pb.ListDeliveriesRequest(webhook_id=webhook_id, page_size=100), metadata=who, timeout=10
    )
    return list(reply.deliveries)


async def register_exporter(world: World, hs_code: str) -> str:
    code = random_credit_code()
    await world.booth.RegisterExporter(
        booth_pb.RegisterExporterRequest(
            request_id=f"reg-{code}",
            credit_code=code,
            profile=booth_pb.ExporterProfile(
                name=f"许昌出口企业 {code[-4:]}",
                district="建安区",
                industry="hair products",
                main_products=[booth_res.Product(name="product", hs_code=hs_code)],
            ),
        ),
        metadata=world.ids.exporter(code),
        timeout=10,
    )
    return code


async def open_fair(world: World, fair_id: str, quota: int) -> None:
    officer = world.ids.officer()
    await world.booth.CreateFair(
        fair_request(
            fair_id,
            quota=quota,
            application_deadline=timedelta(hours=1),
            allocation_deadline=timedelta(hours=1),
        ),
        metadata=officer,
        timeout=10,
    )
    await world.booth.OpenFair(
        booth_pb.OpenFairRequest(request_id=f"open-{fair_id}", fair_id=fair_id),
        metadata=officer,
        timeout=10,
    )


def quiet_now() -> res.QuietHours:
    """Quiet hours around this moment (UTC)."""
    now = datetime.now(UTC)
    return res.QuietHours(
        start=(now - timedelta(hours=1)).strftime("%H:%M"),
        end=(now + timedelta(hours=2)).strftime("%H:%M"),
        time_zone="UTC",
    )


def in_days(days: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime.now(UTC) + timedelta(days=days))
    return stamp


# The tests.


async def test_a_fair_tells_each_exporter_its_own_news_and_the_bureau_its_figures(
    world: World,
) -> None:
    ids = world.ids
    before = world.handled()
    mailed = await register_exporter(world, HAIR)
    quiet = await register_exporter(world, HAIR)
    silent = await register_exporter(world, HAIR)
    # Registered with furniture, but following hair fairs by its preferences.
    following = await register_exporter(world, FURNITURE)
    bystander = await register_exporter(world, FURNITURE)
    # Registered with hair, but following furniture fairs only.
    elsewhere = await register_exporter(world, HAIR)
    await prefer(world, ids.exporter(elsewhere), res.Preferences(fair_hs_headings=["9403"]))
    exporters = {code: ids.exporter(code) for code in (mailed, quiet, silent, following)}
    await prefer(
        world, exporters[mailed], res.Preferences(language="en", email="mailed@example.com")
    )
    await prefer(
        world,
        exporters[quiet],
        res.Preferences(email="quiet@example.com", quiet_hours=quiet_now()),
    )
    scored_off = res.KindChannels(kind=res.NOTIFICATION_KIND_APPLICATION_SCORED)
    await prefer(world, exporters[silent], res.Preferences(kinds=[scored_off]))
    await prefer(world, exporters[following], res.Preferences(fair_hs_headings=["6704"]))
    webhook_id = await hook(world, exporters[mailed])
    # Notify knows every exporter's products before the fair opens (another topic).
    await world.handled_past(before, 6)

    fair_id = f"canton-{random_credit_code()[-6:].lower()}"
    await open_fair(world, fair_id, quota=2)
    for code, who in exporters.items():
        await world.booth.SubmitApplication(
            booth_pb.SubmitApplicationRequest(
                request_id=f"apply-{code}",
                fair_id=fair_id,
                booth_type=STANDARD,
                main_product_hs_code=HAIR,
            ),
            metadata=who,
            timeout=10,
        )
    await world.booth.RunAllocation(
        booth_pb.RunAllocationRequest(
            request_id=f"run-{fair_id}", fair_id=fair_id, booth_type=STANDARD
        ),
        metadata=ids.officer(),
        timeout=30,
    )
    listed = await world.booth.ListApplications(
        booth_pb.ListApplicationsRequest(fair_id=fair_id, page_size=100),
        metadata=ids.officer(),
        timeout=10,
    )
    states = {a.credit_code: a for a in listed.applications}
    allocated = sorted(
        (a for a in states.values() if a.state == booth_res.APPLICATION_STATE_ALLOCATED),
        key=lambda a: a.booth_number,
    )
    waitlisted = sorted(
        (a for a in states.values() if a.state == booth_res.APPLICATION_STATE_WAITLISTED),
        key=lambda a: a.waitlist_position,
    )
    assert len(allocated) == 2 and len(waitlisted) == 2
    # Past the allocation deadline, an allocated exporter withdraws: it pays a penalty,
    # and the first on the waitlist gets its booth.
    world.booth_clock.offset = timedelta(days=2)
    leaving, promoted = allocated[0], waitlisted[0]
    withdrawal = await world.booth.WithdrawApplication(
        booth_pb.WithdrawApplicationRequest(
            request_id=f"withdraw-{leaving.application_id}", application_id=leaving.application_id
        ),
        metadata=exporters[leaving.credit_code],
        timeout=10,
    )
    world.booth_clock.offset = timedelta(0)
    assert withdrawal.application.penalty_fen > 0
    assert withdrawal.promoted.application_id == promoted.application_id

    expected: dict[str, list[str]] = {}
    for code in exporters:
        got = ["FAIR_OPENED"]
        if code != silent:
            got.append("APPLICATION_SCORED")
        if states[code].state == booth_res.APPLICATION_STATE_ALLOCATED:
            got.append("BOOTH_ALLOCATED")
        else:
            got.append("APPLICATION_WAITLISTED")
        if code == leaving.credit_code:
            got.append("PENALTY_CHARGED")
        if code == promoted.credit_code:
            # Booth records a promotion as an allocation flagged from_waitlist and a
            # promotion; the exporter is told once, of the promotion.
            got.append("WAITLIST_PROMOTED")
        expected[code] = got
    for code, who in exporters.items():
        await told(world, who, expected[code])
    assert await kinds(world, ids.exporter(bystander)) == []
    assert await kinds(world, ids.exporter(elsewhere)) == []

    async def bureaus() -> list[str]:
        mine = [
            n for n in await notifications(world, ids.officer()) if n.facts["fair_id"] == fair_id
        ]
        return sorted(kind_name(n.kind) for n in mine)

    await eventually(bureaus, equals=["ALLOCATION_COMPLETED", "QUOTA_FILLED"], within_seconds=10)
    # Every officer reads the bureau's notifications.
    other_officer = ids.metadata(Role.OFFICER, subject="officer-2")
    assert await kinds(world, other_officer) == await kinds(world, ids.officer())

    # In English for the one who asked, by e-mail and webhook, signed.
    mine = await notifications(world, exporters[mailed])
    assert {n.language for n in mine} == {"en"}
    fair_opened = next(n for n in mine if n.kind == res.NOTIFICATION_KIND_FAIR_OPENED)
    assert fair_opened.facts["fair_id"] == fair_id

    async def mailed_count() -> int:
        return len(world.inbox.to("mailed@example.com"))

    async def hooked_count() -> int:
        return len(world.receiver.to(webhook_id))

    await eventually(mailed_count, equals=len(mine), within_seconds=SETTLE_SECONDS)
    await eventually(hooked_count, equals=len(mine), within_seconds=SETTLE_SECONDS)
    subjects = {m["Subject"] for m in world.inbox.to("mailed@example.com")}
    assert any(n.title in subject for n in mine for subject in subjects)
    assert {r.body["notification"]["notification_id"] for r in world.receiver.to(webhook_id)} == {
        n.notification_id for n in mine
    }
    assert world.receiver.refused == []
    # Quiet hours hold the e-mail of the quiet one, in the platform it is told at once.

    async def planned() -> int:
        return len(await deliveries(world, exporters[quiet]))

    await eventually(planned, equals=len(expected[quiet]), within_seconds=SETTLE_SECONDS)
    held = await deliveries(world, exporters[quiet])
    assert world.inbox.to("quiet@example.com") == []
    assert {(d.status, d.attempts) for d in held} == {(res.DELIVERY_STATUS_PENDING, 0)}
    assert all(d.next_attempt_at.ToDatetime(UTC) > datetime.now(UTC) for d in held)
    # Zh by default.
    assert {n.language for n in await notifications(world, exporters[silent])} == {"zh"}


async def register_buyer(world: World, subject: str) -> tuple[str, Metadata]:
    reply = await world.expo.RegisterBuyer(
        expo_pb.RegisterBuyerRequest(
            request_id=f"buyer-{subject}",
            company="Haarmode Schmidt GmbH",
            country="DE",
            buyer_type=expo_res.BUYER_TYPE_NEW,
            contact=expo_res.Contact(
                name="Greta Schmidt",
                email="greta.schmidt@haarmode.example",
                phone="+49 40 555 0199",
            ),
        ),
        metadata=world.ids.metadata(Role.BUYER, subject=subject),
        timeout=10,
    )
    buyer_id = reply.buyer.buyer_id
    return buyer_id, world.ids.metadata(Role.BUYER, buyer_id, subject=subject)


PRIVATE = ("greta.schmidt@haarmode.example", "+49 40 555 0199", "Haarmode", "Greta")


async def test_intents_reach_their_exhibitors_answers_their_buyer_and_no_contact_leaks(
    world: World,
) -> None:
    ids = world.ids
    before = world.handled()
    asked, matched = await register_exporter(world, HAIR), await register_exporter(world, HAIR)
    exhibitors = {code: ids.exporter(code) for code in (asked, matched)}
    await prefer(world, exhibitors[asked], res.Preferences(email="asked@example.com"))
    webhook_id = await hook(world, exhibitors[asked])
    await world.handled_past(before, 2)
    fair_id = f"asean-{random_credit_code()[-6:].lower()}"
    await open_fair(world, fair_id, quota=5)
    edition_id = f"cloud-{fair_id}"
    officer = ids.officer()
    await world.expo.CreateEdition(
        expo_pb.CreateEditionRequest(
            request_id=f"c-{edition_id}",
            edition_id=edition_id,
            name="Xuchang Digital Cloud Expo",
            fair_id=fair_id,
            starts_on="2026-12-01",
            ends_on="2026-12-31",
            allow_online_only=True,
        ),
        metadata=officer,
        timeout=10,
    )
    await world.expo.OpenEdition(
        expo_pb.OpenEditionRequest(request_id=f"o-{edition_id}", edition_id=edition_id),
        metadata=officer,
        timeout=10,
    )
    for code, who in exhibitors.items():
        await world.expo.JoinEdition(
            expo_pb.JoinEditionRequest(request_id=f"j-{code}", edition_id=edition_id),
            metadata=who,
            timeout=20,
        )
        await world.expo.PublishProduct(
            expo_pb.PublishProductRequest(
                request_id=f"p-{code}",
                edition_id=edition_id,
                name="Human hair lace wig",
                hs_code=HAIR,
                moq=50,
                unit="piece",
            ),
            metadata=who,
            timeout=10,
        )
    buyer_id, buyer = await register_buyer(world, f"buyer-{fair_id}")

    inquiry = await world.expo.SubmitIntent(
        expo_pb.SubmitIntentRequest(
            request_id="inquiry",
            edition_id=edition_id,
            kind=expo_res.INTENT_KIND_INQUIRY,
            exhibitor_credit_code=asked,
            hs_code=HAIR,
            quantity=300,
            unit="piece",
            incoterm=expo_res.INCOTERM_FOB,
            destination_country="DE",
            deadline=in_days(10),
        ),
        metadata=buyer,
        timeout=20,
    )
    rfq = await world.expo.SubmitIntent(
        expo_pb.SubmitIntentRequest(
            request_id="rfq",
            edition_id=edition_id,
            kind=expo_res.INTENT_KIND_RFQ,
            hs_code=HAIR,
            quantity=2000,
            unit="piece",
            incoterm=expo_res.INCOTERM_CIF,
            destination_country="DE",
            deadline=in_days(10),
            max_quotes=2,
        ),
        metadata=buyer,
        timeout=20,
    )
    assert sorted(rfq.intent.recipients) == sorted(exhibitors)
    # The inquiry is quoted (one quote closes it); of the RFQ, one exhibitor declines
    # and the buyer closes it.
    await world.expo.RespondToIntent(
        expo_pb.RespondToIntentRequest(
            request_id="quote",
            intent_id=inquiry.intent.intent_id,
            kind=expo_res.RESPONSE_KIND_QUOTED,
            unit_price=expo_res.Money(currency="USD", units=42, nanos=500_000_000),
            moq=100,
            lead_time_days=21,
            incoterm=expo_res.INCOTERM_FOB,
            valid_until=in_days(30),
        ),
        metadata=exhibitors[asked],
        timeout=10,
    )
    await world.expo.RespondToIntent(
        expo_pb.RespondToIntentRequest(
            request_id="decline",
            intent_id=rfq.intent.intent_id,
            kind=expo_res.RESPONSE_KIND_DECLINED,
            reason="no capacity this quarter",
        ),
        metadata=exhibitors[matched],
        timeout=10,
    )
    await world.expo.CloseIntent(
        expo_pb.CloseIntentRequest(request_id="close", intent_id=rfq.intent.intent_id),
        metadata=buyer,
        timeout=10,
    )

    told_asked = await told(
        world, exhibitors[asked], ["FAIR_OPENED", "INQUIRY_RECEIVED", "RFQ_MATCHED"]
    )
    told_matched = await told(world, exhibitors[matched], ["FAIR_OPENED", "RFQ_MATCHED"])
    told_buyer = await told(
        world, buyer, ["INTENT_CLOSED", "INTENT_CLOSED", "INTENT_DECLINED", "QUOTE_RECEIVED"]
    )
    quote = next(n for n in told_buyer if n.kind == res.NOTIFICATION_KIND_QUOTE_RECEIVED)
    assert quote.facts["credit_code"] == asked and quote.facts["unit_price"] == "42.50"
    assert quote.facts["intent_id"] == inquiry.intent.intent_id

    # What the exhibitors learn of the buyer: its country, never who it is or how to
    # reach it (the expo shows contact details only by GetBuyer's rule).
    async def mailed_count() -> int:
        return len(world.inbox.to("asked@example.com"))

    async def hooked_count() -> int:
        return len(world.receiver.to(webhook_id))

    await eventually(mailed_count, equals=3, within_seconds=SETTLE_SECONDS)
    await eventually(hooked_count, equals=3, within_seconds=SETTLE_SECONDS)
    inquiry_told = next(n for n in told_asked if n.kind == res.NOTIFICATION_KIND_INQUIRY_RECEIVED)
    assert inquiry_told.facts["buyer_country"] == "DE"
    seen = [str(n) for n in told_asked + told_matched]
    seen += [r.raw.decode() for r in world.receiver.to(webhook_id)]
    for mail in world.inbox.to("asked@example.com"):
        seen.append(str(mail["Subject"]))
        seen += [
            part.get_content() for part in mail.walk() if part.get_content_maintype() == "text"
        ]
    for text in seen:
        for private in (*PRIVATE, buyer_id):
            assert private not in text


async def test_operators_hear_of_bookings_watch_them_and_mark_them_read(world: World) -> None:
    ids = world.ids
    operator_id = f"op-{random_credit_code()[-6:].lower()}"
    operator = ids.operator(operator_id)
    code = f"DE-HAM-{operator_id[-4:].upper()}"
    await world.warehouse.RegisterWarehouse(
        wh_pb.RegisterWarehouseRequest(
            request_id=f"register-{code}",
            code=code,
            profile=wh_res.WarehouseProfile(
                name="Xuchang public warehouse Hamburg",
                operator=wh_res.Operator(
                    kind=wh_res.OPERATOR_KIND_SERVICE_FIRM, name="Henan Overseas Logistics"
                ),
                country_code="DE",
                city="Hamburg",
                address="Logistics Park 1, Hamburg",
                location=wh_res.GeoPoint(latitude=53.55, longitude=9.99),
                area_m2=300,
                capacity=wh_res.Space(pallet_positions=100),
                services=[wh_res.LOGISTICS_SERVICE_STORAGE],
            ),
        ),
        metadata=operator,
        timeout=10,
    )
    start = (datetime.now(UTC) + timedelta(days=40)).date()
    booker = random_credit_code()

    async def book(pallets: int, request_id: str) -> wh_res.Reservation:
        reply = await world.warehouse.ReserveCapacity(
            wh_pb.ReserveCapacityRequest(
                request_id=request_id,
                warehouse_code=code,
                space=wh_res.Space(pallet_positions=pallets),
                start_date=start.isoformat(),
                end_date=(start + timedelta(days=10)).isoformat(),
            ),
            metadata=ids.exporter(booker),
            timeout=10,
        )
        return reply.reservation

    first = await book(40, "book-1")
    await told(world, operator, ["WAREHOUSE_BOOKED"])

    watch = world.notify.WatchNotifications(
        pb.WatchNotificationsRequest(include_unread=True), metadata=operator, timeout=60
    )
    assert dict(await watch.initial_metadata())["chuhai-watch"] == "accepted"
    unread = await watch.read()
    assert kind_name(unread.notification.kind) == "WAREHOUSE_BOOKED"
    assert unread.unread_count == 1
    # Over the operator's 90 % threshold: booked, and the alert.
    await book(55, "book-2")
    streamed = sorted([kind_name((await watch.read()).notification.kind) for _ in range(2)])
    assert streamed == ["UTILISATION_HIGH", "WAREHOUSE_BOOKED"]
    await world.warehouse.CancelReservation(
        wh_pb.CancelReservationRequest(
            request_id="cancel-1", reservation_id=first.reservation_id, reason="plans changed"
        ),
        metadata=ids.exporter(booker),
        timeout=10,
    )
    cancelled = await watch.read()
    assert kind_name(cancelled.notification.kind) == "BOOKING_CANCELLED"
    assert cancelled.unread_count == 4
    watch.cancel()
    assert await kinds(world, ids.exporter(booker)) == []

    mark = await world.notify.MarkRead(
        pb.MarkReadRequest(
            request_id="read-1", notification_ids=[cancelled.notification.notification_id]
        ),
        metadata=operator,
        timeout=10,
    )
    assert (mark.marked, mark.unread_count) == (1, 3)
    # A retry is answered as the first time; marking another reader's changes nothing.
    again = await world.notify.MarkRead(
        pb.MarkReadRequest(
            request_id="read-1", notification_ids=[cancelled.notification.notification_id]
        ),
        metadata=operator,
        timeout=10,
    )
    assert again == mark
    everything = await world.notify.MarkRead(
        pb.MarkReadRequest(request_id="read-all", all=True), metadata=operator, timeout=10
    )
    assert (everything.marked, everything.unread_count) == (3, 0)
    count = await world.notify.CountUnread(pb.CountUnreadRequest(), metadata=operator, timeout=10)
    assert count.unread_count == 0
    listed = await world.notify.ListNotifications(
        pb.ListNotificationsRequest(unread_only=True), metadata=operator, timeout=10
    )
    assert list(listed.notifications) == [] and listed.unread_count == 0

    # A buyer not registered yet has no notifications and may change nothing; a
    # service has none at all.
    nobody = ids.buyer()
    assert await kinds(world, nobody) == []
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await world.notify.MarkRead(
            pb.MarkReadRequest(request_id="nobody", all=True), metadata=nobody, timeout=10
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(refused.value) == "NO_READER"
    with pytest.raises(grpc.aio.AioRpcError) as service:
        await world.notify.CountUnread(
            pb.CountUnreadRequest(), metadata=ids.service("expo"), timeout=10
        )
    assert service.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def register_warehouse(world: World, operator: Metadata, code: str) -> None:
    await world.warehouse.RegisterWarehouse(
        wh_pb.RegisterWarehouseRequest(
            request_id=f"register-{code}",
            code=code,
            profile=wh_res.WarehouseProfile(
                name=f"Xuchang public warehouse {code}",
                operator=wh_res.Operator(
                    kind=wh_res.OPERATOR_KIND_SERVICE_FIRM, name="Henan Overseas Logistics"
                ),
                country_code="NL",
                city="Rotterdam",
                address="Maasvlakte 1, Rotterdam",
                location=wh_res.GeoPoint(latitude=51.95, longitude=4.05),
                area_m2=3000,
                capacity=wh_res.Space(pallet_positions=1000),
                services=[wh_res.LOGISTICS_SERVICE_STORAGE],
            ),
        ),
        metadata=operator,
        timeout=10,
    )


async def book(world: World, code: str, pallets: int = 10) -> None:
    start = (datetime.now(UTC) + timedelta(days=30)).date()
    await world.warehouse.ReserveCapacity(
        wh_pb.ReserveCapacityRequest(
            request_id=f"book-{time.time_ns()}",
            warehouse_code=code,
            space=wh_res.Space(pallet_positions=pallets),
            start_date=start.isoformat(),
            end_date=(start + timedelta(days=5)).isoformat(),
        ),
        metadata=world.ids.exporter(random_credit_code()),
        timeout=10,
    )


async def test_a_failing_receiver_is_retried_then_disabled_and_enabled_again(
    world: World,
) -> None:
    operator_id = f"op-{random_credit_code()[-6:].lower()}"
    operator = world.ids.operator(operator_id)
    code = f"NL-RTM-{operator_id[-4:].upper()}"
    await register_warehouse(world, operator, code)
    failing = await hook(world, operator, "fail")
    await book(world, code)
    await told(world, operator, ["WAREHOUSE_BOOKED"])

    async def given_up() -> list[tuple[int, int, str]]:
        return [(d.status, d.attempts, d.last_error) for d in await deliveries(world, operator)]

    # NOTIFY_WEBHOOK_DISABLE_AFTER=3: the third failed attempt in a row disables the
    # hook, which gives up its pending delivery (NOTIFY_MAX_ATTEMPTS is 5).
    reason = "disabled after 3 failed deliveries in a row"
    await eventually(
        given_up, equals=[(res.DELIVERY_STATUS_FAILED, 3, reason)], within_seconds=SETTLE_SECONDS
    )
    assert world.receiver.failed[failing] == 3

    async def attempts() -> tuple[float, float]:
        # Counted once each attempt is recorded.
        counted = "chuhai_notify_deliveries_total"
        return (
            world.metric(counted, {"channel": "WEBHOOK", "outcome": "retrying"}),
            world.metric(counted, {"channel": "WEBHOOK", "outcome": "failed"}),
        )

    await eventually(attempts, equals=(2.0, 1.0), within_seconds=5)
    (listed,) = (
        await world.notify.ListWebhooks(pb.ListWebhooksRequest(), metadata=operator, timeout=10)
    ).webhooks
    assert (listed.enabled, listed.disabled_reason, listed.consecutive_failures) == (
        False,
        reason,
        3,
    )
    assert [d.target for d in await deliveries(world, operator, failing)] == [failing]

    # Disabled: the next booking is told in the platform only.
    await book(world, code)
    await told(world, operator, ["WAREHOUSE_BOOKED", "WAREHOUSE_BOOKED"])
    assert len(await deliveries(world, operator)) == 1
    enabled = await world.notify.EnableWebhook(
        pb.EnableWebhookRequest(request_id="enable", webhook_id=failing),
        metadata=operator,
        timeout=10,
    )
    assert (enabled.webhook.enabled, enabled.webhook.consecutive_failures) == (True, 0)
    # Nobody else may enable or delete it.
    with pytest.raises(grpc.aio.AioRpcError) as stranger:
        await world.notify.DeleteWebhook(
            pb.DeleteWebhookRequest(request_id="steal", webhook_id=failing),
            metadata=world.ids.operator("someone-else"),
            timeout=10,
        )
    assert stranger.value.code() == grpc.StatusCode.NOT_FOUND
    await world.notify.DeleteWebhook(
        pb.DeleteWebhookRequest(request_id="delete", webhook_id=failing),
        metadata=operator,
        timeout=10,
    )
    assert (
        list(
            (await world.notify.ListWebhooks(pb.ListWebhooksRequest(), metadata=operator)).webhooks
        )
        == []
    )


# The store's batch writes.


async def test_the_store_writes_each_batch_once_however_often_it_is_written(
    mongo: AsyncMongoClient, unique: str
) -> None:
    store = NotifyStore(mongo.get_database(f"notify_batches_{unique}"))
    # BSON keeps milliseconds.
    now = datetime.now(UTC).replace(microsecond=0)
    many = IN_CHUNK * 2 + 50
    readers = [Reader(Role.EXPORTER, random_credit_code()) for _ in range(many)]
    drafts = [
        Draft(f"event-{n}", readers[n], Kind.RFQ_MATCHED, (("n", str(n)),), f"event-{n}")
        for n in range(many)
    ]
    made = [draft.notification("title", "body", "zh", now) for draft in drafts]
    ids = [notification.notification_id for notification in made]

    assert await store.add_notifications(made[:100]) == set(ids[:100])
    # Written again with more: only those are new, and the first ones stay as they were.
    assert await store.add_notifications([replace(n, title="?") for n in made]) == set(ids[100:])
    first = await store.notification(ids[0])
    assert first is not None and first.title == "title"
    planned = [Delivery.planned(n, Channel.EMAIL, "a@example.com", now, now) for n in made]
    assert len(await store.add_deliveries(planned)) == many
    assert await store.add_deliveries(planned) == set()

    handled = [(f"event-{n}", "chuhai.expo.v1.IntentSubmitted", now) for n in range(0, many, 2)]
    await store.record_events(handled, now)
    await store.record_events(handled, now)
    assert await store.handled_among(f"event-{n}" for n in range(many)) == {
        event_id for event_id, _, _ in handled
    }
    assert await store.event_counts(now, now + timedelta(seconds=1)) == {
        "chuhai.expo.v1.IntentSubmitted": len(handled)
    }

    def intent(number: int, buyer: str) -> domain.IntentSubmitted:
        return domain.IntentSubmitted(
            f"submitted-{number}-{buyer}",
            now,
            intent_id=f"intent-{number}",
            edition_id="cloud",
            buyer_id=buyer,
            buyer_country="DE",
            kind="RFQ",
            hs_code=HAIR,
            quantity=10,
            unit="piece",
            deadline=None,
            recipients=(),
        )

    intents = [intent(n, f"buyer-{n}") for n in range(many)]
    # An intent keeps the buyer it was submitted by, however often it is told.
    await store.save_intents([*intents, intent(0, "someone-else")])
    await store.save_intents(intents)
    buyers = await store.buyers_of([f"intent-{n}" for n in range(many + 5)])
    assert buyers == {f"intent-{n}": f"buyer-{n}" for n in range(many)}

    code = readers[0].party
    await store.save_exporters(
        [
            domain.ExporterProfiled("p-1", now, code, ("6704",)),
            domain.ExporterProfiled("p-2", now, code, ("9403", "6704")),
        ]
    )
    assert (await store.fair_candidates(["9403"]))[code] == ((), ("6704", "9403"))

    def allocated(application: str) -> domain.BoothAllocated:
        return domain.BoothAllocated(
            f"a-{application}", now, application, "fair", code, "STANDARD", "A1", 2
        )

    first_two = [allocated("app-1"), allocated("app-2"), allocated("app-1")]
    assert await store.add_allocated(first_two) == {("fair", "STANDARD"): {"app-1", "app-2"}}
    assert await store.add_allocated([allocated("app-3")]) == {
        ("fair", "STANDARD"): {"app-1", "app-2", "app-3"}
    }

    await store.save_preferences(readers[-1], Preferences(email="last@example.com"))
    hook = WebhookRegistration("https://hooks.example.com/a", frozenset())
    await store.add_webhook(hook.webhook("hook-1", readers[-1], "secret", now))
    assert await store.preferences_of(readers) == {
        readers[-1]: Preferences(email="last@example.com")
    }
    assert [w.webhook_id for w in (await store.webhooks_of_readers(readers))[readers[-1]]] == [
        "hook-1"
    ]
    assert (await store.webhooks_of_readers(readers[:-1])) == {}


async def poison_every_partition(world: World) -> int:
    """A record that is no envelope, on every partition of every domain topic. Once all
    are dead-lettered, notify has read everything before them."""
    producer = AIOKafkaProducer(bootstrap_servers=world.settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        sent = 0
        for topic in DOMAIN_TOPICS:
            for partition in range(topic.partitions):
                await producer.send_and_wait(
                    topic.name, b"\x01 not an envelope", key=b"junk", partition=partition
                )
                sent += 1
        return sent
    finally:
        await producer.stop()


async def collection_count(world: World, name: str) -> int:
    db = world.mongo[world.settings.database_name("notify")]
    return await db[name].count_documents({})


async def test_notify_down_catches_up_and_nothing_is_told_twice(
    world: World, tmp_path: Path
) -> None:
    operator_id = f"op-{random_credit_code()[-6:].lower()}"
    operator = world.ids.operator(operator_id)
    code = f"NL-AMS-{operator_id[-4:].upper()}"
    await register_warehouse(world, operator, code)
    await hook(world, operator)
    await book(world, code)
    await told(world, operator, ["WAREHOUSE_BOOKED"])

    async def delivered() -> list[int]:
        return [d.status for d in await deliveries(world, operator)]

    await eventually(
        delivered, equals=[res.DELIVERY_STATUS_DELIVERED], within_seconds=SETTLE_SECONDS
    )
    made = await collection_count(world, "notifications")
    planned = await collection_count(world, "deliveries")
    received = len(world.receiver.received)
    mails = len(world.inbox.messages)

    await world.stop_notify()
    # While notify is down the platform carries on; then everything is published again
    # (a relay that published twice), and a record that is no envelope arrives.
    await book(world, code)
    replayed = await replay_outboxes(world.settings)
    assert replayed > 0
    poisoned = await poison_every_partition(world)
    # Back on a new group: it reads every topic from its start.
    await world.start_notify(
        world.settings.model_copy(
            update={"notify_consumer_group": f"{world.settings.notify_consumer_group}-2"}
        )
    )

    async def dead_letters() -> float:
        return sum(
            world.metric("chuhai_notify_dead_letters_total", {"topic": topic.name})
            for topic in DOMAIN_TOPICS
        )

    await eventually(dead_letters, equals=float(poisoned), within_seconds=60)
    await told(world, operator, ["WAREHOUSE_BOOKED", "WAREHOUSE_BOOKED"])
    await eventually(
        delivered, equals=[res.DELIVERY_STATUS_DELIVERED] * 2, within_seconds=SETTLE_SECONDS
    )
    # The one new booking, and nothing else: not a notification, delivery, request or
    # e-mail twice.
    assert await collection_count(world, "notifications") == made + 1
    assert await collection_count(world, "deliveries") == planned + 1
    assert len(world.receiver.received) == received + 1
    assert len(world.inbox.messages) == mails
    delivered = Counter(r.delivery_id for r in world.receiver.received)
    assert max(delivered.values()) == 1

    async def handled() -> float:
        return world.handled()

    # Of all it read, one event was news.
    await eventually(handled, equals=1.0, within_seconds=5)
    dead = await asyncio.to_thread(
        read_records,
        world.settings.kafka_bootstrap_servers,
        DOMAIN_TOPICS[0].dlq.name,
        expected=DOMAIN_TOPICS[0].partitions,
        within_seconds=20,
    )
    headers = dict(dead[0].headers)
    assert headers["consumer"] == b"notify" and headers["error_type"] == b"UndecodableEvent"
