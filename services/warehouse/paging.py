"""Offset pages over a query's ordered results, with runtime.adapters.pagination's opaque tokens.

Search results are computed (distance, free space), not read in index order, so a page
is an offset into them. The token also carries a digest of the query: replayed on a
different query it is refused instead of silently paging through something else."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from runtime.adapters import pagination
from runtime.kernel.errors import FieldViolation, InvalidArgument

MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class PageRequest:
    offset: int
    size: int
    query: str

    def next_token(self, total: int) -> str:
        """The token of the page after this one; empty when this is the last."""
        following = self.offset + self.size
        if following >= total:
            return ""
        return pagination.encode_token({"offset": following, "query": self.query})


def query_digest(query: object) -> str:
    """A short stable digest of a query; ``query`` must have a deterministic repr."""
    return hashlib.sha256(repr(query).encode()).hexdigest()[:16]


def page_request(page_size: int, page_token: str, query: object) -> PageRequest:
    size = pagination.page_size(page_size, maximum=MAX_PAGE_SIZE)
    digest = query_digest(query)
    position = pagination.decode_token(page_token)
    if position is None:
        return PageRequest(0, size, digest)
    offset = position.get("offset")
    if not isinstance(offset, int) or offset < 0 or position.get("query") != digest:
        raise InvalidArgument(
            FieldViolation("page_token", "belongs to another query; start again without it")
        )
    return PageRequest(offset, size, digest)
