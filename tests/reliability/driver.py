"""The load driver: steady, bounded load through the public gRPC APIs of booth, expo and
warehouse, each call made by the principal who would make it, every request logged in
the History with what it must leave behind. Before the load, a few of its principals
(the officers, the operator, the first exporters and the first buyer) give notify an
e-mail address, so that what happens to them also travels by e-mail.

Retries: a call that got no definite answer (the server was killed, unreachable, or
failed unexpectedly) is retried with the same request id, as a client does, until it
gets one or its budget runs out; every attempt is logged. A definite refusal is a
status the server's error interceptor produced (it carries google.rpc details), so an
UNAVAILABLE from expo whose booth dependency is down counts as a refusal, while an
UNAVAILABLE from a dead server is retried."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.protobuf.field_mask_pb2 import FieldMask
from grpc_status import rpc_status

from chuhai.booth.v1 import booth_service_pb2 as booth_pb
from chuhai.booth.v1 import booth_service_pb2_grpc as booth_grpc
from chuhai.booth.v1 import resources_pb2 as booth_res
from chuhai.expo.v1 import expo_service_pb2 as expo_pb
from chuhai.expo.v1 import expo_service_pb2_grpc as expo_grpc
from chuhai.expo.v1 import resources_pb2 as expo_res
from chuhai.notify.v1 import notify_service_pb2 as notify_pb
from chuhai.notify.v1 import notify_service_pb2_grpc as notify_grpc
from chuhai.notify.v1 import resources_pb2 as notify_res
from chuhai.warehouse.v1 import resources_pb2 as wh_res
from chuhai.warehouse.v1 import warehouse_service_pb2 as wh_pb
from chuhai.warehouse.v1 import warehouse_service_pb2_grpc as wh_grpc
from runtime.adapters.timestamps import timestamp
from runtime.kernel.identity import Role
from tests.credit_codes import random_credit_code
from tests.identity import Identities, Metadata
from tests.integration.test_booth import fair_request
from tests.reliability.history import (
    ACKNOWLEDGED,
    FAILED,
    INDETERMINATE,
    Expectation,
    History,
    Request,
)

STANDARD = booth_res.BOOTH_TYPE_STANDARD
STANDARD_NAME = "standard"
CALL_TIMEOUT_SECONDS = 10.0
# Without a definite answer, a request is retried this long: longer than any outage the
# suite causes (a database restart takes the longest).
RETRY_BUDGET_SECONDS = 120.0
_AMBIGUOUS = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
}
_CHANNEL_OPTIONS = [
    # Reconnect to a restarted server within about a second.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
COUNTRIES = ("DE", "US", "NG", "BR", "KE", "VN", "AE", "MX")
HAIR_HS = "670420"
# Exporters and buyers, the first registered, that give notify an e-mail address.
MAIL_EXPORTERS = 2
MAIL_BUYERS = 1
MAIL_DOMAIN = "reliability.test"


def definite(error: grpc.aio.AioRpcError) -> bool:
    """Did the server itself refuse (nothing done), rather than fail somewhere unknown?"""
    if error.code() not in _AMBIGUOUS:
        return True
    # Only the service's error interceptor attaches a google.rpc.Status; a transport
    # error, a killed server or an unexpected exception (plain INTERNAL) never does.
    return rpc_status.from_call(error) is not None


class Principals:
    """Tokens for the principals the load plays, signed once each."""

    def __init__(self, identities: Identities) -> None:
        self._identities = identities
        self._tokens: dict[tuple[Role, str, str], Metadata] = {}

    def of(self, role: Role, party: str = "", subject: str = "") -> Metadata:
        key = (role, party, subject)
        if key not in self._tokens:
            self._tokens[key] = self._identities.metadata(role, party, subject=subject)
        return self._tokens[key]

    def officer(self) -> Metadata:
        return self.of(Role.OFFICER, subject="reliability-officer")

    def exporter(self, code: str) -> Metadata:
        return self.of(Role.EXPORTER, code, f"exporter-{code}")

    def operator(self, operator_id: str) -> Metadata:
        return self.of(Role.OPERATOR, operator_id, f"operator-{operator_id}")

    def buyer(self, subject: str, buyer_id: str = "") -> Metadata:
        return self.of(Role.BUYER, buyer_id, subject)

    def of_service(self, name: str) -> Metadata:
        return self.of(Role.SERVICE, name, name)


class Targets:
    """Where each service listens (booth may run as several instances), and the stubs;
    a retry moves to the service's next instance."""

    def __init__(self, addresses: dict[str, list[str]]) -> None:
        self.addresses = addresses
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._turn = itertools.count()

    def stub(self, service: str, attempt: int) -> Any:
        targets = self.addresses[service]
        target = targets[(next(self._turn) + attempt) % len(targets)]
        if target not in self._channels:
            self._channels[target] = grpc.aio.insecure_channel(target, options=_CHANNEL_OPTIONS)
        channel = self._channels[target]
        kind = {
            "booth": booth_grpc.BoothServiceStub,
            "expo": expo_grpc.ExpoServiceStub,
            "warehouse": wh_grpc.WarehouseServiceStub,
            "notify": notify_grpc.NotifyServiceStub,
        }[service]
        return kind(channel)

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()


