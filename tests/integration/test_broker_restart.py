"""The embedded broker killed with -9 and restarted empty on the same port: once the
outboxes are replayed, the running services find it again by themselves. The relay
publishes what is written next, and the bureau's figures become exact, with no service
restarted. The broker here is the test's own; the session's shared one is never killed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from pymongo import AsyncMongoClient

import booth.grpc_api
from bureau.host import BureauHost
from chuhai.booth.v1 import booth_service_pb2_grpc as booth_grpc
from chuhai.bureau.v1 import bureau_service_pb2 as pb
from chuhai.bureau.v1 import bureau_service_pb2_grpc as pb_grpc
from launcher.cli import replay_outboxes
from launcher.embedded import EmbeddedInfrastructure
from runtime.adapters.outbox import OUTBOX_COLLECTION
from runtime.adapters.service import ServiceHost
from runtime.adapters.settings import Settings
from runtime.adapters.topics import provision_topics
from tests.credit_codes import random_credit_code
from tests.identity import Identities
from tests.integration.test_bureau import register_exporter
from tests.waiting import eventually

pytestmark = pytest.mark.integration

# Generous bounds on a shared machine; the reliability suite reports the real times.
RECOVERY_SECONDS = 90.0


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedInfrastructure]:
    with EmbeddedInfrastructure(tmp_path / "kafka") as own:
        own.start(mongo=False)
        provision_topics(own.kafka_bootstrap_servers)
        yield own


def kill_and_restart(broker: EmbeddedInfrastructure) -> None:
    """kill -9, then a fresh (empty) broker on the same port, topics provisioned."""
    broker.kill()
    broker.start(mongo=False)
    provision_topics(broker.kafka_bootstrap_servers)


async def test_relay_and_bureau_recover_from_a_broker_restart_without_restarts(
    settings: Settings,
    broker: EmbeddedInfrastructure,
    mongo: AsyncMongoClient,
    identities: Identities,
    unique: str,
) -> None:
    settings = settings.model_copy(
        update={
            "kafka_bootstrap_servers": broker.kafka_bootstrap_servers,
            "bureau_consumer_group": f"bureau-{unique}",
            "bureau_web_port": 0,
        }
    )
    outbox = mongo.get_database(settings.database_name("booth"))[OUTBOX_COLLECTION]
    booth_host = ServiceHost("booth", booth.grpc_api.build, settings)
    bureau = BureauHost(settings)
    await booth_host.start()
    await bureau.start()
    registered: list[str] = []
    try:
        async with (
            grpc.aio.insecure_channel(booth_host.server.address) as booth_channel,
            grpc.aio.insecure_channel(bureau.server.address) as bureau_channel,
        ):
            booths = booth_grpc.BoothServiceStub(booth_channel)
            stats = pb_grpc.BureauServiceStub(bureau_channel)

            async def figures() -> tuple[int, int]:
                reply = await stats.GetStats(
                    pb.GetStatsRequest(), metadata=identities.officer(), timeout=5
                )
                return reply.headline.firms_served, reply.headline.events_applied

            async def register(count: int, until: asyncio.Event | None = None) -> None:
                while len(registered) < count and not (until and until.is_set()):
                    code = random_credit_code()
                    await register_exporter(booths, identities, code)
                    registered.append(code)

            async def unpublished() -> int:
                return await outbox.count_documents({"published_at": None})

            await register(4)
            await eventually(
                figures,
                equals=(4, await outbox.count_documents({})),
                within_seconds=RECOVERY_SECONDS,
            )
            # Registrations go on while the broker dies and comes back: the relay is
            # publishing when it goes, and meets the new broker before the replay does.
            stop = asyncio.Event()
            load = asyncio.create_task(register(1_000_000, stop))
            await eventually(
                lambda: asyncio.sleep(0.05, len(registered) > 6), equals=True, within_seconds=30
            )
            await asyncio.to_thread(kill_and_restart, broker)
            assert await replay_outboxes(settings, ("booth",)) > 0
            # Written after the replay: only the service's own relay can publish these.
            after = len(registered)
            await eventually(
                lambda: asyncio.sleep(0.05, len(registered) >= after + 4),
                equals=True,
                within_seconds=RECOVERY_SECONDS,
            )
            stop.set()
            await load
            await eventually(unpublished, equals=0, within_seconds=RECOVERY_SECONDS)
            # Each event counted once, though the bureau read the replay and its
            # group's offsets were lost with the broker.
            await eventually(
                figures,
                equals=(len(registered), await outbox.count_documents({})),
                within_seconds=RECOVERY_SECONDS,
            )
    finally:
        await bureau.stop()
        await booth_host.stop()
