"""How the warehouse service keeps its state in MongoDB: the one module that knows
collections, indexes, queries and documents.

Three collections: ``warehouses`` (one document per warehouse), ``reservations`` and
``day_loads``, one counter document per warehouse and day that holds what is reserved
that day (_id "<code>:<YYYY-MM-DD>"). A booking changes every day of its period in the
transaction that records its event; see WarehouseStore.add_load() for why it cannot
overbook."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from runtime.adapters.pagination import PageRequest, keyset_find
from warehouse.domain import (
    LogisticsService,
    Operator,
    OperatorKind,
    Period,
    PublicRecognition,
    Reservation,
    ReservationFilter,
    ReservationStatus,
    SearchCriteria,
    Space,
    Warehouse,
    WarehouseProfile,
    WarehouseStatus,
)
from warehouse.geo import GeoPoint

WAREHOUSES = "warehouses"
RESERVATIONS = "reservations"
DAY_LOADS = "day_loads"
# Oldest first; the id breaks ties, so the order is total as keyset pages need.
RESERVATION_ORDER = (("reserved_at", ASCENDING), ("_id", ASCENDING))

Document = dict[str, Any]


class LoadGuardTripped(RuntimeError):
    """A conditional day update refused although the transaction's own read said it
    would apply. Under snapshot isolation that cannot happen; if the database ever
    gives less, the transaction aborts (INTERNAL) rather than overbook."""


async def ensure_indexes(db: AsyncDatabase) -> None:
    await db[WAREHOUSES].create_index([("served_countries", ASCENDING), ("status", ASCENDING)])
    await db[WAREHOUSES].create_index([("country_code", ASCENDING), ("status", ASCENDING)])
    await db[WAREHOUSES].create_index([("operator_id", ASCENDING)])
    await db[DAY_LOADS].create_index([("warehouse_code", ASCENDING), ("day", ASCENDING)])
    for owner in ("warehouse_code", "exporter_credit_code"):
        await db[RESERVATIONS].create_index([(owner, ASCENDING), *RESERVATION_ORDER])


class WarehouseStore:
    """The warehouse repository, inside the runner's transaction (``session``) or,
    for queries, outside any (``session`` None)."""

    def __init__(self, db: AsyncDatabase, session: AsyncClientSession | None = None) -> None:
        self._warehouses = db[WAREHOUSES]
        self._reservations = db[RESERVATIONS]
        self._day_loads = db[DAY_LOADS]
        self._session = session

    # Warehouses.

    async def add_warehouse(self, warehouse: Warehouse) -> bool:
        """False when a warehouse with its code exists already."""
        try:
            await self._warehouses.insert_one(_warehouse_document(warehouse), session=self._session)
        except DuplicateKeyError:
            return False
        return True

    async def save_warehouse(self, warehouse: Warehouse) -> None:
        document = _warehouse_document(warehouse)
        del document["_id"]
        await self._warehouses.update_one(
            {"_id": warehouse.code}, {"$set": document}, session=self._session
        )

    async def warehouse(self, code: str) -> Warehouse | None:
        doc = await self._warehouses.find_one({"_id": code}, session=self._session)
        return None if doc is None else _warehouse_from(doc)

    async def warehouses_operated_by(self, operator_id: str) -> list[str]:
        """The codes of the warehouses ``operator_id`` operates."""
        cursor = self._warehouses.find(
            {"operator_id": operator_id}, projection={"_id": True}, session=self._session
        )
        return [doc["_id"] async for doc in cursor]

    async def find_candidates(self, criteria: SearchCriteria) -> list[Warehouse]:
        """Warehouses matching the parts of a search the database can filter on;
        distance and free space are the domain's (see domain.rank)."""
        query: Document = {}
        if not criteria.include_suspended:
            query["status"] = WarehouseStatus.ACTIVE.name
        if criteria.country_code:
            query["country_code"] = criteria.country_code
        if criteria.serving_country:
            query["served_countries"] = criteria.serving_country
        if criteria.services:
            query["services"] = {"$all": [service.name for service in criteria.services]}
        cursor = self._warehouses.find(query, session=self._session)
        return [_warehouse_from(doc) async for doc in cursor]

    # Day loads.

    async def reserved_by_day(
        self, code: str, *, start: date, end: date | None = None
    ) -> dict[date, Space]:
        """What each day of [start, end) holds; open-ended without ``end``. Only days
        that ever held a booking have a counter: a missing day holds nothing."""
        days: Document = {"$gte": start.isoformat()}
        if end is not None:
            days["$lt"] = end.isoformat()
        cursor = self._day_loads.find({"warehouse_code": code, "day": days}, session=self._session)
        return {date.fromisoformat(doc["day"]): _space_from(doc) async for doc in cursor}

    async def add_load(
        self,
        warehouse: Warehouse,
        period: Period,
        space: Space,
        counted_days: Collection[date],
    ) -> None:
        """Add ``space`` to every day of ``period``, after the domain checked, on the
        loads this transaction read (reserved_by_day), that it fits. ``counted_days``
        are the days that read found a counter for.

        Why this cannot overbook: the loads were read in this transaction's snapshot; if
        another booking commits a change to one of these days (or creates its counter)
        after that snapshot, the writes below conflict with it and the whole transaction
        is retried on fresh data (TransientTransactionError). The warehouse document is
        written too, so a concurrent capacity change or suspension conflicts as well.
        The conditional filters repeat the capacity check as a last guard.
        """
        code, capacity = warehouse.code, warehouse.profile.capacity
        await self._touch(code)
        existing = [day for day in period.dates() if day in counted_days]
        if existing:
            fits = {
                "pallet_positions": {"$lte": capacity.pallet_positions - space.pallet_positions},
                "cubic_metres": {"$lte": capacity.cubic_metres - space.cubic_metres},
            }
            await self._apply_to_days(code, existing, space, condition=fits)
        new = [day for day in period.dates() if day not in counted_days]
        if new:
            await self._day_loads.insert_many(
                [
                    {
                        "_id": _day_id(code, day),
                        "warehouse_code": code,
                        "day": day.isoformat(),
                        **_space_document(space),
                    }
                    for day in new
                ],
                session=self._session,
            )

    async def remove_load(self, reservation: Reservation) -> None:
        """Free a cancelled reservation's space on every day it held."""
        code, space = reservation.warehouse_code, reservation.space
        await self._touch(code)
        holds = {
            "pallet_positions": {"$gte": space.pallet_positions},
            "cubic_metres": {"$gte": space.cubic_metres},
        }
        negative = Space(-space.pallet_positions, -space.cubic_metres)
        await self._apply_to_days(code, reservation.period.dates(), negative, condition=holds)

    async def peak_loads(self, codes: Sequence[str], period: Period) -> dict[str, Space]:
        """Each warehouse's highest load per dimension over ``period``, computed by the
        database so a search does not fetch every day counter of every candidate."""
        if not codes:
            return {}
        cursor = await self._day_loads.aggregate(
            [
                {
                    "$match": {
                        "warehouse_code": {"$in": list(codes)},
                        "day": {"$gte": period.start.isoformat(), "$lt": period.end.isoformat()},
                    }
                },
                {
                    "$group": {
                        "_id": "$warehouse_code",
                        "pallet_positions": {"$max": "$pallet_positions"},
                        "cubic_metres": {"$max": "$cubic_metres"},
                    }
                },
            ],
            session=self._session,
        )
        return {doc["_id"]: _space_from(doc) async for doc in cursor}

    async def _touch(self, code: str) -> None:
        # A write to the warehouse document makes every booking change of one warehouse
        # conflict with a concurrent capacity change or suspension (see add_load).
        await self._warehouses.update_one(
            {"_id": code}, {"$inc": {"booking_sequence": 1}}, session=self._session
        )

    async def _apply_to_days(
        self, code: str, days: Sequence[date], change: Space, condition: Document
    ) -> None:
        # One round trip for every day of the period, unordered: the transaction is atomic.
        result = await self._day_loads.bulk_write(
            [
                UpdateOne(
                    {"_id": _day_id(code, day), **condition},
                    {"$inc": _space_document(change)},
                )
                for day in days
            ],
            ordered=False,
            session=self._session,
        )
        if result.matched_count != len(days):
            raise LoadGuardTripped(
                f"warehouse {code}: {len(days) - result.matched_count} of {len(days)} day "
                "counters refused a change this transaction had checked"
            )

    # Reservations.

    async def insert_reservation(self, reservation: Reservation) -> None:
        await self._reservations.insert_one(
            _reservation_document(reservation), session=self._session
        )

    async def save_cancellation(self, reservation: Reservation) -> None:
        await self._reservations.update_one(
            {"_id": reservation.reservation_id},
            {
                "$set": {
                    "status": reservation.status.name,
                    "cancelled_at": reservation.cancelled_at,
                    "cancellation_reason": reservation.cancellation_reason,
                }
            },
            session=self._session,
        )

    async def reservation(self, reservation_id: str) -> Reservation | None:
        doc = await self._reservations.find_one({"_id": reservation_id}, session=self._session)
        return None if doc is None else _reservation_from(doc)

    async def list_reservations(
        self, which: ReservationFilter, page: PageRequest
    ) -> tuple[list[Reservation], str]:
        """One page of the reservations ``which`` names, oldest first, and the token of
        the next page (empty after the last)."""
        query: Document = {}
        if which.warehouse_code:
            query["warehouse_code"] = which.warehouse_code
        elif which.among_warehouses:
            query["warehouse_code"] = {"$in": list(which.among_warehouses)}
        if which.exporter_credit_code:
            query["exporter_credit_code"] = which.exporter_credit_code
        if which.status is not None:
            query["status"] = which.status.name
        docs, token = await keyset_find(
            self._reservations, query, RESERVATION_ORDER, page, session=self._session
        )
        return [_reservation_from(doc) for doc in docs], token