Call = Callable[[Any], Awaitable[Any]]


@dataclass
class Buyer:
    subject: str
    buyer_id: str
    country: str
    visits: int = 0


@dataclass
class World:
    """What the load has built so far, for choosing its next requests."""

    fair_id: str
    edition_id: str
    operator_id: str
    exporters: list[str] = field(default_factory=list)
    applied: set[str] = field(default_factory=set)
    exhibitors: list[str] = field(default_factory=list)
    joining: set[str] = field(default_factory=set)
    buyers: list[Buyer] = field(default_factory=list)
    warehouses: list[tuple[str, str]] = field(default_factory=list)
    # Intents acknowledged and not quoted yet: (intent id, the exhibitor it reached).
    intents: list[tuple[str, str]] = field(default_factory=list)
    # notify reader key ("officer", "exporter:<code>", ...) -> the e-mail address it gave.
    mail: dict[str, str] = field(default_factory=dict)


class LoadDriver:
    def __init__(
        self,
        targets: Targets,
        principals: Principals,
        run_id: str,
        *,
        seed: int = 11,
        retry_budget_seconds: float = RETRY_BUDGET_SECONDS,
    ) -> None:
        self.targets = targets
        self.principals = principals
        self.history = History()
        self.run_id = run_id
        self.rng = random.Random(seed)
        self.world = World(f"fair-{run_id}", f"expo-{run_id}", f"op-{run_id}")
        self._numbers = itertools.count(1)
        self._retry_budget = retry_budget_seconds
        self.today = datetime.now(UTC).date()
        # Places taken among the first exporters and buyers that give an e-mail address.
        self._mail_places = {"exporter": MAIL_EXPORTERS, "buyer": MAIL_BUYERS}

    def request_id(self, kind: str) -> str:
        return f"{self.run_id}-{next(self._numbers):05d}-{kind}"

    # Sending ------------------------------------------------------------------------------

    async def send(self, request: Request, call: Call, *, retry: bool = True) -> Any | None:
        """Send until a definite answer (or the budget is spent); log every attempt."""
        request.started = time.monotonic()
        deadline = request.started + self._retry_budget
        for attempt in itertools.count():
            stub = self.targets.stub(request.service, attempt)
            try:
                response = await call(stub)
            except grpc.aio.AioRpcError as error:
                request.attempts.append(error.code().name)
                request.status = error.code().name
                if definite(error):
                    request.outcome = FAILED
                    request.response = (error.details() or "")[:200]
                    break
                if not retry or time.monotonic() >= deadline:
                    request.outcome = INDETERMINATE
                    break
                await asyncio.sleep(min(1.0, 0.1 * 2**attempt))
                continue
            request.attempts.append("OK")
            request.outcome, request.status = ACKNOWLEDGED, "OK"
            request.finished = time.monotonic()
            return response
        request.finished = time.monotonic()
        return None

    # The operations -----------------------------------------------------------------------

    async def setup(self) -> None:
        """The officers' and the operator's e-mail addresses, first: every notification
        for them is then made after notify knows the address; then the fair and the
        cloud expo every later request relies on (officer)."""
        world, officer = self.world, self.principals.officer()
        await self.give_email("officer", officer)
        await self.give_email(
            f"operator:{world.operator_id}", self.principals.operator(world.operator_id)
        )
        fair = fair_request(world.fair_id, quota=40)
        fair.request_id = self.request_id("create-fair")
        await self._must(
            Request(
                fair.request_id,
                "booth",
                "CreateFair",
                world.fair_id,
                expect=Expectation(
                    state=[("booth", "fairs", world.fair_id)],
                    events={"FairCreated": 1},
                    counted=[(f"booths_quota:{world.fair_id}:{STANDARD_NAME}", "quota", 40)],
                ),
            ),
            lambda stub: stub.CreateFair(fair, metadata=officer, timeout=CALL_TIMEOUT_SECONDS),
        )
        opening = booth_pb.OpenFairRequest(
            request_id=self.request_id("open-fair"), fair_id=world.fair_id
        )
        await self._must(
            Request(
                opening.request_id,
                "booth",
                "OpenFair",
                world.fair_id,
                expect=Expectation(events={"FairOpened": 1}),
            ),
            lambda stub: stub.OpenFair(opening, metadata=officer, timeout=CALL_TIMEOUT_SECONDS),
        )
        edition = expo_pb.CreateEditionRequest(
            request_id=self.request_id("create-edition"),
            edition_id=world.edition_id,
            name="Reliability cloud expo",
            fair_id=world.fair_id,
            starts_on="2026-01-01",
            ends_on="2027-12-31",
            allow_online_only=True,
        )
        await self._must(
            Request(
                edition.request_id,
                "expo",
                "CreateEdition",
                world.edition_id,
                expect=Expectation(state=[("expo", "editions", world.edition_id)]),
            ),
            lambda stub: stub.CreateEdition(
                edition, metadata=officer, timeout=CALL_TIMEOUT_SECONDS
            ),
        )
        open_edition = expo_pb.OpenEditionRequest(
            request_id=self.request_id("open-edition"), edition_id=world.edition_id
        )
        await self._must(
            Request(
                open_edition.request_id,
                "expo",
                "OpenEdition",
                world.edition_id,
                expect=Expectation(events={"ExpoOpened": 1}),
            ),
            lambda stub: stub.OpenEdition(
                open_edition, metadata=officer, timeout=CALL_TIMEOUT_SECONDS
            ),
        )

    async def give_email(self, reader: str, metadata: Metadata) -> None:
        """Give notify an address for ``reader`` (the principal of ``metadata``)."""
        address = f"{reader.replace(':', '-').lower()}@{MAIL_DOMAIN}"
        request = notify_pb.UpdatePreferencesRequest(
            request_id=self.request_id("mail"),
            preferences=notify_res.Preferences(email=address),
            update_mask=FieldMask(paths=["email"]),
        )
        await self._must(
            Request(
                request.request_id,
                "notify",
                "UpdatePreferences",
                f"{reader} <{address}>",
                expect=Expectation(state=[("notify", "preferences", reader)]),
            ),
            lambda stub: stub.UpdatePreferences(
                request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS
            ),
        )
        self.world.mail[reader] = address

    def _mail_place(self, role: str) -> bool:
        """Whether the next new ``role`` gives an address (the first few do)."""
        if self._mail_places[role] <= 0:
            return False
        self._mail_places[role] -= 1
        return True

    async def _must(self, request: Request, call: Call) -> Any:
        response = await self.send(self.history.add(request), call)
        if response is None:
            raise AssertionError(f"set-up request refused: {request}")
        return response

    async def register_exporter(self) -> str | None:
        code = random_credit_code(self.rng)
        request = booth_pb.RegisterExporterRequest(
            request_id=self.request_id("exporter"),
            credit_code=code,
            profile=booth_pb.ExporterProfile(
                name=f"许昌出海企业 {code[-5:]}",
                district="建安区",
                industry="hair products",
                main_products=[booth_res.Product(name="human hair wigs", hs_code=HAIR_HS)],
            ),
        )
        entry = self.history.add(
            Request(
                request.request_id,
                "booth",
                "RegisterExporter",
                code,
                own_state=[("booth", "exporters", code)],
                expect=Expectation(
                    state=[("booth", "exporters", code)],
                    events={"ExporterRegistered": 1},
                    counted=[("firms_served", code, 1)],
                ),
            )
        )
        metadata = self.principals.exporter(code)
        reply = await self.send(
            entry,
            lambda stub: stub.RegisterExporter(
                request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS
            ),
        )
        if reply is None:
            return None
        # Before the load can use it: nothing happens to it before notify has the address.
        if self._mail_place("exporter"):
            await self.give_email(f"exporter:{code}", metadata)
        self.world.exporters.append(code)
        return code

    async def apply(self, code: str) -> None:
        world = self.world
        world.applied.add(code)
        request = booth_pb.SubmitApplicationRequest(
            request_id=self.request_id("apply"),
            fair_id=world.fair_id,
            booth_type=STANDARD,
            main_product_hs_code=HAIR_HS,
        )
        entry = self.history.add(
            Request(request.request_id, "booth", "SubmitApplication", f"{code} -> {world.fair_id}")
        )
        metadata = self.principals.exporter(code)
        reply = await self.send(
            entry,
            lambda stub: stub.SubmitApplication(
                request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS
            ),
        )
        if reply is not None:
            application_id = reply.application.application_id
            entry.response = application_id
            entry.expect = Expectation(
                state=[("booth", "applications", application_id)],
                events={"BoothApplicationSubmitted": 1, "BoothApplicationScored": 1},
                counted=[
                    (f"booths_applied:{world.fair_id}:{STANDARD_NAME}", application_id, 1),
                    ("firms_served", code, 1),
                ],
            )

    async def allocate(self) -> None:
        world = self.world
        request = booth_pb.RunAllocationRequest(
            request_id=self.request_id("allocate"), fair_id=world.fair_id, booth_type=STANDARD
        )
        entry = self.history.add(
            Request(request.request_id, "booth", "RunAllocation", world.fair_id)
        )
        officer = self.principals.officer()
        reply = await self.send(
            entry,
            lambda stub: stub.RunAllocation(
                request, metadata=officer, timeout=CALL_TIMEOUT_SECONDS
            ),
        )
        if reply is not None:
            entry.response = f"allocated {reply.allocated_total} (+{reply.newly_allocated})"
            figure = f"booths_allocated:{world.fair_id}:{STANDARD_NAME}"
            entry.expect = Expectation(
                events={
                    kind: count
                    for kind, count in (
                        ("BoothAllocated", reply.newly_allocated),
                        ("BoothApplicationWaitlisted", reply.newly_waitlisted),
                        # Every run announces that it completed, even one with nothing to do.
                        ("AllocationCompleted", 1),
                    )
                    if count
                },
                counted=[
                    (figure, "total", reply.allocated_total),
                    ("booths_allocated", world.fair_id, reply.allocated_total),
                ],
            )

    async def join(self, code: str, *, retry: bool = True) -> Request:
        world = self.world
        world.joining.add(code)
        request = expo_pb.JoinEditionRequest(
            request_id=self.request_id("join"), edition_id=world.edition_id
        )
        key = ("expo", "exhibitors", f"{world.edition_id}:{code}")
        entry = self.history.add(
            Request(
                request.request_id,
                "expo",
                "JoinEdition",
                f"{code} -> {world.edition_id}",
                own_state=[key],
                expect=Expectation(state=[key], events={"ExhibitorJoined": 1}),
            )
        )
        metadata = self.principals.exporter(code)
        reply = await self.send(
            entry,
            lambda stub: stub.JoinEdition(request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS),
            retry=retry,
        )
        if reply is not None:
            world.exhibitors.append(code)
        else:
            world.joining.discard(code)
        return entry

    async def register_buyer(self) -> None:
        subject = f"buyer-{self.run_id}-{next(self._numbers)}"
        country = self.rng.choice(COUNTRIES)
        request = expo_pb.RegisterBuyerRequest(
            request_id=self.request_id("buyer"),
            company=f"Overseas buyer {subject[-6:]}",
            country=country,
            buyer_type=expo_res.BUYER_TYPE_NEW,
        )
        entry = self.history.add(
            Request(request.request_id, "expo", "RegisterBuyer", f"{subject} ({country})")
        )
        metadata = self.principals.buyer(subject)
        reply = await self.send(
            entry,
            lambda stub: stub.RegisterBuyer(
                request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS
            ),
        )
        if reply is not None:
            buyer_id = reply.buyer.buyer_id
            entry.response = buyer_id
            entry.expect = Expectation(
                state=[("expo", "buyers", buyer_id)], events={"BuyerRegistered": 1}
            )
            if self._mail_place("buyer"):
                await self.give_email(f"buyer:{buyer_id}", self.principals.buyer(subject, buyer_id))
            self.world.buyers.append(Buyer(subject, buyer_id, country))

    async def visit(self, buyer: Buyer, exhibitors: list[str]) -> None:
        """A buyer records its own visits to a few exhibitors (each visit once)."""
        visits = [
            expo_pb.Visit(
                visit_id=f"{buyer.buyer_id}-{buyer.visits + n}",
                buyer_id=buyer.buyer_id,
                credit_code=code,
            )
            for n, code in enumerate(exhibitors)
        ]
        buyer.visits += len(visits)
        await self.record_visits(
            visits,
            self.principals.buyer(buyer.subject, buyer.buyer_id),
            {buyer.buyer_id: buyer.country},
        )

    async def record_visits(
        self, visits: list[expo_pb.Visit], metadata: Metadata, countries: dict[str, str]
    ) -> Request:
        request = expo_pb.RecordVisitsRequest(
            request_id=self.request_id("visits"), edition_id=self.world.edition_id, visits=visits
        )
        entry = self.history.add(
            Request(request.request_id, "expo", "RecordVisits", f"{len(visits)} visits")
        )
        reply = await self.send(
            entry,
            lambda stub: stub.RecordVisits(request, metadata=metadata, timeout=30),
        )
        if reply is not None:
            entry.response = f"recorded {reply.recorded}"
            buyers = {v.buyer_id for v in visits}
            entry.expect = Expectation(
                events={"ExhibitorVisited": reply.recorded},
                counted=[("buyers", b, 1) for b in buyers]
                + [("countries", countries[b], 1) for b in buyers],
            )
        return entry

    async def submit_intent(self, buyer: Buyer, exhibitor: str) -> Request:
        request = expo_pb.SubmitIntentRequest(
            request_id=self.request_id("intent"),
            edition_id=self.world.edition_id,
            kind=expo_res.INTENT_KIND_INQUIRY,
            exhibitor_credit_code=exhibitor,
            hs_code=HAIR_HS,
            quantity=100 + self.rng.randrange(900),
            unit="piece",
            incoterm=expo_res.INCOTERM_FOB,
            destination_country=buyer.country,
            deadline=timestamp(datetime.now(UTC) + timedelta(days=20)),
        )
        entry = self.history.add(
            Request(request.request_id, "expo", "SubmitIntent", f"{buyer.buyer_id} -> {exhibitor}")
        )
        metadata = self.principals.buyer(buyer.subject, buyer.buyer_id)
        reply = await self.send(
            entry,
            lambda stub: stub.SubmitIntent(
                request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS
            ),
        )
        if reply is not None:
            intent_id = reply.intent.intent_id
            entry.response = f"{intent_id} warehouses_available={reply.warehouses_available}"
            entry.expect = Expectation(
                state=[("expo", "intents", intent_id)],
                events={"IntentSubmitted": 1},
                counted=[("intents", intent_id, 1)],
            )
            self.world.intents.append((intent_id, exhibitor))
        return entry

    async def quote(self, intent_id: str, exhibitor: str) -> None:
        """The exhibitor an inquiry reached quotes."""
        request = expo_pb.RespondToIntentRequest(
            request_id=self.request_id("quote"),
            intent_id=intent_id,
            kind=expo_res.RESPONSE_KIND_QUOTED,
            unit_price=expo_res.Money(currency="USD", units=10 + self.rng.randrange(90)),
            moq=100,
            lead_time_days=21,
            incoterm=expo_res.INCOTERM_FOB,
            valid_until=timestamp(datetime.now(UTC) + timedelta(days=30)),
        )
        entry = self.history.add(
            Request(
                request.request_id, "expo", "RespondToIntent", f"{exhibitor} quotes {intent_id}"
            )
        )
        metadata = self.principals.exporter(exhibitor)
        reply = await self.send(
            entry,
            lambda stub: stub.RespondToIntent(
                request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS
            ),
        )
        if reply is not None:
            # Enough quotes close the intent (as many as it may take, or all its recipients).
            closed = reply.intent.state == expo_res.INTENT_STATE_CLOSED
            entry.response = expo_res.IntentState.Name(reply.intent.state)
            entry.expect = Expectation(events={"QuoteSent": 1, "IntentClosed": int(closed)})

    async def register_warehouse(self) -> None:
        world = self.world
        code = f"WH-{self.run_id[:6].upper()}-{len(world.warehouses) + 1:03d}".replace("_", "")
        country = self.rng.choice(("DE", "NG", "AE"))
        pallets = 500 + 100 * self.rng.randrange(10)
        request = wh_pb.RegisterWarehouseRequest(
            request_id=self.request_id("warehouse"),
            code=code,
            profile=wh_res.WarehouseProfile(
                name=f"Public overseas warehouse {code}",
                operator=wh_res.Operator(
                    kind=wh_res.OPERATOR_KIND_SERVICE_FIRM, name="Henan Overseas Logistics"
                ),
                country_code=country,
                city="Hub",
                address="1 Logistics Park",
                location=wh_res.GeoPoint(latitude=10.0, longitude=10.0),
                area_m2=5_000,
                capacity=wh_res.Space(pallet_positions=pallets, cubic_metres=5_000),
                services=[wh_res.LOGISTICS_SERVICE_STORAGE],
                delivery_countries=list(COUNTRIES),
            ),
        )
        key = ("warehouse", "warehouses", code)
        entry = self.history.add(
            Request(
                request.request_id,
                "warehouse",
                "RegisterWarehouse",
                f"{code} ({country}, {pallets} pallets)",
                own_state=[key],
                expect=Expectation(
                    state=[key],
                    events={"WarehouseRegistered": 1},
                    counted=[
                        (f"warehouses:{country}", code, 1),
                        (f"capacity_pallets:{country}", code, pallets),
                    ],
                ),
            )
        )
        metadata = self.principals.operator(world.operator_id)
        world.warehouses.append((code, country))
        reply = await self.send(
            entry,
            lambda stub: stub.RegisterWarehouse(
                request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS
            ),
        )
        if reply is None:
            world.warehouses.remove((code, country))

    async def reserve(self, code: str, warehouse: tuple[str, str]) -> None:
        warehouse_code, country = warehouse
        pallets = 1 + self.rng.randrange(5)
        start = self.today + timedelta(days=self.rng.choice((0, 0, 7)))
        request = wh_pb.ReserveCapacityRequest(
            request_id=self.request_id("reserve"),
            warehouse_code=warehouse_code,
            space=wh_res.Space(pallet_positions=pallets, cubic_metres=0),
            start_date=start.isoformat(),
            end_date=(start + timedelta(days=30)).isoformat(),
        )
        entry = self.history.add(
            Request(
                request.request_id,
                "warehouse",
                "ReserveCapacity",
                f"{code} {pallets} pallets at {warehouse_code} from {start}",
            )
        )
        metadata = self.principals.exporter(code)
        reply = await self.send(
            entry,
            lambda stub: stub.ReserveCapacity(
                request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS
            ),
        )
        if reply is not None:
            reservation_id = reply.reservation.reservation_id
            entry.response = reservation_id
            counted = (
                [(f"reserved_pallets:{country}", reservation_id, pallets)]
                if start == self.today
                else []
            )
            entry.expect = Expectation(
                state=[("warehouse", "reservations", reservation_id)],
                events={"CapacityReserved": 1},
                counted=counted,
            )

    async def bad_input(self, number: int) -> None:
        """A request wrong on purpose, for each service in turn: refused, leaves nothing."""
        rid = self.request_id("bad")
        service = ("booth", "expo", "warehouse")[number % 3]
        officer = self.principals.officer()
        entry = self.history.add(Request(rid, service, "", "", bad_input=True))
        call: Call
        if service == "booth":
            code = random_credit_code(self.rng)
            bad = code[:-1] + ("0" if code[-1] != "0" else "1")
            booth_request = booth_pb.RegisterExporterRequest(
                request_id=rid, credit_code=bad, profile=booth_pb.ExporterProfile(name="")
            )
            entry.method, entry.summary = "RegisterExporter", f"credit code {bad} (bad check)"
            entry.own_state = [("booth", "exporters", bad)]
            metadata = self.principals.exporter(bad)

            def call(stub: Any) -> Awaitable[Any]:
                return stub.RegisterExporter(
                    booth_request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS
                )
        elif service == "expo":
            expo_request = expo_pb.RegisterBuyersRequest(
                request_id=rid,
                buyers=[expo_pb.NewBuyer(company="", country="ZZ", buyer_type=0)],
            )
            entry.method, entry.summary = "RegisterBuyers", "a buyer without company or country"

            def call(stub: Any) -> Awaitable[Any]:
                return stub.RegisterBuyers(
                    expo_request, metadata=officer, timeout=CALL_TIMEOUT_SECONDS
                )
        else:
            wh_request = wh_pb.RegisterWarehouseRequest(
                request_id=rid,
                code=f"bad code {number}",
                profile=wh_res.WarehouseProfile(name="", country_code="ZZ"),
            )
            entry.method, entry.summary = "RegisterWarehouse", "bad code, no profile"
            entry.own_state = [("warehouse", "warehouses", wh_request.code)]
            metadata = self.principals.operator(self.world.operator_id)

            def call(stub: Any) -> Awaitable[Any]:
                return stub.RegisterWarehouse(
                    wh_request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS
                )

        await self.send(entry, call)

    # Steady load ----------------------------------------------------------------------------

    async def one_step(self, number: int) -> None:
        """The request the load sends as its ``number``th: a fixed rotation over every
        operation whose prerequisites exist, so the mix is the same on every run."""
        world = self.world
        step = number % 10
        free = [c for c in world.exporters if c not in world.applied]
        unjoined = [c for c in world.exporters if c not in world.joining]
        if step == 0 and number % 30 == 0 and world.applied:
            await self.allocate()
        elif step in (0, 1) or not world.exporters:
            await self.register_exporter()
        elif step == 2 and free:
            await self.apply(free[0])
        elif step == 3 and unjoined:
            await self.join(unjoined[0])
        elif step == 4 or not world.buyers:
            await self.register_buyer()
        elif step == 5 and world.exhibitors:
            buyer = world.buyers[number % len(world.buyers)]
            await self.visit(buyer, world.exhibitors[-3:])
        elif step == 6 and number % 30 == 16 and world.intents:
            await self.quote(*world.intents.pop(0))
        elif step == 6 and world.exhibitors:
            buyer = world.buyers[number % len(world.buyers)]
            await self.submit_intent(buyer, world.exhibitors[number % len(world.exhibitors)])
        elif step == 7 and len(world.warehouses) < 6:
            await self.register_warehouse()
        elif step in (7, 8) and world.warehouses:
            await self.reserve(
                world.exporters[number % len(world.exporters)],
                world.warehouses[number % len(world.warehouses)],
            )
        elif step == 9:
            await self.bad_input(number)
        else:
            await self.register_exporter()

    async def run(self, stop: asyncio.Event, *, rate: float, limit: int, parallel: int) -> int:
        """Start one request every 1/rate s until ``stop`` or ``limit`` requests; at most
        ``parallel`` in flight (a slow service slows the load rather than piling it up)."""
        slots = asyncio.Semaphore(parallel)
        tasks: set[asyncio.Task[None]] = set()
        started = 0

        async def step(number: int) -> None:
            try:
                await self.one_step(number)
            finally:
                slots.release()

        while started < limit and not stop.is_set():
            await slots.acquire()
            task = asyncio.create_task(step(started))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            started += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1 / rate)
        await asyncio.gather(*tasks)
        return started
