"""Request ids cannot be misread: a faithful retry gets its first answer, the same id on a
different request is refused, and refusals carry a reason a client can branch on. On real
MongoDB, and over gRPC through the servers' error interceptor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from bson.binary import Binary
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from chuhai.booth.v1 import booth_service_pb2 as pb
from chuhai.booth.v1 import booth_service_pb2_grpc as pb_grpc
from chuhai.booth.v1 import events_pb2
from chuhai.booth.v1 import resources_pb2 as res
from runtime.adapters.grpc_errors import DomainErrorInterceptor, error_reason
from runtime.adapters.idempotency import REQUESTS_COLLECTION
from runtime.adapters.outbox import OUTBOX_COLLECTION, Outbox
from runtime.adapters.topics import BOOTH_FAIRS
from runtime.adapters.unit_of_work import OutgoingEvent, UnitOfWork, UseCaseRunner
from runtime.kernel.clock import SystemClock
from runtime.kernel.errors import FailedPrecondition
from runtime.kernel.identity import Principal, Role

pytestmark = pytest.mark.integration

OPENED = "opened_fairs"
OFFICER = Principal(subject="officer-1", role=Role.OFFICER)


@dataclass(frozen=True)
class FairOpened:
    fair_id: str


class OpenedFairs:
    """The smallest repository: one document per fair opened."""

    def __init__(self, db: AsyncDatabase, session: AsyncClientSession | None) -> None:
        self._db = db
        self._session = session

    async def add(self, fair_id: str) -> None:
        await self._db[OPENED].insert_one({"_id": fair_id}, session=self._session)


def encode(event: FairOpened) -> OutgoingEvent:
    return OutgoingEvent(
        BOOTH_FAIRS, events_pb2.FairOpened(fair_id=event.fair_id), aggregate_id=event.fair_id
    )


@pytest.fixture
async def db(mongo: AsyncMongoClient, unique: str) -> AsyncDatabase:
    return mongo.get_database(f"t{unique}_requests")


@pytest.fixture
def runner(mongo: AsyncMongoClient, db: AsyncDatabase) -> UseCaseRunner[OpenedFairs]:
    return UseCaseRunner(Outbox(mongo, db, producer="booth"), OpenedFairs, encode, SystemClock())


async def open_fair(
    runner: UseCaseRunner[OpenedFairs], request: pb.OpenFairRequest
) -> pb.OpenFairResponse:
    async def use_case(uow: UnitOfWork[OpenedFairs]) -> str:
        await uow.store.add(request.fair_id)
        uow.record(FairOpened(request.fair_id))
        return request.fair_id

    return await runner.run_once(
        "OpenFair",
        request,
        pb.OpenFairResponse,
        use_case,
        lambda fair_id: pb.OpenFairResponse(fair=res.Fair(fair_id=fair_id)),
        actor=OFFICER,
    )


async def written(db: AsyncDatabase) -> dict[str, list[object]]:
    """Everything the runner and the use case wrote: documents, outbox, request ids."""
    found: dict[str, list[object]] = {}
    for name in (OPENED, OUTBOX_COLLECTION, REQUESTS_COLLECTION):
        found[name] = [doc["_id"] async for doc in db[name].find({}, {"_id": 1})]
    return found


async def test_a_faithful_retry_gets_the_first_answer_and_changes_nothing(
    runner: UseCaseRunner[OpenedFairs], db: AsyncDatabase
) -> None:
    request = pb.OpenFairRequest(request_id="open-1", fair_id="canton-137")
    first = await open_fair(runner, request)
    before = await written(db)
    assert before[OPENED] == ["canton-137"]
    assert len(before[OUTBOX_COLLECTION]) == 1

    again = await open_fair(runner, pb.OpenFairRequest(request_id="open-1", fair_id="canton-137"))

    assert again == first
    assert await written(db) == before


async def test_the_same_request_id_on_a_different_request_is_refused_and_writes_nothing(
    runner: UseCaseRunner[OpenedFairs], db: AsyncDatabase
) -> None:
    await open_fair(runner, pb.OpenFairRequest(request_id="open-1", fair_id="canton-137"))
    before = await written(db)

    with pytest.raises(FailedPrecondition) as refused:
        await open_fair(runner, pb.OpenFairRequest(request_id="open-1", fair_id="canton-138"))

    assert refused.value.reason == "REQUEST_ID_REUSED"
    assert "request_id open-1 was already used for a different OpenFair request" in (
        refused.value.message
    )
    assert await written(db) == before
    # The id still answers the request it was first given to.
    answer = await open_fair(runner, pb.OpenFairRequest(request_id="open-1", fair_id="canton-137"))
    assert answer.fair.fair_id == "canton-137"


async def test_a_response_stored_before_fingerprints_still_answers_its_retry(
    runner: UseCaseRunner[OpenedFairs], db: AsyncDatabase
) -> None:
    earlier = pb.OpenFairResponse(fair=res.Fair(fair_id="canton-137"))
    await db[REQUESTS_COLLECTION].insert_one(
        {"_id": "OpenFair:open-1", "response": Binary(earlier.SerializeToString())}
    )

    answer = await open_fair(runner, pb.OpenFairRequest(request_id="open-1", fair_id="canton-137"))

    assert answer == earlier
    assert (await written(db))[OPENED] == []


class OpenOnly(pb_grpc.BoothServiceServicer):
    """OpenFair on the runner above, behind the servers' error interceptor."""

    def __init__(self, runner: UseCaseRunner[OpenedFairs]) -> None:
        self._runner = runner

    async def OpenFair(
        self, request: pb.OpenFairRequest, context: grpc.aio.ServicerContext
    ) -> pb.OpenFairResponse:
        return await open_fair(self._runner, request)


@pytest.fixture
async def stub(runner: UseCaseRunner[OpenedFairs]) -> AsyncIterator[pb_grpc.BoothServiceStub]:
    server = grpc.aio.server(interceptors=[DomainErrorInterceptor()])
    pb_grpc.add_BoothServiceServicer_to_server(OpenOnly(runner), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield pb_grpc.BoothServiceStub(channel)
    finally:
        await server.stop(None)


async def test_a_reused_request_id_reaches_the_client_with_its_reason(
    stub: pb_grpc.BoothServiceStub,
) -> None:
    first = pb.OpenFairRequest(request_id="open-1", fair_id="canton-139")
    answer = await stub.OpenFair(first, timeout=10)
    assert await stub.OpenFair(first, timeout=10) == answer

    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await stub.OpenFair(
            pb.OpenFairRequest(request_id="open-1", fair_id="canton-140"), timeout=10
        )

    assert reused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(reused.value) == "REQUEST_ID_REUSED"
    assert "use a new request_id" in (reused.value.details() or "")
