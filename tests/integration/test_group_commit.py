"""Group commit: concurrent requests share one MongoDB transaction, yet each keeps its
own answer, events, request id and errors. On real MongoDB.

A batch is made deterministic: a first request holds its transaction open (so the
runner is busy and later requests wait for company), the batch closes when it is full
(the wait is far longer than the test), then the first request is let go."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from chuhai.booth.v1 import booth_service_pb2 as pb
from chuhai.booth.v1 import events_pb2
from chuhai.booth.v1 import resources_pb2 as res
from runtime.adapters.events import decode_envelope
from runtime.adapters.idempotency import REQUESTS_COLLECTION
from runtime.adapters.outbox import OUTBOX_COLLECTION, GroupCommit, Outbox
from runtime.adapters.topics import BOOTH_FAIRS
from runtime.adapters.unit_of_work import OutgoingEvent, UnitOfWork, UseCaseRunner
from runtime.kernel.clock import SystemClock
from runtime.kernel.errors import FailedPrecondition, NotFound
from runtime.kernel.identity import Principal, Role

pytestmark = pytest.mark.integration

OPENED = "opened_fairs"
BATCH = 4


@dataclass(frozen=True)
class FairOpened:
    fair_id: str


class OpenedFairs:
    """One document per fair opened; remembers the sessions its use cases ran on."""

    def __init__(self, db: AsyncDatabase, session: AsyncClientSession | None) -> None:
        self._db = db
        self.session = session

    async def add(self, fair_id: str) -> None:
        await self._db[OPENED].insert_one({"_id": fair_id}, session=self.session)


def encode(event: FairOpened) -> OutgoingEvent:
    return OutgoingEvent(
        BOOTH_FAIRS, events_pb2.FairOpened(fair_id=event.fair_id), aggregate_id=event.fair_id
    )


def officer(n: int) -> Principal:
    return Principal(subject=f"officer-{n}", role=Role.OFFICER)


class Fairs:
    """A runner batching up to BATCH requests, and what its use cases saw."""

    def __init__(self, runner: UseCaseRunner[OpenedFairs]) -> None:
        self.runner = runner
        # request id -> the sessions its use case ran on, one per run (held, so that
        # their ids are never reused for another)
        self.sessions: dict[str, list[int]] = {}
        self._held: list[object] = []

    async def open(
        self,
        fair_id: str,
        *,
        request_id: str = "",
        actor: Principal | None = None,
        before: Callable[[], Awaitable[None]] | None = None,
        fail: Exception | None = None,
        fail_after_write: bool = False,
        alone: bool = False,
    ) -> pb.OpenFairResponse:
        """Open ``fair_id``; the use case may wait on ``before`` first, or raise ``fail``
        before it writes (or after, with ``fail_after_write``). The response's name is
        fresh per run: a retry answered with the first response shows the first name."""
        request = pb.OpenFairRequest(request_id=request_id or str(uuid.uuid4()), fair_id=fair_id)

        async def use_case(uow: UnitOfWork[OpenedFairs]) -> str:
            store = uow.store
            self._held.append(store.session)
            self.sessions.setdefault(request.request_id, []).append(id(store.session))
            if before is not None:
                await before()
            if fail is not None and not fail_after_write:
                raise fail
            await store.add(fair_id)
            uow.record(FairOpened(fair_id))
            if fail is not None:
                raise fail
            return uuid.uuid4().hex

        return await self.runner.run_once(
            "OpenFair",
            request,
            pb.OpenFairResponse,
            use_case,
            lambda name: pb.OpenFairResponse(fair=res.Fair(fair_id=fair_id, name=name)),
            actor=actor or officer(0),
            alone=alone,
        )

    async def batch(self, *calls: Awaitable[pb.OpenFairResponse]) -> list[object]:
        """Run ``calls`` (BATCH of them) as one batch, while a first request holds the
        runner busy; their responses or errors, in order."""
        started, release = asyncio.Event(), asyncio.Event()

        async def hold() -> None:
            started.set()
            await release.wait()

        # The busy request is refused before it writes: its transaction, open beside
        # the batch's, can then never make the batch conflict and run again.
        busy = asyncio.create_task(
            self.open("busy", before=hold, fail=NotFound("busy writes nothing"))
        )
        async with asyncio.timeout(10):
            await started.wait()
        results = asyncio.gather(*calls, return_exceptions=True)
        await asyncio.sleep(0)  # every call joins the batch, which is then full
        release.set()
        with contextlib.suppress(NotFound):
            await busy
        return list(await results)


@pytest.fixture
async def db(mongo: AsyncMongoClient, unique: str) -> AsyncDatabase:
    return mongo.get_database(f"t{unique}_group_commit")


@pytest.fixture
def fairs(mongo: AsyncMongoClient, db: AsyncDatabase) -> Fairs:
    # The wait is far longer than any test: only a full batch closes it.
    group = GroupCommit(enabled=True, max_batch=BATCH, max_wait_seconds=60)
    outbox = Outbox(mongo, db, producer="booth", group_commit=group)
    return Fairs(UseCaseRunner(outbox, OpenedFairs, encode, SystemClock()))


async def opened(db: AsyncDatabase) -> set[str]:
    return {doc["_id"] async for doc in db[OPENED].find({})} - {"busy"}


async def events(db: AsyncDatabase) -> dict[str, tuple[str, str]]:
    """Fair id -> (actor subject, correlation id) of each FairOpened in the outbox."""
    found: dict[str, tuple[str, str]] = {}
    async for doc in db[OUTBOX_COLLECTION].find({}):
        envelope = decode_envelope(bytes(doc["envelope"]))
        fair_id = envelope.fair_opened.fair_id
        assert fair_id not in found, f"two events for {fair_id}"
        found[fair_id] = (envelope.actor.subject, envelope.correlation_id)
    found.pop("busy", None)
    return found


async def remembered(db: AsyncDatabase) -> set[str]:
    return {doc["_id"].removeprefix("OpenFair:") async for doc in db[REQUESTS_COLLECTION].find({})}


def one_session(fairs: Fairs, request_ids: list[str]) -> bool:
    """Whether the requests committed in the same transaction: the last attempt each ran
    in is the same (a conflict retries the whole batch, and may strike before the later
    requests of an attempt ran at all)."""
    return len({fairs.sessions[r][-1] for r in request_ids}) == 1


async def test_a_batch_commits_every_requests_state_events_and_request_id(
    fairs: Fairs, db: AsyncDatabase
) -> None:
    ids = [f"r{n}" for n in range(BATCH)]
    results = await fairs.batch(
        *(fairs.open(f"fair-{n}", request_id=ids[n], actor=officer(n)) for n in range(BATCH))
    )

    assert all(isinstance(r, pb.OpenFairResponse) for r in results), results
    assert one_session(fairs, ids), "the requests shared one transaction"
    assert await opened(db) == {f"fair-{n}" for n in range(BATCH)}
    assert await events(db) == {f"fair-{n}": (f"officer-{n}", ids[n]) for n in range(BATCH)}
    assert await remembered(db) >= set(ids)


async def test_a_refusal_before_writing_leaves_the_others_committed_and_itself_nothing(
    fairs: Fairs, db: AsyncDatabase
) -> None:
    ids = [f"r{n}" for n in range(BATCH)]
    refused = NotFound("no such fair")
    results = await fairs.batch(
        *(
            fairs.open(f"fair-{n}", request_id=ids[n], fail=refused if n == 1 else None)
            for n in range(BATCH)
        )
    )

    assert results[1] is refused
    assert all(isinstance(r, pb.OpenFairResponse) for i, r in enumerate(results) if i != 1)
    assert one_session(fairs, ids), "the batch was not split"
    assert await opened(db) == {"fair-0", "fair-2", "fair-3"}
    assert set(await events(db)) == {"fair-0", "fair-2", "fair-3"}
    assert "r1" not in await remembered(db)


async def test_a_failure_after_writing_splits_the_batch_and_the_others_commit_alone(
    fairs: Fairs, db: AsyncDatabase
) -> None:
    ids = [f"r{n}" for n in range(BATCH)]
    refused = FailedPrecondition("changed its mind", reason="TEST")
    results = await fairs.batch(
        *(
            fairs.open(
                f"fair-{n}",
                request_id=ids[n],
                fail=refused if n == 2 else None,
                fail_after_write=True,
            )
            for n in range(BATCH)
        )
    )

    assert results[2] is refused
    assert all(isinstance(r, pb.OpenFairResponse) for i, r in enumerate(results) if i != 2)
    # r0 to r2 ran in the batch until r2 failed (r3's turn never came), then each alone.
    batched = {fairs.sessions[r][0] for r in ids[:3]}
    assert len(batched) == 1, "they first ran as one batch"
    # Alone, a transaction may conflict with the others' and run again.
    alone = [fairs.sessions[r][-1] for r in ids]
    assert len(set(alone)) == len(alone) and not set(alone) & batched, "then each ran alone"
    assert await opened(db) == {"fair-0", "fair-1", "fair-3"}
    assert set(await events(db)) == {"fair-0", "fair-1", "fair-3"}
    assert "r2" not in await remembered(db)


async def test_a_retry_of_a_batched_request_gets_its_first_answer(
    fairs: Fairs, db: AsyncDatabase
) -> None:
    # r0 twice in one batch, and again afterwards.
    ids = ["r0", "r1", "r0", "r2"]
    first = await fairs.batch(*(fairs.open(f"fair-{r}", request_id=r) for r in ids))
    again = await fairs.open("fair-r0", request_id="r0")

    assert all(isinstance(r, pb.OpenFairResponse) for r in first), first
    assert first[0] == first[2] == again
    assert fairs.sessions["r0"] == fairs.sessions["r1"], "its use case ran once per attempt"
    assert await opened(db) == {"fair-r0", "fair-r1", "fair-r2"}
    assert set(await events(db)) == {"fair-r0", "fair-r1", "fair-r2"}


async def test_a_request_at_an_idle_runner_runs_at_once(
    mongo: AsyncMongoClient, db: AsyncDatabase
) -> None:
    # A wait no test would sit through: an idle runner must not take it.
    group = GroupCommit(enabled=True, max_batch=BATCH, max_wait_seconds=3600)
    outbox = Outbox(mongo, db, producer="booth", group_commit=group)
    fairs = Fairs(UseCaseRunner(outbox, OpenedFairs, encode, SystemClock()))

    async with asyncio.timeout(30):
        for n in range(3):
            await fairs.open(f"fair-{n}")

    assert await opened(db) == {"fair-0", "fair-1", "fair-2"}


async def test_a_request_asked_to_run_alone_never_joins_a_batch(
    fairs: Fairs, db: AsyncDatabase
) -> None:
    ids = ["r0", "heavy", "r1", "r2", "r3"]
    results = await fairs.batch(
        *(fairs.open(f"fair-{r}", request_id=r, alone=r == "heavy") for r in ids)
    )

    assert all(isinstance(r, pb.OpenFairResponse) for r in results), results
    batched = ["r0", "r1", "r2", "r3"]
    assert one_session(fairs, batched), fairs.sessions
    their_sessions = {session for r in batched for session in fairs.sessions[r]}
    assert not set(fairs.sessions["heavy"]) & their_sessions, "it ran in its own transaction"
    assert await opened(db) == {f"fair-{r}" for r in ids}
