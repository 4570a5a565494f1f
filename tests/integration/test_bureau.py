"""The bureau on its own broker: live figures from real services' events, exact under
redelivery, restart and kill -9, equal to a rebuild from the outboxes."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import grpc
import pytest
from bson.binary import Binary
from google.protobuf.timestamp_pb2 import Timestamp
from pymongo import AsyncMongoClient

import booth.grpc_api
import expo.grpc_api
from bureau.host import BureauHost
from bureau.messages import dashboard_json
from bureau.rebuild import rebuild_from_outboxes
from bureau.store import BureauStore
from chuhai.booth.v1 import booth_service_pb2 as booth_pb
from chuhai.booth.v1 import booth_service_pb2_grpc as booth_grpc
from chuhai.booth.v1 import resources_pb2 as booth_res
from chuhai.bureau.v1 import bureau_service_pb2 as pb
from chuhai.bureau.v1 import bureau_service_pb2_grpc as pb_grpc
from chuhai.expo.v1 import events_pb2 as expo_events
from chuhai.expo.v1 import expo_service_pb2 as expo_pb
from chuhai.expo.v1 import expo_service_pb2_grpc as expo_grpc
from chuhai.expo.v1 import resources_pb2 as expo_res
from launcher.cli import replay_outboxes, wait_serving
from launcher.embedded import EmbeddedInfrastructure, free_port
from runtime.adapters.events import envelope_for
from runtime.adapters.grpc_errors import field_violations
from runtime.adapters.kafka import KafkaEventPublisher
from runtime.adapters.outbox import OUTBOX_COLLECTION, Outbox, OutboxRelay, Transaction
from runtime.adapters.service import ServiceHost
from runtime.adapters.settings import Settings
from runtime.adapters.topics import EXPO_VISITS, provision_topics
from runtime.kernel.identity import Role
from tests.credit_codes import random_credit_code
from tests.identity import Identities
from tests.integration.test_booth import fair_request
from tests.kafka_reading import read_records
from tests.unit.test_bureau_upcast import assert_figures_of_the_mixed_history, mixed_history
from tests.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[str]:
    """A broker of the test's own: the bureau counts every event on it."""
    with EmbeddedInfrastructure(tmp_path / "kafka") as broker:
        broker.start(mongo=False)
        provision_topics(broker.kafka_bootstrap_servers)
        yield broker.kafka_bootstrap_servers


@pytest.fixture
def bureau_settings(settings: Settings, own_kafka: str, unique: str) -> Settings:
    return settings.model_copy(
        update={
            "kafka_bootstrap_servers": own_kafka,
            "bureau_consumer_group": f"bureau-{unique}",
            "bureau_web_port": 0,
        }
    )


@dataclass
class Scenario:
    exporters: int
    allocated: int
    buyers: int
    countries: int
    intents: int


async def register_exporter(
    booths: booth_grpc.BoothServiceStub, identities: Identities, code: str
) -> None:
    """An exporter registers itself: its token's credit code is the one it registers."""
    await booths.RegisterExporter(
        booth_pb.RegisterExporterRequest(
            request_id=f"reg-{code}",
            credit_code=code,
            profile=booth_pb.ExporterProfile(
                name=f"许昌出口企业 {code[-4:]}",
                district="建安区",
                industry="hair products",
                main_products=[booth_res.Product(name="human hair wigs", hs_code="670420")],
            ),
        ),
        metadata=identities.exporter(code),
        timeout=30,
    )


