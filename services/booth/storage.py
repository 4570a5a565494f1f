"""How the booth service keeps its state in MongoDB: the BoothStore repository.

Four collections: ``exporters`` (_id: credit code), ``fairs`` (_id: fair id),
``applications`` (_id: application id) and ``quota_counters``, one document per fair
and booth type (_id "<fair id>:<booth type number>") holding the quota, the booths
allocated now and the booth numbers issued. Every change to an allocation writes its
counter, so concurrent allocations, withdrawals and promotions of one booth type
conflict and retry in turn: the quota holds exactly.

Writes happen inside the runner's transaction, by _id (SecantusDB plans _id plus any
other predicate, and every find_one_and_*, as a collection scan under the write lock);
the transaction's own read of a document is what guards its update."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date
from typing import Any

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from booth.domain import (
    PRIORITY,
    Application,
    ApplicationQuery,
    ApplicationState,
    BoothQuota,
    BoothType,
    Exporter,
    ExporterProfile,
    Fair,
    FairStatus,
    Phase,
    Product,
    QuotaUse,
    Ranked,
    ScoringSheet,
    Transition,
    Zone,
    quota_key,
)
from runtime.adapters.pagination import PageRequest, SortOrder, keyset_find

EXPORTERS = "exporters"
FAIRS = "fairs"
APPLICATIONS = "applications"
QUOTA_COUNTERS = "quota_counters"

Document = dict[str, Any]

# Application attributes stored under another name.
_APPLICATION_FIELDS = {"application_id": "_id"}

# The domain's ranking rule as a MongoDB sort (and index) order.
PRIORITY_ORDER: SortOrder = [
    (
        _APPLICATION_FIELDS.get(key.attribute, key.attribute),
        DESCENDING if key.descending else ASCENDING,
    )
    for key in PRIORITY
]
BY_ID: SortOrder = [("_id", ASCENDING)]


async def ensure_indexes(db: AsyncDatabase) -> None:
    await db[APPLICATIONS].create_index(
        [("fair_id", ASCENDING), ("booth_type", ASCENDING), ("state", ASCENDING), *PRIORITY_ORDER]
    )
    await db[APPLICATIONS].create_index([("credit_code", ASCENDING), ("fair_id", ASCENDING)])
    await db[EXPORTERS].create_index([("district", ASCENDING), ("_id", ASCENDING)])


class BoothStore:
    """The booth service's repository, on a database and (for use cases) a transaction."""

    def __init__(self, db: AsyncDatabase, session: AsyncClientSession | None = None) -> None:
        self._db = db
        self._session = session

    # Exporters -------------------------------------------------------------------------

    async def exporter(self, credit_code: str) -> Exporter | None:
        doc = await self._db[EXPORTERS].find_one({"_id": credit_code}, session=self._session)
        return None if doc is None else _exporter_from(doc)

    async def add_exporter(self, exporter: Exporter) -> bool:
        """False when an exporter with this credit code is registered already."""
        return await self._insert(EXPORTERS, _exporter_document(exporter))

    async def save_exporter(self, exporter: Exporter) -> None:
        doc = _exporter_document(exporter)
        del doc["_id"], doc["registered_at"]
        await self._db[EXPORTERS].update_one(
            {"_id": exporter.credit_code}, {"$set": doc}, session=self._session
        )

    async def list_exporters(self, district: str, page: PageRequest) -> tuple[list[Exporter], str]:
        query = {"district": district} if district else {}
        docs, token = await keyset_find(
            self._db[EXPORTERS], query, BY_ID, page, session=self._session
        )
        return [_exporter_from(d) for d in docs], token

    # Fairs -----------------------------------------------------------------------------

    async def fair(self, fair_id: str) -> Fair | None:
        doc = await self._db[FAIRS].find_one({"_id": fair_id}, session=self._session)
        return None if doc is None else _fair_from(doc)

    async def add_fair(self, fair: Fair) -> bool:
        """The fair and an empty quota counter per booth type; False when the id is taken."""
        if not await self._insert(FAIRS, _fair_document(fair)):
            return False
        await self._db[QUOTA_COUNTERS].insert_many(
            [
                {
                    "_id": quota_key(fair.fair_id, q.booth_type),
                    "quota": q.quota,
                    "allocated": 0,
                    "issued": 0,
                    "version": 0,
                }
                for q in fair.quotas
            ],
            session=self._session,
        )
        return True

    async def save_fair(self, fair: Fair) -> None:
        """Only a fair's status changes once it is created."""
        await self._db[FAIRS].update_one(
            {"_id": fair.fair_id}, {"$set": {"status": int(fair.status)}}, session=self._session
        )

    async def list_fairs(self, page: PageRequest) -> tuple[list[Fair], str]:
        docs, token = await keyset_find(self._db[FAIRS], {}, BY_ID, page, session=self._session)
        return [_fair_from(d) for d in docs], token

    async def quota_use(self, fair_id: str, booth_type: BoothType) -> QuotaUse:
        [usage] = await self.quota_uses(fair_id, [booth_type])
        return usage

    async def quota_uses(self, fair_id: str, booth_types: Collection[BoothType]) -> list[QuotaUse]:
        """The use of each of these booth types' quota, in the order asked."""
        ids = [quota_key(fair_id, t) for t in booth_types]
        cursor = self._db[QUOTA_COUNTERS].find({"_id": {"$in": ids}}, session=self._session)
        counters = {doc["_id"]: doc async for doc in cursor}
        missing = [i for i in ids if i not in counters]
        if missing:
            # Counters are created with their fair: a missing one is a bug, not a request error.
            raise LookupError(f"no quota counter {', '.join(missing)}")
        return [
            QuotaUse(
                fair_id=fair_id,
                booth_type=booth_type,
                quota=counters[i]["quota"],
                allocated=counters[i]["allocated"],
                issued=counters[i]["issued"],
            )
            for i, booth_type in zip(ids, booth_types, strict=True)
        ]

    async def save_quota_use(self, usage: QuotaUse) -> None:
        """Written even when unchanged (a promotion): the version bump is what makes
        every change to an allocation conflict with the others of its booth type."""
        await self._db[QUOTA_COUNTERS].update_one(
            {"_id": quota_key(usage.fair_id, usage.booth_type)},
            {
                "$set": {"allocated": usage.allocated, "issued": usage.issued},
                "$inc": {"version": 1},
            },
            session=self._session,
        )

    # Applications ----------------------------------------------------------------------

    async def application(self, application_id: str) -> Application | None:
        doc = await self._db[APPLICATIONS].find_one({"_id": application_id}, session=self._session)
        return None if doc is None else _application_from(doc)

    async def add_application(self, application: Application) -> bool:
        """False when the exporter applied for this fair and booth type already."""
        return await self._insert(APPLICATIONS, _application_document(application))

    async def save_application(self, application: Application) -> None:
        await self.save_applications([application])

    async def save_applications(self, applications: Sequence[Application]) -> None:
        """One round trip for all of them: an allocation changes hundreds at once, and
        each round trip of a transaction waits its turn at the single-threaded server
        behind every other request's."""
        if not applications:
            return
        await self._db[APPLICATIONS].bulk_write(
            [
                UpdateOne({"_id": a.application_id}, {"$set": _application_changes(a)})
                for a in applications
            ],
            session=self._session,
        )

    async def applications_in(
        self, fair_id: str, booth_type: BoothType, states: Collection[ApplicationState]
    ) -> list[Application]:
        """A fair's applications for a booth type that are in one of ``states``."""
        cursor = self._db[APPLICATIONS].find(
            _of_booth_type(fair_id, booth_type, states), session=self._session
        )
        return [_application_from(doc) async for doc in cursor]

    async def waitlist(self, fair_id: str, booth_type: BoothType) -> list[Ranked]:
        """The waitlisted applications of a fair's booth type, as ranking sees them."""
        cursor = self._db[APPLICATIONS].find(
            _of_booth_type(fair_id, booth_type, [ApplicationState.WAITLISTED]),
            {"score": 1, "submitted_at": 1},
            session=self._session,
        )
        return [Ranked(doc["_id"], doc["score"], doc["submitted_at"]) async for doc in cursor]

    async def applications_of(self, credit_code: str, fair_id: str) -> list[Application]:
        """An exporter's applications at a fair (one per booth type at most)."""
        cursor = self._db[APPLICATIONS].find(
            {"credit_code": credit_code, "fair_id": fair_id}, session=self._session
        )
        return [_application_from(doc) async for doc in cursor]

    async def list_applications(
        self, query: ApplicationQuery, page: PageRequest
    ) -> tuple[list[Application], str]:
        """Applications matching ``query`` in priority order."""
        filters: Document = {}
        if query.fair_id:
            filters["fair_id"] = query.fair_id
        if query.credit_code:
            filters["credit_code"] = query.credit_code
        if query.state is not None:
            filters["state"] = int(query.state)
        if query.booth_type is not None:
            filters["booth_type"] = int(query.booth_type)
        docs, token = await keyset_find(
            self._db[APPLICATIONS], filters, PRIORITY_ORDER, page, session=self._session
        )
        return [_application_from(d) for d in docs], token

    async def _insert(self, collection: str, doc: Document) -> bool:
        try:
            await self._db[collection].insert_one(doc, session=self._session)
        except DuplicateKeyError:
            return False
        return True


