"""The faults, injected one after another while the load runs, each with its recovery
times: seconds from the injection until the service answers again, and until the
bureau has applied every event the outboxes held by then (for notify's own fault: until
notify has handled every event of the types it reads that the outboxes held by then)."""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from pymongo import AsyncMongoClient

from chuhai.booth.v1 import booth_service_pb2 as booth_pb
from chuhai.expo.v1 import expo_service_pb2 as expo_pb
from chuhai.warehouse.v1 import warehouse_service_pb2 as wh_pb
from launcher.cli import replay_outboxes
from runtime.adapters.outbox import OUTBOX_COLLECTION
from runtime.adapters.topics import DOMAIN_TOPICS
from tests.kafka_reading import read_records
from tests.reliability.cluster import NOTIFY_SETTINGS, Cluster
from tests.reliability.driver import LoadDriver
from tests.reliability.history import ACKNOWLEDGED, FAILED
from tests.reliability.observe import (
    PRODUCERS,
    events_applied,
    notify_handled,
    notify_reads,
    outbox_total,
    pending_email,
    unpublished,
    unpublished_among,
)

CATCH_UP_SECONDS = 120.0
# How long the services get to find a restarted broker by themselves: a relay stuck
# retrying for the old broker gives up after its 15 s acknowledgement deadline.
BROKER_RECOVERY_SECONDS = 60.0
POISON = b"\x01 not an envelope"
# Both consumers of the domain topics dead-letter a poison record, each once.
CONSUMERS = ("bureau", "notify")
# An e-mail a killed notify had claimed is due again once the claim lapses: the SMTP
# timeout (cluster.NOTIFY_SETTINGS) plus notify's 30 s margin.
EMAIL_SETTLE_SECONDS = 60.0


@dataclass
class FaultResult:
    name: str
    answered_seconds: float = 0.0
    figures_seconds: float = 0.0
    notes: dict[str, object] = field(default_factory=dict)


