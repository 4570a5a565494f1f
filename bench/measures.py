"""What `make bench` measures on its private platform, each against its baseline from
the same run, through the public gRPC APIs with each principal's own token (the clients
the issue describes: buyers, exhibitors, exporters, the bureau's officer)."""

from __future__ import annotations

import asyncio
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import grpc
import pycountry
from aiokafka import AIOKafkaConsumer
from pymongo import AsyncMongoClient

from bench.platform import BenchPlatform
from bench.report import Report
from bureau.rebuild import rebuild_from_outboxes
from chuhai.booth.v1 import booth_service_pb2 as booth_pb
from chuhai.booth.v1 import booth_service_pb2_grpc as booth_grpc
from chuhai.booth.v1 import resources_pb2 as booth_res
from chuhai.bureau.v1 import bureau_service_pb2 as bureau_pb
from chuhai.bureau.v1 import bureau_service_pb2_grpc as bureau_grpc
from chuhai.expo.v1 import expo_service_pb2 as expo_pb
from chuhai.expo.v1 import expo_service_pb2_grpc as expo_grpc
from chuhai.expo.v1 import resources_pb2 as expo_res
from demo.principals import Credentials
from demo.scenario import EDITION_ID, Demo, Scale, credit_code
from runtime.adapters.events import decode_envelope
from runtime.adapters.grpc_client import service_channel
from runtime.adapters.outbox import OUTBOX_COLLECTION
from runtime.adapters.timestamps import timestamp
from runtime.adapters.topics import DOMAIN_TOPICS

T = TypeVar("T")

CALL_TIMEOUT = 120.0
# The expo admits 20 intents per buyer per hour (EXPO_INTENT_RATE_LIMIT): each buyer
# sends at most this many over the whole bench.
INTENTS_PER_BUYER = 4
BUYER_BATCH = 500
EXHIBITORS = 50
BOOTH_QUOTA = 43
# How long the bureau may take to show what was acknowledged before a figure gives up.
CATCH_UP_SECONDS = 300.0


@dataclass(frozen=True)
class Sizes:
    """How much each measurement does; --quick makes them smaller."""

    clients: int = 64
    ingest_intents: int = 2_000
    freshness_rate: float = 200.0
    freshness_seconds: float = 20.0
    # Intents stored before the answers are measured (topped up after the others).
    stored_intents: int = 10_000
    topup_seconds: float = 300.0
    answers: int = 3_000
    answer_seconds: float = 120.0
    applications: int = 2_000
    # Intents in notify's set (bench.notify_bench): about 2.2 events an intent.
    notify_intents: int = 3_000

    @property
    def buyers(self) -> int:
        planned = max(
            self.stored_intents,
            self.ingest_intents + math.ceil(self.freshness_rate * self.freshness_seconds),
        )
        return math.ceil(planned / INTENTS_PER_BUYER / BUYER_BATCH) * BUYER_BATCH


QUICK = Sizes(
    ingest_intents=1_000,
    freshness_seconds=10.0,
    stored_intents=0,
    answers=1_000,
    answer_seconds=60.0,
    applications=1_000,
    notify_intents=1_000,
)


def say(text: str) -> None:
    # The bench is a terminal program: its progress goes to whoever runs it.
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def status_of(error: BaseException) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return error.code().name
    return type(error).__name__


@dataclass
class Ack:
    at: float  # perf_counter when the response arrived
    intent_id: str
    exhibitor: str


