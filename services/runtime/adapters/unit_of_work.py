"""The request pipeline every domain service runs its use cases through.

A use case (a service's ``handlers.py``) sees a UnitOfWork: the service's repository
bound to one transaction, the moment it runs at, and ``record`` for the domain events
it produced. The runner opens the transaction, runs the use case, turns the recorded
events into envelopes in the outbox (through the service's ``messages.py``), answers
a retried request id with its first response (and refuses the id reused for another
request), and commits all of it at once. Concurrent requests share transactions (group
commit, UseCaseRunner.run_once): the commit is paid once for many.

Handlers never see pymongo or protobuf; unit tests give them an in-memory repository
and ``tests.fakes.FakeUnitOfWork`` instead."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from google.protobuf.message import Message
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from runtime.adapters.idempotency import earlier_response, remember_response
from runtime.adapters.locks import KeyedLocks
from runtime.adapters.mongo import TransactionFailed
from runtime.adapters.outbox import Outbox, Transaction
from runtime.adapters.topics import TopicSpec
from runtime.adapters.tracing import current_traceparent
from runtime.kernel.clock import Clock
from runtime.kernel.errors import DomainError
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
    """A UnitOfWork over one MongoDB transaction and its service's outbox.

    Its events carry its own request's correlation id and trace (``correlation_id``,
    ``traceparent``; None: the transaction's and the current span's), not those of the
    other requests sharing the transaction."""

    def __init__(
        self,
        store: S,
        now: datetime,
        actor: Principal,
        tx: Transaction,
        encode: EncodeEvent,
        *,
        correlation_id: str | None = None,
        traceparent: str | None = None,
    ) -> None:
        self._store = store
        self._now = now
        self._actor = actor
        self._tx = tx
        self._encode = encode
        self._correlation_id = correlation_id
        self._traceparent = traceparent
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
                correlation_id=self._correlation_id,
                traceparent=self._traceparent,
                # One insert for all the events of the transaction's requests.
                at_commit=True,
            )
        self._events.clear()


@dataclass(eq=False)
class _Call:
    """One request of run_once, as a batch runs it for its caller."""

    method: str
    request: Message
    response_type: type[Message]
    use_case: Callable[[UnitOfWork[Any]], Awaitable[Any]]
    respond: Callable[[Any], Message]
    actor: Principal
    key: str
    # Captured in the caller's task: the batch runs in a task of its own.
    traceparent: str
    # Its response, or its DomainError, once its batch committed; _ALONE when it must
    # run in a transaction of its own after all.
    outcome: asyncio.Future[Any]

    @property
    def request_id(self) -> str:
        return self.request.request_id  # type: ignore[attr-defined,no-any-return]


_ALONE = object()


class _SplitBatch(Exception):
    """A request failed after it had written: the batch's transaction cannot commit
    without the rest of that request, so each request runs alone instead."""


@dataclass(eq=False)
class _Batch:
    calls: list[_Call] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class UseCaseRunner(Generic[S]):
    """Runs one service's use cases: each in one transaction with its events, a
    mutating request once per request id, reads on the repository without one.

    Group commit: a request arriving while another transaction of this runner is
    running waits up to the outbox's ``group_commit.max_wait_seconds`` for others, and
    up to ``max_batch`` of them run in one transaction, one after the other on its
    session: SecantusDB pays a commit per transaction, not per request. Each keeps its
    own answer: a request refused (a DomainError) before it wrote anything gets its
    error while the others commit; one that fails after writing splits the batch and
    every request runs in a transaction of its own; a conflict retries the whole batch.
    A request arriving while nothing runs starts at once."""

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
        self._group = outbox.group_commit
        # Transactions of run_once running now, alone or batched.
        self._running = 0
        self._collecting: _Batch | None = None
        self._batches: set[asyncio.Task[None]] = set()

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
        alone: bool = False,
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
        Such requests batch with any others: within a batch they run in turn anyway,
        and a batch holds the turn of every key among its requests while it runs (taken
        in key order, so batches never wait on each other in a circle). Batching them
        only with their own key would leave the hottest of them (SubmitIntent, keyed by
        buyer) alone nearly always.

        ``alone`` keeps a heavy request (an allocation over every application of a
        fair) out of batches: in one, it would wait for all its batch-mates, and they for
        it.
        """
        request_id: str = request.request_id  # type: ignore[attr-defined]
        check = Validator()
        check.request_id(request_id)
        check.raise_if_invalid()
        call = _Call(
            method,
            request,
            response_type,
            use_case,  # type: ignore[arg-type]
            respond,  # type: ignore[arg-type]
            actor,
            one_at_a_time,
            current_traceparent(),
            asyncio.get_running_loop().create_future(),
        )
        if alone or not self._batching():
            return await self._alone(call)  # type: ignore[return-value]
        self._join(call)
        outcome = await call.outcome
        if outcome is _ALONE:
            return await self._alone(call)  # type: ignore[return-value]
        return outcome  # type: ignore[no-any-return]

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
        *,
        correlation_id: str | None = None,
        traceparent: str | None = None,
    ) -> T:
        uow = MongoUnitOfWork(
            self._open_store(tx.db, tx.session),
            self.clock.now(),
            actor,
            tx,
            self._encode,
            correlation_id=correlation_id,
            traceparent=traceparent,
        )
        result = await use_case(uow)
        await uow.flush()
        return result

    async def _answer(self, tx: Transaction, call: _Call) -> Message:
        """One request inside ``tx``: its earlier answer, or its use case's, remembered."""
        caller = call.actor.audit_name
        earlier = await earlier_response(
            tx, call.method, call.request_id, call.request, call.response_type, caller
        )
        if earlier is not None:
            return earlier
        result = await self._run_in(
            tx,
            call.use_case,
            call.actor,
            correlation_id=call.request_id,
            traceparent=call.traceparent,
        )
        response = call.respond(result)
        await remember_response(tx, call.method, call.request_id, call.request, response, caller)
        return response

    async def _alone(self, call: _Call) -> Message:
        self._running += 1
        try:
            async with self._turn(call.key):
                return await self._outbox.transact(lambda tx: self._answer(tx, call))
        finally:
            self._running -= 1

    # Group commit ------------------------------------------------------------------

    def _batching(self) -> bool:
        """Whether a request arriving now waits for company: only while another
        transaction runs or a batch is forming, never at an idle service."""
        group = self._group
        if not group.enabled or group.max_batch < 2:
            return False
        return self._collecting is not None or self._running > 0

    def _join(self, call: _Call) -> None:
        batch = self._collecting
        if batch is None:
            batch = self._collecting = _Batch()
            batch.timer = asyncio.get_running_loop().call_later(
                self._group.max_wait_seconds, self._close, batch
            )
        batch.calls.append(call)
        if len(batch.calls) >= self._group.max_batch:
            self._close(batch)

    def _close(self, batch: _Batch) -> None:
        """Stop ``batch`` taking requests and start its transaction."""
        if self._collecting is not batch:
            return
        self._collecting = None
        if batch.timer is not None:
            batch.timer.cancel()
        if len(batch.calls) == 1:
            # Nobody came: the request runs as it would have, in its own task.
            _settle(batch.calls[0], _ALONE)
            return
        # A task of its own: a caller that gives up (its deadline passed) must not
        # cancel the others' transaction.
        task = asyncio.create_task(self._commit(batch.calls), name="group-commit")
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)

    async def _commit(self, calls: list[_Call]) -> None:
        """Run ``calls`` in one transaction and hand each its outcome once it committed."""
        self._running += 1
        try:
            async with self._turns(sorted({call.key for call in calls if call.key})):
                outcomes = await self._outbox.transact(lambda tx: self._run_batch(tx, calls))
        except TransactionFailed as error:
            # The batch kept conflicting past its budget: each request would alone as
            # well; the error tells its client to retry.
            for call in calls:
                _fail(call, error)
            return
        except asyncio.CancelledError:
            # The service is stopping: its callers stop with it.
            for call in calls:
                call.outcome.cancel()
            raise
        except Exception:
            # A request failed after it wrote (_SplitBatch), or the driver refused the
            # batch: alone, each request meets its own fate, and only the failing one
            # fails again.
            for call in calls:
                _settle(call, _ALONE)
            return
        finally:
            self._running -= 1
        for call, outcome in zip(calls, outcomes, strict=True):
            if isinstance(outcome, DomainError):
                _fail(call, outcome)
            else:
                _settle(call, outcome)

    async def _run_batch(self, tx: Transaction, calls: list[_Call]) -> list[Any]:
        """Each request in turn on ``tx``: its response, or the DomainError it was
        refused with before it wrote. Raises _SplitBatch when one failed after writing;
        a driver error (a conflict) leaves the batch whole, for a retry."""
        outcomes: list[Any] = []
        for call in calls:
            if call.outcome.done():
                # Its caller gave up before its turn: nothing is done for it.
                outcomes.append(None)
                continue
            writes = tx.writes
            try:
                outcomes.append(await self._answer(tx, call))
            except PyMongoError:
                raise
            except DomainError as error:
                if tx.writes != writes:
                    raise _SplitBatch(call.method) from error
                outcomes.append(error)
            except Exception as error:
                raise _SplitBatch(call.method) from error
        return outcomes

    @contextlib.asynccontextmanager
    async def _turn(self, key: str) -> AsyncIterator[None]:
        if not key:
            yield
            return
        async with self._locks.hold(key):
            yield

    @contextlib.asynccontextmanager
    async def _turns(self, keys: Sequence[str]) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for key in keys:
                await stack.enter_async_context(self._locks.hold(key))
            yield


def _settle(call: _Call, outcome: Any) -> None:
    if not call.outcome.done():
        call.outcome.set_result(outcome)


def _fail(call: _Call, error: BaseException) -> None:
    if not call.outcome.done():
        call.outcome.set_exception(error)
