"""Page sizes and page tokens of the warehouse service's searches and lists."""

from __future__ import annotations

import pytest

from runtime.adapters.pagination import encode_token
from runtime.kernel.errors import InvalidArgument
from warehouse.paging import MAX_PAGE_SIZE, page_request, query_digest


def violated(error: pytest.ExceptionInfo[InvalidArgument]) -> set[str]:
    return {v.field for v in error.value.violations}


def test_first_page_starts_at_zero_with_the_default_size() -> None:
    page = page_request(0, "", ("DE",))
    assert page.offset == 0
    assert 0 < page.size <= MAX_PAGE_SIZE


def test_tokens_walk_the_pages_and_stop_after_the_last() -> None:
    query = ("DE", "LAST_MILE_DELIVERY")
    seen = []
    page = page_request(5, "", query)
    while True:
        seen.extend(range(page.offset, min(page.offset + page.size, 12)))
        token = page.next_token(12)
        if not token:
            break
        page = page_request(5, token, query)
    assert seen == list(range(12))


def test_a_page_that_ends_exactly_at_the_total_has_no_next_token() -> None:
    assert page_request(4, "", "q").next_token(4) == ""


def test_a_token_from_another_query_is_refused() -> None:
    token = page_request(5, "", ("DE",)).next_token(12)
    with pytest.raises(InvalidArgument) as error:
        page_request(5, token, ("FR",))
    assert violated(error) == {"page_token"}


@pytest.mark.parametrize(
    "token",
    [
        "not base64!",
        encode_token({"offset": -5, "query": query_digest("x")}),
        encode_token({"offset": "5", "query": query_digest("x")}),
        encode_token({}),
    ],
)
def test_forged_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        page_request(5, token, "x")
    assert violated(error) == {"page_token"}


def test_page_size_above_the_maximum_is_refused() -> None:
    with pytest.raises(InvalidArgument) as error:
        page_request(MAX_PAGE_SIZE + 1, "", "q")
    assert violated(error) == {"page_size"}
