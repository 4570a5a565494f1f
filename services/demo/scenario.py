"""Plays the Xuchang case through the platform's public gRPC APIs: 127 exporters apply
for a quota of 43 booths, a cloud expo opens, 68,000 buyers from 143 countries and
regions visit and send 7,442 purchase intents, overseas warehouses are registered and
booked. Each of them calls with a token of its own (demo.principals), as the bureau's
identity provider would issue it. Every call carries a deterministic request id and the
same content on every play (its dates count from the first play), so playing it again,
on any day, changes nothing and the figures stay the case's."""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import grpc
import pycountry
from tqdm import tqdm

from chuhai.booth.v1 import booth_service_pb2 as booth_pb
from chuhai.booth.v1 import booth_service_pb2_grpc as booth_grpc
from chuhai.booth.v1 import resources_pb2 as booth_res
from chuhai.bureau.v1 import bureau_service_pb2 as bureau_pb
from chuhai.bureau.v1 import bureau_service_pb2_grpc as bureau_grpc
from chuhai.expo.v1 import expo_service_pb2 as expo_pb
from chuhai.expo.v1 import expo_service_pb2_grpc as expo_grpc
from chuhai.expo.v1 import resources_pb2 as expo_res
from chuhai.warehouse.v1 import resources_pb2 as wh_res
from chuhai.warehouse.v1 import warehouse_service_pb2 as wh_pb
from chuhai.warehouse.v1 import warehouse_service_pb2_grpc as wh_grpc
from demo.principals import OPERATOR_ID, Credentials
from runtime.adapters.grpc_client import service_channel
from runtime.adapters.timestamps import timestamp
from runtime.adapters.tokens import TokenIssuer
from runtime.kernel.credit_code import ALPHABET, check_character

T = TypeVar("T")

BATCH = 500
CONCURRENCY = 12
# Batches of 500 are transactions of a thousand writes: a few at a time is faster than
# many that conflict.
BATCH_CONCURRENCY = 3
CALL_TIMEOUT = 120.0
FAIR_ID = "canton-fair-132"
EDITION_ID = "xuchang-cloud-expo-2022"
# Xuchang's administrative division code, in every generated credit code.
XUCHANG_DIVISION = "411000"
DISTRICTS = ("魏都区", "建安区", "禹州市", "长葛市", "鄢陵县", "襄城县")
# Days from the first play to the fair's application deadline.
APPLICATION_DAYS = 15


@dataclass(frozen=True)
class Industry:
    name: str
    products: tuple[tuple[str, str], ...]  # (product, HS code)


INDUSTRIES = (
    Industry("hair products", (("human hair wigs", "670420"), ("hair extensions", "670490"))),
    Industry(
        "power equipment",
        (("electric motors", "850152"), ("transformers", "850423"), ("power cables", "854449")),
    ),
    Industry(
        "agricultural processing",
        (("dried vegetables", "071290"), ("preserved fruit", "200899"), ("bakery goods", "190590")),
    ),
)


@dataclass(frozen=True)
class Scale:
    exporters: int = 127
    booth_quota: int = 43
    buyers: int = 68_000
    countries: int = 143
    intents: int = 7_442
    warehouses: int = 12


XUCHANG = Scale()


@dataclass(frozen=True)
class Targets:
    booth: str
    expo: str
    warehouse: str
    bureau: str


# (code, country, city, latitude, longitude, other countries it delivers to)
WAREHOUSE_SITES = (
    ("DE-HAM-01", "DE", "Hamburg", 53.55, 9.99, ("PL", "NL", "AT")),
    ("US-LAX-01", "US", "Los Angeles", 34.05, -118.24, ("MX", "CA")),
    ("NG-LOS-01", "NG", "Lagos", 6.52, 3.38, ("GH", "BJ")),
    ("AE-DXB-01", "AE", "Dubai", 25.20, 55.27, ("SA", "OM")),
    ("RU-MOW-01", "RU", "Moscow", 55.76, 37.62, ("KZ", "BY")),
    ("BR-SAO-01", "BR", "São Paulo", -23.55, -46.63, ("AR", "UY")),
    ("MY-KUL-01", "MY", "Kuala Lumpur", 3.14, 101.69, ("SG",)),
    ("ID-JKT-01", "ID", "Jakarta", -6.21, 106.85, ()),
    ("PL-POZ-01", "PL", "Poznań", 52.41, 16.93, ("DE", "CZ")),
    ("ZA-JNB-01", "ZA", "Johannesburg", -26.20, 28.05, ("BW", "NA")),
    ("TH-BKK-01", "TH", "Bangkok", 13.76, 100.50, ("LA", "KH")),
    ("GB-FXT-01", "GB", "Felixstowe", 51.96, 1.35, ("IE",)),
)


