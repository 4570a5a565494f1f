"""`chuhai-platform reconcile`: a small case on real services reconciles exactly, also
after the bureau rebuilt its figures from an earlier snapshot format; a database edited
behind the services' back shows as the very figures it changed; an unreachable bureau is
exit 3."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from pymongo import AsyncMongoClient

import expo.grpc_api
import warehouse.grpc_api
from booth.domain import ApplicationState
from bureau.host import BureauHost
from chuhai.expo.v1 import expo_service_pb2 as expo_pb
from chuhai.expo.v1 import expo_service_pb2_grpc as expo_grpc
from chuhai.expo.v1 import resources_pb2 as expo_res
from chuhai.warehouse.v1 import resources_pb2 as warehouse_res
from chuhai.warehouse.v1 import warehouse_service_pb2 as warehouse_pb
from chuhai.warehouse.v1 import warehouse_service_pb2_grpc as warehouse_grpc
from expo.domain import IntentState
from launcher.embedded import EmbeddedInfrastructure, free_port
from launcher.reconcile import (
    Difference,
    Figure,
    Reconciliation,
    SourceUnavailable,
    compare,
    reconcile,
)
from runtime.adapters.service import ServiceHost
from runtime.adapters.settings import Settings
from runtime.adapters.tokens import DevelopmentKeys
from runtime.adapters.topics import provision_topics
from runtime.kernel.identity import Role
from tests.credit_codes import random_credit_code
from tests.identity import Identities
from tests.integration.test_bureau import play_small_case
from tests.integration.test_warehouse_service import profile

# Every kind of figure reconcile compares; the small case below has each one.
FIGURE_KINDS = {
    "firms_served",
    "booths_allocated",
    "booths.quota",
    "applications.applied",
    "applications.allocated",
    "applications.waitlisted",
    "applications.withdrawn",
    "buyers",
    "countries",
    "intents",
    "intents.addressed",
    "intents.answered",
    "exhibitors",
    "warehouses.active",
    "warehouses.capacity_pallets",
    "warehouses.reserved_pallets_today",
    "reservations",
}


def test_compare_names_every_figure_of_either_side_and_reports_those_that_differ() -> None:
    service = {"buyers": 4, "intents": 3, "intents{country=DE}": 1}
    bureau = {"buyers": 5, "intents": 3, "intents{country=US}": 1}

    result = compare(service, bureau)

    # A figure only one side names is 0 on the other.
    assert result.figures == (
        Figure("buyers", 4, 5),
        Figure("intents", 3, 3),
        Figure("intents{country=DE}", 1, 0),
        Figure("intents{country=US}", 0, 1),
    )
    assert result.differences == (
        Difference("buyers", 4, 5),
        Difference("intents{country=DE}", 1, 0),
        Difference("intents{country=US}", 0, 1),
    )
    assert not result.reconciled
    assert compare({"buyers": 5}, {"buyers": 5}) == Reconciliation(
        figures=(Figure("buyers", 5, 5),), differences=()
    )


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[str]:
    """A broker of the test's own: the bureau counts every event on it."""
    with EmbeddedInfrastructure(tmp_path / "kafka") as broker:
        broker.start(mongo=False)
        provision_topics(broker.kafka_bootstrap_servers)
        yield broker.kafka_bootstrap_servers


@pytest.fixture
def bureau_settings(settings: Settings, own_kafka: str, unique: str) -> Settings:
    """A bureau's settings on the test's broker."""
    return settings.model_copy(
        update={
            "kafka_bootstrap_servers": own_kafka,
            "bureau_consumer_group": f"bureau-{unique}",
            "bureau_web_port": 0,
        }
    )


@asynccontextmanager
async def running_bureau(settings: Settings) -> AsyncIterator[Settings]:
    """A bureau started on ``settings``; the settings reconcile reads it and the
    services' databases with. Stopped gracefully: its last snapshot is saved."""
    bureau = BureauHost(settings)
    await bureau.start()
    try:
        yield settings.model_copy(update={"bureau_grpc_target": bureau.server.address})
    finally:
        await bureau.stop()


async def settle_intents(settings: Settings, unique: str, identities: Identities) -> None:
    """Of the small case's three inquiries, each to its one exhibitor, one is quoted and so
    closed (an inquiry takes one quote), one declined by its only recipient, one left open."""
    host = ServiceHost("expo", expo.grpc_api.build, settings)
    await host.start()
    try:
        async with grpc.aio.insecure_channel(host.server.address) as channel:
            stub = expo_grpc.ExpoServiceStub(channel)
            listed = await stub.ListIntents(
                expo_pb.ListIntentsRequest(edition_id=f"cloud-{unique}"),
                metadata=identities.officer(),
                timeout=10,
            )
            quoted, declined, _ = sorted(listed.intents, key=lambda i: i.intent_id)
            valid_until = Timestamp()
            valid_until.FromDatetime(datetime.now(UTC) + timedelta(days=30))
            await stub.RespondToIntent(
                expo_pb.RespondToIntentRequest(
                    request_id="q",
                    intent_id=quoted.intent_id,
                    kind=expo_res.RESPONSE_KIND_QUOTED,
                    unit_price=expo_res.Money(currency="USD", units=12),
                    moq=100,
                    lead_time_days=30,
                    incoterm=expo_res.INCOTERM_FOB,
                    valid_until=valid_until,
                ),
                metadata=identities.exporter(quoted.exhibitor_credit_code),
                timeout=10,
            )
            await stub.RespondToIntent(
                expo_pb.RespondToIntentRequest(
                    request_id="d",
                    intent_id=declined.intent_id,
                    kind=expo_res.RESPONSE_KIND_DECLINED,
                    reason="sold out",
                ),
                metadata=identities.exporter(declined.exhibitor_credit_code),
                timeout=10,
            )
    finally:
        await host.stop()