def _of_booth_type(
    fair_id: str, booth_type: BoothType, states: Collection[ApplicationState]
) -> Document:
    return {
        "fair_id": fair_id,
        "booth_type": int(booth_type),
        "state": {"$in": [int(s) for s in states]},
    }


# Documents -----------------------------------------------------------------------------


def _exporter_document(exporter: Exporter) -> Document:
    profile = exporter.profile
    return {
        "_id": exporter.credit_code,
        "name": profile.name,
        "district": profile.district,
        "industry": profile.industry,
        "main_products": [{"name": p.name, "hs_code": p.hs_code} for p in profile.main_products],
        "export_turnover_usd": profile.export_turnover_usd,
        "specialised_innovative": profile.specialised_innovative,
        "brand_owner": profile.brand_owner,
        "high_tech_enterprise": profile.high_tech_enterprise,
        "past_fairs": list(profile.past_fairs),
        "registered_at": exporter.registered_at,
        "updated_at": exporter.updated_at,
    }


def _exporter_from(doc: Document) -> Exporter:
    profile = ExporterProfile(
        name=doc["name"],
        district=doc["district"],
        industry=doc["industry"],
        main_products=tuple(Product(p["name"], p["hs_code"]) for p in doc["main_products"]),
        export_turnover_usd=doc["export_turnover_usd"],
        specialised_innovative=doc["specialised_innovative"],
        brand_owner=doc["brand_owner"],
        high_tech_enterprise=doc["high_tech_enterprise"],
        past_fairs=tuple(doc["past_fairs"]),
    )
    return Exporter(doc["_id"], profile, doc["registered_at"], doc["updated_at"])


