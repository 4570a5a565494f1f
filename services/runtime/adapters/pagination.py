"""The one paginator: keyset pages with opaque tokens.

A page is "the next ``size`` items after the last one you saw", in a total order given
by sort keys (the last key is unique, usually the id). The token carries that last
item's key values (as MongoDB extended JSON, so dates stay dates) and a digest of the
query: replayed on another query it is refused instead of silently paging through
something else. Works on a MongoDB collection (``keyset_find``) and on a list already
sorted in memory (``keyset_slice``, for computed orders such as search by distance)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any, TypeVar

from bson import json_util
from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from runtime.kernel.validation import Validator

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
SortOrder = Sequence[tuple[str, int]]


@dataclass(frozen=True)
class PageRequest:
    size: int
    # Key values of the last item of the previous page; None for the first page.
    after: tuple[Any, ...] | None
    query_digest: str

    def token_after(self, key: Sequence[Any]) -> str:
        raw = json_util.dumps({"q": self.query_digest, "after": list(key)}).encode()
        return base64.urlsafe_b64encode(raw).decode()


# Dates in tokens come back timezone-aware, comparable with the stored ones.
_TOKEN_JSON = json_util.JSONOptions(tz_aware=True, tzinfo=UTC)


def _digest(query: object) -> str:
    return hashlib.sha256(repr(query).encode()).hexdigest()[:16]


def page_request(
    page_size: int,
    page_token: str,
    query: object,
    check: Validator,
    *,
    key_length: int,
    maximum: int = MAX_PAGE_SIZE,
) -> PageRequest:
    """Read page_size and page_token of a list request, recording problems in ``check``.

    ``query`` is anything with a deterministic repr that identifies the list (its
    filters and order); ``key_length`` is how many sort keys a token must carry."""
    digest = _digest(query)
    check.require(0 <= page_size <= maximum, "page_size", f"0 (the default) to {maximum}")
    size = page_size if 0 < page_size <= maximum else min(DEFAULT_PAGE_SIZE, maximum)
    if not page_token:
        return PageRequest(size, None, digest)
    try:
        position = json_util.loads(
            base64.urlsafe_b64decode(page_token.encode()), json_options=_TOKEN_JSON
        )
        after = position["after"]
        valid = (
            isinstance(position, dict)
            and position.get("q") == digest
            and isinstance(after, list)
            and len(after) == key_length
        )
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        valid = False
    if not check.require(valid, "page_token", "not a token of this list; start again without it"):
        return PageRequest(size, None, digest)
    return PageRequest(size, tuple(after), digest)


def _after_filter(order: SortOrder, after: tuple[Any, ...]) -> dict[str, Any]:
    """Items strictly after ``after`` in ``order``: (a > x) or (a = x and b > y) or ..."""
    branches = []
    for depth, (field, direction) in enumerate(order):
        branch = {f: after[i] for i, (f, _) in enumerate(order[:depth])}
        branch[field] = {"$gt" if direction == ASCENDING else "$lt": after[depth]}
        branches.append(branch)
    return {"$or": branches}


async def keyset_find(
    collection: AsyncCollection,
    query: dict[str, Any],
    order: SortOrder,
    request: PageRequest,
    *,
    session: AsyncClientSession | None = None,
) -> tuple[list[dict[str, Any]], str]:
    """One page of ``query`` in ``order`` (whose last field must be unique) and the
    token of the next page, empty after the last."""
    if request.after is not None:
        query = (
            {"$and": [query, _after_filter(order, request.after)]}
            if query
            else (_after_filter(order, request.after))
        )
    cursor = collection.find(query, session=session).sort(list(order)).limit(request.size + 1)
    docs = [doc async for doc in cursor]
    page = docs[: request.size]
    token = ""
    if len(docs) > request.size:
        last = page[-1]
        token = request.token_after([last[field] for field, _ in order])
    return page, token


def keyset_slice(
    items: Sequence[T], key: Callable[[T], tuple[Any, ...]], request: PageRequest
) -> tuple[list[T], str]:
    """One page of ``items`` (already sorted by ``key``, unique) and the next token."""
    start = 0
    if request.after is not None:
        after = tuple(request.after)
        start = next((i for i, item in enumerate(items) if key(item) > after), len(items))
    page = list(items[start : start + request.size])
    token = ""
    if start + request.size < len(items):
        token = request.token_after(list(key(page[-1])))
    return page, token