def credit_code(rng: random.Random) -> str:
    body = "91" + XUCHANG_DIVISION + "".join(rng.choice(ALPHABET) for _ in range(9))
    return body + check_character(body)


class Demo:
    def __init__(
        self,
        channels: dict[str, grpc.aio.Channel],
        scale: Scale,
        pace: float,
        credentials: Credentials,
    ) -> None:
        # One channel per service; who calls is each call's metadata.
        self.booth = booth_grpc.BoothServiceStub(channels["booth"])
        self.expo = expo_grpc.ExpoServiceStub(channels["expo"])
        self.warehouse = wh_grpc.WarehouseServiceStub(channels["warehouse"])
        self.bureau = bureau_grpc.BureauServiceStub(channels["bureau"])
        self.scale = scale
        self.pace = pace
        self.credentials = credentials
        # When the case was first played (see first_played); set by play().
        self.started = datetime.now(UTC).replace(microsecond=0)
        self.rng = random.Random(2022)
        self.exporters: list[tuple[str, Industry]] = []
        self.products: dict[str, list[str]] = {}  # credit code -> product HS codes
        self.buyers: list[tuple[str, str]] = []  # (buyer id, country)

    async def first_played(self) -> datetime:
        """When the case was first played on this platform: now, unless the fair exists.
        Every date the requests carry counts from it, since a request id reused with
        other content is refused (REQUEST_ID_REUSED): a replay, even days later, must
        send exactly the requests of the first play."""
        try:
            reply = await self.booth.GetFair(
                booth_pb.GetFairRequest(fair_id=FAIR_ID),
                timeout=CALL_TIMEOUT,
                metadata=self.credentials.officer(),
            )
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise
            # Whole seconds: the fair's deadline gives them back exactly.
            return datetime.now(UTC).replace(microsecond=0)
        deadline = reply.fair.booth_quotas[0].application_deadline.ToDatetime(UTC)
        return deadline - timedelta(days=APPLICATION_DAYS)

    async def _pause(self, seconds: float) -> None:
        if self.pace:
            await asyncio.sleep(seconds * self.pace)

    async def _each(
        self,
        label: str,
        items: Sequence[T],
        call: Callable[[T], Awaitable[Any]],
        concurrency: int = CONCURRENCY,
        units: int | None = None,
    ) -> list[Any]:
        """Run ``call`` for every item, a few at a time, with a progress bar; the rate
        printed at the end counts ``units`` (the buyers of batches), else the items."""
        limit = asyncio.Semaphore(concurrency)
        bar = tqdm(total=len(items), desc=label, unit="", file=sys.stdout, leave=True)

        async def one(item: T) -> Any:
            async with limit:
                result = await call(item)
                bar.update(1)
                await self._pause(0.01)
                return result

        started = time.perf_counter()
        try:
            results = await asyncio.gather(*(one(item) for item in items))
        finally:
            bar.close()
        # Each phase's rate when it ends: what `make bench` reads from a full-speed play.
        seconds = time.perf_counter() - started
        done = len(items) if units is None else units
        rate = done / seconds if seconds else 0.0
        tqdm.write(f"{label}: {done} in {seconds:.1f} s ({rate:.1f}/s)", file=sys.stdout)
        return results

    async def warehouses(self) -> None:
        today = self.started.date()
        sites = WAREHOUSE_SITES[: self.scale.warehouses]

        async def register(site: tuple) -> None:
            code, country, city, latitude, longitude, delivers = site
            await self.warehouse.RegisterWarehouse(
                wh_pb.RegisterWarehouseRequest(
                    request_id=f"demo-wh-{code}",
                    code=code,
                    profile=wh_res.WarehouseProfile(
                        name=f"Xuchang public overseas warehouse {city}",
                        operator=wh_res.Operator(
                            kind=wh_res.OPERATOR_KIND_SERVICE_FIRM, name="Henan Overseas Logistics"
                        ),
                        country_code=country,
                        city=city,
                        address=f"1 Logistics Park, {city}",
                        location=wh_res.GeoPoint(latitude=latitude, longitude=longitude),
                        area_m2=12_000,
                        capacity=wh_res.Space(pallet_positions=2_000, cubic_metres=20_000),
                        services=[
                            wh_res.LOGISTICS_SERVICE_CUSTOMS_CLEARANCE,
                            wh_res.LOGISTICS_SERVICE_STORAGE,
                            wh_res.LOGISTICS_SERVICE_LAST_MILE_DELIVERY,
                            wh_res.LOGISTICS_SERVICE_EXHIBITION_SHOWROOM,
                        ],
                        recognition=wh_res.PublicRecognition(
                            recognised_by="Henan Provincial Department of Commerce",
                            since="2021-06-01",
                        ),
                        delivery_countries=list(delivers),
                    ),
                ),
                timeout=CALL_TIMEOUT,
                metadata=self.credentials.operator(OPERATOR_ID),
            )

        await self._each("overseas warehouses", sites, register)
        codes = [site[0] for site in sites]

        async def book(index: int) -> None:
            exporter, _ = self.exporters[index % len(self.exporters)]
            # Some bookings start on the first play's day, so the dashboard shows
            # utilisation at once.
            start = today + timedelta(days=index % 3 * 7)
            await self.warehouse.ReserveCapacity(
                wh_pb.ReserveCapacityRequest(
                    request_id=f"demo-booking-{index}",
                    warehouse_code=codes[index % len(codes)],
                    space=wh_res.Space(pallet_positions=50 + 25 * (index % 8), cubic_metres=0),
                    start_date=start.isoformat(),
                    end_date=(start + timedelta(days=60)).isoformat(),
                ),
                timeout=CALL_TIMEOUT,
                metadata=self.credentials.exporter(exporter),
            )

        await self._each("warehouse bookings", list(range(3 * len(codes))), book)

    async def exporters_apply(self) -> None:
        # Drawn before any call: concurrent calls finish in any order, and the same
        # request ids must always carry the same content.
        profiles: dict[str, dict[str, Any]] = {}
        for index in range(self.scale.exporters):
            code, industry = credit_code(self.rng), INDUSTRIES[index % len(INDUSTRIES)]
            self.exporters.append((code, industry))
            products = [p for p in industry.products if self.rng.random() < 0.7] or [
                industry.products[0]
            ]
            self.products[code] = [hs for _, hs in products]
            profiles[code] = {
                "export_turnover_usd": self.rng.randrange(200_000, 60_000_000),
                "specialised_innovative": self.rng.random() < 0.2,
                "brand_owner": self.rng.random() < 0.3,
                "high_tech_enterprise": self.rng.random() < 0.15,
                "past_fairs": [f"Canton Fair {n}" for n in range(self.rng.randrange(4))],
                "main_products": [booth_res.Product(name=n, hs_code=h) for n, h in products],
            }

        async def register(item: tuple[int, tuple[str, Industry]]) -> None:
            index, (code, industry) = item
            await self.booth.RegisterExporter(
                booth_pb.RegisterExporterRequest(
                    request_id=f"demo-exporter-{code}",
                    credit_code=code,
                    profile=booth_pb.ExporterProfile(
                        name=f"许昌出海企业{index + 1:03d}",
                        district=DISTRICTS[index % len(DISTRICTS)],
                        industry=industry.name,
                        **profiles[code],
                    ),
                ),
                timeout=CALL_TIMEOUT,
                metadata=self.credentials.exporter(code),
            )

        await self._each("exporters registered", list(enumerate(self.exporters)), register)
        now = self.started
        opens = (now + timedelta(days=45)).date()
        await self.booth.CreateFair(
            booth_pb.CreateFairRequest(
                request_id=f"demo-{FAIR_ID}",
                fair_id=FAIR_ID,
                name="China Import and Export Fair (Canton Fair)",
                organiser="Ministry of Commerce; People's Government of Guangdong Province",
                session="132nd",
                venue="Guangzhou, China Import and Export Fair Complex",
                phases=[
                    booth_res.Phase(
                        name="Phase 1",
                        starts_on=opens.isoformat(),
                        ends_on=(opens + timedelta(days=4)).isoformat(),
                    )
                ],
                zones=[
                    booth_res.Zone(code="A-HAIR", name="Hair products", hs_headings=["6704"]),
                    booth_res.Zone(
                        code="B-POWER", name="Power equipment", hs_headings=["8501", "8504", "8544"]
                    ),
                    booth_res.Zone(
                        code="C-FOOD", name="Processed food", hs_headings=["0712", "1905", "2008"]
                    ),
                ],
                booth_quotas=[
                    booth_res.BoothQuota(
                        booth_type=booth_res.BOOTH_TYPE_STANDARD,
                        quota=self.scale.booth_quota,
                        application_deadline=timestamp(now + timedelta(days=APPLICATION_DAYS)),
                        allocation_deadline=timestamp(now + timedelta(days=30)),
                        fee_fen=2_500_000,
                    )
                ],
            ),
            timeout=CALL_TIMEOUT,
            metadata=self.credentials.officer(),
        )
        await self.booth.OpenFair(
            booth_pb.OpenFairRequest(request_id=f"demo-open-{FAIR_ID}", fair_id=FAIR_ID),
            timeout=CALL_TIMEOUT,
            metadata=self.credentials.officer(),
        )

        async def apply(item: tuple[str, Industry]) -> None:
            code, _ = item
            await self.booth.SubmitApplication(
                booth_pb.SubmitApplicationRequest(
                    request_id=f"demo-apply-{code}",
                    fair_id=FAIR_ID,
                    booth_type=booth_res.BOOTH_TYPE_STANDARD,
                    main_product_hs_code=self.products[code][0],
                ),
                timeout=CALL_TIMEOUT,
                metadata=self.credentials.exporter(code),
            )

        await self._each("booth applications", self.exporters, apply)
        await self._pause(1.0)
        result = await self.booth.RunAllocation(
            booth_pb.RunAllocationRequest(
                request_id=f"demo-allocate-{FAIR_ID}",
                fair_id=FAIR_ID,
                booth_type=booth_res.BOOTH_TYPE_STANDARD,
            ),
            timeout=CALL_TIMEOUT,
            metadata=self.credentials.officer(),
        )
        tqdm.write(
            f"booths allocated: {result.allocated_total} of {result.quota}; "
            f"{result.newly_waitlisted} on the waitlist",
            file=sys.stdout,
        )

    async def expo_opens(self) -> None:
        await self.expo.CreateEdition(
            expo_pb.CreateEditionRequest(
                request_id=f"demo-{EDITION_ID}",
                edition_id=EDITION_ID,
                name="Xuchang Digital Cloud Expo 2022",
                fair_id=FAIR_ID,
                starts_on="2022-06-01",
                ends_on="2022-12-31",
                allow_online_only=True,
            ),
            timeout=CALL_TIMEOUT,
            metadata=self.credentials.officer(),
        )
        await self.expo.OpenEdition(
            expo_pb.OpenEditionRequest(request_id=f"demo-open-{EDITION_ID}", edition_id=EDITION_ID),
            timeout=CALL_TIMEOUT,
            metadata=self.credentials.officer(),
        )

        async def join(item: tuple[str, Industry]) -> None:
            code, industry = item
            exporter = self.credentials.exporter(code)
            await self.expo.JoinEdition(
                expo_pb.JoinEditionRequest(request_id=f"demo-join-{code}", edition_id=EDITION_ID),
                timeout=CALL_TIMEOUT,
                metadata=exporter,
            )
            names = dict((hs, name) for name, hs in industry.products)
            for hs_code in self.products[code]:
                await self.expo.PublishProduct(
                    expo_pb.PublishProductRequest(
                        request_id=f"demo-product-{code}-{hs_code}",
                        edition_id=EDITION_ID,
                        name=names[hs_code],
                        hs_code=hs_code,
                        moq=100,
                        unit="piece",
                        price_min=expo_res.Money(currency="USD", units=5),
                        price_max=expo_res.Money(currency="USD", units=500),
                    ),
                    timeout=CALL_TIMEOUT,
                    metadata=exporter,
                )

        await self._each("exhibitors and showrooms", self.exporters, join)

    def _countries(self) -> list[str]:
        everywhere = sorted(c.alpha_2 for c in pycountry.countries if c.alpha_2 != "AQ")
        return random.Random(143).sample(everywhere, self.scale.countries)

    async def buyers_visit(self) -> None:
        countries = self._countries()
        # Every country at least once, the rest weighted towards the first ones listed.
        weights = [1 / (1 + rank) for rank in range(len(countries))]
        picks = countries + self.rng.choices(
            countries, weights, k=self.scale.buyers - len(countries)
        )
        batches = [picks[i : i + BATCH] for i in range(0, len(picks), BATCH)]

        # The bureau imports the delegations in bulk; each buyer gets a token bound to
        # its id when it first acts.
        async def register(item: tuple[int, list[str]]) -> list[tuple[str, str]]:
            number, batch = item
            reply = await self.expo.RegisterBuyers(
                expo_pb.RegisterBuyersRequest(
                    request_id=f"demo-buyers-{number}",
                    buyers=[
                        expo_pb.NewBuyer(
                            company=f"Overseas buyer {number * BATCH + i + 1}",
                            country=country,
                            buyer_type=expo_res.BUYER_TYPE_NEW,
                            contact=expo_res.Contact(
                                name="Purchasing",
                                email=f"buyer{number * BATCH + i + 1}@example.com",
                            ),
                        )
                        for i, country in enumerate(batch)
                    ],
                ),
                timeout=CALL_TIMEOUT,
                metadata=self.credentials.officer(),
            )
            return [(b.buyer_id, b.country) for b in reply.buyers]

        for registered in await self._each(
            f"buyers registered (x{BATCH})",
            list(enumerate(batches)),
            register,
            BATCH_CONCURRENCY,
            units=len(picks),
        ):
            self.buyers.extend(registered)
        exhibitors = [code for code, _ in self.exporters]
        visit_batches = [self.buyers[i : i + BATCH] for i in range(0, len(self.buyers), BATCH)]

        async def visit(item: tuple[int, list[tuple[str, str]]]) -> None:
            number, batch = item
            await self.expo.RecordVisits(
                expo_pb.RecordVisitsRequest(
                    request_id=f"demo-visits-{number}",
                    edition_id=EDITION_ID,
                    visits=[
                        expo_pb.Visit(
                            visit_id=f"visit-{buyer_id}",
                            buyer_id=buyer_id,
                            credit_code=exhibitors[int(buyer_id[:8], 16) % len(exhibitors)],
                        )
                        for buyer_id, _ in batch
                    ],
                ),
                timeout=CALL_TIMEOUT,
                metadata=self.credentials.expo_web(),
            )

        await self._each(
            f"buyer visits (x{BATCH})",
            list(enumerate(visit_batches)),
            visit,
            BATCH_CONCURRENCY,
            units=len(self.buyers),
        )

    async def intents(self) -> None:
        senders = self.rng.sample(self.buyers, self.scale.intents)
        deadline = timestamp(self.started + timedelta(days=30))
        answers: list[tuple[str, str, bool]] = []

        async def submit(item: tuple[int, tuple[str, str]]) -> None:
            number, (buyer_id, country) = item
            code, _ = self.exporters[number % len(self.exporters)]
            hs_code = self.products[code][number % len(self.products[code])]
            rfq = number % 10 == 0
            reply = await self.expo.SubmitIntent(
                expo_pb.SubmitIntentRequest(
                    request_id=f"demo-intent-{number}",
                    edition_id=EDITION_ID,
                    kind=expo_res.INTENT_KIND_RFQ if rfq else expo_res.INTENT_KIND_INQUIRY,
                    exhibitor_credit_code="" if rfq else code,
                    hs_code=hs_code,
                    quantity=100 * (1 + number % 50),
                    unit="piece",
                    target_price=expo_res.Money(currency="USD", units=10 + number % 90),
                    incoterm=(expo_res.INCOTERM_FOB, expo_res.INCOTERM_CIF)[number % 2],
                    destination_country=country,
                    deadline=deadline,
                    max_quotes=3,
                ),
                timeout=CALL_TIMEOUT,
                metadata=self.credentials.buyer(buyer_id),
            )
            # Some exhibitors answer, mostly with a quote (a sample: every answer updates
            # an intent, and SecantusDB's updates scan the collection). Drawn per
            # (intent, exhibitor), so a replay makes the same choices.
            for recipient in reply.intent.recipients[:1]:
                choice = random.Random(f"{reply.intent.intent_id}:{recipient}")
                if choice.random() < 0.12:
                    answers.append((reply.intent.intent_id, recipient, choice.random() < 0.75))

        await self._each("purchase intents", list(enumerate(senders)), submit)
        valid_until = timestamp(self.started + timedelta(days=60))

        async def answer(item: tuple[int, tuple[str, str, bool]]) -> None:
            number, (intent_id, recipient, quoted) = item
            request = expo_pb.RespondToIntentRequest(
                request_id=f"demo-answer-{intent_id}-{recipient}",
                intent_id=intent_id,
            )
            if quoted:
                request.kind = expo_res.RESPONSE_KIND_QUOTED
                request.unit_price.CopyFrom(expo_res.Money(currency="USD", units=12 + number % 80))
                request.moq = 100
                request.lead_time_days = 15 + number % 30
                request.incoterm = expo_res.INCOTERM_FOB
                request.valid_until.CopyFrom(valid_until)
            else:
                request.kind = expo_res.RESPONSE_KIND_DECLINED
                request.reason = "fully booked this season"
            try:
                await self.expo.RespondToIntent(
                    request, timeout=CALL_TIMEOUT, metadata=self.credentials.exporter(recipient)
                )
            except grpc.aio.AioRpcError as error:
                # An RFQ closes once it has enough quotes; later answers are refused.
                if error.code() != grpc.StatusCode.FAILED_PRECONDITION:
                    raise

        await self._each("exhibitor answers", list(enumerate(answers)), answer)

    async def bureau_figures(
        self, expected: dict[str, int], within_seconds: float
    ) -> dict[str, int]:
        """Wait until the bureau shows the case's figures (its stream may lag the calls)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_seconds
        while True:
            reply = await self.bureau.GetStats(
                bureau_pb.GetStatsRequest(), timeout=10, metadata=self.credentials.officer()
            )
            h = reply.headline
            seen = {
                "firms_served": h.firms_served,
                "booths_allocated": h.booths_allocated,
                "countries": h.countries,
                "buyers": h.buyers,
                "intents": h.intents,
            }
            if seen == expected or loop.time() > deadline:
                return seen
            await asyncio.sleep(0.5)


def expected_figures(scale: Scale) -> dict[str, int]:
    return {
        "firms_served": scale.exporters,
        "booths_allocated": min(scale.booth_quota, scale.exporters),
        "countries": scale.countries,
        "buyers": scale.buyers,
        "intents": scale.intents,
    }


async def play(
    targets: Targets,
    scale: Scale = XUCHANG,
    *,
    pace: float = 1.0,
    tokens: TokenIssuer,
    credentials: grpc.ChannelCredentials | None = None,
) -> dict[str, int]:
    """Play the case with tokens signed by ``tokens`` (an issuer the services trust),
    over TLS with ``credentials`` when the platform serves it; return the bureau's
    headline figures once they match (or after waiting ten minutes for its stream to
    catch up)."""
    channels = {
        name: service_channel(address, credentials=credentials)
        for name, address in vars(targets).items()
    }
    try:
        demo = Demo(channels, scale, pace, Credentials(tokens))
        demo.started = await demo.first_played()
        await demo.exporters_apply()
        await demo._pause(1.0)
        await demo.warehouses()
        await demo.expo_opens()
        await demo._pause(1.0)
        await demo.buyers_visit()
        await demo.intents()
        return await demo.bureau_figures(expected_figures(scale), within_seconds=600)
    finally:
        for channel in channels.values():
            await channel.close()
