"""The expo service through real gRPC, with the booth and warehouse services running;
every call made as the principal that would make it (officer, exporter, buyer, the expo
front end)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

import booth.grpc_api
import expo.grpc_api
import warehouse.grpc_api
from chuhai.booth.v1 import booth_service_pb2 as booth_pb
from chuhai.booth.v1 import booth_service_pb2_grpc as booth_grpc
from chuhai.booth.v1 import resources_pb2 as booth_res
from chuhai.expo.v1 import expo_service_pb2 as pb
from chuhai.expo.v1 import expo_service_pb2_grpc as pb_grpc
from chuhai.expo.v1 import resources_pb2 as res
from runtime.adapters.events import decode_envelope
from runtime.adapters.grpc_errors import field_violations
from runtime.adapters.service import ServiceHost
from runtime.adapters.settings import Settings
from runtime.adapters.topics import EXPO_INTENTS
from tests.credit_codes import random_credit_code
from tests.fakes import ShiftedClock
from tests.identity import Identities
from tests.integration.test_booth import fair_request, register_exporters
from tests.kafka_reading import read_records
from tests.waiting import eventually

pytestmark = pytest.mark.integration

HAIR, WIGS_OTHER, MOTORS = "670420", "670490", "850152"


@dataclass
class Platform:
    settings: Settings
    booth: booth_grpc.BoothServiceStub
    expo: pb_grpc.ExpoServiceStub
    booth_host: ServiceHost
    clock: ShiftedClock
    ids: Identities


@contextlib.asynccontextmanager
async def running_platform(settings: Settings, identities: Identities) -> AsyncIterator[Platform]:
    """Booth, warehouse and expo wired to each other, with stubs to call them."""
    booth_host = ServiceHost("booth", booth.grpc_api.build, settings)
    warehouse_host = ServiceHost("warehouse", warehouse.grpc_api.build, settings)
    await booth_host.start()
    await warehouse_host.start()
    wired = settings.model_copy(
        update={
            "booth_grpc_target": booth_host.server.address,
            "warehouse_grpc_target": warehouse_host.server.address,
            "expo_intent_rate_limit": 5,
            "expo_expiry_sweep_seconds": 0.3,
        }
    )
    clock = ShiftedClock()
    expo_host = ServiceHost("expo", expo.grpc_api.build, wired, clock=clock)
    await expo_host.start()
    try:
        async with (
            grpc.aio.insecure_channel(booth_host.server.address) as booth_channel,
            grpc.aio.insecure_channel(expo_host.server.address) as expo_channel,
        ):
            yield Platform(
                wired,
                booth_grpc.BoothServiceStub(booth_channel),
                pb_grpc.ExpoServiceStub(expo_channel),
                booth_host,
                clock,
                identities,
            )
    finally:
        await expo_host.stop()
        await warehouse_host.stop()
        await booth_host.stop()


@pytest.fixture
async def platform(settings: Settings, identities: Identities) -> AsyncIterator[Platform]:
    async with running_platform(settings, identities) as running:
        yield running


async def fair_with_booths(platform: Platform, unique: str, codes: list[str], quota: int) -> str:
    fair_id = f"canton-{unique}"
    officer = platform.ids.officer()
    await platform.booth.CreateFair(
        fair_request(fair_id, quota=quota), metadata=officer, timeout=10
    )
    await platform.booth.OpenFair(
        booth_pb.OpenFairRequest(request_id="o", fair_id=fair_id), metadata=officer, timeout=10
    )
    for code in codes:
        await platform.booth.SubmitApplication(
            booth_pb.SubmitApplicationRequest(
                request_id=f"a-{code}",
                fair_id=fair_id,
                booth_type=booth_res.BOOTH_TYPE_STANDARD,
                main_product_hs_code=HAIR,
            ),
            metadata=platform.ids.exporter(code),
            timeout=10,
        )
    await platform.booth.RunAllocation(
        booth_pb.RunAllocationRequest(
            request_id="alloc", fair_id=fair_id, booth_type=booth_res.BOOTH_TYPE_STANDARD
        ),
        metadata=officer,
        timeout=30,
    )
    return fair_id


async def open_edition(platform: Platform, unique: str, fair_id: str, online_only: bool) -> str:
    edition_id = f"cloud-{unique}"
    await platform.expo.CreateEdition(
        pb.CreateEditionRequest(
            request_id=f"c-{edition_id}",
            edition_id=edition_id,
            name="Xuchang Digital Cloud Expo",
            fair_id=fair_id,
            starts_on="2026-12-01",
            ends_on="2026-12-31",
            allow_online_only=online_only,
        ),
        metadata=platform.ids.officer(),
        timeout=10,
    )
    await platform.expo.OpenEdition(
        pb.OpenEditionRequest(request_id=f"o-{edition_id}", edition_id=edition_id),
        metadata=platform.ids.officer(),
        timeout=10,
    )
    return edition_id


def in_days(days: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime.now(UTC) + timedelta(days=days))
    return stamp


async def join(platform: Platform, edition_id: str, code: str) -> pb.JoinEditionResponse:
    return await platform.expo.JoinEdition(
        pb.JoinEditionRequest(request_id=f"j-{code}", edition_id=edition_id),
        metadata=platform.ids.exporter(code),
        timeout=20,
    )


async def publish(platform: Platform, edition_id: str, code: str, hs_code: str) -> res.Product:
    reply = await platform.expo.PublishProduct(
        pb.PublishProductRequest(
            request_id=f"p-{code}-{hs_code}",
            edition_id=edition_id,
            name="Human hair lace wig",
            hs_code=hs_code,
            moq=50,
            unit="piece",
            price_min=res.Money(currency="USD", units=35),
            price_max=res.Money(currency="USD", units=120, nanos=500_000_000),
            certifications=["ISO 9001"],
        ),
        metadata=platform.ids.exporter(code),
        timeout=10,
    )
    return reply.product


async def register_buyer(platform: Platform, company: str, country: str) -> res.Buyer:
    """The buyer registers itself, with a token that names no buyer id yet."""
    reply = await platform.expo.RegisterBuyer(
        pb.RegisterBuyerRequest(
            request_id=f"b-{company}",
            company=company,
            country=country,
            buyer_type=res.BUYER_TYPE_NEW,
            contact=res.Contact(
                name="Ada", email=f"buy@{company.lower()}.example", phone="+49 30 1"
            ),
        ),
        metadata=platform.ids.buyer(),
        timeout=10,
    )
    return reply.buyer


def rfq(edition_id: str, request_id: str, hs_code: str = HAIR) -> pb.SubmitIntentRequest:
    return pb.SubmitIntentRequest(
        request_id=request_id,
        edition_id=edition_id,
        kind=res.INTENT_KIND_RFQ,
        hs_code=hs_code,
        quantity=2000,
        unit="piece",
        target_price=res.Money(currency="EUR", units=40),
        incoterm=res.INCOTERM_CIF,
        destination_country="DE",
        destination_port="Hamburg",
        deadline=in_days(14),
        max_quotes=2,
    )


async def test_rfq_reaches_every_matching_exhibitor_and_quotes_close_it(
    platform: Platform, unique: str
) -> None:
    codes = await register_exporters(platform.booth, 4, seed=11, identities=platform.ids)
    fair_id = await fair_with_booths(platform, unique, codes, quota=3)
    edition_id = await open_edition(platform, unique, fair_id, online_only=True)
    joined = [(await join(platform, edition_id, code)).exhibitor for code in codes]
    assert Counter(e.kind for e in joined) == {
        res.EXHIBITOR_KIND_BOOTH: 3,
        res.EXHIBITOR_KIND_ONLINE_ONLY: 1,
    }
    # Three exhibitors list hair products (heading 6704), one lists motors.
    for code, hs_code in zip(codes, [HAIR, WIGS_OTHER, HAIR, MOTORS], strict=True):
        await publish(platform, edition_id, code, hs_code)
    buyer = await register_buyer(platform, "Haarmode", "DE")
    as_buyer = platform.ids.buyer(buyer.buyer_id)

    submitted = await platform.expo.SubmitIntent(
        rfq(edition_id, "rfq-1"), metadata=as_buyer, timeout=20
    )

    intent = submitted.intent
    assert intent.state == res.INTENT_STATE_MATCHED
    assert sorted(intent.recipients) == sorted(codes[:3])
    assert submitted.warehouses_available
    hair_makers = sorted(codes[:3])
    first = await platform.expo.RespondToIntent(
        pb.RespondToIntentRequest(
            request_id="q1",
            intent_id=intent.intent_id,
            kind=res.RESPONSE_KIND_QUOTED,
            unit_price=res.Money(currency="USD", units=42),
            moq=100,
            lead_time_days=21,
            incoterm=res.INCOTERM_CIF,
            valid_until=in_days(30),
        ),
        metadata=platform.ids.exporter(hair_makers[0]),
        timeout=10,
    )
    assert first.intent.state == res.INTENT_STATE_QUOTED
    await platform.expo.RespondToIntent(
        pb.RespondToIntentRequest(
            request_id="d1",
            intent_id=intent.intent_id,
            kind=res.RESPONSE_KIND_DECLINED,
            reason="no capacity this quarter",
        ),
        metadata=platform.ids.exporter(hair_makers[1]),
        timeout=10,
    )
    closed = await platform.expo.RespondToIntent(
        pb.RespondToIntentRequest(
            request_id="q2",
            intent_id=intent.intent_id,
            kind=res.RESPONSE_KIND_QUOTED,
            unit_price=res.Money(currency="USD", units=39),
            moq=200,
            lead_time_days=30,
            incoterm=res.INCOTERM_FOB,
            valid_until=in_days(30),
        ),
        metadata=platform.ids.exporter(hair_makers[2]),
        timeout=10,
    )
    assert closed.intent.state == res.INTENT_STATE_CLOSED  # max_quotes = 2 reached
    assert [r.kind for r in closed.intent.responses] == [
        res.RESPONSE_KIND_QUOTED,
        res.RESPONSE_KIND_DECLINED,
        res.RESPONSE_KIND_QUOTED,
    ]
    assert all(r.response_seconds >= 0 for r in closed.intent.responses)
    with pytest.raises(grpc.aio.AioRpcError) as late:
        await platform.expo.RespondToIntent(
            pb.RespondToIntentRequest(
                request_id="q3",
                intent_id=intent.intent_id,
                kind=res.RESPONSE_KIND_DECLINED,
            ),
            metadata=platform.ids.exporter(hair_makers[0]),
            timeout=10,
        )
    assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # The motors exhibitor was not reached: to it the intent does not exist.
    with pytest.raises(grpc.aio.AioRpcError) as stranger:
        await platform.expo.RespondToIntent(
            pb.RespondToIntentRequest(
                request_id="q4",
                intent_id=intent.intent_id,
                kind=res.RESPONSE_KIND_DECLINED,
            ),
            metadata=platform.ids.exporter(codes[3]),
            timeout=10,
        )
    assert stranger.value.code() == grpc.StatusCode.NOT_FOUND

    records = await asyncio.to_thread(
        read_records,
        platform.settings.kafka_bootstrap_servers,
        EXPO_INTENTS.name,
        expected=6,
        keys={intent.intent_id.encode()},
        settle_seconds=0.5,
    )
    assert [decode_envelope(r.value).WhichOneof("payload") for r in records] == [
        "intent_submitted",
        "rfq_matched",
        "quote_sent",
        "intent_declined",
        "quote_sent",
        "intent_closed",
    ]
    submitted_event = decode_envelope(records[0].value).intent_submitted
    assert submitted_event.buyer_country == "DE" and submitted_event.hs_code == HAIR
    # The exhibitors it reached, by credit code: not the motors maker.
    assert list(submitted_event.recipients) == hair_makers


async def test_contact_details_only_for_addressed_exhibitors(
    platform: Platform, unique: str
) -> None:
    codes = await register_exporters(platform.booth, 2, seed=12, identities=platform.ids)
    fair_id = await fair_with_booths(platform, unique, codes, quota=2)
    edition_id = await open_edition(platform, unique, fair_id, online_only=False)
    for code in codes:
        await join(platform, edition_id, code)
    addressed, other = codes
    buyer = await register_buyer(platform, "Cabello", "ES")
    assert buyer.contact.email == "buy@cabello.example"
    await platform.expo.SubmitIntent(
        pb.SubmitIntentRequest(
            request_id="inq",
            edition_id=edition_id,
            kind=res.INTENT_KIND_INQUIRY,
            exhibitor_credit_code=addressed,
            hs_code=HAIR,
            quantity=300,
            unit="piece",
            incoterm=res.INCOTERM_FOB,
            destination_country="ES",
            deadline=in_days(7),
        ),
        metadata=platform.ids.buyer(buyer.buyer_id),
        timeout=20,
    )

    async def seen_by(viewer: tuple[tuple[str, str], ...]) -> res.Buyer:
        reply = await platform.expo.GetBuyer(
            pb.GetBuyerRequest(buyer_id=buyer.buyer_id), metadata=viewer, timeout=10
        )
        return reply.buyer

    for viewer in (
        platform.ids.exporter(addressed),
        platform.ids.buyer(buyer.buyer_id),
        platform.ids.officer(),
    ):
        assert (await seen_by(viewer)).contact.email == "buy@cabello.example"
    # An exhibitor the buyer never addressed does not find it, nor does another buyer.
    for outsider in (platform.ids.exporter(other), platform.ids.buyer("someone-else")):
        with pytest.raises(grpc.aio.AioRpcError) as hidden:
            await seen_by(outsider)
        assert hidden.value.code() == grpc.StatusCode.NOT_FOUND


async def test_joining_fails_cleanly_while_the_booth_service_is_down_and_recovers(
    platform: Platform, unique: str, mongo
) -> None:
    codes = await register_exporters(platform.booth, 1, seed=13, identities=platform.ids)
    fair_id = await fair_with_booths(platform, unique, codes, quota=1)
    edition_id = await open_edition(platform, unique, fair_id, online_only=False)
    port = platform.booth_host.server.port
    await platform.booth_host.stop()

    with pytest.raises(grpc.aio.AioRpcError) as down:
        await join(platform, edition_id, codes[0])
    assert down.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "booth service" in down.value.details() and "nothing was changed" in down.value.details()
    expo_db = mongo.get_database(platform.settings.database_name("expo"))
    assert await expo_db.exhibitors.count_documents({"edition_id": edition_id}) == 0
    assert await expo_db.outbox.count_documents({"type": "chuhai.expo.v1.ExhibitorJoined"}) == 0

    restarted = ServiceHost(
        "booth",
        booth.grpc_api.build,
        platform.settings.model_copy(update={"booth_grpc_port": port}),
    )
    await restarted.start()
    try:

        async def joined_kind() -> int | str:
            try:
                return (await join(platform, edition_id, codes[0])).exhibitor.kind
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                return error.code().name

        await eventually(joined_kind, equals=res.EXHIBITOR_KIND_BOOTH, within_seconds=10)
        # The same request id answers with the first response.
        joined = await join(platform, edition_id, codes[0])
        assert joined.exhibitor.kind == res.EXHIBITOR_KIND_BOOTH
        assert joined.exhibitor.booth_number.startswith("S-")
    finally:
        await restarted.stop()


async def test_intent_rules_rate_limit_and_expiry(platform: Platform, unique: str) -> None:
    codes = await register_exporters(platform.booth, 1, seed=14, identities=platform.ids)
    fair_id = await fair_with_booths(platform, unique, codes, quota=1)
    edition_id = await open_edition(platform, unique, fair_id, online_only=False)
    await join(platform, edition_id, codes[0])
    await publish(platform, edition_id, codes[0], HAIR)
    buyer = await register_buyer(platform, "Perucas", "BR")
    as_buyer = platform.ids.buyer(buyer.buyer_id)

    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        bad = rfq(edition_id, "bad")
        bad.destination_country = "XX"
        bad.target_price.currency = "EURO"
        bad.quantity = 0
        bad.incoterm = res.INCOTERM_UNSPECIFIED
        await platform.expo.SubmitIntent(bad, metadata=as_buyer, timeout=10)
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(invalid.value)) == {
        "destination_country",
        "target_price.currency",
        "quantity",
        "incoterm",
    }
    with pytest.raises(grpc.aio.AioRpcError) as unmatched:
        await platform.expo.SubmitIntent(
            rfq(edition_id, "m", MOTORS), metadata=as_buyer, timeout=10
        )
    assert unmatched.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "8501" in unmatched.value.details()

    # A retry sends the very same request (a request id names one request).
    r0 = rfq(edition_id, "r0")
    first = await platform.expo.SubmitIntent(r0, metadata=as_buyer, timeout=10)
    retried = await platform.expo.SubmitIntent(r0, metadata=as_buyer, timeout=10)
    assert retried.intent == first.intent  # same request id: no second intent
    for n in range(1, 5):
        await platform.expo.SubmitIntent(rfq(edition_id, f"r{n}"), metadata=as_buyer, timeout=10)
    with pytest.raises(grpc.aio.AioRpcError) as limited:
        await platform.expo.SubmitIntent(rfq(edition_id, "r5"), metadata=as_buyer, timeout=10)
    assert limited.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    platform.clock.offset = timedelta(days=15)  # past every deadline
    # The deadline is checked when an intent is submitted: a retry of an accepted one gets
    # its first answer, a new one the deadline's field violation.
    late_retry = await platform.expo.SubmitIntent(r0, metadata=as_buyer, timeout=10)
    assert late_retry.intent == first.intent
    with pytest.raises(grpc.aio.AioRpcError) as past:
        await platform.expo.SubmitIntent(rfq(edition_id, "r-late"), metadata=as_buyer, timeout=10)
    assert past.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(past.value) == {"deadline": "must be in the future"}
    with pytest.raises(grpc.aio.AioRpcError) as expired:
        await platform.expo.RespondToIntent(
            pb.RespondToIntentRequest(
                request_id="late",
                intent_id=first.intent.intent_id,
                kind=res.RESPONSE_KIND_DECLINED,
            ),
            metadata=platform.ids.exporter(codes[0]),
            timeout=10,
        )
    assert expired.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    reply = await platform.expo.ListIntents(
        pb.ListIntentsRequest(edition_id=edition_id), metadata=as_buyer, timeout=10
    )
    states = Counter(i.state for i in reply.intents)
    assert states[res.INTENT_STATE_EXPIRED] >= 1

    async def intent_states() -> list[int]:
        reply = await platform.expo.ListIntents(
            pb.ListIntentsRequest(edition_id=edition_id, buyer_id=buyer.buyer_id),
            metadata=platform.ids.officer(),
            timeout=10,
        )
        return [i.state for i in reply.intents]

    # The background sweep expires the rest within a few seconds.
    await eventually(intent_states, equals=[res.INTENT_STATE_EXPIRED] * 5, within_seconds=10)


async def test_visits_are_recorded_once_per_visit_id(platform: Platform, unique: str) -> None:
    codes = await register_exporters(platform.booth, 1, seed=15, identities=platform.ids)
    fair_id = await fair_with_booths(platform, unique, codes, quota=1)
    edition_id = await open_edition(platform, unique, fair_id, online_only=False)
    await join(platform, edition_id, codes[0])
    buyers = [await register_buyer(platform, f"Buyer{n}", c) for n, c in enumerate(["US", "NG"])]
    visits = [
        pb.Visit(visit_id=f"v{n}", buyer_id=buyers[n % 2].buyer_id, credit_code=codes[0])
        for n in range(10)
    ]
    # The expo front end reports its buyers' visits.
    front_end = platform.ids.service("expo-web")
    first = await platform.expo.RecordVisits(
        pb.RecordVisitsRequest(request_id="v-1", edition_id=edition_id, visits=visits),
        metadata=front_end,
        timeout=10,
    )
    again = await platform.expo.RecordVisits(
        pb.RecordVisitsRequest(request_id="v-2", edition_id=edition_id, visits=visits[5:]),
        metadata=front_end,
        timeout=10,
    )
    assert (first.recorded, again.recorded) == (10, 0)
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await platform.expo.RecordVisits(
            pb.RecordVisitsRequest(
                request_id="v-3",
                edition_id=edition_id,
                visits=[
                    pb.Visit(visit_id="x", buyer_id="nobody", credit_code=random_credit_code())
                ],
            ),
            metadata=front_end,
            timeout=10,
        )
    assert unknown.value.code() == grpc.StatusCode.INVALID_ARGUMENT