def as_format_2(snapshot: dict[str, Any]) -> dict[str, Any]:
    """What a bureau before intent states, exhibitors and reservation countries saved."""
    expo_section = snapshot["projections"]["expo"]
    del expo_section["exhibitors"]
    for intent in expo_section["intents"]:
        del intent["state"]
    for reservation in snapshot["projections"]["warehouse"]["reservations"]:
        del reservation["country"]
    return snapshot | {"format": 2}


async def book_warehouse_space(settings: Settings, identities: Identities) -> None:
    """A warehouse in Germany with 40 pallets reserved today, and a cancelled booking
    from tomorrow (only a booking not started yet can be cancelled)."""
    host = ServiceHost("warehouse", warehouse.grpc_api.build, settings)
    await host.start()
    today = datetime.now(UTC).date()
    try:
        async with identities.channel(host.server.address, Role.OPERATOR, "op-xuchang") as ops:
            await warehouse_grpc.WarehouseServiceStub(ops).RegisterWarehouse(
                warehouse_pb.RegisterWarehouseRequest(
                    request_id="w",
                    code="DE-HAM-01",
                    profile=profile(
                        "DE", "Hamburg", 53.55, 9.99, [warehouse_res.LOGISTICS_SERVICE_STORAGE], 500
                    ),
                ),
                timeout=10,
            )
        async with grpc.aio.insecure_channel(host.server.address) as channel:
            stub = warehouse_grpc.WarehouseServiceStub(channel)
            exporter = random_credit_code()
            reservations = []
            for n, (pallets, starts) in enumerate(((40, today), (25, today + timedelta(days=1)))):
                reply = await stub.ReserveCapacity(
                    warehouse_pb.ReserveCapacityRequest(
                        request_id=f"r{n}",
                        warehouse_code="DE-HAM-01",
                        space=warehouse_res.Space(pallet_positions=pallets),
                        start_date=starts.isoformat(),
                        end_date=(today + timedelta(days=3)).isoformat(),
                    ),
                    metadata=identities.exporter(exporter),
                    timeout=10,
                )
                reservations.append(reply.reservation.reservation_id)
            await stub.CancelReservation(
                warehouse_pb.CancelReservationRequest(
                    request_id="c", reservation_id=reservations[1], reason="plans changed"
                ),
                metadata=identities.exporter(exporter),
                timeout=10,
            )
    finally:
        await host.stop()