@dataclass
class Bench:
    platform: BenchPlatform
    sizes: Sizes
    report: Report
    credentials: Credentials = field(init=False)
    channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)
    mongo: AsyncMongoClient = field(init=False)
    exporters: list[tuple[str, str]] = field(default_factory=list)  # (code, HS code)
    buyers: list[tuple[str, str]] = field(default_factory=list)  # (buyer id, country)
    next_buyer: int = 0
    acks: list[Ack] = field(default_factory=list)
    intent_number: int = 0

    def __post_init__(self) -> None:
        self.credentials = Credentials(self.platform.tokens)

    async def open(self) -> None:
        settings = self.platform.settings
        for name in ("booth", "expo", "warehouse", "bureau"):
            self.channels[name] = service_channel(settings.grpc_target(name))
        self.booth = booth_grpc.BoothServiceStub(self.channels["booth"])
        self.expo = expo_grpc.ExpoServiceStub(self.channels["expo"])
        self.bureau = bureau_grpc.BureauServiceStub(self.channels["bureau"])
        self.mongo = AsyncMongoClient(settings.mongodb_uri, tz_aware=True)

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.close()
        await self.mongo.close()

    # -- set-up --------------------------------------------------------------------

    async def set_up_expo(self) -> None:
        """50 exhibitors in an open edition (the demo's own set-up at a small scale) and
        the buyers every intent of the bench will come from."""
        started = time.perf_counter()
        demo = Demo(
            self.channels,
            Scale(exporters=EXHIBITORS, booth_quota=BOOTH_QUOTA, warehouses=0),
            0.0,
            self.credentials,
        )
        await demo.exporters_apply()
        await demo.expo_opens()
        self.exporters = [(code, demo.products[code][0]) for code, _ in demo.exporters]
        countries = sorted(c.alpha_2 for c in pycountry.countries if c.alpha_2 != "AQ")
        rng = random.Random(12)
        batches = math.ceil(self.sizes.buyers / BUYER_BATCH)

        async def register(number: int) -> list[tuple[str, str]]:
            reply = await self.expo.RegisterBuyers(
                expo_pb.RegisterBuyersRequest(
                    request_id=f"bench-buyers-{number}",
                    buyers=[
                        expo_pb.NewBuyer(
                            company=f"Bench buyer {number}-{i}",
                            country=rng.choice(countries),
                            buyer_type=expo_res.BUYER_TYPE_NEW,
                            contact=expo_res.Contact(
                                name="Purchasing", email=f"b{number}-{i}@example.com"
                            ),
                        )
                        for i in range(BUYER_BATCH)
                    ],
                ),
                timeout=CALL_TIMEOUT,
                metadata=self.credentials.officer(),
            )
            return [(b.buyer_id, b.country) for b in reply.buyers]

        for registered in await limited(3, range(batches), register):
            self.buyers.extend(registered)
        say(
            f"set-up: {EXHIBITORS} exhibitors, {len(self.buyers)} buyers in "
            f"{time.perf_counter() - started:.0f} s"
        )

    def take_buyers(self, intents: int) -> list[tuple[str, str]]:
        """Buyers for ``intents`` intents, none used by an earlier phase."""
        count = math.ceil(intents / INTENTS_PER_BUYER)
        if self.next_buyer + count > len(self.buyers):
            raise RuntimeError("the set-up registered too few buyers for the intents planned")
        taken = self.buyers[self.next_buyer : self.next_buyer + count]
        self.next_buyer += count
        return taken

    # -- intents -------------------------------------------------------------------

    def intent_request(self, country: str) -> tuple[expo_pb.SubmitIntentRequest, str]:
        number = self.intent_number
        self.intent_number += 1
        code, hs_code = self.exporters[number % len(self.exporters)]
        deadline = timestamp(datetime.now(UTC).replace(microsecond=0) + timedelta(days=30))
        return (
            expo_pb.SubmitIntentRequest(
                request_id=f"bench-intent-{number}",
                edition_id=EDITION_ID,
                kind=expo_res.INTENT_KIND_INQUIRY,
                exhibitor_credit_code=code,
                hs_code=hs_code,
                quantity=100 * (1 + number % 50),
                unit="piece",
                target_price=expo_res.Money(currency="USD", units=10 + number % 90),
                incoterm=expo_res.INCOTERM_FOB,
                destination_country=country,
                deadline=deadline,
                max_quotes=3,
            ),
            code,
        )

    async def submit(
        self, buyer: tuple[str, str], latencies: list[float], errors: Counter[str]
    ) -> Ack | None:
        request, code = self.intent_request(buyer[1])
        began = time.perf_counter()
        try:
            reply = await self.expo.SubmitIntent(
                request, timeout=CALL_TIMEOUT, metadata=self.credentials.buyer(buyer[0])
            )
        except grpc.aio.AioRpcError as error:
            errors[status_of(error)] += 1
            return None
        now = time.perf_counter()
        latencies.append(now - began)
        ack = Ack(now, reply.intent.intent_id, code)
        self.acks.append(ack)
        return ack

    async def intents_at_full_speed(
        self, count: int, within_seconds: float = math.inf
    ) -> tuple[float, list[float], Counter[str]]:
        """``count`` intents from clients that each play their own buyers, all at once;
        returns (elapsed seconds, latencies, errors by status)."""
        buyers = self.take_buyers(count)
        per_client: list[list[tuple[str, str]]] = [[] for _ in range(self.sizes.clients)]
        for index in range(count):
            buyer_index = index % len(buyers)
            per_client[buyer_index % self.sizes.clients].append(buyers[buyer_index])
        latencies: list[float] = []
        errors: Counter[str] = Counter()
        started = time.perf_counter()
        stop_at = started + within_seconds

        async def client(own: list[tuple[str, str]]) -> None:
            for buyer in own:
                if time.perf_counter() > stop_at:
                    return
                await self.submit(buyer, latencies, errors)

        await asyncio.gather(*(client(own) for own in per_client))
        return time.perf_counter() - started, latencies, errors

    async def raw_inserts(self, label: str, count: int, concurrency: int) -> float:
        """Seconds for ``count`` insert_one calls into the same MongoDB, the baseline."""
        collection = self.mongo.get_database(f"{self.platform.prefix}raw")[label]
        limit = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with limit:
                await collection.insert_one({"_id": f"{label}-{i}", "n": i})

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(count)))
        return time.perf_counter() - started

    async def ingest(self) -> None:
        count, clients = self.sizes.ingest_intents, self.sizes.clients
        say(f"ingest: {count} raw inserts, then {count} SubmitIntent, {clients} clients")
        raw = count / await self.raw_inserts("ingest", count, clients)
        elapsed, latencies, errors = await self.intents_at_full_speed(count)
        rate = len(latencies) / elapsed
        note = f"{rate:.1f}/s vs insert_one {raw:.0f}/s"
        if errors:
            note += f"; errors {dict(errors)}"
        self.report.add("ingest_ratio", rate / raw, "", note)
        self.report.add("submit_per_s", rate, "/s", f"{clients} clients, {count} intents")
        # The baseline's client is configured as the services' (their URI): whether it
        # makes retryable writes changes the baseline several times over on SecantusDB.
        retryable = "retryWrites=false" not in self.platform.settings.mongodb_uri
        self.report.add(
            "raw_insert_per_s",
            raw,
            "/s",
            f"insert_one, {clients} concurrent, retryable writes {'on' if retryable else 'off'}",
        )
        self.report.add("submit_p50_ms", percentile(latencies, 50) * 1000, "ms")
        self.report.add("submit_p99_ms", percentile(latencies, 99) * 1000, "ms")

    async def headline(self) -> bureau_pb.Headline:
        reply = await self.bureau.GetStats(
            bureau_pb.GetStatsRequest(), timeout=10, metadata=self.credentials.officer()
        )
        return reply.headline

    async def bureau_caught_up(self, intents: int, within_seconds: float) -> bool:
        """Wait until the bureau counts at least ``intents`` intents."""
        deadline = time.perf_counter() + within_seconds
        while time.perf_counter() < deadline:
            if (await self.headline()).intents >= intents:
                return True
            await asyncio.sleep(0.2)
        return False

    async def freshness(self) -> None:
        """Paced intents; each one's time from its acknowledgement to the first bureau
        figures that count as many intents as had been acknowledged by then (the bureau
        counts intents, not which ones: rank order is the closest honest reading)."""
        rate, seconds = self.sizes.freshness_rate, self.sizes.freshness_seconds
        total = math.ceil(rate * seconds)
        say(f"freshness: {total} intents paced at {rate:.0f}/s, watching the bureau")
        if not await self.bureau_caught_up(len(self.acks), CATCH_UP_SECONDS):
            self.report.add("freshness_p99_ms", None, "ms", "the bureau never caught up")
            return
        base = (await self.headline()).intents
        seen: list[tuple[float, int]] = []
        watch = self.bureau.WatchStats(
            bureau_pb.WatchStatsRequest(), metadata=self.credentials.officer()
        )

        async def watching() -> None:
            async for reply in watch:
                seen.append((time.perf_counter(), reply.headline.intents))

        watcher = asyncio.create_task(watching())
        buyers = self.take_buyers(total)
        latencies: list[float] = []
        errors: Counter[str] = Counter()
        acks: list[Ack] = []
        # Open loop, but bounded: a platform slower than the pace gets no more than
        # this many calls in flight, and the rate it achieved is reported.
        in_flight = asyncio.Semaphore(512)
        tasks: list[asyncio.Task[None]] = []

        async def one(buyer: tuple[str, str]) -> None:
            try:
                ack = await self.submit(buyer, latencies, errors)
                if ack is not None:
                    acks.append(ack)
            finally:
                in_flight.release()

        started = time.perf_counter()
        for index in range(total):
            delay = started + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await in_flight.acquire()
            tasks.append(asyncio.create_task(one(buyers[index % len(buyers)])))
        await asyncio.gather(*tasks)
        achieved = len(acks) / (time.perf_counter() - started)
        caught_up = await self.bureau_caught_up(base + len(acks), CATCH_UP_SECONDS)
        # One more moment for the watch stream to deliver what GetStats already showed.
        await asyncio.sleep(0.5)
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        freshness = []
        for rank, ack in enumerate(sorted(acks, key=lambda a: a.at), start=1):
            shown = next((at for at, count in seen if count >= base + rank), None)
            if shown is not None:
                freshness.append(max(0.0, shown - ack.at))
        note = f"{achieved:.0f}/s achieved of {rate:.0f}/s"
        if not caught_up or len(freshness) < len(acks):
            note += f"; {len(acks) - len(freshness)} never shown"
        if errors:
            note += f"; errors {dict(errors)}"
        self.report.add("freshness_p99_ms", percentile(freshness, 99) * 1000, "ms", note)
        self.report.add("freshness_p50_ms", percentile(freshness, 50) * 1000, "ms")
        self.report.add("freshness_rate_per_s", achieved, "/s", f"paced at {rate:.0f}/s")

    async def top_up_intents(self) -> int:
        """More intents, so the answers run over the stored intents the issue names."""
        missing = self.sizes.stored_intents - len(self.acks)
        if missing > 0:
            say(f"set-up: {missing} more intents (at most {self.sizes.topup_seconds:.0f} s)")
            await self.intents_at_full_speed(missing, self.sizes.topup_seconds)
        return len(self.acks)

    async def answers(self) -> None:
        stored = await self.top_up_intents()
        count, clients = min(self.sizes.answers, stored), self.sizes.clients
        say(f"answers: up to {count} RespondToIntent over {stored} intents, {clients} clients")
        queue = list(self.acks[:count])
        random.Random(5).shuffle(queue)
        valid_until = timestamp(datetime.now(UTC) + timedelta(days=60))
        latencies: list[float] = []
        errors: Counter[str] = Counter()
        started = time.perf_counter()
        stop_at = started + self.sizes.answer_seconds

        async def client() -> None:
            while queue and time.perf_counter() < stop_at:
                ack = queue.pop()
                request = expo_pb.RespondToIntentRequest(
                    request_id=f"bench-answer-{ack.intent_id}",
                    intent_id=ack.intent_id,
                    kind=expo_res.RESPONSE_KIND_QUOTED,
                    unit_price=expo_res.Money(currency="USD", units=12),
                    moq=100,
                    lead_time_days=20,
                    incoterm=expo_res.INCOTERM_FOB,
                    valid_until=valid_until,
                )
                began = time.perf_counter()
                try:
                    await self.expo.RespondToIntent(
                        request,
                        timeout=CALL_TIMEOUT,
                        metadata=self.credentials.exporter(ack.exhibitor),
                    )
                except grpc.aio.AioRpcError as error:
                    errors[status_of(error)] += 1
                    continue
                latencies.append(time.perf_counter() - began)

        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
        note = f"{len(latencies)} answered over {stored} stored intents in {elapsed:.0f} s"
        if stored < 10_000:
            note += " (fewer than the issue's 10,000)"
        if errors:
            note += f"; errors {dict(errors)}"
        self.report.add("answer_per_s", len(latencies) / elapsed, "/s", note)
        self.report.add("answer_p99_ms", percentile(latencies, 99) * 1000, "ms")

    # -- booths --------------------------------------------------------------------

    async def booth_contention(self) -> None:
        count = self.sizes.applications
        say(f"booths: registering {count} exporters")
        rng = random.Random(43)
        codes: list[str] = []
        while len(codes) < count:
            code = credit_code(rng)
            if code not in codes:
                codes.append(code)

        async def register(code: str) -> None:
            await self.booth.RegisterExporter(
                booth_pb.RegisterExporterRequest(
                    request_id=f"bench-exporter-{code}",
                    credit_code=code,
                    profile=booth_pb.ExporterProfile(
                        name=f"Bench exporter {code[-6:]}",
                        district="建安区",
                        industry="hair products",
                        export_turnover_usd=rng.randrange(200_000, 60_000_000),
                        main_products=[booth_res.Product(name="human hair wigs", hs_code="670420")],
                    ),
                ),
                timeout=CALL_TIMEOUT,
                metadata=self.credentials.exporter(code),
            )

        await limited(self.sizes.clients, codes, register)
        fair_id = "bench-booth-fair"
        officer = self.credentials.officer()
        await self.booth.CreateFair(fair_request(fair_id), timeout=CALL_TIMEOUT, metadata=officer)
        await self.booth.OpenFair(
            booth_pb.OpenFairRequest(request_id=f"open-{fair_id}", fair_id=fair_id),
            timeout=CALL_TIMEOUT,
            metadata=officer,
        )
        say(f"booths: {count} raw inserts, then {count} applications at once with allocations")
        raw_seconds = await self.raw_inserts("booth", count, count)
        errors: Counter[str] = Counter()
        allocations: list[float] = []
        calls = 0

        async def allocate() -> booth_pb.RunAllocationResponse:
            nonlocal calls
            calls += 1
            began = time.perf_counter()
            try:
                return await self.booth.RunAllocation(
                    booth_pb.RunAllocationRequest(
                        request_id=f"bench-allocate-{calls}",
                        fair_id=fair_id,
                        booth_type=booth_res.BOOTH_TYPE_STANDARD,
                    ),
                    timeout=CALL_TIMEOUT,
                    metadata=officer,
                )
            finally:
                allocations.append(time.perf_counter() - began)

        async def apply(code: str) -> None:
            try:
                await self.booth.SubmitApplication(
                    booth_pb.SubmitApplicationRequest(
                        request_id=f"bench-apply-{code}",
                        fair_id=fair_id,
                        booth_type=booth_res.BOOTH_TYPE_STANDARD,
                        main_product_hs_code="670420",
                    ),
                    timeout=CALL_TIMEOUT,
                    metadata=self.credentials.exporter(code),
                )
            except grpc.aio.AioRpcError as error:
                errors[status_of(error)] += 1

        allocation_errors: Counter[str] = Counter()

        async def allocating(done: asyncio.Event) -> None:
            while not done.is_set():
                try:
                    await allocate()
                except grpc.aio.AioRpcError as error:
                    allocation_errors[status_of(error)] += 1
                await asyncio.sleep(0.5)

        done = asyncio.Event()
        allocator = asyncio.create_task(allocating(done))
        started = time.perf_counter()
        await asyncio.gather(*(apply(code) for code in codes))
        elapsed = time.perf_counter() - started
        done.set()
        await allocator
        final = await allocate()
        note = f"{count / elapsed:.1f} applications/s; raw inserts {count / raw_seconds:.0f}/s"
        if errors:
            note += f"; errors {dict(errors)}"
        self.report.add("booth_contention_ratio", elapsed / raw_seconds, "", note)
        self.report.add("booth_allocated", final.allocated_total, "booths", f"quota {final.quota}")
        slow_note = f"{calls} RunAllocation calls"
        if allocation_errors:
            slow_note += f"; errors {dict(allocation_errors)}"
        self.report.add("booth_slowest_allocation_s", max(allocations), "s", slow_note)

    # -- the bureau ----------------------------------------------------------------

    async def settled_events(self) -> int:
        """The live bureau's events_applied once it stops moving: what a bureau reading
        the same topics from the start must reach."""
        await self.bureau_caught_up(len(self.acks), CATCH_UP_SECONDS)
        last, still_since = -1, time.perf_counter()
        while time.perf_counter() - still_since < 3.0:
            applied = (await self.headline()).events_applied
            if applied != last:
                last, still_since = applied, time.perf_counter()
            await asyncio.sleep(0.3)
        return last

    async def aggregate(self) -> None:
        target = await self.settled_events()
        say(f"aggregate: {target} events, a plain consumer, then a second bureau")
        plain = await plain_consumer_rate(self.platform.settings.kafka_bootstrap_servers)
        env = self.platform.environment(
            prefix=f"{self.platform.prefix}agg_", bureau_group="chuhai-bureau-bench-aggregate"
        )
        since = time.perf_counter()
        await self.platform.start_extra("bureau-aggregate", "bureau", env)
        settings = self.platform.settings_of(env)
        try:
            async with service_channel(settings.grpc_target("bureau")) as channel:
                rate, progress = await bureau_rate(
                    bureau_grpc.BureauServiceStub(channel), self.credentials, target, since
                )
        finally:
            await self.platform.stop_process("bureau-aggregate")
        note = f"bureau {rate:.0f} events/s vs plain consumer {plain:.0f}/s over {target} events"
        if progress and progress[-1][1] < target:
            note += f"; stalled at {progress[-1][1]}"
        self.report.add("aggregate_ratio", rate / plain, "", note)
        self.report.add(
            "aggregate_events_per_s",
            rate,
            "/s",
            "from its first applied event (the broker holds a group's first join 5 s)",
        )
        # How a fresh bureau got there (start included): where to look when it is slow.
        self.report.meta["aggregate_progress"] = progress

    async def replay(self) -> None:
        settings = self.platform.settings
        events = 0
        for service in ("booth", "expo", "warehouse"):
            outbox = self.mongo.get_database(settings.database_name(service))[OUTBOX_COLLECTION]
            events += await outbox.count_documents({})
        say(f"replay: rebuilding every figure from {events} outbox events")
        started = time.perf_counter()
        await rebuild_from_outboxes(self.mongo, settings)
        rate = events / (time.perf_counter() - started)
        self.report.add("replay_events_per_s", rate, "/s", f"{events} events, bureau rebuild")

    def memory(self, when: str) -> None:
        for name, mb in self.platform.rss().items():
            self.report.add(f"rss_mb_{name}_{when}", mb, "MiB")


