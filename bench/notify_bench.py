"""Notify's throughput, for `make bench` (or alone: `python -m bench.notify_bench`).

A real notify (`python -m notify`) handles a pre-filled set of realistic events, on a
Kafka and a MongoDB of its own: nothing else in the bench shares its database, nothing
else reads the set. Notify's work is the database's (round trips, writes and their
journal syncs), so its baseline, in the same run, is the database's: one small
document inserted per event, one `insert_one` after the other, into the same MongoDB
(the least a consumer that records each event it handled does when it writes them one
at a time). A bare aiokafka consumer that only decodes the same records is measured
too, for the note: it is a hundred times faster than either, and over so few records
too quick to time well.

The set is the demo's kind of traffic at a small scale:
- a fair opening (to exporters registered before: the history notify handles first,
  not timed, so that the fair knows its followers whatever order notify reads the
  topics in);
- applications submitted, scored, allocated up to the quota or waitlisted;
- RFQs reaching several exhibitors each (most of what notify makes), and inquiries;
- quotes, declines, closes and expiries of those intents;
- warehouse bookings and cancellations.

A few readers have an e-mail address (delivered to an in-process mail catcher). One
exporter prefers other fair headings, and one operator has a lower utilisation
threshold. The set is generated from a seed and knows how many notifications of each
kind it must make. The figure's note says whether notify made exactly those."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaProducer
from google.protobuf.message import Message
from prometheus_client.parser import text_string_to_metric_families
from pymongo import AsyncMongoClient

from bench.measures import plain_consumer_rate, say
from bench.platform import AUDIENCE, ISSUER, ServiceProcess
from bench.report import Report
from chuhai.booth.v1 import events_pb2 as booth_events
from chuhai.booth.v1 import resources_pb2 as booth_res
from chuhai.expo.v1 import events_pb2 as expo_events
from chuhai.expo.v1 import resources_pb2 as expo_res
from chuhai.notify.v1 import notify_service_pb2 as notify_pb
from chuhai.notify.v1 import notify_service_pb2_grpc as notify_grpc
from chuhai.notify.v1 import resources_pb2 as notify_res
from chuhai.warehouse.v1 import events_pb2 as warehouse_events
from demo.principals import Credentials
from demo.scenario import EDITION_ID, credit_code
from launcher.cli import wait_serving
from launcher.embedded import EmbeddedInfrastructure, free_port
from launcher.mailbox import Mailbox
from runtime.adapters.events import envelope_for
from runtime.adapters.grpc_client import service_channel
from runtime.adapters.timestamps import timestamp
from runtime.adapters.tokens import DevelopmentKeys
from runtime.adapters.topics import (
    BOOTH_APPLICATIONS,
    BOOTH_EXPORTERS,
    BOOTH_FAIRS,
    EXPO_INTENTS,
    WAREHOUSE_RESERVATIONS,
    TopicSpec,
    provision_topics,
)
from runtime.kernel.identity import Principal, Role

SEED = 14
EXPORTERS = 60
QUOTA = 43
FAIR_ID = "bench-notify-fair"
FAIR_HEADINGS = ("6703", "6704")
PRODUCTS = ("670420", "670411", "670319", "670490", "960390", "630900")
COUNTRIES = ("DE", "US", "KE", "BR", "AE", "JP", "PL", "NG")
# The demo's RFQs reach about 4.5 exhibitors each.
RFQ_RECIPIENTS = (3, 6)
RFQ_SHARE = 0.85
WAREHOUSES = 12
OPERATORS = ("bench-operator-1", "bench-operator-2", "bench-operator-3")
BOOKINGS = 36
CANCELLED = 4
# Intents submitted between an intent and the answers to it.
ANSWER_LAG = 20
# The history is read in a group of its own: the broker holds a group's first join for
# 5 s, but a member joining a group another just left may wait for its session to end.
HISTORY_GROUP = "chuhai-notify-bench-history"
GROUP = "chuhai-notify-bench"
READY_SECONDS = 120.0
# Notify that has not moved for this long has stopped: the figure says how far it got.
STALL_SECONDS = 60.0
POLL_SECONDS = 0.1


@dataclass
class EventSet:
    """Records to produce, (topic, key, envelope bytes) in order: the ``history`` notify
    handles first, then the ``records`` it is timed on; what notify must make of them
    (kind name -> notifications) and the readers' preferences to set first."""

    history: list[tuple[str, str, bytes]] = field(default_factory=list)
    records: list[tuple[str, str, bytes]] = field(default_factory=list)
    expected: Counter[str] = field(default_factory=Counter)
    preferences: list[tuple[Principal, notify_res.Preferences]] = field(default_factory=list)

    def add(
        self, topic: TopicSpec, key: str, payload: Message, at: datetime, *, history: bool = False
    ) -> None:
        producer = topic.name.split(".")[1]
        envelope = envelope_for(payload, aggregate_id=key, producer=producer, occurred_at=at)
        record = (topic.name, key, envelope.SerializeToString())
        (self.history if history else self.records).append(record)