# Documents. Enums are stored by name: readable in the database and in dumps.


def _warehouse_document(warehouse: Warehouse) -> Document:
    profile = warehouse.profile
    location = profile.location
    recognition = profile.recognition
    return {
        "_id": warehouse.code,
        "name": profile.name,
        "operator": {
            "kind": OperatorKind(profile.operator.kind).name,
            "name": profile.operator.name,
            "credit_code": profile.operator.credit_code,
        },
        "country_code": profile.country_code,
        "delivery_countries": list(profile.delivery_countries),
        # What "serving a country" searches match on, kept as one indexed array.
        "served_countries": list(profile.served_countries),
        "city": profile.city,
        "address": profile.address,
        "location": None
        if location is None
        else {"latitude": location.latitude, "longitude": location.longitude},
        "area_m2": profile.area_m2,
        "capacity": _space_document(profile.capacity),
        "services": [LogisticsService(service).name for service in profile.services],
        "recognition": None
        if recognition is None
        else {"recognised_by": recognition.recognised_by, "since": recognition.since},
        "status": warehouse.status.name,
        "suspension_reason": warehouse.suspension_reason,
        "registered_at": warehouse.registered_at,
        "updated_at": warehouse.updated_at,
        "operator_id": warehouse.operator_id,
    }


def _warehouse_from(doc: Document) -> Warehouse:
    location, recognition = doc["location"], doc["recognition"]
    profile = WarehouseProfile(
        name=doc["name"],
        operator=Operator(
            OperatorKind[doc["operator"]["kind"]],
            doc["operator"]["name"],
            doc["operator"]["credit_code"],
        ),
        country_code=doc["country_code"],
        city=doc["city"],
        address=doc["address"],
        location=None
        if location is None
        else GeoPoint(location["latitude"], location["longitude"]),
        area_m2=doc["area_m2"],
        capacity=_space_from(doc["capacity"]),
        services=tuple(LogisticsService[name] for name in doc["services"]),
        recognition=None
        if recognition is None
        else PublicRecognition(recognition["recognised_by"], recognition["since"]),
        delivery_countries=tuple(doc["delivery_countries"]),
    )
    return Warehouse(
        code=doc["_id"],
        profile=profile,
        status=WarehouseStatus[doc["status"]],
        suspension_reason=doc["suspension_reason"],
        registered_at=doc["registered_at"],
        updated_at=doc["updated_at"],
        # Absent from warehouses stored before operators were identified: operated by
        # nobody, so only officers may suspend or reactivate them.
        operator_id=doc.get("operator_id", ""),
    )