async def plain_consumer_rate(bootstrap_servers: str) -> float:
    """Envelopes/s a bare aiokafka consumer decodes over every domain topic, from its
    start (connected, no group) to the last record; the topics' end offsets are not
    trusted (the embedded broker reports them wrongly): two quiet seconds mean the end."""
    consumer = AIOKafkaConsumer(
        *(t.name for t in DOMAIN_TOPICS),
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    started = last_at = time.perf_counter()
    count = 0
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=2000, max_records=500)
            records = [r for batch in batches.values() for r in batch]
            if not records:
                if count:
                    break
                continue
            for record in records:
                decode_envelope(record.value)
            count += len(records)
            last_at = time.perf_counter()
    finally:
        await consumer.stop()
    return count / (last_at - started) if count else math.nan


async def bureau_rate(
    stub: bureau_grpc.BureauServiceStub, credentials: Credentials, target: int, since: float
) -> tuple[float, list[tuple[float, int]]]:
    """Events/s a fresh bureau applies, from its first applied event to ``target``, and
    its progress: (seconds since ``since``, events applied) at each change."""
    progress: list[tuple[float, int]] = []
    first: tuple[float, int] | None = None
    last_change = time.perf_counter()
    applied = -1
    while True:
        reply = await stub.GetStats(
            bureau_pb.GetStatsRequest(), timeout=10, metadata=credentials.officer()
        )
        now = time.perf_counter()
        if reply.headline.events_applied != applied:
            applied, last_change = reply.headline.events_applied, now
            progress.append((round(now - since, 2), applied))
        if first is None and applied > 0:
            first = (now, applied)
        if applied >= target or now - last_change > 60:
            break
        await asyncio.sleep(0.1)
    if first is None or last_change == first[0]:
        return math.nan, progress
    return (applied - first[1]) / (last_change - first[0]), progress