def event_set(intents: int, now: datetime) -> EventSet:
    """The set for ``intents`` intents (and the rest in proportion to a fair's worth),
    the same for the same arguments."""
    rng = random.Random(SEED)
    made = EventSet()
    exporters: list[str] = []
    while len(exporters) < EXPORTERS:
        code = credit_code(rng)
        if code not in exporters:
            exporters.append(code)
    buyers_with_mail = ("bench-buyer-0", "bench-buyer-1")
    _preferences(made, exporters, buyers_with_mail)
    elsewhere = exporters[4]  # follows other fair headings than its products'
    at = now - timedelta(minutes=30)

    for code in exporters:
        products = sorted(rng.sample(PRODUCTS, rng.choice((1, 2))))
        made.add(
            BOOTH_EXPORTERS,
            code,
            booth_events.ExporterRegistered(
                credit_code=code,
                name=f"Bench exporter {code[-6:]}",
                district="建安区",
                industry="hair products",
                main_product_hs_codes=products,
            ),
            at,
            history=True,
        )
        followed = {"9603"} if code == elsewhere else {p[:4] for p in products}
        if followed & set(FAIR_HEADINGS):
            made.expected["FAIR_OPENED"] += 1
    made.add(
        BOOTH_FAIRS,
        FAIR_ID,
        booth_events.FairOpened(
            fair_id=FAIR_ID,
            name="China Import and Export Fair",
            session="133rd",
            hs_headings=list(FAIR_HEADINGS),
        ),
        at,
    )
    _applications(made, exporters, rng, at)
    _intents(made, intents, exporters, rng, now)
    return made


def _preferences(made: EventSet, exporters: list[str], buyers: tuple[str, ...]) -> None:
    for number, code in enumerate(exporters[:4]):
        made.preferences.append(
            (
                Principal(subject=f"exporter-{code}", role=Role.EXPORTER, party=code),
                notify_res.Preferences(
                    language="en" if number == 1 else "zh", email=f"exporter{number}@example.com"
                ),
            )
        )
    code = exporters[4]
    made.preferences.append(
        (
            Principal(subject=f"exporter-{code}", role=Role.EXPORTER, party=code),
            notify_res.Preferences(fair_hs_headings=["9603"]),
        )
    )
    for buyer in buyers:
        made.preferences.append(
            (
                Principal(subject=f"buyer-{buyer}", role=Role.BUYER, party=buyer),
                notify_res.Preferences(email=f"{buyer}@example.com"),
            )
        )
    made.preferences.append(
        (
            Principal(subject=f"operator-{OPERATORS[0]}", role=Role.OPERATOR, party=OPERATORS[0]),
            notify_res.Preferences(email="ops@example.com", utilisation_alert_percent=80),
        )
    )


def _applications(made: EventSet, exporters: list[str], rng: random.Random, at: datetime) -> None:
    standard = booth_res.BOOTH_TYPE_STANDARD
    scores = {}
    for code in exporters:
        application = f"{FAIR_ID}:{code}:STANDARD"
        made.add(
            BOOTH_APPLICATIONS,
            application,
            booth_events.BoothApplicationSubmitted(
                application_id=application,
                fair_id=FAIR_ID,
                credit_code=code,
                booth_type=standard,
                main_product_hs_code="670420",
            ),
            at,
        )
        scores[code] = rng.randint(40, 100)
        made.add(
            BOOTH_APPLICATIONS,
            application,
            booth_events.BoothApplicationScored(
                application_id=application,
                fair_id=FAIR_ID,
                booth_type=standard,
                score=scores[code],
            ),
            at,
        )
        made.expected["APPLICATION_SCORED"] += 1
    ranked = sorted(exporters, key=lambda code: (-scores[code], code))
    for rank, code in enumerate(ranked):
        application = f"{FAIR_ID}:{code}:STANDARD"
        if rank < QUOTA:
            payload: Message = booth_events.BoothAllocated(
                application_id=application,
                fair_id=FAIR_ID,
                credit_code=code,
                booth_type=standard,
                booth_number=f"A{rank + 1:03d}",
                quota=QUOTA,
            )
            made.expected["BOOTH_ALLOCATED"] += 1
        else:
            payload = booth_events.BoothApplicationWaitlisted(
                application_id=application,
                fair_id=FAIR_ID,
                booth_type=standard,
                waitlist_position=rank - QUOTA + 1,
            )
            made.expected["APPLICATION_WAITLISTED"] += 1
        made.add(BOOTH_APPLICATIONS, application, payload, at)
    made.expected["QUOTA_FILLED"] += 1
    made.add(
        BOOTH_FAIRS,
        FAIR_ID,
        booth_events.AllocationCompleted(
            fair_id=FAIR_ID,
            booth_type=standard,
            quota=QUOTA,
            allocated=QUOTA,
            waitlisted=len(exporters) - QUOTA,
        ),
        at,
    )
    made.expected["ALLOCATION_COMPLETED"] += 1


