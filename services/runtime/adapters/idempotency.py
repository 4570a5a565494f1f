"""Client request ids: a retried mutating request returns its first response and
changes nothing. The response is stored in the same transaction as the change."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from bson.binary import Binary
from google.protobuf.message import Message

from runtime.adapters.outbox import Outbox, Transaction
from runtime.kernel.errors import FieldViolation, InvalidArgument

REQUESTS_COLLECTION = "requests"
REQUEST_ID_MAX_LENGTH = 128

M = TypeVar("M", bound=Message)


def require_request_id(request_id: str) -> str:
    if not request_id or len(request_id) > REQUEST_ID_MAX_LENGTH:
        raise InvalidArgument(
            FieldViolation("request_id", f"is required, 1 to {REQUEST_ID_MAX_LENGTH} characters")
        )
    return request_id


async def earlier_response(
    tx: Transaction, method: str, request_id: str, kind: type[M]
) -> M | None:
    """The response already given to this request id, if any."""
    doc = await tx.db[REQUESTS_COLLECTION].find_one(
        {"_id": f"{method}:{request_id}"}, session=tx.session
    )
    if doc is None:
        return None
    response = kind()
    response.ParseFromString(bytes(doc["response"]))
    return response


async def remember_response(
    tx: Transaction, method: str, request_id: str, response: Message
) -> None:
    # Inserting the key makes two concurrent first attempts conflict: one commits,
    # the other retries and finds this response.
    await tx.db[REQUESTS_COLLECTION].insert_one(
        {
            "_id": f"{method}:{request_id}",
            "response": Binary(response.SerializeToString()),
            "at": datetime.now(UTC),
        },
        session=tx.session,
    )


async def run_once(
    outbox: Outbox,
    method: str,
    request_id: str,
    response_type: type[M],
    work: Callable[[Transaction], Awaitable[M]],
) -> M:
    """Run a mutating request once per request id, in one transaction with its events.

    A retry with the same id returns the stored first response without running ``work``.
    """
    require_request_id(request_id)

    async def attempt(tx: Transaction) -> M:
        earlier = await earlier_response(tx, method, request_id, response_type)
        if earlier is not None:
            return earlier
        response = await work(tx)
        await remember_response(tx, method, request_id, response)
        return response

    return await outbox.transact(attempt, correlation_id=request_id)