def _fair_document(fair: Fair) -> Document:
    return {
        "_id": fair.fair_id,
        "name": fair.name,
        "organiser": fair.organiser,
        "session": fair.session,
        "venue": fair.venue,
        "phases": [
            {"name": p.name, "starts_on": p.starts_on.isoformat(), "ends_on": p.ends_on.isoformat()}
            for p in fair.phases
        ],
        "zones": [
            {"code": z.code, "name": z.name, "hs_headings": sorted(z.hs_headings)}
            for z in fair.zones
        ],
        "quotas": [
            {
                "booth_type": int(q.booth_type),
                "quota": q.quota,
                "application_deadline": q.application_deadline,
                "allocation_deadline": q.allocation_deadline,
                "fee_fen": q.fee_fen,
            }
            for q in fair.quotas
        ],
        "opens_at": fair.opens_at,
        "scoring_sheet": dict(vars(fair.scoring_sheet)),
        "status": int(fair.status),
        "created_at": fair.created_at,
    }


def _fair_from(doc: Document) -> Fair:
    return Fair(
        fair_id=doc["_id"],
        name=doc["name"],
        organiser=doc["organiser"],
        session=doc["session"],
        venue=doc["venue"],
        phases=tuple(
            Phase(p["name"], date.fromisoformat(p["starts_on"]), date.fromisoformat(p["ends_on"]))
            for p in doc["phases"]
        ),
        zones=tuple(Zone(z["code"], z["name"], frozenset(z["hs_headings"])) for z in doc["zones"]),
        quotas=tuple(
            BoothQuota(
                BoothType(q["booth_type"]),
                q["quota"],
                q["application_deadline"],
                q["allocation_deadline"],
                q["fee_fen"],
            )
            for q in doc["quotas"]
        ),
        opens_at=doc["opens_at"],
        created_at=doc["created_at"],
        scoring_sheet=ScoringSheet(**doc["scoring_sheet"]),
        status=FairStatus(doc["status"]),
    )


# What changes after submission.
_APPLICATION_CHANGES = ("state", "history", "booth_number", "penalty_fen", "allocated_at")


def _application_changes(application: Application) -> Document:
    doc = _application_document(application)
    return {name: doc[name] for name in _APPLICATION_CHANGES}


def _application_document(application: Application) -> Document:
    return {
        "_id": application.application_id,
        "fair_id": application.fair_id,
        "credit_code": application.credit_code,
        "booth_type": int(application.booth_type),
        "hs_code": application.hs_code,
        "zone_code": application.zone_code,
        "state": int(application.state),
        "score": application.score,
        "submitted_at": application.submitted_at,
        "history": [
            {"state": int(t.state), "at": t.at, "by": t.by, "reason": t.reason}
            for t in application.history
        ],
        "booth_number": application.booth_number,
        "penalty_fen": application.penalty_fen,
        "allocated_at": application.allocated_at,
    }


def _application_from(doc: Document) -> Application:
    return Application(
        application_id=doc["_id"],
        fair_id=doc["fair_id"],
        credit_code=doc["credit_code"],
        booth_type=BoothType(doc["booth_type"]),
        hs_code=doc["hs_code"],
        zone_code=doc["zone_code"],
        state=ApplicationState(doc["state"]),
        score=doc["score"],
        submitted_at=doc["submitted_at"],
        history=tuple(
            Transition(ApplicationState(t["state"]), t["at"], t["by"], t["reason"])
            for t in doc["history"]
        ),
        # Documents written before every field was stored have these only once allocated
        # (booth number, allocated_at) or withdrawn (penalty).
        booth_number=doc.get("booth_number", ""),
        penalty_fen=doc.get("penalty_fen", 0),
        allocated_at=doc.get("allocated_at"),
    )