def _intents(
    made: EventSet, intents: int, exporters: list[str], rng: random.Random, now: datetime
) -> None:
    answers: list[list[tuple[str, Message]]] = []
    bookings_every = max(1, intents // BOOKINGS)
    bookings = 0
    for number in range(intents):
        intent_id = f"bench-intent-{number:05d}"
        rfq = rng.random() < RFQ_SHARE
        recipients = (
            rng.sample(exporters, rng.randint(*RFQ_RECIPIENTS)) if rfq else [rng.choice(exporters)]
        )
        made.add(
            EXPO_INTENTS,
            intent_id,
            expo_events.IntentSubmitted(
                intent_id=intent_id,
                edition_id=EDITION_ID,
                buyer_id=f"bench-buyer-{number // 2}",
                buyer_country=rng.choice(COUNTRIES),
                kind=expo_res.INTENT_KIND_RFQ if rfq else expo_res.INTENT_KIND_INQUIRY,
                hs_code=rng.choice(PRODUCTS),
                quantity=100 * rng.randint(1, 50),
                unit="piece",
                incoterm=expo_res.INCOTERM_FOB,
                deadline=timestamp(now + timedelta(days=30)),
                recipients=recipients,
            ),
            now,
        )
        made.expected["RFQ_MATCHED" if rfq else "INQUIRY_RECEIVED"] += len(recipients)
        answers.append(_answers(made, intent_id, recipients, rng, now))
        if len(answers) > ANSWER_LAG:
            for key, payload in answers.pop(0):
                made.add(EXPO_INTENTS, key, payload, now)
        if number % bookings_every == 0 and bookings < BOOKINGS:
            _booking(made, bookings, exporters, rng, now)
            bookings += 1
    for each in answers:
        for key, payload in each:
            made.add(EXPO_INTENTS, key, payload, now)
    while bookings < BOOKINGS:
        _booking(made, bookings, exporters, rng, now)
        bookings += 1


def _answers(
    made: EventSet, intent_id: str, recipients: list[str], rng: random.Random, now: datetime
) -> list[tuple[str, Message]]:
    """What happens to an intent later: quotes (and a close), a decline, an expiry, or
    nothing yet."""
    chance = rng.random()
    answers: list[tuple[str, Message]] = []
    if chance < 0.4:
        quoting = recipients[: rng.randint(1, min(2, len(recipients)))]
        for code in quoting:
            answers.append(
                (
                    intent_id,
                    expo_events.QuoteSent(
                        intent_id=intent_id,
                        edition_id=EDITION_ID,
                        credit_code=code,
                        unit_price=expo_res.Money(currency="USD", units=12, nanos=500_000_000),
                        moq=100,
                        lead_time_days=20,
                        incoterm=expo_res.INCOTERM_FOB,
                        valid_until=timestamp(now + timedelta(days=60)),
                    ),
                )
            )
            made.expected["QUOTE_RECEIVED"] += 1
        if chance < 0.2:
            answers.append(
                (
                    intent_id,
                    expo_events.IntentClosed(
                        intent_id=intent_id,
                        edition_id=EDITION_ID,
                        quotes=len(quoting),
                        reason="max_quotes",
                    ),
                )
            )
            made.expected["INTENT_CLOSED"] += 1
    elif chance < 0.5:
        answers.append(
            (
                intent_id,
                expo_events.IntentDeclined(
                    intent_id=intent_id,
                    edition_id=EDITION_ID,
                    credit_code=recipients[0],
                    reason="out of stock",
                ),
            )
        )
        made.expected["INTENT_DECLINED"] += 1
    elif chance < 0.6:
        answers.append(
            (intent_id, expo_events.IntentExpired(intent_id=intent_id, edition_id=EDITION_ID))
        )
        made.expected["INTENT_EXPIRED"] += 1
    return answers


def _booking(
    made: EventSet, number: int, exporters: list[str], rng: random.Random, now: datetime
) -> None:
    warehouse = number % WAREHOUSES
    code = f"WH-BENCH-{warehouse:02d}"
    operator = OPERATORS[warehouse % len(OPERATORS)]
    start = (now + timedelta(days=10 + number)).date()
    end = start + timedelta(days=14)
    peak = rng.randint(40, 99)
    common = {
        "reservation_id": f"bench-reservation-{number:03d}",
        "warehouse_code": code,
        "country_code": "US",
        "exporter_credit_code": rng.choice(exporters),
        "pallet_positions": rng.randint(5, 40),
        "cubic_metres": rng.randint(10, 80),
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
        "days": 14,
        "operator_id": operator,
    }
    made.add(
        WAREHOUSE_RESERVATIONS,
        code,
        warehouse_events.CapacityReserved(**common, peak_utilisation_percent=peak),
        now,
    )
    made.expected["WAREHOUSE_BOOKED"] += 1
    if peak >= (80 if operator == OPERATORS[0] else 90):
        made.expected["UTILISATION_HIGH"] += 1
    if number < CANCELLED:
        made.add(
            WAREHOUSE_RESERVATIONS,
            code,
            warehouse_events.ReservationCancelled(**common, reason="plans changed"),
            now,
        )
        made.expected["BOOKING_CANCELLED"] += 1


# Running it.


def notify_environment(
    infra: EmbeddedInfrastructure, keys: DevelopmentKeys, mail_port: int, group: str
) -> dict[str, str]:
    """Notify's environment: this infrastructure, these keys, free ports, the catcher;
    whatever the caller's environment says of notify, SMTP or the infrastructure is
    dropped."""
    own = ("KAFKA_", "MONGODB_", "AUTH_", "NOTIFY_", "SMTP_", "GRPC_", "METRICS_")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(own)}
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=infra.kafka_bootstrap_servers,
        MONGODB_URI=infra.mongodb_uri,
        MONGODB_DATABASE_PREFIX="bench_",
        AUTH_ISSUER=ISSUER,
        AUTH_AUDIENCE=AUDIENCE,
        AUTH_JWKS_FILE=str(keys.key_set_file),
        AUTH_SERVICE_KEY_FILE=str(keys.signing_key_file),
        NOTIFY_GRPC_PORT=str(free_port()),
        NOTIFY_METRICS_PORT=str(free_port()),
        NOTIFY_CONSUMER_GROUP=group,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(mail_port),
    )
    return env


