"""Client request ids: a retried mutating request returns its first response and
changes nothing. The response is stored in the same transaction as the change, with a
fingerprint of the request, so a request id reused for a different request is refused
instead of being answered with a response to something else."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import TypeVar

from bson.binary import Binary
from google.protobuf.message import Message

from runtime.adapters.outbox import Transaction
from runtime.kernel.errors import FailedPrecondition

REQUESTS_COLLECTION = "requests"

M = TypeVar("M", bound=Message)


def fingerprint(request: Message, caller: str = "") -> bytes:
    """A digest of the request's content and of who sent it; equal for a faithful
    retry. The caller is in it so another principal reusing the same request id is
    refused, never answered with somebody else's response."""
    digest = hashlib.sha256(caller.encode())
    digest.update(b"\0")
    digest.update(request.SerializeToString(deterministic=True))
    return digest.digest()


async def earlier_response(
    tx: Transaction,
    method: str,
    request_id: str,
    request: Message,
    kind: type[M],
    caller: str = "",
) -> M | None:
    """The response already given to this request id, if any; FailedPrecondition
    (REQUEST_ID_REUSED) when that id was given to a different request."""
    key = f"{method}:{request_id}"
    # Answered earlier in this transaction (the same request twice in one batch), or
    # before it.
    doc = tx.held(REQUESTS_COLLECTION, key) or await tx.db[REQUESTS_COLLECTION].find_one(
        {"_id": key}, session=tx.session
    )
    if doc is None:
        return None
    # Documents written before fingerprints were stored have none: they answer as
    # they always did.
    stored = doc.get("fingerprint")
    if stored is not None and bytes(stored) != fingerprint(request, caller):
        raise FailedPrecondition(
            f"request_id {request_id} was already used for a different {method} request; "
            "use a new request_id",
            reason="REQUEST_ID_REUSED",
            metadata={"request_id": request_id, "method": method},
        )
    response = kind()
    response.ParseFromString(bytes(doc["response"]))
    return response


async def remember_response(
    tx: Transaction,
    method: str,
    request_id: str,
    request: Message,
    response: Message,
    caller: str = "",
) -> None:
    # Inserting the key (when the transaction commits, with the batch's others) makes
    # two concurrent first attempts conflict: one commits, the other retries and finds
    # this response.
    tx.insert_at_commit(
        REQUESTS_COLLECTION,
        {
            "_id": f"{method}:{request_id}",
            "fingerprint": Binary(fingerprint(request, caller)),
            "response": Binary(response.SerializeToString()),
            "at": datetime.now(UTC),
        },
    )
