"""The booth service through real gRPC on real Kafka and MongoDB, each call made as the
principal it is for: officers run fairs, exporters apply, the expo asks who exhibits."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from pymongo import AsyncMongoClient

import booth.grpc_api
from chuhai.booth.v1 import booth_service_pb2 as pb
from chuhai.booth.v1 import booth_service_pb2_grpc as pb_grpc
from chuhai.booth.v1 import events_pb2 as booth_events
from chuhai.booth.v1 import resources_pb2 as res
from runtime.adapters.events import decode_envelope
from runtime.adapters.grpc_errors import field_violations
from runtime.adapters.outbox import OUTBOX_COLLECTION
from runtime.adapters.service import ServiceHost
from runtime.adapters.settings import Settings
from runtime.adapters.topics import BOOTH_APPLICATIONS, BOOTH_FAIRS
from tests.credit_codes import random_credit_code
from tests.fakes import ShiftedClock
from tests.identity import Identities
from tests.kafka_reading import read_records

pytestmark = pytest.mark.integration

STANDARD = res.BOOTH_TYPE_STANDARD
HAIR, MOTORS = "670420", "850152"


@pytest.fixture
async def stub(settings: Settings) -> AsyncIterator[pb_grpc.BoothServiceStub]:
    host = ServiceHost("booth", booth.grpc_api.build, settings)
    await host.start()
    try:
        async with grpc.aio.insecure_channel(host.server.address) as channel:
            yield pb_grpc.BoothServiceStub(channel)
    finally:
        await host.stop()


def stamp(moment: datetime) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(moment)
    return result


def fair_request(
    fair_id: str,
    *,
    quota: int = 43,
    application_deadline: timedelta = timedelta(days=10),
    allocation_deadline: timedelta = timedelta(days=20),
    fee_fen: int = 2_000_000,
) -> pb.CreateFairRequest:
    now = datetime.now(UTC)
    opens = (now + timedelta(days=40)).date()
    return pb.CreateFairRequest(
        request_id=f"create-{fair_id}",
        fair_id=fair_id,
        name="China Import and Export Fair",
        organiser="Ministry of Commerce; Guangdong Provincial Government",
        session="139th",
        venue="Guangzhou Pazhou",
        phases=[
            res.Phase(
                name="Phase 1",
                starts_on=opens.isoformat(),
                ends_on=(opens + timedelta(days=4)).isoformat(),
            )
        ],
        zones=[
            res.Zone(
                code="E1", name="Electronics and power equipment", hs_headings=["8501", "8502"]
            ),
            res.Zone(code="H2", name="Hair products", hs_headings=["6703", "6704"]),
        ],
        booth_quotas=[
            res.BoothQuota(
                booth_type=STANDARD,
                quota=quota,
                application_deadline=stamp(now + application_deadline),
                allocation_deadline=stamp(now + allocation_deadline),
                fee_fen=fee_fen,
            )
        ],
    )


async def register_exporters(
    stub: pb_grpc.BoothServiceStub, count: int, *, seed: int, identities: Identities
) -> list[str]:
    """``count`` firms, each registering itself with its own token."""
    rng = random.Random(seed)
    codes = [random_credit_code(rng) for _ in range(count)]

    async def register(index: int, code: str) -> None:
        await stub.RegisterExporter(
            pb.RegisterExporterRequest(
                request_id=f"reg-{code}",
                credit_code=code,
                profile=pb.ExporterProfile(
                    name=f"许昌出口企业 {index}",
                    district=rng.choice(["建安区", "魏都区", "长葛市", "禹州市"]),
                    industry=rng.choice(["hair products", "power equipment", "food processing"]),
                    main_products=[res.Product(name="human hair wigs", hs_code=HAIR)],
                    export_turnover_usd=rng.randrange(0, 40_000_000),
                    brand_owner=rng.random() < 0.3,
                    specialised_innovative=rng.random() < 0.2,
                    past_fairs=[f"Canton Fair {n}" for n in range(rng.randrange(0, 4))],
                ),
            ),
            metadata=identities.exporter(code),
            timeout=30,
        )

    limit = asyncio.Semaphore(32)

    async def limited(index: int, code: str) -> None:
        async with limit:
            await register(index, code)

    await asyncio.gather(*(limited(i, c) for i, c in enumerate(codes)))
    return codes


async def list_all(
    stub: pb_grpc.BoothServiceStub, identities: Identities, **filters: object
) -> list[res.BoothApplication]:
    """Every application the filters select, as an officer sees them."""
    found: list[res.BoothApplication] = []
    token = ""
    while True:
        page = await stub.ListApplications(
            pb.ListApplicationsRequest(page_size=40, page_token=token, **filters),
            metadata=identities.officer(),
            timeout=30,
        )
        found.extend(page.applications)
        token = page.next_page_token
        if not token:
            return found


async def submit(
    stub: pb_grpc.BoothServiceStub, identities: Identities, fair_id: str, code: str
) -> pb.SubmitApplicationResponse:
    """The firm ``code`` applies, with its own token."""
    return await stub.SubmitApplication(
        pb.SubmitApplicationRequest(
            request_id=f"apply-{fair_id}-{code}",
            fair_id=fair_id,
            booth_type=STANDARD,
            main_product_hs_code=HAIR,
        ),
        metadata=identities.exporter(code),
        timeout=60,
    )


async def test_xuchang_delegation_allocates_43_booths_to_127_firms(
    stub: pb_grpc.BoothServiceStub, settings: Settings, unique: str, identities: Identities
) -> None:
    fair_id = f"canton-139-{unique}"
    officer = identities.officer()
    codes = await register_exporters(stub, 127, seed=139, identities=identities)
    await stub.CreateFair(fair_request(fair_id), metadata=officer, timeout=10)
    await stub.OpenFair(
        pb.OpenFairRequest(request_id=f"open-{fair_id}", fair_id=fair_id),
        metadata=officer,
        timeout=10,
    )

    await asyncio.gather(*(submit(stub, identities, fair_id, code) for code in codes))
    result = await stub.RunAllocation(
        pb.RunAllocationRequest(
            request_id=f"alloc-{fair_id}", fair_id=fair_id, booth_type=STANDARD
        ),
        metadata=officer,
        timeout=60,
    )

    assert (result.quota, result.allocated_total, result.newly_allocated) == (43, 43, 43)
    assert result.newly_waitlisted == 84
    allocated = await list_all(
        stub, identities, fair_id=fair_id, state=res.APPLICATION_STATE_ALLOCATED
    )
    waitlisted = await list_all(
        stub, identities, fair_id=fair_id, state=res.APPLICATION_STATE_WAITLISTED
    )
    assert len(allocated) == 43 and len(waitlisted) == 84
    assert len({a.booth_number for a in allocated}) == 43
    # Score order: the waitlist is ranked, and nobody waiting outranks a booth holder.
    assert [w.waitlist_position for w in waitlisted] == list(range(1, 85))
    assert [w.score for w in waitlisted] == sorted((w.score for w in waitlisted), reverse=True)
    assert min(a.score for a in allocated) >= max(w.score for w in waitlisted)

    leaving = allocated[-1]
    withdrawal = await stub.WithdrawApplication(
        pb.WithdrawApplicationRequest(
            request_id=f"withdraw-{leaving.application_id}",
            application_id=leaving.application_id,
            reason="production capacity",
        ),
        metadata=identities.exporter(leaving.credit_code),
        timeout=30,
    )
    assert withdrawal.application.state == res.APPLICATION_STATE_WITHDRAWN
    assert withdrawal.application.penalty_fen == 0  # before the allocation deadline
    assert withdrawal.promoted.application_id == waitlisted[0].application_id
    assert withdrawal.promoted.booth_number == leaving.booth_number
    fair = await stub.GetFair(
        pb.GetFairRequest(fair_id=fair_id), metadata=identities.exporter(codes[0]), timeout=10
    )
    assert list(fair.allocated) == [43]
    status = await stub.GetExhibitorStatus(
        pb.GetExhibitorStatusRequest(credit_code=waitlisted[0].credit_code, fair_id=fair_id),
        metadata=identities.service("expo"),
        timeout=10,
    )
    assert status.exhibitor and status.booth_number == leaving.booth_number

    application_ids = {a.application_id.encode() for a in [*allocated, *waitlisted]}
    records = await asyncio.to_thread(
        read_records,
        settings.kafka_bootstrap_servers,
        BOOTH_APPLICATIONS.name,
        expected=127 * 2 + 43 + 84 + 3,
        keys=application_ids,
        within_seconds=60,
        settle_seconds=1.0,
    )
    kinds = Counter(decode_envelope(r.value).WhichOneof("payload") for r in records)
    assert kinds == {
        "booth_application_submitted": 127,
        "booth_application_scored": 127,
        "booth_allocated": 44,
        "booth_application_waitlisted": 84,
        "booth_application_withdrawn": 1,
        "waitlist_promoted": 1,
    }
    fair_events = await asyncio.to_thread(
        read_records,
        settings.kafka_bootstrap_servers,
        BOOTH_FAIRS.name,
        expected=3,
        keys={fair_id.encode()},
        settle_seconds=0.5,
    )
    created, opened, completed = [decode_envelope(r.value) for r in fair_events]
    assert [e.WhichOneof("payload") for e in (created, opened, completed)] == [
        "fair_created",
        "fair_opened",
        "allocation_completed",
    ]
    assert opened.fair_opened == booth_events.FairOpened(
        fair_id=fair_id,
        name="China Import and Export Fair",
        session="139th",
        hs_headings=["6703", "6704", "8501", "8502"],
    )
    # The run's own counts, which the withdrawal and promotion after it do not change.
    assert completed.allocation_completed == booth_events.AllocationCompleted(
        fair_id=fair_id, booth_type=STANDARD, quota=43, allocated=43, waitlisted=84, rejected=0
    )


async def test_quota_holds_under_250_concurrent_operations(
    stub: pb_grpc.BoothServiceStub, unique: str, identities: Identities
) -> None:
    fair_id = f"contention-{unique}"
    officer = identities.officer()
    codes = await register_exporters(stub, 150, seed=7, identities=identities)
    await stub.CreateFair(fair_request(fair_id), metadata=officer, timeout=10)
    await stub.OpenFair(
        pb.OpenFairRequest(request_id=f"open-{fair_id}", fair_id=fair_id),
        metadata=officer,
        timeout=10,
    )
    rng = random.Random(43)
    runs = 0

    async def allocate() -> None:
        nonlocal runs
        runs += 1
        await stub.RunAllocation(
            pb.RunAllocationRequest(
                request_id=f"alloc-{fair_id}-{runs}", fair_id=fair_id, booth_type=STANDARD
            ),
            metadata=officer,
            timeout=120,
        )

    first_wave = [submit(stub, identities, fair_id, code) for code in codes] + [
        allocate() for _ in range(30)
    ]
    rng.shuffle(first_wave)
    await asyncio.gather(*first_wave)

    live = await list_all(stub, identities, fair_id=fair_id)
    holders = [a for a in live if a.state == res.APPLICATION_STATE_ALLOCATED]
    waiting = [a for a in live if a.state == res.APPLICATION_STATE_WAITLISTED]

    async def withdraw(application: res.BoothApplication) -> None:
        await stub.WithdrawApplication(
            pb.WithdrawApplicationRequest(
                request_id=f"w-{application.application_id}",
                application_id=application.application_id,
            ),
            metadata=identities.exporter(application.credit_code),
            timeout=120,
        )

    async def reject(application: res.BoothApplication) -> None:
        try:
            await stub.RejectApplication(
                pb.RejectApplicationRequest(
                    request_id=f"r-{application.application_id}",
                    application_id=application.application_id,
                    reason="documents incomplete",
                ),
                metadata=officer,
                timeout=120,
            )
        except grpc.aio.AioRpcError as error:
            # It may have been promoted to a booth meanwhile: booths are never taken back.
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION

    second_wave = (
        [withdraw(a) for a in holders[:25]]
        + [withdraw(a) for a in waiting[:20]]
        + [reject(a) for a in waiting[-10:]]
        + [allocate() for _ in range(15)]
    )
    rng.shuffle(second_wave)
    await asyncio.gather(*second_wave)
    assert len(first_wave) + len(second_wave) >= 250
    await allocate()

    final = await list_all(stub, identities, fair_id=fair_id)
    states = Counter(a.state for a in final)
    assert states[res.APPLICATION_STATE_ALLOCATED] == 43
    assert states[res.APPLICATION_STATE_WITHDRAWN] == 45
    assert states[res.APPLICATION_STATE_ALLOCATED] + states[res.APPLICATION_STATE_WAITLISTED] == (
        150 - 45 - states[res.APPLICATION_STATE_REJECTED]
    )
    numbers = [a.booth_number for a in final if a.state == res.APPLICATION_STATE_ALLOCATED]
    assert len(set(numbers)) == 43
    waitlist = [a for a in final if a.state == res.APPLICATION_STATE_WAITLISTED]
    assert [a.waitlist_position for a in waitlist] == list(range(1, len(waitlist) + 1))
    fair = await stub.GetFair(pb.GetFairRequest(fair_id=fair_id), metadata=officer, timeout=10)
    assert list(fair.allocated) == [43]


async def test_bad_and_late_requests_get_clear_statuses(
    stub: pb_grpc.BoothServiceStub, unique: str, identities: Identities
) -> None:
    [code] = await register_exporters(stub, 1, seed=1, identities=identities)
    officer, applicant = identities.officer(), identities.exporter(code)
    late = f"late-{unique}"
    await stub.CreateFair(
        fair_request(
            late, application_deadline=-timedelta(days=1), allocation_deadline=timedelta(0)
        ),
        metadata=officer,
        timeout=10,
    )
    with pytest.raises(grpc.aio.AioRpcError) as not_open:
        await submit(stub, identities, late, code)
    assert not_open.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "not open" in not_open.value.details()
    await stub.OpenFair(
        pb.OpenFairRequest(request_id=f"open-{late}", fair_id=late), metadata=officer, timeout=10
    )
    with pytest.raises(grpc.aio.AioRpcError) as after_deadline:
        await submit(stub, identities, late, code)
    assert after_deadline.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "closed at" in after_deadline.value.details()

    fair_id = f"ok-{unique}"
    await stub.CreateFair(fair_request(fair_id), metadata=officer, timeout=10)
    await stub.OpenFair(
        pb.OpenFairRequest(request_id=f"open-{fair_id}", fair_id=fair_id),
        metadata=officer,
        timeout=10,
    )
    with pytest.raises(grpc.aio.AioRpcError) as wrong_zone:
        await stub.SubmitApplication(
            pb.SubmitApplicationRequest(
                request_id="z",
                fair_id=fair_id,
                booth_type=STANDARD,
                main_product_hs_code="090111",
            ),
            metadata=applicant,
            timeout=10,
        )
    assert wrong_zone.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "no exhibition zone" in field_violations(wrong_zone.value)["main_product_hs_code"]
    with pytest.raises(grpc.aio.AioRpcError) as unknown_fair:
        await submit(stub, identities, f"nope-{unique}", code)
    assert unknown_fair.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as bad_fair:
        request = fair_request(f"bad-{unique}", quota=0)
        request.zones.add(code="X", name="overlap", hs_headings=["6704"])
        await stub.CreateFair(request, metadata=officer, timeout=10)
    assert set(field_violations(bad_fair.value)) == {
        "booth_quotas[0].quota",
        "zones[2].hs_headings",
    }

    first = await submit(stub, identities, fair_id, code)
    assert first.application.zone_code == "H2"
    again = await submit(stub, identities, fair_id, code)  # same id: the first answer again
    assert again == first
    with pytest.raises(grpc.aio.AioRpcError) as duplicate:
        await stub.SubmitApplication(
            pb.SubmitApplicationRequest(
                request_id="another",
                fair_id=fair_id,
                booth_type=STANDARD,
                main_product_hs_code=MOTORS,
            ),
            metadata=applicant,
            timeout=10,
        )
    assert duplicate.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_withdrawal_costs_half_the_fee_after_the_deadline_and_all_of_it_once_open(
    settings: Settings, unique: str, identities: Identities
) -> None:
    clock = ShiftedClock()
    host = ServiceHost("booth", booth.grpc_api.build, settings, clock=clock)
    await host.start()
    try:
        async with grpc.aio.insecure_channel(host.server.address) as channel:
            stub = pb_grpc.BoothServiceStub(channel)
            officer = identities.officer()
            first, second = await register_exporters(stub, 2, seed=3, identities=identities)
            fair_id = f"penalty-{unique}"
            await stub.CreateFair(
                fair_request(
                    fair_id,
                    quota=1,
                    application_deadline=timedelta(hours=1),
                    allocation_deadline=timedelta(hours=1),
                    fee_fen=3_000_000,
                ),
                metadata=officer,
                timeout=10,
            )
            await stub.OpenFair(
                pb.OpenFairRequest(request_id="o", fair_id=fair_id), metadata=officer, timeout=10
            )
            await submit(stub, identities, fair_id, first)
            await submit(stub, identities, fair_id, second)
            await stub.RunAllocation(
                pb.RunAllocationRequest(request_id="a", fair_id=fair_id, booth_type=STANDARD),
                metadata=officer,
                timeout=10,
            )
            [holder] = await list_all(
                stub, identities, fair_id=fair_id, state=res.APPLICATION_STATE_ALLOCATED
            )

            clock.offset = timedelta(days=2)  # past the allocation deadline, before opening
            withdrawal = await stub.WithdrawApplication(
                pb.WithdrawApplicationRequest(
                    request_id="w1", application_id=holder.application_id
                ),
                metadata=identities.exporter(holder.credit_code),
                timeout=10,
            )
            assert withdrawal.application.penalty_fen == 1_500_000
            promoted = withdrawal.promoted
            assert promoted.state == res.APPLICATION_STATE_ALLOCATED

            clock.offset = timedelta(days=41)  # the fair has opened
            late = await stub.WithdrawApplication(
                pb.WithdrawApplicationRequest(
                    request_id="w2", application_id=promoted.application_id
                ),
                metadata=identities.exporter(promoted.credit_code),
                timeout=10,
            )
            assert late.application.penalty_fen == 3_000_000
            assert not late.HasField("promoted")
            with pytest.raises(grpc.aio.AioRpcError) as twice:
                await stub.WithdrawApplication(
                    pb.WithdrawApplicationRequest(
                        request_id="w3", application_id=promoted.application_id
                    ),
                    metadata=identities.exporter(promoted.credit_code),
                    timeout=10,
                )
            assert twice.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            fair = await stub.GetFair(
                pb.GetFairRequest(fair_id=fair_id), metadata=officer, timeout=10
            )
            assert list(fair.allocated) == [0]
    finally:
        await host.stop()


async def test_a_submission_is_recorded_as_the_exporter_that_made_it(
    stub: pb_grpc.BoothServiceStub,
    settings: Settings,
    unique: str,
    identities: Identities,
    mongo: AsyncMongoClient,
) -> None:
    [code] = await register_exporters(stub, 1, seed=21, identities=identities)
    fair_id = f"audit-{unique}"
    officer = identities.officer()
    await stub.CreateFair(fair_request(fair_id), metadata=officer, timeout=10)
    await stub.OpenFair(
        pb.OpenFairRequest(request_id=f"open-{fair_id}", fair_id=fair_id),
        metadata=officer,
        timeout=10,
    )
    submitted = (await submit(stub, identities, fair_id, code)).application
    await stub.RunAllocation(
        pb.RunAllocationRequest(request_id=f"a-{fair_id}", fair_id=fair_id, booth_type=STANDARD),
        metadata=officer,
        timeout=30,
    )

    # The application's history names the callers, and the platform for the scoring.
    assert submitted.credit_code == code
    allocated = await stub.GetApplication(
        pb.GetApplicationRequest(application_id=submitted.application_id),
        metadata=identities.exporter(code),
        timeout=10,
    )
    assert [(t.state, t.by) for t in allocated.application.history] == [
        (res.APPLICATION_STATE_SUBMITTED, f"exporter:exporter-{code}"),
        (res.APPLICATION_STATE_SCORED, "service:chuhai"),
        (res.APPLICATION_STATE_ALLOCATED, "officer:officer-1"),
    ]

    # Its event's envelope names the exporter's token, as the outbox holds it.
    outbox = mongo.get_database(settings.database_name("booth"))[OUTBOX_COLLECTION]
    envelopes = [
        decode_envelope(bytes(doc["envelope"]))
        async for doc in outbox.find({"key": submitted.application_id})
    ]
    actors = {
        e.WhichOneof("payload"): (e.actor.role, e.actor.party, e.actor.subject) for e in envelopes
    }
    assert actors["booth_application_submitted"] == ("exporter", code, f"exporter-{code}")
    assert actors["booth_allocated"] == ("officer", "", "officer-1")
