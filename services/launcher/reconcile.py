"""`chuhai-platform reconcile`: every figure the bureau serves, recomputed from the
services' own MongoDB state and compared with what the bureau says.

The bureau folds the services' events into its figures; the services' collections are
the state those events announced. Any figure that differs once the bureau has caught up
means an event that was lost, applied wrongly, or never recorded beside its change (a
hand edit of a database, a bug bypassing the outbox). Figures are read the way anyone
outside the bureau must: its public gRPC API (QueryStats, an officer's token), never
its database; the services' databases are only read (aggregations and projections).

Visits are events only (expo keeps no visit documents), so the buyers who visited are
found in expo's outbox, its durable event log, and counted when they are registered
buyers: every recorded visit names one, so a visiting buyer that is not registered is a
difference too.

An intent's state is named as the bureau names it (bureau.projections.expo.INTENT_STATES):
expo's SUBMITTED and MATCHED are both "open". A reservation counts under the country its
document records, the warehouse's when the capacity was reserved, as its events carry it.

What the bureau does not count (applications submitted, scored or rejected, intents by
kind) cannot be reconciled here."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import grpc
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from booth.domain import ApplicationState, BoothType
from booth.storage import APPLICATIONS, EXPORTERS, FAIRS
from bureau.projections.expo import INTENT_STATES, UNKNOWN
from bureau.projections.warehouse import UNKNOWN_COUNTRY
from chuhai.bureau.v1 import bureau_service_pb2 as pb
from chuhai.bureau.v1 import bureau_service_pb2_grpc as pb_grpc
from chuhai.expo.v1 import events_pb2 as expo_events
from expo.domain import IntentState
from expo.storage import BUYERS, EXHIBITORS, INTENTS
from runtime.adapters.grpc_client import service_channel
from runtime.adapters.outbox import OUTBOX_COLLECTION
from runtime.adapters.settings import Settings
from runtime.adapters.tls import channel_credentials
from runtime.kernel.standards import hs_chapter, normalise_hs_code
from warehouse.domain import ReservationStatus, WarehouseStatus
from warehouse.storage import RESERVATIONS, WAREHOUSES

DEFAULT_SETTLE_SECONDS = 30.0
# Between two comparisons while the bureau catches up: each one scans the services'
# collections, which on the embedded SecantusDB holds its write lock.
POLL_SECONDS = 1.0
BUREAU_TIMEOUT_SECONDS = 30.0
MONGO_TIMEOUT_MS = 10_000

# The application states the bureau counts per fair and booth type.
_COUNTED_STATES = (
    ApplicationState.ALLOCATED,
    ApplicationState.WAITLISTED,
    ApplicationState.WITHDRAWN,
)
_VISITED = expo_events.ExhibitorVisited.DESCRIPTOR.full_name
# The expo intent states the bureau calls "open": no quote yet, not declined, not finished.
_OPEN_STATES = (IntentState.SUBMITTED, IntentState.MATCHED)

Figures = dict[str, int]


@dataclass(frozen=True)
class Figure:
    """One figure compared: the value recomputed from the services' state and the bureau's."""

    name: str
    service_value: int
    bureau_value: int

    @property
    def agrees(self) -> bool:
        return self.service_value == self.bureau_value


@dataclass(frozen=True)
class Difference:
    figure: str
    service_value: int
    bureau_value: int


@dataclass(frozen=True)
class Reconciliation:
    """Every figure compared, in the order the services' side lists them, and those that
    differ."""

    figures: tuple[Figure, ...]
    differences: tuple[Difference, ...]

    @property
    def reconciled(self) -> bool:
        return not self.differences


class SourceUnavailable(Exception):
    """The bureau or a service's database could not be read: unreachable, or the token
    refused. Nothing was compared."""


def figure_name(base: str, **labels: str) -> str:
    """``base{label=value,...}``: a figure and the slice of it, e.g.
    ``intents{country=DE}``."""
    if not labels:
        return base
    return base + "{" + ",".join(f"{key}={value}" for key, value in labels.items()) + "}"


def compare(service: Mapping[str, int], bureau: Mapping[str, int]) -> Reconciliation:
    """Every figure either side names; a figure one side does not name is 0 there (the
    bureau lists no country it saw no intent from, for instance)."""
    names = list(service) + [name for name in bureau if name not in service]
    figures = tuple(Figure(name, service.get(name, 0), bureau.get(name, 0)) for name in names)
    return Reconciliation(
        figures=figures,
        differences=tuple(
            Difference(f.name, f.service_value, f.bureau_value) for f in figures if not f.agrees
        ),
    )


# The bureau's side --------------------------------------------------------------------------


def bureau_figures(reply: pb.QueryStatsResponse) -> Figures:
    """The figures of an unfiltered QueryStats, named as service_figures names them."""
    headline = reply.headline
    figures: Figures = {
        "firms_served": headline.firms_served,
        "booths_allocated": headline.booths_allocated,
    }
    for booth in reply.booths:
        labels = {"fair": booth.fair_id, "type": booth.booth_type}
        figures[figure_name("booths.quota", **labels)] = booth.quota
        figures[figure_name("applications.applied", **labels)] = booth.applied
        figures[figure_name("applications.allocated", **labels)] = booth.allocated
        figures[figure_name("applications.waitlisted", **labels)] = booth.waitlisted
        figures[figure_name("applications.withdrawn", **labels)] = booth.withdrawn
    figures["buyers"] = headline.buyers
    figures["countries"] = headline.countries
    figures["intents"] = headline.intents
    figures["intents.addressed"] = reply.responses.addressed
    figures["intents.answered"] = reply.responses.answered
    for count in reply.intents_by_country:
        figures[figure_name("intents", country=count.key)] = count.value
    for count in reply.intents_by_hs_chapter:
        figures[figure_name("intents", hs_chapter=count.key)] = count.value
    for count in reply.intents_by_state:
        figures[figure_name("intents", state=count.key)] = count.value
    for count in reply.exhibitors_by_edition:
        figures[figure_name("exhibitors", edition=count.key)] = count.value
    for load in reply.warehouses:
        figures[figure_name("warehouses.active", country=load.country)] = load.warehouses
        figures[figure_name("warehouses.capacity_pallets", country=load.country)] = (
            load.capacity_pallets
        )
        figures[figure_name("warehouses.reserved_pallets_today", country=load.country)] = (
            load.reserved_pallets
        )
    for count in reply.reservations_by_status:
        figures[figure_name("reservations", status=count.key)] = count.value
    for counts in reply.reservations_by_country:
        for status, value in (("confirmed", counts.confirmed), ("cancelled", counts.cancelled)):
            figures[figure_name("reservations", country=counts.country, status=status)] = value
    return figures


async def _read_bureau(stub: pb_grpc.BureauServiceStub) -> Figures:
    try:
        reply = await stub.QueryStats(pb.QueryStatsRequest(), timeout=BUREAU_TIMEOUT_SECONDS)
    except grpc.aio.AioRpcError as error:
        code = error.code()
        if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            raise SourceUnavailable(
                f"the bureau refused the token ({code.name}: {error.details()}): "
                "reconciling needs an officer's token"
            ) from None
        raise SourceUnavailable(
            f"the bureau did not answer ({code.name}: {error.details()})"
        ) from None
    return bureau_figures(reply)


# The services' side -------------------------------------------------------------------------


async def service_figures(mongo: AsyncMongoClient, settings: Settings, today: date) -> Figures:
    """The bureau's figures recomputed from the booth, expo and warehouse databases;
    reserved pallets are those of ``today`` (UTC), as the bureau counts them."""
    booth = await _booth_figures(mongo.get_database(settings.database_name("booth")))
    expo = await _expo_figures(mongo.get_database(settings.database_name("expo")))
    warehouse = await _warehouse_figures(
        mongo.get_database(settings.database_name("warehouse")), today
    )
    return {**booth, **expo, **warehouse}


async def _aggregate(collection: AsyncCollection, pipeline: list[dict[str, Any]]) -> list[dict]:
    cursor = await collection.aggregate(pipeline)
    return [doc async for doc in cursor]


def _booth_type_name(booth_type: int) -> str:
    # As the bureau names booth types (bureau.projections.booth).
    try:
        return BoothType(booth_type).name.lower()
    except ValueError:
        return "unspecified"


async def _booth_figures(db: AsyncDatabase) -> Figures:
    # Firms served: registered, or named by an application.
    firms = {doc["_id"] async for doc in db[EXPORTERS].find({}, {"_id": 1})}
    firms |= {
        doc["_id"]
        for doc in await _aggregate(db[APPLICATIONS], [{"$group": {"_id": "$credit_code"}}])
    }
    quotas: dict[tuple[str, int], int] = {}
    async for fair in db[FAIRS].find({}, {"quotas": 1}):
        for quota in fair["quotas"]:
            quotas[(fair["_id"], quota["booth_type"])] = quota["quota"]
    groups = await _aggregate(
        db[APPLICATIONS],
        [
            {
                "$group": {
                    "_id": {"fair": "$fair_id", "type": "$booth_type", "state": "$state"},
                    "n": {"$sum": 1},
                }
            }
        ],
    )
    applied: Counter[tuple[str, int]] = Counter()
    in_state: Counter[tuple[str, int, int]] = Counter()
    for group in groups:
        key = group["_id"]
        applied[(key["fair"], key["type"])] += group["n"]
        in_state[(key["fair"], key["type"], key["state"])] += group["n"]
    figures: Figures = {
        "firms_served": len(firms),
        "booths_allocated": sum(
            n for (_, _, state), n in in_state.items() if state == ApplicationState.ALLOCATED
        ),
    }
    for fair_id, booth_type in sorted({*quotas, *applied}):
        labels = {"fair": fair_id, "type": _booth_type_name(booth_type)}
        figures[figure_name("booths.quota", **labels)] = quotas.get((fair_id, booth_type), 0)
        figures[figure_name("applications.applied", **labels)] = applied[(fair_id, booth_type)]
        for state in _COUNTED_STATES:
            figures[figure_name(f"applications.{state.name.lower()}", **labels)] = in_state[
                (fair_id, booth_type, state)
            ]
    return figures


async def _expo_figures(db: AsyncDatabase) -> Figures:
    # An ExhibitorVisited event's aggregate (its outbox key) is the visiting buyer.
    visitors = {
        doc["_id"]
        for doc in await _aggregate(
            db[OUTBOX_COLLECTION], [{"$match": {"type": _VISITED}}, {"$group": {"_id": "$key"}}]
        )
    }
    countries_of = {doc["_id"]: doc["country"] async for doc in db[BUYERS].find({}, {"country": 1})}
    visiting = [countries_of[buyer] for buyer in visitors if buyer in countries_of]
    groups = await _aggregate(
        db[INTENTS],
        [
            {
                "$group": {
                    # One scan of the intents for every breakdown.
                    "_id": {"country": "$buyer_country", "hs_code": "$hs_code", "state": "$state"},
                    "n": {"$sum": 1},
                    "addressed": {"$sum": {"$size": "$recipients"}},
                    "answered": {"$sum": {"$size": "$responses"}},
                }
            }
        ],
    )
    by_country: Counter[str] = Counter()
    by_chapter: Counter[str] = Counter()
    by_state: Counter[str] = Counter()
    for group in groups:
        key = group["_id"]
        by_country[(key["country"] or "").upper() or UNKNOWN] += group["n"]
        by_chapter[hs_chapter(normalise_hs_code(key["hs_code"] or "")) or UNKNOWN] += group["n"]
        by_state[_intent_state_name(key["state"])] += group["n"]
    exhibitors = await _aggregate(
        db[EXHIBITORS], [{"$group": {"_id": "$edition_id", "n": {"$sum": 1}}}]
    )
    figures: Figures = {
        "buyers": len(visiting),
        "countries": len({country.upper() for country in visiting if country}),
        "intents": sum(group["n"] for group in groups),
        "intents.addressed": sum(group["addressed"] for group in groups),
        "intents.answered": sum(group["answered"] for group in groups),
    }
    for country, n in sorted(by_country.items()):
        figures[figure_name("intents", country=country)] = n
    for chapter, n in sorted(by_chapter.items()):
        figures[figure_name("intents", hs_chapter=chapter)] = n
    # Every state the bureau lists, then any it cannot name (a difference by itself).
    for state in [*INTENT_STATES, *sorted(by_state.keys() - set(INTENT_STATES))]:
        figures[figure_name("intents", state=state)] = by_state[state]
    for group in sorted(exhibitors, key=lambda group: group["_id"]):
        figures[figure_name("exhibitors", edition=group["_id"])] = group["n"]
    return figures


def _intent_state_name(state: int) -> str:
    """As the bureau names expo's intent state (see INTENT_STATES)."""
    if state in _OPEN_STATES:
        return "open"
    try:
        return IntentState(state).name.lower()
    except ValueError:
        return f"unknown-{state}"