async def run_cli(settings: Settings, *args: str) -> tuple[int, str, str]:
    """`chuhai-platform reconcile ARGS` as an operator runs it, pointed at ``settings``."""
    env = {key: value for key, value in os.environ.items() if key != "CHUHAI_TOKEN"}
    env.update(
        MONGODB_URI=settings.mongodb_uri,
        MONGODB_DATABASE_PREFIX=settings.mongodb_database_prefix,
        BUREAU_GRPC_TARGET=settings.bureau_grpc_target,
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "launcher.cli",
        "reconcile",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.integration
async def test_a_small_case_reconciles_and_edits_behind_the_services_back_show(
    bureau_settings: Settings, unique: str, identities: Identities, mongo: AsyncMongoClient
) -> None:
    officer = identities.token(Role.OFFICER)
    async with running_bureau(bureau_settings) as platform:
        await play_small_case(platform, unique, identities)
        await settle_intents(platform, unique, identities)
        await book_warehouse_space(platform, identities)

        result = await reconcile(platform, officer, settle_seconds=60, poll_seconds=0.2)

        assert result.differences == ()
        assert {figure.name.partition("{")[0] for figure in result.figures} == FIGURE_KINDS
        values = {figure.name: figure.service_value for figure in result.figures}
        standard = f"{{fair=canton-{unique},type=standard}}"
        assert {
            name: values[name]
            for name in (
                "firms_served",
                "booths_allocated",
                "buyers",
                "countries",
                "intents",
                f"applications.waitlisted{standard}",
                "warehouses.reserved_pallets_today{country=DE}",
            )
        } == {
            "firms_served": 6,
            "booths_allocated": 4,
            "buyers": 5,
            "countries": 4,
            "intents": 3,
            f"applications.waitlisted{standard}": 2,
            "warehouses.reserved_pallets_today{country=DE}": 40,
        }
        new_figures = {
            "intents{state=open}": 1,
            "intents{state=quoted}": 0,
            "intents{state=declined}": 1,
            "intents{state=expired}": 0,
            "intents{state=closed}": 1,
            f"exhibitors{{edition=cloud-{unique}}}": 1,
            "reservations{status=confirmed}": 1,
            "reservations{status=cancelled}": 1,
            "reservations{country=DE,status=confirmed}": 1,
            "reservations{country=DE,status=cancelled}": 1,
        }
        assert {name: values[name] for name in new_figures} == new_figures

    # An earlier bureau's snapshot, without the figures added since: the next bureau
    # rebuilds them from its journal, and they reconcile again.
    bureau_db = mongo.get_database(bureau_settings.database_name("bureau"))
    saved = await bureau_db["snapshots"].find_one({"_id": "live"})
    assert saved is not None and saved["state"]["format"] == 3
    earlier = await bureau_db["snapshots"].update_one(
        {"_id": "live"}, {"$set": {"state": as_format_2(saved["state"])}}
    )
    assert earlier.modified_count == 1
    async with running_bureau(bureau_settings) as platform:
        rebuilt = await reconcile(platform, officer, settle_seconds=10, poll_seconds=0.2)
        assert rebuilt.differences == ()
        assert {f.name: f.bureau_value for f in rebuilt.figures} == {
            f.name: f.bureau_value for f in result.figures
        }
        await drifts_show(platform, unique, identities, mongo, compared=len(result.figures))


async def drifts_show(
    platform: Settings,
    unique: str,
    identities: Identities,
    mongo: AsyncMongoClient,
    *,
    compared: int,
) -> None:
    """Edits behind the services' back, one after another, each showing as the very
    figures it changed; ``compared`` figures reconcile before."""
    officer = identities.token(Role.OFFICER)
    standard = f"{{fair=canton-{unique},type=standard}}"
    code, out, _ = await run_cli(platform, "--token", officer, "--settle-seconds", "0", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["reconciled"] and report["compared"] == compared

    # A buyer deleted behind expo's back (the second from Germany, who sent no intent):
    # the bureau still counts its visit.
    expo_db = mongo.get_database(platform.database_name("expo"))
    assert (await expo_db["buyers"].delete_one({"company": "Buyer 4"})).deleted_count == 1

    drifted = await reconcile(platform, officer, settle_seconds=0.5, poll_seconds=0.2)
    assert drifted.differences == (Difference("buyers", 4, 5),)
    code, out, _ = await run_cli(platform, "--token", officer, "--settle-seconds", "0")
    assert code == 1
    assert "✗ buyers" in out and "1 of" in out.splitlines()[-1]
    assert [line for line in out.splitlines() if line.startswith("✗")] == [
        line for line in out.splitlines() if line.startswith("✗ buyers ")
    ]

    # An allocation written without its event, by a firm that applied already.
    booth_db = mongo.get_database(platform.database_name("booth"))
    application = await booth_db["applications"].find_one({"fair_id": f"canton-{unique}"})
    assert application is not None
    await booth_db["applications"].insert_one(
        {**application, "_id": f"forged-{unique}", "state": int(ApplicationState.ALLOCATED)}
    )
    forged = await reconcile(platform, officer, settle_seconds=0.5, poll_seconds=0.2)
    assert set(forged.differences) == {
        Difference("buyers", 4, 5),
        Difference("booths_allocated", 5, 4),
        Difference(f"applications.applied{standard}", 7, 6),
        Difference(f"applications.allocated{standard}", 5, 4),
    }

    # An open intent expired behind expo's back (no IntentExpired recorded).
    expired = await expo_db["intents"].update_one(
        {"state": int(IntentState.MATCHED)}, {"$set": {"state": int(IntentState.EXPIRED)}}
    )
    assert expired.modified_count == 1
    tampered = await reconcile(platform, officer, settle_seconds=0.5, poll_seconds=0.2)
    assert set(tampered.differences) == set(forged.differences) | {
        Difference("intents{state=open}", 0, 1),
        Difference("intents{state=expired}", 1, 0),
    }

    # The bureau refuses anyone but an officer.
    with pytest.raises(SourceUnavailable, match="refused"):
        await reconcile(platform, identities.token(Role.EXPORTER, random_credit_code()))


@pytest.mark.integration
async def test_an_unreachable_bureau_is_exit_3_and_no_token_2(
    settings: Settings, tmp_path: Path
) -> None:
    nowhere = settings.model_copy(update={"bureau_grpc_target": f"127.0.0.1:{free_port()}"})
    code, out, err = await run_cli(nowhere, "--token", "any", "--settle-seconds", "0")
    assert (code, out) == (3, "")
    assert "the bureau did not answer (UNAVAILABLE" in err

    code, _, err = await run_cli(nowhere, "--var-dir", str(tmp_path))
    assert code == 2 and "no token" in err

    # Where `chuhai-platform run` keeps its development key, it signs an officer's token.
    DevelopmentKeys.ensure(tmp_path / "identity")
    code, _, err = await run_cli(nowhere, "--var-dir", str(tmp_path), "--settle-seconds", "0")
    assert code == 3 and "did not answer" in err
