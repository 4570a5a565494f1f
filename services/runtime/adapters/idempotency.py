"""Client request ids: a retried mutating request returns its first response and
changes nothing. The response is stored in the same transaction as the change."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypeVar

from bson.binary import Binary
from google.protobuf.message import Message

from runtime.adapters.outbox import Transaction

REQUESTS_COLLECTION = "requests"

M = TypeVar("M", bound=Message)


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