async def play_small_case(settings: Settings, unique: str, identities: Identities) -> Scenario:
    """A miniature of the Xuchang case through the real booth and expo services, each
    call made by the principal who would make it."""
    booth_host = ServiceHost("booth", booth.grpc_api.build, settings)
    await booth_host.start()
    expo_host = ServiceHost(
        "expo",
        expo.grpc_api.build,
        settings.model_copy(update={"booth_grpc_target": booth_host.server.address}),
    )
    await expo_host.start()
    officer = identities.officer()
    try:
        async with (
            grpc.aio.insecure_channel(booth_host.server.address) as booth_channel,
            grpc.aio.insecure_channel(expo_host.server.address) as expo_channel,
        ):
            booths = booth_grpc.BoothServiceStub(booth_channel)
            expo_stub = expo_grpc.ExpoServiceStub(expo_channel)
            rng = random.Random(21)
            codes = [random_credit_code(rng) for _ in range(6)]
            await asyncio.gather(*(register_exporter(booths, identities, c) for c in codes))
            fair_id = f"canton-{unique}"
            await booths.CreateFair(fair_request(fair_id, quota=4), metadata=officer, timeout=10)
            await booths.OpenFair(
                booth_pb.OpenFairRequest(request_id="o", fair_id=fair_id),
                metadata=officer,
                timeout=10,
            )
            for code in codes:
                await booths.SubmitApplication(
                    booth_pb.SubmitApplicationRequest(
                        request_id=f"a-{code}",
                        fair_id=fair_id,
                        booth_type=booth_res.BOOTH_TYPE_STANDARD,
                        main_product_hs_code="670420",
                    ),
                    metadata=identities.exporter(code),
                    timeout=10,
                )
            await booths.RunAllocation(
                booth_pb.RunAllocationRequest(
                    request_id="r", fair_id=fair_id, booth_type=booth_res.BOOTH_TYPE_STANDARD
                ),
                metadata=officer,
                timeout=30,
            )
            edition_id = f"cloud-{unique}"
            await expo_stub.CreateEdition(
                expo_pb.CreateEditionRequest(
                    request_id="e",
                    edition_id=edition_id,
                    name="Cloud expo",
                    fair_id=fair_id,
                    starts_on="2026-12-01",
                    ends_on="2026-12-31",
                    allow_online_only=True,
                ),
                metadata=officer,
                timeout=10,
            )
            await expo_stub.OpenEdition(
                expo_pb.OpenEditionRequest(request_id="eo", edition_id=edition_id),
                metadata=officer,
                timeout=10,
            )
            exhibitor = codes[0]
            await expo_stub.JoinEdition(
                expo_pb.JoinEditionRequest(request_id="j", edition_id=edition_id),
                metadata=identities.exporter(exhibitor),
                timeout=20,
            )
            countries = ["DE", "US", "NG", "BR", "DE"]
            buyers = []
            for n, country in enumerate(countries):
                # A buyer registers before it has a buyer id; its later tokens carry it.
                reply = await expo_stub.RegisterBuyer(
                    expo_pb.RegisterBuyerRequest(
                        request_id=f"b{n}",
                        company=f"Buyer {n}",
                        country=country,
                        buyer_type=expo_res.BUYER_TYPE_NEW,
                    ),
                    metadata=identities.metadata(Role.BUYER, subject=f"buyer-{unique}-{n}"),
                    timeout=10,
                )
                buyers.append(reply.buyer.buyer_id)
            # The expo's front end records visits for many buyers at once.
            await expo_stub.RecordVisits(
                expo_pb.RecordVisitsRequest(
                    request_id="v",
                    edition_id=edition_id,
                    visits=[
                        expo_pb.Visit(visit_id=f"v{n}", buyer_id=buyer, credit_code=exhibitor)
                        for n, buyer in enumerate(buyers + buyers[:2])
                    ],
                ),
                metadata=identities.service("expo-web"),
                timeout=10,
            )
            deadline = Timestamp()
            deadline.FromDatetime(datetime.now(UTC) + timedelta(days=5))
            for n, buyer in enumerate(buyers[:3]):
                await expo_stub.SubmitIntent(
                    expo_pb.SubmitIntentRequest(
                        request_id=f"i{n}",
                        edition_id=edition_id,
                        kind=expo_res.INTENT_KIND_INQUIRY,
                        exhibitor_credit_code=exhibitor,
                        hs_code="670420",
                        quantity=100,
                        unit="piece",
                        incoterm=expo_res.INCOTERM_FOB,
                        destination_country="DE",
                        deadline=deadline,
                    ),
                    metadata=identities.metadata(Role.BUYER, buyer, subject=f"buyer-{unique}-{n}"),
                    timeout=10,
                )
    finally:
        await expo_host.stop()
        await booth_host.stop()
    return Scenario(exporters=6, allocated=4, buyers=5, countries=4, intents=3)


async def headline_of(host: BureauHost, identities: Identities) -> tuple[int, ...]:
    async with grpc.aio.insecure_channel(host.server.address) as channel:
        reply = await pb_grpc.BureauServiceStub(channel).GetStats(
            pb.GetStatsRequest(), metadata=identities.officer(), timeout=5
        )
    h = reply.headline
    return (h.firms_served, h.booths_allocated, h.countries, h.buyers, h.intents)


def expected(case: Scenario) -> tuple[int, ...]:
    return (case.exporters, case.allocated, case.countries, case.buyers, case.intents)


@pytest.fixture
async def bureau(bureau_settings: Settings) -> AsyncIterator[BureauHost]:
    host = BureauHost(bureau_settings)
    await host.start()
    yield host
    await host.stop()


def comparable(figures: dict) -> dict:
    return {k: v for k, v in figures.items() if k not in ("as_of",)}