def _space_document(space: Space) -> Document:
    return {"pallet_positions": space.pallet_positions, "cubic_metres": space.cubic_metres}


def _space_from(doc: Document) -> Space:
    return Space(doc["pallet_positions"], doc["cubic_metres"])


def _day_id(code: str, day: date) -> str:
    # Codes cannot contain ':', so the id is unambiguous.
    return f"{code}:{day.isoformat()}"


def _reservation_document(reservation: Reservation) -> Document:
    return {
        "_id": reservation.reservation_id,
        "warehouse_code": reservation.warehouse_code,
        "country_code": reservation.country_code,
        "exporter_credit_code": reservation.exporter_credit_code,
        **_space_document(reservation.space),
        "start_date": reservation.period.start.isoformat(),
        "end_date": reservation.period.end.isoformat(),
        "status": reservation.status.name,
        "reserved_at": reservation.reserved_at,
        "cancelled_at": reservation.cancelled_at,
        "cancellation_reason": reservation.cancellation_reason,
    }


def _reservation_from(doc: Document) -> Reservation:
    return Reservation(
        reservation_id=doc["_id"],
        warehouse_code=doc["warehouse_code"],
        country_code=doc["country_code"],
        exporter_credit_code=doc["exporter_credit_code"],
        space=_space_from(doc),
        period=Period(date.fromisoformat(doc["start_date"]), date.fromisoformat(doc["end_date"])),
        status=ReservationStatus[doc["status"]],
        reserved_at=doc["reserved_at"],
        cancelled_at=doc["cancelled_at"],
        cancellation_reason=doc["cancellation_reason"],
    )
