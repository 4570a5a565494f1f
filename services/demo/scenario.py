"""Plays the Xuchang case through the platform's public gRPC APIs: 127 exporters apply
for a quota of 43 booths, a cloud expo opens, 68,000 buyers from 143 countries and
regions visit and send 7,442 purchase intents, overseas warehouses are registered and
booked. Each of them calls with a token of its own (demo.principals), as the bureau's
identity provider would issue it. Every call carries a deterministic request id and the
same content on every play (its dates count from the first play), so playing it again,
on any day, changes nothing and the figures stay the case's.

Notify tells people what happened to them: before the fair opens a few exporters give it
an e-mail address (one reads English), and so do a few buyers before their intents are
answered. Notify is not on the figures' path: a call to it that fails or is slow is
logged and the play goes on, and `notified` reports afterwards what it made."""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pycountry
from google.protobuf.field_mask_pb2 import FieldMask
from tqdm import tqdm

from chuhai.booth.v1 import booth_service_pb2 as booth_pb
from chuhai.booth.v1 import booth_service_pb2_grpc as booth_grpc
from chuhai.booth.v1 import resources_pb2 as booth_res
from chuhai.bureau.v1 import bureau_service_pb2 as bureau_pb
from chuhai.bureau.v1 import bureau_service_pb2_grpc as bureau_grpc
from chuhai.expo.v1 import expo_service_pb2 as expo_pb
from chuhai.expo.v1 import expo_service_pb2_grpc as expo_grpc
from chuhai.expo.v1 import resources_pb2 as expo_res
from chuhai.notify.v1 import notify_service_pb2 as notify_pb
from chuhai.notify.v1 import notify_service_pb2_grpc as notify_grpc
from chuhai.notify.v1 import resources_pb2 as notify_res
from chuhai.warehouse.v1 import resources_pb2 as wh_res
from chuhai.warehouse.v1 import warehouse_service_pb2 as wh_pb
from chuhai.warehouse.v1 import warehouse_service_pb2_grpc as wh_grpc
from demo.principals import OFFICER, OPERATOR_ID, Credentials
from runtime.adapters.grpc_client import service_channel
from runtime.adapters.timestamps import timestamp
from runtime.adapters.tokens import TokenIssuer
from runtime.kernel.credit_code import ALPHABET, check_character
from runtime.kernel.identity import Principal, Role

T = TypeVar("T")

log = logging.getLogger("chuhai.demo")

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
# Exporters (the first ones; the last of them reads English) and buyers who give notify
# an e-mail address. Exporters hear of RFQs in the platform only: an RFQ reaches every
# exhibitor of its HS heading, a few hundred each, which would bury the rest of their mail.
EMAIL_EXPORTERS = 4
EMAIL_BUYERS = 2
# A call to notify that takes longer than this is given up: the demo does not wait for it.
NOTIFY_TIMEOUT = 5.0


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
    # Empty: the play tells notify nothing and nobody is notified of it.
    notify: str = ""


@dataclass(frozen=True)
class Recipient:
    """Someone the demo's calls notify, with the notifications (and of them e-mails) the
    play made for it at least. Lower bounds: notify also tells of what the play does not
    count (scores, a fair opening, a quota filled)."""

    role: Role
    party: str = ""
    email: str = ""
    language: str = ""
    notifications: int = 0
    emails: int = 0

    @property
    def principal(self) -> Principal:
        if self.role is Role.OFFICER:
            return OFFICER
        return Principal(
            subject=f"{self.role.value}-{self.party}", role=self.role, party=self.party
        )

    @property
    def label(self) -> str:
        return "the bureau's officers" if self.role is Role.OFFICER else f"{self.role} {self.party}"


@dataclass(frozen=True)
class Played:
    """The bureau's figures at the end of a play, and whom the play notified."""

    figures: dict[str, int]
    recipients: tuple[Recipient, ...] = ()

    @property
    def example_exporter(self) -> str:
        """An exporter worth looking at: the first with an e-mail address."""
        return next((r.party for r in self.recipients if r.role is Role.EXPORTER), "")