async def test_figures_are_live_exact_under_redelivery_and_equal_a_rebuild(
    bureau: BureauHost,
    bureau_settings: Settings,
    unique: str,
    mongo: AsyncMongoClient,
    identities: Identities,
) -> None:
    officer = identities.officer()
    as_officer = {"Authorization": dict(officer)["authorization"]}
    channel = grpc.aio.insecure_channel(bureau.server.address)
    watch = pb_grpc.BureauServiceStub(channel).WatchStats(
        pb.WatchStatsRequest(), metadata=officer, timeout=120
    )
    first = await watch.read()
    assert first.headline.intents == 0

    case = await play_small_case(bureau_settings, unique, identities)
    await eventually(
        lambda: headline_of(bureau, identities), equals=expected(case), within_seconds=60
    )
    # The watch saw the figures move to the same end.
    while (update := await watch.read()).headline.intents < case.intents:
        pass
    assert update.headline.buyers == case.buyers
    watch.cancel()
    await channel.close()

    async with (
        aiohttp.ClientSession(headers=as_officer) as http,
        http.get(f"http://127.0.0.1:{bureau.web.port}/api/stats") as reply,
    ):
        stats = await reply.json()
    assert stats == {
        "firms_served": 6,
        "booths_allocated": 4,
        "countries": 4,
        "buyers": 5,
        "intents": 3,
    }
    live = bureau.live.figures
    applied = live.headline().events_applied

    # Every event a second time (what a relay restart can do): no figure moves.
    assert await replay_outboxes(bureau_settings) == applied

    async def all_redelivered() -> bool:
        return live.dispatcher.redelivered_count >= applied

    await eventually(all_redelivered, equals=True, within_seconds=60)
    assert await headline_of(bureau, identities) == expected(case)
    assert live.headline().events_applied == applied
    assert live.events_skipped() == 0

    rebuilt = await rebuild_from_outboxes(mongo, bureau_settings)
    assert comparable(dashboard_json(rebuilt)) == comparable(dashboard_json(live))

    async with grpc.aio.insecure_channel(bureau.server.address) as channel:
        query = await pb_grpc.BureauServiceStub(channel).QueryStats(
            pb.QueryStatsRequest(country="DE"), metadata=officer, timeout=5
        )
        assert query.intents == 1 and [c.key for c in query.intents_by_country] == ["DE"]
        assert [(b.quota, b.applied, b.allocated, b.waitlisted) for b in query.booths] == [
            (4, 6, 4, 2)
        ]

        # A wrong query names every wrong field at once.
        later, earlier = Timestamp(seconds=2_000_000_000), Timestamp(seconds=1_000_000_000)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await pb_grpc.BureauServiceStub(channel).QueryStats(
                pb.QueryStatsRequest(country="XX", since=later, until=earlier),
                metadata=officer,
                timeout=5,
            )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(refused.value)) == {"country", "until"}
    async with (
        aiohttp.ClientSession(headers=as_officer) as http,
        http.get(
            f"http://127.0.0.1:{bureau.web.port}/api/report.csv",
            params={"since": "2026-13-01", "until": "20261231"},
        ) as reply,
    ):
        assert reply.status == 400
        assert await reply.text() == (
            "since: must be a date YYYY-MM-DD; until: must be a date YYYY-MM-DD"
        )


async def test_restart_and_poison_records_keep_figures_exact(
    bureau_settings: Settings, unique: str, identities: Identities
) -> None:
    host = BureauHost(bureau_settings)
    await host.start()
    case = await play_small_case(bureau_settings, unique, identities)
    await eventually(
        lambda: headline_of(host, identities), equals=expected(case), within_seconds=60
    )
    await host.stop()

    from aiokafka import AIOKafkaProducer

    raw = AIOKafkaProducer(bootstrap_servers=bureau_settings.kafka_bootstrap_servers)
    await raw.start()
    await raw.send_and_wait(EXPO_VISITS.name, key=b"junk", value=b"\x01 not an envelope")
    await raw.stop()

    restarted = BureauHost(bureau_settings)
    await restarted.start()
    try:
        # Restored from its snapshot before the stream even joins the group.
        assert await headline_of(restarted, identities) == expected(case)
        dead = await asyncio.to_thread(
            read_records,
            bureau_settings.kafka_bootstrap_servers,
            EXPO_VISITS.dlq.name,
            expected=1,
            within_seconds=60,
        )
        assert dead[0].key == b"junk" and dict(dead[0].headers)["error_type"] == b"UndecodableEvent"
        assert await headline_of(restarted, identities) == expected(case)
    finally:
        await restarted.stop()


def start_bureau_process(settings: Settings, grpc_port: int, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers,
        MONGODB_URI=settings.mongodb_uri,
        MONGODB_DATABASE_PREFIX=settings.mongodb_database_prefix,
        BUREAU_CONSUMER_GROUP=settings.bureau_consumer_group,
        BUREAU_GRPC_PORT=str(grpc_port),
        BUREAU_WEB_PORT="0",
        BUREAU_METRICS_PORT="0",
        AUTH_ISSUER=settings.auth_issuer,
        AUTH_AUDIENCE=settings.auth_audience,
        AUTH_JWKS_FILE=settings.auth_jwks_file,
    )
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "bureau"], env=env, stdout=out, stderr=out)