async def produce(bootstrap_servers: str, records: list[tuple[str, str, bytes]]) -> None:
    """Every record, keyed as the relays key them, in order per key."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, value, key=key.encode()) for topic, key, value in records
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def set_preferences(target: str, credentials: Credentials, made: EventSet) -> None:
    async with service_channel(target) as channel:
        stub = notify_grpc.NotifyServiceStub(channel)
        for number, (principal, preferences) in enumerate(made.preferences):
            await stub.UpdatePreferences(
                notify_pb.UpdatePreferencesRequest(
                    request_id=f"bench-preferences-{number}", preferences=preferences
                ),
                timeout=30,
                metadata=credentials.of(principal),
            )


async def counts(session: aiohttp.ClientSession, url: str) -> tuple[int, Counter[str]]:
    """From notify's /metrics: events handled, notifications made by kind."""
    async with session.get(url) as response:
        text = await response.text()
    handled = 0
    kinds: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "chuhai_notify_events_handled_total":
                handled = int(sample.value)
            elif sample.name == "chuhai_notify_notifications_total":
                kinds[sample.labels["kind"]] = int(sample.value)
    return handled, kinds


@dataclass
class Progress:
    """How far a notify process got: events handled, notifications made by kind, and
    (seconds since watching began, events handled) at each change."""

    handled: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    steps: list[tuple[float, int]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Events/s from the first handled events seen to the last (the broker holds
        a group's first join for 5 s: not notify's time); NaN without two steps."""
        moving = [step for step in self.steps if step[1] > 0]
        if len(moving) < 2:
            return math.nan
        (first_at, first), (last_at, last) = moving[0], moving[-1]
        return (last - first) / (last_at - first_at)


async def watch(url: str, events: int) -> Progress:
    """Poll notify's counts until it has handled ``events`` or stops moving."""
    progress = Progress(handled=-1)
    started = last_change = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        while True:
            handled, progress.kinds = await counts(session, url)
            now = time.perf_counter()
            if handled != progress.handled:
                progress.handled, last_change = handled, now
                progress.steps.append((round(now - started, 2), handled))
            if handled >= events or now - last_change > STALL_SECONDS:
                return progress
            await asyncio.sleep(POLL_SECONDS)


async def raw_inserts(mongodb_uri: str, count: int) -> float:
    """Documents/s of ``count`` insert_one calls one after the other, the baseline."""
    client: AsyncMongoClient = AsyncMongoClient(mongodb_uri, tz_aware=True)
    try:
        collection = client.get_database("bench_raw").events
        now = datetime.now(UTC)
        started = time.perf_counter()
        for number in range(count):
            await collection.insert_one({"_id": f"event-{number}", "type": "x", "at": now})
        return count / (time.perf_counter() - started)
    finally:
        await client.close()


async def measure_notify(root: Path, intents: int, report: Report) -> None:
    made = event_set(intents, datetime.now(UTC))
    events = len(made.records)
    say(f"notify: {events} events ({intents} intents), the baselines, then notify")
    infra = EmbeddedInfrastructure(root / "infra")
    await asyncio.to_thread(infra.start)
    keys = DevelopmentKeys.ensure(root / "identity")
    credentials = Credentials(keys.issuer(issuer=ISSUER, audience=AUDIENCE))
    process: ServiceProcess | None = None
    try:
        bootstrap = infra.kafka_bootstrap_servers
        await asyncio.to_thread(provision_topics, bootstrap)
        async with Mailbox(root / "mail") as mailbox:
            env = notify_environment(infra, keys, mailbox.smtp_port, HISTORY_GROUP)
            # The history and the readers' preferences first, untimed.
            await produce(bootstrap, made.history)
            process = await start_notify(env, root)
            await set_preferences(f"127.0.0.1:{env['NOTIFY_GRPC_PORT']}", credentials, made)
            before = await watch(metrics_url(env), len(made.history))
            await process.stop()
            if before.handled != len(made.history):
                raise RuntimeError(f"notify handled {before.handled} of the history's events")
            await produce(bootstrap, made.records)
            decoded = await plain_consumer_rate(bootstrap)
            raw = await raw_inserts(infra.mongodb_uri, events)
            # A new group reads the history again: handled before, skipped, not counted.
            env = notify_environment(infra, keys, mailbox.smtp_port, GROUP)
            process = await start_notify(env, root)
            progress = await watch(metrics_url(env), events)
            await process.stop()
    finally:
        if process is not None:
            await process.stop()
        await asyncio.to_thread(infra.stop)
    rate = progress.rate
    note = (
        f"notify {rate:.0f} events/s vs insert_one {raw:.0f}/s over {events} events "
        f"(decoding alone {decoded:.0f}/s); {_verdict(progress, made, events)}"
    )
    report.add("notify_ratio", rate / raw, "", note)
    report.add(
        "notify_events_per_s",
        rate,
        "/s",
        f"{sum(made.expected.values()) / events:.1f} notifications an event, "
        "from its first handled events",
    )
    report.meta["notify_progress"] = progress.steps


def _verdict(progress: Progress, made: EventSet, events: int) -> str:
    """Whether notify made exactly the notifications the set implies."""
    kinds, expected = progress.kinds, made.expected
    text = f"{sum(kinds.values())} notifications"
    if kinds == expected and progress.handled == events:
        return text + ", exactly those expected"
    wrong = {
        kind: (kinds[kind], expected[kind])
        for kind in sorted(kinds.keys() | expected.keys())
        if kinds[kind] != expected[kind]
    }
    return (
        f"{text} of {sum(expected.values())} expected, (made, expected) {wrong}; "
        f"{progress.handled} of {events} events handled"
    )


def metrics_url(env: dict[str, str]) -> str:
    return f"http://127.0.0.1:{env['NOTIFY_METRICS_PORT']}/metrics"


async def start_notify(env: dict[str, str], root: Path) -> ServiceProcess:
    process = ServiceProcess("notify", env, root / "services")
    await process.start()
    if not await wait_serving(f"127.0.0.1:{env['NOTIFY_GRPC_PORT']}", READY_SECONDS):
        await process.stop()
        raise RuntimeError(f"notify not SERVING within {READY_SECONDS:.0f} s")
    return process


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.notify_bench", description=__doc__)
    parser.add_argument("--intents", type=int, default=1_000, help="intents in the set")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    report = Report()
    with tempfile.TemporaryDirectory(prefix="chuhai-bench-notify-") as tmp:
        asyncio.run(measure_notify(Path(tmp), args.intents, report))
    say(report.table())
    say(report.summary_line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
