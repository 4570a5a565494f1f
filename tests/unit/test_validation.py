"""The one validation style: every wrong field reported at once, values normalised."""

from __future__ import annotations

import enum
import re
from datetime import date, timedelta

import pytest

from runtime.kernel.clock import SystemClock
from runtime.kernel.errors import InvalidArgument
from runtime.kernel.validation import Validator, validated
from tests.fakes import ShiftedClock

VALID_CREDIT_CODE = "91110000802100433B"


class Colour(enum.IntEnum):
    RED = 1
    GREEN = 2


def violations(check: Validator) -> dict[str, str]:
    return {v.field: v.description for v in check.violations}


def test_a_request_with_many_wrong_fields_reports_all_of_them_in_one_error() -> None:
    check = Validator()
    check.text("   ", "name")
    check.credit_code("91110000802100433C", "credit_code")
    check.country("UK", "country")
    check.currency("ZZZ", "currency")
    check.hs_code("67.04", "hs_code")
    check.date("2026-02-30", "starts_on")
    check.member(7, Colour, "colour")
    check.request_id("")
    with pytest.raises(InvalidArgument) as raised:
        check.raise_if_invalid()
    assert [v.field for v in raised.value.violations] == [
        "name",
        "credit_code",
        "country",
        "currency",
        "hs_code",
        "starts_on",
        "colour",
        "request_id",
    ]
    by_field = {v.field: v.description for v in raised.value.violations}
    assert by_field["country"] == "'UK' is not an ISO 3166-1 alpha-2 country code"
    assert by_field["colour"] == "must be one of RED, GREEN"


def test_valid_values_come_back_normalised() -> None:
    check = Validator()
    assert check.text("  Xuchang  ", "name") == "Xuchang"
    assert check.credit_code(f" {VALID_CREDIT_CODE.lower()} ") == VALID_CREDIT_CODE
    assert check.country(" de ", "country") == "DE"
    assert check.currency("eur", "currency") == "EUR"
    assert check.hs_code("6704.20", "hs_code") == "670420"
    assert check.hs_heading("6704", "heading") == "6704"
    assert check.date("2026-04-15", "day") == date(2026, 4, 15)
    assert check.member(2, Colour, "colour") is Colour.GREEN
    assert check.member(0, Colour, "colour", required=False) is None
    assert check.country("", "country", required=False) == ""
    assert check.date("", "day", required=False) is None
    assert check.violations == ()
    check.raise_if_invalid()


@pytest.mark.parametrize("text", ["20260415", "2026-W16-3", "15/04/2026", "2026-4-15"])
def test_dates_have_one_form(text: str) -> None:
    check = Validator()
    assert check.date(text, "day") is None
    assert violations(check) == {"day": "must be a date YYYY-MM-DD"}


def test_text_and_identifiers_are_bounded() -> None:
    check = Validator()
    check.text("x" * 201, "name")
    check.text("", "note", required=False)
    check.identifier("Canton", "fair_id", pattern=re.compile(r"^[a-z-]+$"), rule="lowercase")
    check.identifier("", "edition_id")
    assert violations(check) == {
        "name": "at most 200 characters",
        "fair_id": "lowercase",
        "edition_id": "is required",
    }


def test_validated_returns_the_result_or_raises() -> None:
    assert validated(lambda check: check.text(" a ", "name")) == "a"
    with pytest.raises(InvalidArgument):
        validated(lambda check: check.text("", "name"))


def test_the_clock_keeps_milliseconds_and_can_be_moved() -> None:
    assert SystemClock().now().microsecond % 1000 == 0
    clock = ShiftedClock()
    before = clock.now()
    clock.offset = timedelta(days=2)
    assert clock.now() - before >= timedelta(days=2)
    assert clock.now().microsecond % 1000 == 0
