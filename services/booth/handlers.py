"""The booth service's use cases. Each runs inside one transaction (``tx``) and records
its events there, so state and events commit together or not at all."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from booth.documents import (
    Document,
    exporter_message,
    fair_document,
    fair_from,
    fair_message,
    profile_document,
    profile_from,
)
from booth.domain import (
    BoothType,
    ExporterProfile,
    Fair,
    FairStatus,
    Ranked,
    State,
    application_id_for,
    booth_number,
    plan_allocation,
    require_transition,
    score,
    withdrawal_penalty_fen,
)
from chuhai.booth.v1 import events_pb2 as events
from runtime.adapters import topics
from runtime.adapters.outbox import Transaction
from runtime.kernel.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
)

EXPORTERS = "exporters"
FAIRS = "fairs"
APPLICATIONS = "applications"
# One counter per fair and booth type: how many booths are allocated and how many
# numbers were issued. Every change to an allocation writes it, which makes concurrent
# allocations, withdrawals and promotions conflict and retry in turn: the quota holds.
QUOTA_COUNTERS = "quota_counters"

PRIORITY_ORDER = [("score", DESCENDING), ("submitted_at", ASCENDING), ("_id", ASCENDING)]


async def ensure_indexes(db: Any) -> None:
    await db[APPLICATIONS].create_index(
        [("fair_id", ASCENDING), ("booth_type", ASCENDING), ("state", ASCENDING), *PRIORITY_ORDER]
    )
    await db[APPLICATIONS].create_index([("credit_code", ASCENDING), ("fair_id", ASCENDING)])
    await db[EXPORTERS].create_index([("district", ASCENDING), ("_id", ASCENDING)])


def counter_id(fair_id: str, booth_type: BoothType) -> str:
    return f"{fair_id}:{int(booth_type)}"


# Exporters -----------------------------------------------------------------------------


async def register_exporter(
    tx: Transaction, credit_code: str, profile: ExporterProfile, now: datetime
) -> Document:
    doc = {"_id": credit_code, **profile_document(profile), "registered_at": now, "updated_at": now}
    try:
        await tx.db[EXPORTERS].insert_one(doc, session=tx.session)
    except DuplicateKeyError as error:
        raise AlreadyExists(f"exporter {credit_code} is already registered") from error
    await tx.record(
        topics.BOOTH_EXPORTERS,
        events.ExporterRegistered(exporter=exporter_message(doc)),
        aggregate_id=credit_code,
    )
    return doc


async def update_exporter(
    tx: Transaction, credit_code: str, profile: ExporterProfile, now: datetime
) -> Document:
    doc = await tx.db[EXPORTERS].find_one_and_update(
        {"_id": credit_code},
        {"$set": {**profile_document(profile), "updated_at": now}},
        return_document=True,
        session=tx.session,
    )
    if doc is None:
        raise NotFound(f"no exporter with credit code {credit_code}")
    await tx.record(
        topics.BOOTH_EXPORTERS,
        events.ExporterUpdated(exporter=exporter_message(doc)),
        aggregate_id=credit_code,
    )
    return doc


# Fairs ---------------------------------------------------------------------------------


async def create_fair(tx: Transaction, fair: Fair, now: datetime) -> Fair:
    try:
        await tx.db[FAIRS].insert_one(fair_document(fair, now), session=tx.session)
    except DuplicateKeyError as error:
        raise AlreadyExists(f"fair {fair.fair_id} already exists") from error
    await tx.db[QUOTA_COUNTERS].insert_many(
        [
            {
                "_id": counter_id(fair.fair_id, q.booth_type),
                "quota": q.quota,
                "allocated": 0,
                "issued": 0,
                "version": 0,
            }
            for q in fair.quotas
        ],
        session=tx.session,
    )
    await tx.record(
        topics.BOOTH_FAIRS, events.FairCreated(fair=fair_message(fair)), aggregate_id=fair.fair_id
    )
    return fair


async def load_fair(tx: Transaction, fair_id: str) -> Fair:
    doc = await tx.db[FAIRS].find_one({"_id": fair_id}, session=tx.session)
    if doc is None:
        raise NotFound(f"no fair {fair_id!r}")
    return fair_from(doc)


async def set_fair_status(tx: Transaction, fair_id: str, target: FairStatus) -> Fair:
    fair = await load_fair(tx, fair_id)
    allowed_from = {
        FairStatus.OPEN: {FairStatus.DRAFT, FairStatus.CLOSED},
        FairStatus.CLOSED: {FairStatus.OPEN},
    }[target]
    if fair.status not in allowed_from:
        raise FailedPrecondition(
            f"fair {fair_id} is {fair.status.name.lower()}; it cannot become {target.name.lower()}"
        )
    # By _id alone: the transaction already read the fair, and a concurrent change to
    # it is a write conflict that retries the whole transaction (SecantusDB plans _id
    # plus any other predicate as a collection scan).
    await tx.db[FAIRS].update_one(
        {"_id": fair_id},
        {"$set": {"status": int(target)}},
        session=tx.session,
    )
    event = events.FairOpened if target == FairStatus.OPEN else events.FairClosed
    await tx.record(topics.BOOTH_FAIRS, event(fair_id=fair_id), aggregate_id=fair_id)
    return Fair(**{**vars(fair), "status": target})


# Applications --------------------------------------------------------------------------


def _transition(state: State, at: datetime, by: str, reason: str = "") -> Document:
    return {"state": int(state), "at": at, "by": by, "reason": reason}


async def submit_application(
    tx: Transaction,
    fair_id: str,
    credit_code: str,
    booth_type: BoothType,
    hs_code: str,
    now: datetime,
) -> Document:
    fair = await load_fair(tx, fair_id)
    quota = fair.quota_for(booth_type)
    if quota is None:
        raise InvalidArgument(
            FieldViolation("booth_type", f"fair {fair_id} has no {booth_type.name.lower()} booths")
        )
    zone = fair.zone_for(hs_code)
    if zone is None:
        raise InvalidArgument(
            FieldViolation(
                "main_product_hs_code",
                f"HS heading {hs_code[:4]} belongs to no exhibition zone of fair {fair_id}",
            )
        )
    if fair.status != FairStatus.OPEN:
        raise FailedPrecondition(f"fair {fair_id} is not open for applications")
    if now > quota.application_deadline:
        raise FailedPrecondition(
            f"applications for {booth_type.name.lower()} booths at {fair_id} closed at "
            f"{quota.application_deadline.isoformat()}"
        )
    exporter = await tx.db[EXPORTERS].find_one({"_id": credit_code}, session=tx.session)
    if exporter is None:
        raise NotFound(f"no exporter with credit code {credit_code}")
    points = score(profile_from(exporter), fair.scoring_sheet)
    application_id = application_id_for(fair_id, credit_code, booth_type)
    doc = {
        "_id": application_id,
        "fair_id": fair_id,
        "credit_code": credit_code,
        "booth_type": int(booth_type),
        "hs_code": hs_code,
        "zone_code": zone.code,
        "state": int(State.SCORED),
        "score": points,
        "submitted_at": now,
        "history": [
            _transition(State.SUBMITTED, now, "exporter"),
            _transition(State.SCORED, now, "system", "scoring sheet"),
        ],
    }
    try:
        await tx.db[APPLICATIONS].insert_one(doc, session=tx.session)
    except DuplicateKeyError as error:
        raise AlreadyExists(
            f"{credit_code} already applied for a {booth_type.name.lower()} booth at {fair_id}"
        ) from error
    await tx.record(
        topics.BOOTH_APPLICATIONS,
        events.BoothApplicationSubmitted(
            application_id=application_id,
            fair_id=fair_id,
            credit_code=credit_code,
            booth_type=int(booth_type),
            main_product_hs_code=hs_code,
            zone_code=zone.code,
            district=exporter["district"],
            industry=exporter["industry"],
        ),
        aggregate_id=application_id,
    )
    await tx.record(
        topics.BOOTH_APPLICATIONS,
        events.BoothApplicationScored(
            application_id=application_id, fair_id=fair_id, booth_type=int(booth_type), score=points
        ),
        aggregate_id=application_id,
    )
    return doc


async def load_application(tx: Transaction, application_id: str) -> Document:
    doc = await tx.db[APPLICATIONS].find_one({"_id": application_id}, session=tx.session)
    if doc is None:
        raise NotFound(f"no application {application_id!r}")
    return doc


async def _move(
    tx: Transaction,
    doc: Document,
    target: State,
    by: str,
    now: datetime,
    reason: str = "",
    **changes: Any,
) -> Document:
    """Change an application's state. ``doc`` was read in this transaction: if another
    one changes it meanwhile, the write conflicts and this transaction is retried."""
    current = State(doc["state"])
    require_transition(current, target, doc["_id"])
    updated = await tx.db[APPLICATIONS].find_one_and_update(
        {"_id": doc["_id"]},
        {
            "$set": {"state": int(target), **changes},
            "$push": {"history": _transition(target, now, by, reason)},
        },
        return_document=True,
        session=tx.session,
    )
    return updated


async def _bump_counter(
    tx: Transaction, fair_id: str, booth_type: BoothType, **increments: int
) -> Document:
    counter = await tx.db[QUOTA_COUNTERS].find_one_and_update(
        {"_id": counter_id(fair_id, booth_type)},
        {"$inc": {"version": 1, **increments}},
        return_document=True,
        session=tx.session,
    )
    if counter["allocated"] > counter["quota"]:
        # Unreachable while every allocation goes through here; refuse rather than corrupt.
        raise FailedPrecondition(f"quota of {fair_id} would be exceeded")
    return counter


async def _waitlist_in_order(
    tx: Transaction, fair_id: str, booth_type: BoothType
) -> list[Document]:
    cursor = (
        tx.db[APPLICATIONS]
        .find(
            {"fair_id": fair_id, "booth_type": int(booth_type), "state": int(State.WAITLISTED)},
            session=tx.session,
        )
        .sort(PRIORITY_ORDER)
    )
    return [doc async for doc in cursor]


async def _allocate(
    tx: Transaction, doc: Document, number: str, quota: int, by: str, now: datetime, reason: str
) -> Document:
    allocated = await _move(
        tx, doc, State.ALLOCATED, by, now, reason, booth_number=number, allocated_at=now
    )
    await tx.record(
        topics.BOOTH_APPLICATIONS,
        events.BoothAllocated(
            application_id=doc["_id"],
            fair_id=doc["fair_id"],
            credit_code=doc["credit_code"],
            booth_type=doc["booth_type"],
            booth_number=number,
            quota=quota,
        ),
        aggregate_id=doc["_id"],
    )
    return allocated


@dataclass(frozen=True)
class AllocationResult:
    quota: int
    allocated_total: int
    newly_allocated: int
    newly_waitlisted: int


async def run_allocation(
    tx: Transaction, fair_id: str, booth_type: BoothType, now: datetime
) -> AllocationResult:
    """Allocate the free booths in priority order among scored and waitlisted
    applications; the others (re)join the waitlist in priority order."""
    fair = await load_fair(tx, fair_id)
    if fair.quota_for(booth_type) is None:
        raise InvalidArgument(
            FieldViolation("booth_type", f"fair {fair_id} has no {booth_type.name.lower()} booths")
        )
    if fair.status == FairStatus.DRAFT:
        raise FailedPrecondition(f"fair {fair_id} has not opened for applications yet")
    counter = await tx.db[QUOTA_COUNTERS].find_one(
        {"_id": counter_id(fair_id, booth_type)}, session=tx.session
    )
    cursor = tx.db[APPLICATIONS].find(
        {
            "fair_id": fair_id,
            "booth_type": int(booth_type),
            "state": {"$in": [int(State.SCORED), int(State.WAITLISTED)]},
        },
        session=tx.session,
    )
    candidates = {doc["_id"]: doc async for doc in cursor}
    plan = plan_allocation(
        [Ranked(d["_id"], d["score"], d["submitted_at"]) for d in candidates.values()],
        counter["quota"] - counter["allocated"],
    )
    for offset, ranked in enumerate(plan.allocate, start=1):
        number = booth_number(booth_type, counter["issued"] + offset)
        await _allocate(
            tx,
            candidates[ranked.application_id],
            number,
            counter["quota"],
            "bureau",
            now,
            "allocation",
        )
    newly_waitlisted = 0
    for position, ranked in enumerate(plan.waitlist, start=1):
        doc = candidates[ranked.application_id]
        if doc["state"] == int(State.SCORED):
            newly_waitlisted += 1
            await _move(tx, doc, State.WAITLISTED, "bureau", now, "quota taken")
            await tx.record(
                topics.BOOTH_APPLICATIONS,
                events.BoothApplicationWaitlisted(
                    application_id=doc["_id"],
                    fair_id=fair_id,
                    booth_type=int(booth_type),
                    waitlist_position=position,
                ),
                aggregate_id=doc["_id"],
            )
    updated = await _bump_counter(
        tx, fair_id, booth_type, allocated=len(plan.allocate), issued=len(plan.allocate)
    )
    return AllocationResult(
        quota=updated["quota"],
        allocated_total=updated["allocated"],
        newly_allocated=len(plan.allocate),
        newly_waitlisted=newly_waitlisted,
    )


@dataclass(frozen=True)
class Withdrawal:
    application: Document
    promoted: Document | None


async def withdraw_application(
    tx: Transaction, application_id: str, reason: str, now: datetime
) -> Withdrawal:
    doc = await load_application(tx, application_id)
    previous = State(doc["state"])
    booth_type = BoothType(doc["booth_type"])
    penalty = 0
    if previous == State.ALLOCATED:
        fair = await load_fair(tx, doc["fair_id"])
        penalty = withdrawal_penalty_fen(fair.quota_for(booth_type), fair.opens_at, now)
    withdrawn = await _move(tx, doc, State.WITHDRAWN, "exporter", now, reason, penalty_fen=penalty)
    await tx.record(
        topics.BOOTH_APPLICATIONS,
        events.BoothApplicationWithdrawn(
            application_id=application_id,
            fair_id=doc["fair_id"],
            credit_code=doc["credit_code"],
            booth_type=int(booth_type),
            previous_state=int(previous),
            booth_number=doc.get("booth_number", ""),
            penalty_fen=penalty,
        ),
        aggregate_id=application_id,
    )
    if previous != State.ALLOCATED:
        return Withdrawal(withdrawn, None)
    # The freed booth goes to the first application on the waitlist, if any.
    waitlist = await _waitlist_in_order(tx, doc["fair_id"], booth_type)
    if not waitlist:
        await _bump_counter(tx, doc["fair_id"], booth_type, allocated=-1)
        return Withdrawal(withdrawn, None)
    counter = await _bump_counter(tx, doc["fair_id"], booth_type)
    promoted = await _allocate(
        tx, waitlist[0], doc["booth_number"], counter["quota"], "system", now, "waitlist promotion"
    )
    await tx.record(
        topics.BOOTH_APPLICATIONS,
        events.WaitlistPromoted(
            application_id=promoted["_id"],
            fair_id=doc["fair_id"],
            booth_type=int(booth_type),
            booth_number=doc["booth_number"],
            freed_by_application_id=application_id,
        ),
        aggregate_id=promoted["_id"],
    )
    return Withdrawal(withdrawn, promoted)


async def reject_application(
    tx: Transaction, application_id: str, reason: str, now: datetime
) -> Document:
    doc = await load_application(tx, application_id)
    rejected = await _move(tx, doc, State.REJECTED, "bureau", now, reason)
    await tx.record(
        topics.BOOTH_APPLICATIONS,
        events.BoothApplicationRejected(
            application_id=application_id,
            fair_id=doc["fair_id"],
            booth_type=doc["booth_type"],
            reason=reason,
        ),
        aggregate_id=application_id,
    )
    return rejected


async def waitlist_position(db: Any, doc: Document) -> int:
    """1-based place of a waitlisted application; 0 when it is not waitlisted."""
    if doc["state"] != int(State.WAITLISTED):
        return 0
    ahead = await db[APPLICATIONS].count_documents(
        {
            "fair_id": doc["fair_id"],
            "booth_type": doc["booth_type"],
            "state": int(State.WAITLISTED),
            "$or": [
                {"score": {"$gt": doc["score"]}},
                {"score": doc["score"], "submitted_at": {"$lt": doc["submitted_at"]}},
                {
                    "score": doc["score"],
                    "submitted_at": doc["submitted_at"],
                    "_id": {"$lt": doc["_id"]},
                },
            ],
        }
    )
    return ahead + 1