async def test_killed_mid_stream_the_bureau_restarts_exact(
    bureau_settings: Settings, mongo: AsyncMongoClient, tmp_path: Path, identities: Identities
) -> None:
    visits = 6000
    outbox = Outbox(mongo, mongo.get_database(bureau_settings.database_name("expo")), "expo")
    await outbox.ensure_indexes()

    async def visit(tx: Transaction, first: int) -> None:
        for n in range(first, first + 500):
            await tx.record(
                EXPO_VISITS,
                expo_events.ExhibitorVisited(
                    visit_id=f"v{n}", buyer_id=f"buyer-{n}", buyer_country=("DE", "KE")[n % 2]
                ),
                aggregate_id=f"buyer-{n}",
            )

    for first in range(0, visits, 500):
        await outbox.transact(lambda tx, first=first: visit(tx, first))
    publisher = await KafkaEventPublisher.connect(
        bureau_settings.kafka_bootstrap_servers, client_id="kill-test"
    )
    relay = OutboxRelay(outbox, publisher, batch_size=500)
    while await relay.publish_pending():
        pass
    await publisher.close()

    port = free_port()
    target = f"127.0.0.1:{port}"

    async def buyers() -> int:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = pb_grpc.BureauServiceStub(channel)
            reply = await stub.GetStats(
                pb.GetStatsRequest(), metadata=identities.officer(), timeout=5
            )
            return reply.headline.buyers

    bureau_process = start_bureau_process(bureau_settings, port, tmp_path / "bureau.log")
    try:
        assert await wait_serving(target, 60)
        seen = 0

        async def started() -> bool:
            nonlocal seen
            seen = await buyers()
            return seen > 0

        await eventually(started, equals=True, within_seconds=30, every=0.05)
        bureau_process.send_signal(signal.SIGKILL)  # mid-stream, no goodbye
        bureau_process.wait(timeout=10)
        assert 0 < seen < visits, "the kill should land while the stream is working"

        bureau_process = start_bureau_process(bureau_settings, port, tmp_path / "bureau.log")
        assert await wait_serving(target, 60)
        await eventually(buyers, equals=visits, within_seconds=90)
        async with grpc.aio.insecure_channel(target) as channel:
            stub = pb_grpc.BureauServiceStub(channel)
            headline = (
                await stub.GetStats(pb.GetStatsRequest(), metadata=identities.officer(), timeout=5)
            ).headline
        assert (headline.buyers, headline.countries, headline.events_applied) == (visits, 2, visits)
    finally:
        bureau_process.send_signal(signal.SIGTERM)
        bureau_process.wait(timeout=30)


async def test_a_snapshot_of_an_earlier_format_is_rebuilt_from_the_journal(
    mongo: AsyncMongoClient, unique: str
) -> None:
    db = mongo.get_database(f"t{unique}_bureau_store")
    store = BureauStore(mongo, db)
    await store.load()
    visit = envelope_for(
        expo_events.ExhibitorVisited(
            visit_id="v-1", buyer_id="buyer-1", buyer_country="de", credit_code="c-1"
        ),
        aggregate_id="buyer-1",
        producer="expo",
    )
    await store.append([(visit.event_id, visit.SerializeToString())])
    # What an earlier version of the bureau left: a snapshot it can no longer read.
    await db.snapshots.insert_one(
        {"_id": "live", "journal_seq": 1, "state": {"format": 1, "buyers": ["someone"]}}
    )

    figures = await BureauStore(mongo, db).load()

    headline = figures.headline()
    assert (headline.buyers, headline.countries) == (1, 1)
    assert figures.apply(visit) is False


async def test_version_one_events_of_an_upgraded_installation_keep_their_figures(
    mongo: AsyncMongoClient, settings: Settings, unique: str
) -> None:
    """Its journal (behind a snapshot of the earlier format) and its outboxes hold events
    recorded before payloads stopped embedding API resources, and after."""
    history = mixed_history()
    db = mongo.get_database(f"t{unique}_bureau_store")
    store = BureauStore(mongo, db)
    await store.load()
    await store.append([(envelope.event_id, envelope.SerializeToString()) for envelope in history])
    await db.snapshots.insert_one(
        {"_id": "live", "journal_seq": len(history), "state": {"format": 1, "firms": []}}
    )

    assert_figures_of_the_mixed_history(await BureauStore(mongo, db).load())

    for position, envelope in enumerate(history):
        outbox = mongo.get_database(settings.database_name(envelope.producer))[OUTBOX_COLLECTION]
        await outbox.insert_one(
            {
                "_id": envelope.event_id,
                "position": position,
                "envelope": Binary(envelope.SerializeToString()),
            }
        )

    assert_figures_of_the_mixed_history(await rebuild_from_outboxes(mongo, settings))