async def _warehouse_figures(db: AsyncDatabase, today: date) -> Figures:
    """Active warehouses by country, their capacity, and what confirmed reservations hold
    ``today`` in them; a suspended warehouse's reservations stand but count nowhere, as
    on the dashboard. Reservations by status, and by status per country."""
    country_of: dict[str, str] = {}
    warehouses: Counter[str] = Counter()
    capacity: Counter[str] = Counter()
    async for doc in db[WAREHOUSES].find(
        {"status": WarehouseStatus.ACTIVE.name}, {"country_code": 1, "capacity": 1}
    ):
        country = doc["country_code"].upper()
        country_of[doc["_id"]] = country
        warehouses[country] += 1
        capacity[country] += doc["capacity"]["pallet_positions"]
    day = today.isoformat()
    holding = await _aggregate(
        db[RESERVATIONS],
        [
            {
                "$match": {
                    "status": ReservationStatus.CONFIRMED.name,
                    "start_date": {"$lte": day},
                    "end_date": {"$gt": day},
                }
            },
            {"$group": {"_id": "$warehouse_code", "pallets": {"$sum": "$pallet_positions"}}},
        ],
    )
    reserved: Counter[str] = Counter()
    for group in holding:
        if group["_id"] in country_of:
            reserved[country_of[group["_id"]]] += group["pallets"]
    statuses = await _aggregate(
        db[RESERVATIONS],
        [{"$group": {"_id": {"status": "$status", "country": "$country_code"}, "n": {"$sum": 1}}}],
    )
    by_status: Counter[str] = Counter()
    by_country: Counter[tuple[str, str]] = Counter()
    for group in statuses:
        key, n = group["_id"], group["n"]
        status = key["status"].lower()
        by_status[status] += n
        by_country[((key["country"] or "").upper() or UNKNOWN_COUNTRY, status)] += n
    figures: Figures = {}
    for country in sorted(warehouses):
        figures[figure_name("warehouses.active", country=country)] = warehouses[country]
        figures[figure_name("warehouses.capacity_pallets", country=country)] = capacity[country]
        figures[figure_name("warehouses.reserved_pallets_today", country=country)] = reserved[
            country
        ]
    for status in sorted(by_status.keys() | {"confirmed", "cancelled"}):
        figures[figure_name("reservations", status=status)] = by_status[status]
    for (country, status), n in sorted(by_country.items()):
        figures[figure_name("reservations", country=country, status=status)] = n
    return figures


