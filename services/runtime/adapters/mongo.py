"""MongoDB through PyMongo's async API (the successor of Motor), and the unit of work
that writes state and its events in one transaction."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import OperationFailure, PyMongoError
from tenacity import AsyncRetrying, before_sleep_log, retry_if_exception_type, wait_exponential

from runtime.kernel.errors import Aborted

log = logging.getLogger(__name__)

T = TypeVar("T")


async def connect_mongo(uri: str, *, app_name: str) -> AsyncMongoClient:
    """Create the client on the running loop and wait, with backoff, until it answers.

    Never gives up: a service started before its database keeps saying why it waits.
    """
    client: AsyncMongoClient = AsyncMongoClient(
        uri, appname=app_name, tz_aware=True, serverSelectionTimeoutMS=3000
    )
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(PyMongoError),
        wait=wait_exponential(multiplier=0.2, max=10),
        before_sleep=before_sleep_log(log, logging.WARNING),
    ):
        with attempt:
            await client.admin.command("ping")
    log.info("connected to MongoDB", extra={"app": app_name})
    return client


class TransactionFailed(Aborted):
    """A transaction kept hitting transient errors past its time budget."""


# Why a transaction (or its commit) was retried, as run_in_transaction reports it.
RETRY_TRANSIENT = "transient"
RETRY_COMMIT_CONFLICT = "commit_conflict"
RETRY_UNKNOWN_COMMIT_RESULT = "unknown_commit_result"


async def run_in_transaction(
    client: AsyncMongoClient,
    work: Callable[[AsyncClientSession], Awaitable[T]],
    *,
    budget_seconds: float = 30.0,
    on_retry: Callable[[str], None] | None = None,
) -> T:
    """Run ``work`` in a transaction, retrying the whole of it on TransientTransactionError
    (write conflicts) and the commit alone on UnknownTransactionCommitResult, with jittered
    exponential backoff. ``work`` may run more than once, so it must not have side effects
    outside the session. ``on_retry`` hears of each retry with its reason (RETRY_*)."""
    deadline = time.monotonic() + budget_seconds
    attempt = 0
    while True:
        attempt += 1
        async with client.start_session() as session:
            try:
                await session.start_transaction()
                result = await work(session)
                await _commit(session, deadline, on_retry)
                return result
            except PyMongoError as error:
                if session.in_transaction:
                    # After a failed commit the server may already have dropped it.
                    with contextlib.suppress(PyMongoError):
                        await session.abort_transaction()
                if error.has_error_label("TransientTransactionError"):
                    reason = RETRY_TRANSIENT
                elif _commit_conflict(error):
                    reason = RETRY_COMMIT_CONFLICT
                else:
                    raise
                if time.monotonic() >= deadline:
                    raise TransactionFailed(
                        f"the change kept conflicting with concurrent ones ({attempt} attempts); "
                        "retry the request with the same request id",
                        reason="TRANSACTION_CONFLICT",
                    ) from error
            except BaseException:
                if session.in_transaction:
                    await session.abort_transaction()
                raise
        if on_retry is not None:
            on_retry(reason)
        await asyncio.sleep(_backoff(attempt))


# SecantusDB 0.7.0b3 reports a write conflict that WiredTiger detects only at commit as
# InternalError (code 1) without the TransientTransactionError label (its log says
# "transaction requires rollback: conflict between concurrent operations"); seen with a
# dozen concurrent 500-document transactions. The transaction was rolled back, so it is
# retried like any conflict; work done through runtime.adapters.idempotency stays exactly-once
# even if that reading were ever wrong, because a retry finds its first response.
_INTERNAL_ERROR = 1


def _commit_conflict(error: PyMongoError) -> bool:
    return (
        isinstance(error, OperationFailure)
        and error.code == _INTERNAL_ERROR
        and (error.details or {}).get("errmsg") == "internal server error"
    )


async def _commit(
    session: AsyncClientSession, deadline: float, on_retry: Callable[[str], None] | None
) -> None:
    attempt = 0
    while True:
        attempt += 1
        try:
            await session.commit_transaction()
            return
        except PyMongoError as error:
            if not error.has_error_label("UnknownTransactionCommitResult"):
                raise
            if time.monotonic() >= deadline:
                raise
            if on_retry is not None:
                on_retry(RETRY_UNKNOWN_COMMIT_RESULT)
            await asyncio.sleep(_backoff(attempt))


def _backoff(attempt: int) -> float:
    # Full jitter keeps racing writers from retrying in lockstep.
    return random.uniform(0, min(0.5, 0.005 * 2**attempt))