@dataclass(frozen=True)
class Notified:
    """What notify holds for a play's recipients: unread notifications each, e-mails the
    mail catcher caught (None without one), whether notify had caught up with the play
    when the wait ended, and why notify could not be asked, if it could not."""

    unread: tuple[tuple[Recipient, int], ...] = ()
    emails: int | None = None
    caught_up: bool = False
    error: str = ""


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
        # Without notify (the bench's plays) nobody subscribes; the figures need none of it.
        notify = channels.get("notify")
        self.notify = notify_grpc.NotifyServiceStub(notify) if notify is not None else None
        self.scale = scale
        self.pace = pace
        self.credentials = credentials
        # When the case was first played (see first_played); set by play().
        self.started = datetime.now(UTC).replace(microsecond=0)
        self.rng = random.Random(2022)
        self.exporters: list[tuple[str, Industry]] = []
        self.products: dict[str, list[str]] = {}  # credit code -> product HS codes
        self.buyers: list[tuple[str, str]] = []  # (buyer id, country)
        # Whom the play follows in notify: (role, party) -> (e-mail, language), and the
        # notifications and e-mails its calls made for each at least.
        self.followed: dict[tuple[Role, str], tuple[str, str]] = {
            (Role.OFFICER, ""): ("", ""),
            (Role.OPERATOR, OPERATOR_ID): ("", ""),
        }
        self.notifications: Counter[tuple[Role, str]] = Counter()
        self.emails: Counter[tuple[Role, str]] = Counter()

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

    def _expect(self, role: Role, party: str, *, email: bool = True) -> None:
        """Count a notification the last call made for a followed reader, and its e-mail
        when the reader gave an address and takes this kind by e-mail."""
        address = self.followed.get((role, party))
        if address is None:
            return
        self.notifications[role, party] += 1
        if email and address[0]:
            self.emails[role, party] += 1

    def recipients(self) -> tuple[Recipient, ...]:
        return tuple(
            Recipient(
                role,
                party,
                email,
                language,
                self.notifications[role, party],
                self.emails[role, party],
            )
            for (role, party), (email, language) in self.followed.items()
        )

    async def _tell_notify(self, what: str, calls: Sequence[Awaitable[Any]]) -> int:
        """Run notify calls together, each within NOTIFY_TIMEOUT; return how many
        succeeded. Failures are logged once and the play goes on: notify down or slow
        costs the demo its notifications, never its figures."""
        results = await asyncio.gather(
            *(asyncio.wait_for(call, NOTIFY_TIMEOUT) for call in calls), return_exceptions=True
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        for error in failed:
            if not isinstance(error, grpc.aio.AioRpcError | TimeoutError):
                raise error
        if failed:
            first = failed[0]
            reason = first.code().name if isinstance(first, grpc.aio.AioRpcError) else "timeout"
            log.warning(
                "notify did not take the demo's calls; the demo goes on without them",
                extra={"what": what, "failed": len(failed), "calls": len(results), "first": reason},
            )
        return len(results) - len(failed)

    def _preferences(
        self, request_id: str, email: str, language: str, **more: Any
    ) -> notify_pb.UpdatePreferencesRequest:
        return notify_pb.UpdatePreferencesRequest(
            request_id=request_id,
            preferences=notify_res.Preferences(email=email, language=language, **more),
            update_mask=FieldMask(paths=["email", "language", *more]),
        )

    async def subscribe_exporters(self) -> None:
        """The first exporters give notify an address before the fair opens: they follow
        the fair's headings of their products and hear of RFQs in the platform only."""
        if self.notify is None:
            return
        count = min(EMAIL_EXPORTERS, len(self.exporters))
        calls = []
        for index, (code, _) in enumerate(self.exporters[:count]):
            email = f"sales{index + 1:03d}@xuchang-exporters.example.com"
            language = "en" if index == count - 1 else "zh"
            self.followed[Role.EXPORTER, code] = (email, language)
            request = self._preferences(
                f"demo-preferences-{code}",
                email,
                language,
                fair_hs_headings=sorted({hs[:4] for hs in self.products[code]}),
                kinds=[
                    notify_res.KindChannels(
                        kind=notify_res.NOTIFICATION_KIND_RFQ_MATCHED,
                        channels=[notify_res.CHANNEL_IN_APP],
                    )
                ],
            )
            calls.append(
                self.notify.UpdatePreferences(
                    request, timeout=NOTIFY_TIMEOUT, metadata=self.credentials.exporter(code)
                )
            )
        done = await self._tell_notify("exporters' preferences", calls)
        tqdm.write(f"exporters who gave notify an e-mail address: {done}", file=sys.stdout)

    async def subscribe_buyers(self, buyer_ids: Sequence[str]) -> None:
        if self.notify is None:
            return
        calls = []
        for buyer_id in buyer_ids:
            email = f"buyer-{buyer_id[:8]}@example.com"
            self.followed[Role.BUYER, buyer_id] = (email, "en")
            request = self._preferences(f"demo-preferences-{buyer_id}", email, "en")
            calls.append(
                self.notify.UpdatePreferences(
                    request, timeout=NOTIFY_TIMEOUT, metadata=self.credentials.buyer(buyer_id)
                )
            )
        done = await self._tell_notify("buyers' preferences", calls)
        tqdm.write(f"buyers who gave notify an e-mail address: {done}", file=sys.stdout)

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
            self._expect(Role.OPERATOR, OPERATOR_ID)

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
        await self.subscribe_exporters()
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
        # The officers hear the run completed; each applicant, what became of its
        # application (allocated, waitlisted or rejected).
        self._expect(Role.OFFICER, "")
        for code, _ in self.exporters:
            self._expect(Role.EXPORTER, code)

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
        # (intent number, intent id, recipient answering, whether it quotes)
        answers: list[tuple[int, str, str, bool]] = []
        buyer_of: dict[str, str] = {}

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
            # Each exhibitor it reached hears of it; RFQs in the platform only.
            for recipient in reply.intent.recipients:
                self._expect(Role.EXPORTER, recipient, email=not rfq)
            buyer_of[reply.intent.intent_id] = buyer_id
            # Some exhibitors answer, mostly with a quote (a sample: every answer updates
            # an intent, and SecantusDB's updates scan the collection). Drawn per
            # (intent, exhibitor), so a replay makes the same choices.
            for recipient in reply.intent.recipients[:1]:
                choice = random.Random(f"{reply.intent.intent_id}:{recipient}")
                if choice.random() < 0.12:
                    quoted = choice.random() < 0.75
                    answers.append((number, reply.intent.intent_id, recipient, quoted))

        await self._each("purchase intents", list(enumerate(senders)), submit)
        answers.sort()
        # The buyers of the first intents to be quoted give notify an address first.
        quoted_buyers = dict.fromkeys(
            buyer_of[intent] for _, intent, _, quoted in answers if quoted
        )
        await self.subscribe_buyers(list(quoted_buyers)[:EMAIL_BUYERS])
        valid_until = timestamp(self.started + timedelta(days=60))

        async def answer(item: tuple[int, tuple[int, str, str, bool]]) -> None:
            number, (_, intent_id, recipient, quoted) = item
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
                return
            if quoted:
                self._expect(Role.BUYER, buyer_of[intent_id])

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
) -> Played:
    """Play the case with tokens signed by ``tokens`` (an issuer the services trust),
    over TLS with ``credentials`` when the platform serves it; return the bureau's
    headline figures once they match (or after waiting ten minutes for its stream to
    catch up), and whom the play notified."""
    channels = {
        name: service_channel(address, credentials=credentials)
        for name, address in vars(targets).items()
        if address
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
        figures = await demo.bureau_figures(expected_figures(scale), within_seconds=600)
        return Played(figures, demo.recipients() if demo.notify else ())
    finally:
        for channel in channels.values():
            await channel.close()


async def notified(
    played: Played,
    target: str,
    tokens: TokenIssuer,
    *,
    credentials: grpc.ChannelCredentials | None = None,
    mail_dir: Path | None = None,
    within_seconds: float = 120.0,
) -> Notified:
    """Wait until notify has at least the notifications the play made for each of its
    recipients and the mail catcher keeping its messages in ``mail_dir`` (if there is
    one) at least their e-mails, or ``within_seconds`` passed; report what is there.
    Notify not answering ends the wait at once: it is reported, never raised."""
    wanted_emails = sum(r.emails for r in played.recipients)
    calls = Credentials(tokens)
    deadline = time.monotonic() + within_seconds
    async with service_channel(target, credentials=credentials) as channel:
        stub = notify_grpc.NotifyServiceStub(channel)
        while True:
            try:
                unread = await asyncio.gather(
                    *(
                        stub.CountUnread(
                            notify_pb.CountUnreadRequest(),
                            timeout=NOTIFY_TIMEOUT,
                            metadata=calls.of(recipient.principal),
                        )
                        for recipient in played.recipients
                    )
                )
            except grpc.aio.AioRpcError as error:
                return Notified(error=f"{error.code().name}: {error.details()}")
            counts = tuple(
                (recipient, reply.unread_count)
                for recipient, reply in zip(played.recipients, unread, strict=True)
            )
            emails = None if mail_dir is None else await asyncio.to_thread(caught_emails, mail_dir)
            caught_up = all(count >= r.notifications for r, count in counts) and (
                emails is None or emails >= wanted_emails
            )
            if caught_up or time.monotonic() >= deadline:
                return Notified(counts, emails, caught_up)
            await asyncio.sleep(0.5)


def caught_emails(mail_dir: Path) -> int:
    """How many messages the mail catcher (launcher.mailbox) keeps in ``mail_dir``: one
    ``.eml`` file each (its page lists only the newest)."""
    return len(list(mail_dir.glob("*.eml"))) if mail_dir.is_dir() else 0