# Both sides ---------------------------------------------------------------------------------


async def reconcile(
    settings: Settings,
    token: str,
    *,
    settle_seconds: float = DEFAULT_SETTLE_SECONDS,
    poll_seconds: float = POLL_SECONDS,
) -> Reconciliation:
    """Compare until no figure differs or ``settle_seconds`` have passed, and return the
    last comparison: the bureau lags the services by the relay and the stream, so a
    difference is reported only once it outlived that wait.

    Raises SourceUnavailable when the bureau or MongoDB cannot be read."""
    deadline = time.monotonic() + settle_seconds
    mongo: AsyncMongoClient = AsyncMongoClient(
        settings.mongodb_uri,
        appname="chuhai-reconcile",
        tz_aware=True,
        serverSelectionTimeoutMS=MONGO_TIMEOUT_MS,
    )
    channel = service_channel(
        settings.grpc_target("bureau"),
        lambda: token,
        credentials=channel_credentials(settings),
        server_name_override=settings.tls_server_name_override,
        max_message_bytes=settings.grpc_max_message_bytes,
    )
    try:
        stub = pb_grpc.BureauServiceStub(channel)
        while True:
            started = time.monotonic()
            # The bureau first: unreachable or refused, nothing else is worth scanning.
            bureau = await _read_bureau(stub)
            try:
                service = await service_figures(mongo, settings, datetime.now(UTC).date())
            except PyMongoError as error:
                raise SourceUnavailable(
                    f"the services' databases could not be read: {error}"
                ) from None
            result = compare(service, bureau)
            if result.reconciled or time.monotonic() >= deadline:
                return result
            # Rest at least as long as the scans took: at the Xuchang case's size they
            # hold SecantusDB's lock for seconds, and the platform must keep serving.
            await asyncio.sleep(max(poll_seconds, time.monotonic() - started))
    finally:
        await channel.close()
        await mongo.close()
