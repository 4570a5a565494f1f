"""The request pipeline every domain service runs its use cases through.

A use case (a service's ``handlers.py``) sees a UnitOfWork: the service's repository
bound to one transaction, the moment it runs at, and ``record`` for the domain events
it produced. The runner opens the transaction, runs the use case, turns the recorded
events into envelopes in the outbox (through the service's ``messages.py``), answers
a retried request id with its first response (and refuses the id reused for another
request), and commits all of it at once.

Handlers never see pymongo or protobuf; unit tests give them an in-memory repository
and ``tests.fakes.FakeUnitOfWork`` instead."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from google.protobuf.message import Message
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from runtime.adapters.idempotency import earlier_response, remember_response
from runtime.adapters.locks import KeyedLocks
from runtime.adapters.outbox import Outbox, Transaction
from runtime.adapters.topics import TopicSpec
from runtime.kernel.clock import Clock
from runtime.kernel.identity import SYSTEM, Principal
from runtime.kernel.validation import Validator

S = TypeVar("S")
S_co = TypeVar("S_co", covariant=True)
T = TypeVar("T")
M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class OutgoingEvent:
    """A domain event as it goes into the outbox: its topic, payload and Kafka key.

    ``event_id`` is empty for a fresh id; a fact the client identified itself (a visit)
    derives it from the client's id, so reporting it twice records it once."""

    topic: TopicSpec
    payload: Message
    aggregate_id: str
    event_id: str = ""


EncodeEvent = Callable[[Any], OutgoingEvent]
"""A service's ``messages.py`` function from its domain events to outgoing events."""

OpenStore = Callable[[AsyncDatabase, AsyncClientSession | None], S]
"""Builds a service's repository on a database, inside a transaction or (reads) not."""


class UnitOfWork(Protocol[S_co]):
    """What a use case sees."""

    @property
    def store(self) -> S_co: ...

    @property
    def now(self) -> datetime: ...

    @property
    def actor(self) -> Principal:
        """Who the use case runs for: the caller, or SYSTEM for the service's own work."""
        ...

    def record(self, *events: Any) -> None:
        """Domain events to publish if, and only if, this unit of work commits."""
        ...

    async def already_recorded(self, event_ids: Sequence[str]) -> set[str]:
        """Which of these client-derived event ids were recorded by earlier requests."""
        ...


class MongoUnitOfWork(Generic[S]):
    """A UnitOfWork over one MongoDB transaction and its service's outbox."""

    def __init__(
        self, store: S, now: datetime, actor: Principal, tx: Transaction, encode: EncodeEvent
    ) -> None:
        self._store = store
        self._now = now
        self._actor = actor
        self._tx = tx
        self._encode = encode
        self._events: list[Any] = []

    @property
    def store(self) -> S:
        return self._store

    @property
    def now(self) -> datetime:
        return self._now

    @property
    def actor(self) -> Principal:
        return self._actor

    def record(self, *events: Any) -> None:
        self._events.extend(events)

    async def already_recorded(self, event_ids: Sequence[str]) -> set[str]:
        return await self._tx.already_recorded(event_ids)

    async def flush(self) -> None:
        """Write the recorded events to the outbox, in the order they were recorded."""
        for event in self._events:
            outgoing = self._encode(event)
            await self._tx.record(
                outgoing.topic,
                outgoing.payload,
                aggregate_id=outgoing.aggregate_id,
                event_id=outgoing.event_id,
                # The moment the use case decided at: events and state agree, also
                # under a clock a test moved.
                occurred_at=self._now,
                actor=self._actor,
            )
        self._events.clear()


class UseCaseRunner(Generic[S]):
    """Runs one service's use cases: each in one transaction with its events, a
    mutating request once per request id, reads on the repository without one."""

    def __init__(
        self,
        outbox: Outbox,
        open_store: OpenStore[S],
        encode_event: EncodeEvent,
        clock: Clock,
    ) -> None:
        self._outbox = outbox
        self._open_store = open_store
        self._encode = encode_event
        self.clock = clock
        self._locks = KeyedLocks()

    def reader(self) -> S:
        """The repository outside any transaction, for queries."""
        return self._open_store(self._outbox.db, None)

    async def run_once(
        self,
        method: str,
        request: Message,
        response_type: type[M],
        use_case: Callable[[UnitOfWork[S]], Awaitable[T]],
        respond: Callable[[T], M],
        *,
        actor: Principal,
        one_at_a_time: str = "",
    ) -> M:
        """Run ``use_case`` once per (method, ``request.request_id``) and answer with
        ``respond`` of its result; a retry gets the first answer back and changes
        nothing. The same request id on a different request is refused with
        FailedPrecondition (REQUEST_ID_REUSED): answering it with the first response
        would tell the client a change it asked for was made when it was not.

        ``one_at_a_time`` names a key (a fair and booth type, a warehouse) whose
        requests this process runs in turn: they would all write the same documents,
        and taking turns spares SecantusDB a storm of transaction conflicts. The
        transaction, not this lock, is what keeps such state exact across processes.
        """
        request_id: str = request.request_id  # type: ignore[attr-defined]
        check = Validator()
        check.request_id(request_id)
        check.raise_if_invalid()

        async def attempt(tx: Transaction) -> M:
            earlier = await earlier_response(
                tx, method, request_id, request, response_type, actor.audit_name
            )
            if earlier is not None:
                return earlier
            response = respond(await self._run_in(tx, use_case, actor))
            await remember_response(tx, method, request_id, request, response, actor.audit_name)
            return response

        async with self._turn(one_at_a_time):
            return await self._outbox.transact(attempt, correlation_id=request_id)

    async def run(
        self,
        use_case: Callable[[UnitOfWork[S]], Awaitable[T]],
        *,
        actor: Principal = SYSTEM,
        one_at_a_time: str = "",
    ) -> T:
        """Run ``use_case`` in one transaction with its events, without a request id
        (the service's own background work, such as expiring intents)."""

        async def attempt(tx: Transaction) -> T:
            return await self._run_in(tx, use_case, actor)

        async with self._turn(one_at_a_time):
            return await self._outbox.transact(attempt)

    async def _run_in(
        self,
        tx: Transaction,
        use_case: Callable[[UnitOfWork[S]], Awaitable[T]],
        actor: Principal,
    ) -> T:
        uow = MongoUnitOfWork(
            self._open_store(tx.db, tx.session), self.clock.now(), actor, tx, self._encode
        )
        result = await use_case(uow)
        await uow.flush()
        return result

    @contextlib.asynccontextmanager
    async def _turn(self, key: str) -> AsyncIterator[None]:
        if not key:
            yield
            return
        async with self._locks.hold(key):
            yield
