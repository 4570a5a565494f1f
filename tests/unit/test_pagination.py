"""The one paginator: keyset pages, tokens bound to their query."""

from __future__ import annotations

from datetime import UTC, datetime

from pymongo import ASCENDING, DESCENDING

from runtime.adapters.pagination import _after_filter, keyset_slice, page_request
from runtime.kernel.validation import Validator

ITEMS = [(score, f"id-{score}") for score in range(10)]


def request(size: int, token: str = "", query: object = ("all",)):  # type: ignore[no-untyped-def]
    check = Validator()
    made = page_request(size, token, query, check, key_length=2, maximum=5)
    check.raise_if_invalid()
    return made


def test_pages_walk_the_whole_list_once_in_order() -> None:
    seen: list[tuple[int, str]] = []
    token = ""
    for _ in range(len(ITEMS)):
        page, token = keyset_slice(ITEMS, lambda item: item, request(3, token))
        seen.extend(page)
        if not token:
            break
    assert seen == ITEMS
    assert token == ""


def test_a_page_that_ends_the_list_exactly_has_no_next_token() -> None:
    first, token = keyset_slice(ITEMS[:6], lambda item: item, request(3))
    second, last = keyset_slice(ITEMS[:6], lambda item: item, request(3, token))
    assert (first, second, last) == (ITEMS[:3], ITEMS[3:6], "")


def test_a_page_continues_after_the_last_key_even_if_items_were_inserted() -> None:
    first, token = keyset_slice(ITEMS, lambda item: item, request(3))
    grown = sorted([*ITEMS, (1, "id-1a")])
    second, _ = keyset_slice(grown, lambda item: item, request(3, token))
    assert first == ITEMS[:3]
    assert second == ITEMS[3:6]


def test_a_token_of_another_query_or_a_forged_one_is_refused() -> None:
    _, token = keyset_slice(ITEMS, lambda item: item, request(3))
    for wrong in (token, "bm90IGEgdG9rZW4=", "%%%"):
        check = Validator()
        query = ("other",) if wrong == token else ("all",)
        page_request(3, wrong, query, check, key_length=2)
        assert [v.field for v in check.violations] == ["page_token"]


def test_page_size_is_bounded_and_zero_means_the_default() -> None:
    check = Validator()
    assert page_request(0, "", (), check, key_length=1, maximum=5).size == 5
    page_request(6, "", (), check, key_length=1, maximum=5)
    page_request(-1, "", (), check, key_length=1, maximum=5)
    assert [v.description for v in check.violations] == ["0 (the default) to 5"] * 2


def test_dates_in_tokens_come_back_timezone_aware() -> None:
    moments = [(datetime(2026, 1, day, tzinfo=UTC), str(day)) for day in range(1, 6)]
    _, token = keyset_slice(moments, lambda item: item, request(2))
    page, _ = keyset_slice(moments, lambda item: item, request(2, token))
    assert page == moments[2:4]


def test_the_filter_after_a_key_follows_each_sort_direction() -> None:
    order = [("score", DESCENDING), ("submitted_at", ASCENDING), ("_id", ASCENDING)]
    assert _after_filter(order, (40, "t", "a")) == {
        "$or": [
            {"score": {"$lt": 40}},
            {"score": 40, "submitted_at": {"$gt": "t"}},
            {"score": 40, "submitted_at": "t", "_id": {"$gt": "a"}},
        ]
    }