async def limited(
    concurrency: int, items: Sequence[T] | range, call: Callable[[T], Awaitable[Any]]
) -> list[Any]:
    limit = asyncio.Semaphore(concurrency)

    async def one(item: T) -> Any:
        async with limit:
            return await call(item)

    return await asyncio.gather(*(one(item) for item in items))


def fair_request(fair_id: str) -> booth_pb.CreateFairRequest:
    now = datetime.now(UTC).replace(microsecond=0)
    opens = (now + timedelta(days=45)).date()
    return booth_pb.CreateFairRequest(
        request_id=f"create-{fair_id}",
        fair_id=fair_id,
        name="China Import and Export Fair (Canton Fair)",
        organiser="Ministry of Commerce",
        session="133rd",
        venue="Guangzhou",
        phases=[
            booth_res.Phase(
                name="Phase 1",
                starts_on=opens.isoformat(),
                ends_on=(opens + timedelta(days=4)).isoformat(),
            )
        ],
        zones=[booth_res.Zone(code="A-HAIR", name="Hair products", hs_headings=["6704"])],
        booth_quotas=[
            booth_res.BoothQuota(
                booth_type=booth_res.BOOTH_TYPE_STANDARD,
                quota=BOOTH_QUOTA,
                application_deadline=timestamp(now + timedelta(days=15)),
                allocation_deadline=timestamp(now + timedelta(days=30)),
                fee_fen=2_500_000,
            )
        ],
    )