class Faults:
    def __init__(self, cluster: Cluster, driver: LoadDriver, mongo: AsyncMongoClient) -> None:
        self.cluster = cluster
        self.driver = driver
        self.mongo = mongo
        self.settings = cluster.settings
        self.officer = driver.principals.officer()
        self.results: list[FaultResult] = []
        self.poison_records = 0

    # Waiting ------------------------------------------------------------------------------

    async def until(
        self,
        what: str,
        probe: Callable[[], Awaitable[bool]],
        within: float = CATCH_UP_SECONDS,
        every: float = 0.1,
    ) -> None:
        deadline = time.monotonic() + within
        while not await probe():
            if time.monotonic() >= deadline:
                raise AssertionError(f"not within {within} s: {what}")
            await asyncio.sleep(every)

    async def answering(self, service: str) -> bool:
        """A read that needs the service and its database."""
        world, stub = self.driver.world, self.driver.targets.stub(service, 0)
        try:
            if service == "booth":
                await stub.GetFair(
                    booth_pb.GetFairRequest(fair_id=world.fair_id), metadata=self.officer, timeout=2
                )
            elif service == "expo":
                await stub.GetEdition(
                    expo_pb.GetEditionRequest(edition_id=world.edition_id),
                    metadata=self.officer,
                    timeout=2,
                )
            else:
                await stub.SearchWarehouses(
                    wh_pb.SearchWarehousesRequest(page_size=1), metadata=self.officer, timeout=2
                )
        except grpc.aio.AioRpcError:
            return False
        return True

    async def _bureau_applied(self) -> int:
        try:
            return await events_applied(self.cluster.services["bureau"].target, self.officer)
        except grpc.aio.AioRpcError:
            return -1

    async def caught_up(self, since: float, within: float = CATCH_UP_SECONDS) -> float:
        """Seconds from ``since`` until the bureau has applied every event the outboxes
        hold now (each counted once: applied can only reach the total exactly)."""
        total = await outbox_total(self.mongo, self.settings)

        async def reached() -> bool:
            return await self._bureau_applied() >= total

        await self.until(f"bureau applies {total} events", reached, within)
        return time.monotonic() - since

    async def notify_caught_up(self, since: float, within: float = CATCH_UP_SECONDS) -> float:
        """Seconds from ``since`` until notify has handled every event of the types it
        reads that the outboxes hold now."""
        ids = await notify_reads(self.mongo, self.settings)
        # Asked for again only while not handled: the query stays small.
        left = set(ids)

        async def covered() -> bool:
            left.difference_update(await notify_handled(self.mongo, self.settings, left))
            return not left

        try:
            await self.until(f"notify handles {len(ids)} events", covered, within, every=0.5)
        except AssertionError as error:
            # Events never published (a relay stopped) are not notify's to handle.
            unsent = await unpublished_among(self.mongo, self.settings, left)
            raise AssertionError(
                f"{error}: {len(left)} not handled, {unsent} of them not published by their"
                f" outbox; e.g. {sorted(left)[:5]}"
            ) from None
        return time.monotonic() - since

    async def notify_settled(self) -> None:
        """Notify caught up, and no e-mail waiting any more."""
        await self.notify_caught_up(time.monotonic())

        async def sent() -> bool:
            return not await pending_email(self.mongo, self.settings)

        await self.until("no e-mail pending", sent, EMAIL_SETTLE_SECONDS, every=0.25)

    async def _answered_after(self, service: str, since: float) -> float:
        async def up() -> bool:
            return await self.answering(service)

        await self.until(f"{service} answers", up)
        return time.monotonic() - since

    async def _acknowledged(self, service: str, after: float, count: int) -> None:
        """Wait until the load got ``count`` answers from ``service`` for requests
        started after ``after``: the load is really flowing through it."""

        async def flowing() -> bool:
            return (
                sum(
                    1
                    for r in self.driver.history.requests
                    if r.service == service and r.started > after and r.outcome == ACKNOWLEDGED
                )
                >= count
            )

        await self.until(f"the load reaches {service}", flowing)

    def _record(self, result: FaultResult) -> FaultResult:
        result.answered_seconds = round(result.answered_seconds, 2)
        result.figures_seconds = round(result.figures_seconds, 2)
        self.results.append(result)
        return result

    # 1. kill -9 of each domain service, and of one of two booth instances --------------------

    async def kill_service(self, name: str) -> FaultResult:
        await self._acknowledged(name, time.monotonic(), 2)
        injected = time.monotonic()
        self.cluster.services[name].kill()
        await self.cluster.restart(name)
        answered = await self._answered_after(name, injected)
        return self._record(
            FaultResult(f"kill -9 {name}", answered, await self.caught_up(injected))
        )

    async def kill_one_of_two_booths(self) -> FaultResult:
        await self.cluster.start("booth_b")
        addresses = self.driver.targets.addresses
        services = self.cluster.services
        addresses["booth"] = [services["booth"].target, services["booth_b"].target]
        await self._acknowledged("booth", time.monotonic(), 4)
        injected = time.monotonic()
        self.cluster.services["booth_b"].kill()
        # The client gives up on the dead instance; its retries already went to the other.
        addresses["booth"] = [self.cluster.services["booth"].target]
        answered = await self._answered_after("booth", injected)
        return self._record(
            FaultResult(
                "kill -9 one of two booth instances",
                answered,
                await self.caught_up(injected),
            )
        )

    # 2. kill -9 of the bureau mid-batch ----------------------------------------------------

    async def kill_bureau_mid_batch(self) -> FaultResult:
        before = await outbox_total(self.mongo, self.settings)
        await self.caught_up(time.monotonic())
        start = await self._bureau_applied()
        burst = await self._visit_burst(2)
        seen = start

        async def applying() -> bool:
            nonlocal seen
            seen = await self._bureau_applied()
            return seen > start

        await self.until("the bureau starts on the burst", applying, every=0.02)
        injected = time.monotonic()
        self.cluster.services["bureau"].kill()
        mid_batch = seen < start + burst
        await self.cluster.restart("bureau")
        answered = time.monotonic() - injected
        return self._record(
            FaultResult(
                "kill -9 bureau mid-batch",
                answered,
                await self.caught_up(injected),
                {
                    "burst_events": burst,
                    "applied_of_burst_at_kill": seen - start,
                    "mid_batch": mid_batch,
                    "outbox_before": before,
                },
            )
        )

    async def _visit_burst(self, calls: int) -> int:
        """Up to 500 visits a call, by the expo's web front end (a service principal)."""
        world = self.driver.world
        recorded = 0
        for call in range(calls):
            visits = [
                expo_pb.Visit(
                    visit_id=f"burst-{self.driver.run_id}-{len(self.results)}-{call}-{n}",
                    buyer_id=world.buyers[n % len(world.buyers)].buyer_id,
                    credit_code=world.exhibitors[n % len(world.exhibitors)],
                )
                for n in range(500)
            ]
            countries = {b.buyer_id: b.country for b in world.buyers}
            entry = await self.driver.record_visits(
                visits, self.driver.principals.of_service("expo-web"), countries
            )
            assert entry.outcome == ACKNOWLEDGED, entry
            recorded += entry.expect.events["ExhibitorVisited"]
        return recorded

    # 3. kill between the MongoDB commit and the Kafka publish ----------------------------

    async def kill_relay_with_unpublished_rows(self) -> FaultResult:
        await self._visit_burst(1)
        injected = time.monotonic()
        self.cluster.services["expo"].kill()
        left = await unpublished(self.mongo, self.settings, "expo")
        await self.cluster.restart("expo")
        answered = time.monotonic() - injected

        async def published() -> bool:
            return await unpublished(self.mongo, self.settings, "expo") == 0

        await self.until("expo's relay publishes what the killed one left", published)
        return self._record(
            FaultResult(
                "kill -9 expo between commit and publish",
                answered,
                await self.caught_up(injected),
                {"unpublished_at_kill": left},
            )
        )

    # 4. kill -9 of the broker, outbox replay -------------------------------------------------

    async def kill_broker(self) -> FaultResult:
        injected = time.monotonic()
        await asyncio.to_thread(self.cluster.kill_kafka)
        await asyncio.to_thread(self.cluster.restart_kafka)
        replayed = await replay_outboxes(self.settings)
        answered = max([await self._answered_after(s, injected) for s in PRODUCERS])
        notes: dict[str, object] = {"replayed_events": replayed}
        # No service is restarted: each relay replaces the producer the new broker does
        # not know, and the bureau's consumer rejoins its group and reads the replay.
        figures = await self.caught_up(injected, within=BROKER_RECOVERY_SECONDS)
        return self._record(
            FaultResult("kill -9 broker, replay outboxes", answered, figures, notes)
        )

    # 5. kill -9 of the database, restart on the same data ---------------------------------------

    async def kill_database(self) -> FaultResult:
        acknowledged_before = len(self.driver.history.with_outcome(ACKNOWLEDGED))
        injected = time.monotonic()
        await asyncio.to_thread(self.cluster.kill_mongo)
        await asyncio.to_thread(self.cluster.restart_mongo)
        answered = max([await self._answered_after(s, injected) for s in PRODUCERS])
        await self._acknowledged("expo", time.monotonic(), 2)
        return self._record(
            FaultResult(
                "kill -9 database, restart on its data",
                answered,
                await self.caught_up(injected),
                {"acknowledged_before_kill": acknowledged_before},
            )
        )

    # 6. a gRPC dependency stopped ----------------------------------------------------------

    async def stop_dependencies(self) -> list[FaultResult]:
        driver = self.driver
        code = await driver.register_exporter()
        assert code is not None
        driver.world.joining.add(code)  # the load must not join it meanwhile
        # booth down: joining needs booth's word, so expo refuses and writes nothing.
        injected = time.monotonic()
        self.cluster.services["booth"].kill()
        probe = await driver.join(code, retry=False)
        refused_after = time.monotonic() - injected
        assert (probe.outcome, probe.status) == (FAILED, "UNAVAILABLE"), probe
        await self.cluster.restart("booth")
        booth = self._record(
            FaultResult(
                "booth stopped under expo",
                await self._answered_after("booth", injected),
                await self.caught_up(injected),
                {"expo_answered_seconds": round(refused_after, 2), "expo_status": probe.status},
            )
        )
        # warehouse down: an intent stands without hints.
        injected = time.monotonic()
        self.cluster.services["warehouse"].kill()
        buyer = driver.world.buyers[0]
        intent = await driver.submit_intent(buyer, driver.world.exhibitors[0])
        degraded_after = time.monotonic() - injected
        assert intent.outcome == ACKNOWLEDGED and "warehouses_available=False" in intent.response
        await self.cluster.restart("warehouse")
        warehouse = self._record(
            FaultResult(
                "warehouse stopped under expo",
                await self._answered_after("warehouse", injected),
                await self.caught_up(injected),
                {"expo_answered_seconds": round(degraded_after, 2), "degraded": True},
            )
        )
        return [booth, warehouse]

    # 7. duplicated and reordered deliveries of every event type ---------------------------------

    async def redeliver(self, per_type: int = 5, copies: int = 2) -> FaultResult:
        rows: dict[str, list[tuple[str, str, bytes]]] = defaultdict(list)
        for service in PRODUCERS:
            outbox = self.mongo.get_database(self.settings.database_name(service))[
                OUTBOX_COLLECTION
            ]
            async for doc in outbox.find({"published_at": {"$ne": None}}).sort("position", 1):
                if len(rows[doc["type"]]) < per_type:
                    rows[doc["type"]].append((doc["topic"], doc["key"], bytes(doc["envelope"])))
        deliveries = [row for chosen in rows.values() for row in chosen] * copies
        random.Random(7).shuffle(deliveries)
        redelivered_before = await self.cluster.metric(
            "bureau", "chuhai_bureau_events_redelivered_total"
        )
        injected = time.monotonic()
        last = await asyncio.to_thread(self._produce, deliveries)

        async def refused() -> bool:
            now = await self.cluster.metric("bureau", "chuhai_bureau_events_redelivered_total")
            return now - redelivered_before >= len(deliveries)

        await self.until("the bureau refuses every copy", refused)
        # Notify has no count of the copies it skips; its committed offsets show it read
        # past every one (before the broker kill that follows wipes them).
        await asyncio.to_thread(
            self._committed_past, NOTIFY_SETTINGS["NOTIFY_CONSUMER_GROUP"], last
        )
        notify_read = time.monotonic() - injected
        return self._record(
            FaultResult(
                "duplicated and reordered deliveries",
                0.0,
                await self.caught_up(injected),
                {
                    "event_types": len(rows),
                    "deliveries": len(deliveries),
                    "notify_read_past_seconds": round(notify_read, 2),
                },
            )
        )

    def _produce(self, records: list[tuple[str, str | None, bytes]]) -> dict[TopicPartition, int]:
        """Send ``records``; the offset of the last one each partition got."""
        producer = KafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap_servers)
        try:
            sent = [
                producer.send(topic, key=key.encode() if key else None, value=value)
                for topic, key, value in records
            ]
            producer.flush(30)
        finally:
            producer.close()
        last: dict[TopicPartition, int] = {}
        for future in sent:
            meta = future.get(0)
            where = TopicPartition(meta.topic, meta.partition)
            last[where] = max(meta.offset, last.get(where, -1))
        return last

    def _committed_past(
        self, group: str, last: dict[TopicPartition, int], within: float = CATCH_UP_SECONDS
    ) -> None:
        """Wait until ``group`` committed offsets past ``last`` in each partition: it
        handled every record up to there. Asks without joining the group."""
        consumer = KafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=group,
            enable_auto_commit=False,
        )
        deadline = time.monotonic() + within
        try:
            waiting = dict(last)
            while waiting:
                for where, offset in list(waiting.items()):
                    if (consumer.committed(where) or 0) > offset:
                        del waiting[where]
                if waiting and time.monotonic() >= deadline:
                    raise AssertionError(f"not within {within} s: {group} reads {waiting}")
                time.sleep(0.25)
        finally:
            consumer.close()

    # 8. poison records on every consumed topic -------------------------------------------------

    async def _dead_letters(self) -> dict[str, float]:
        return {
            consumer: await self.cluster.metric(consumer, f"chuhai_{consumer}_dead_letters_total")
            for consumer in CONSUMERS
        }

    async def poison(self) -> FaultResult:
        dead_before = await self._dead_letters()
        tag = f"poison-{self.driver.run_id}"
        injected = time.monotonic()
        await asyncio.to_thread(
            self._produce, [(topic.name, tag, POISON) for topic in DOMAIN_TOPICS]
        )
        self.poison_records += len(DOMAIN_TOPICS)

        async def dead_lettered() -> bool:
            now = await self._dead_letters()
            return all(now[c] - dead_before[c] >= len(DOMAIN_TOPICS) for c in CONSUMERS)

        await self.until("every poison record dead-lettered by each consumer", dead_lettered)
        errors = {}
        for topic in DOMAIN_TOPICS:
            records = await asyncio.to_thread(
                read_records,
                self.settings.kafka_bootstrap_servers,
                topic.dlq.name,
                expected=len(CONSUMERS),
                keys={tag.encode()},
                within_seconds=30,
            )
            every = [dict(record.headers) for record in records]
            assert sorted(h["consumer"].decode() for h in every) == sorted(CONSUMERS), (
                topic.dlq.name,
                every,
            )
            for headers in every:
                assert headers["error"] and headers["original_topic"] == topic.name.encode()
                errors[f"{topic.name}:{headers['consumer'].decode()}"] = headers[
                    "error_type"
                ].decode()
        # The stream goes on: what the load writes next is applied.
        after = time.monotonic()
        await self._acknowledged("expo", after, 2)
        return self._record(
            FaultResult(
                "poison records on every topic",
                0.0,
                await self.caught_up(injected),
                {"topics": len(DOMAIN_TOPICS), "error_types": sorted(set(errors.values()))},
            )
        )

    # 9. kill -9 of notify mid-load, with e-mails waiting for the mail server -----------------

    async def kill_notify(self) -> FaultResult:
        """The mail server stops; once an e-mail has waited for it (an attempt failed),
        notify is killed. While it is down the load goes on through every producer and
        the bureau becomes exact, as if notify did not exist. Then notify starts again,
        and the mail server: notify catches up from the topics, and the e-mails that were
        waiting are sent (they were documents, not the dead process's memory). Times are
        from the restart; the outage is the suite's choice (``down_seconds``)."""
        await self.cluster.stop_mail()

        async def waiting() -> bool:
            return bool(await pending_email(self.mongo, self.settings, attempted=True))

        await self.until("an e-mail waits for the mail server", waiting)
        injected = time.monotonic()
        self.cluster.services["notify"].kill()
        waited = await pending_email(self.mongo, self.settings)
        for service in PRODUCERS:
            await self._acknowledged(service, injected, 2)
        bureau_exact = await self.caught_up(injected)
        restarted = time.monotonic()
        down = restarted - injected
        await self.cluster.restart("notify")
        answered = time.monotonic() - restarted
        await self.cluster.start_mail()
        caught_up = await self.notify_caught_up(restarted)

        async def sent() -> bool:
            return not waited & await pending_email(self.mongo, self.settings)

        await self.until("the e-mails that waited are sent", sent, EMAIL_SETTLE_SECONDS)
        return self._record(
            FaultResult(
                "kill -9 notify, e-mails waiting",
                answered,
                caught_up,
                {
                    "down_seconds": round(down, 2),
                    "acknowledged_while_down": sum(
                        1
                        for r in self.driver.history.with_outcome(ACKNOWLEDGED)
                        if injected < r.started and r.finished < restarted
                    ),
                    "bureau_exact_while_down_seconds": round(bureau_exact, 2),
                    "emails_waiting_at_kill": len(waited),
                    "waiting_emails_sent_seconds": round(time.monotonic() - restarted, 2),
                },
            )
        )
