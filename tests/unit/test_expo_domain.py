"""The expo domain on its own: intent validation, RFQ matching, the state machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from expo.domain import (
    DEFAULT_MAX_QUOTES,
    IntentKind,
    IntentState,
    Money,
    ResponseKind,
    after_response,
    rate_window,
    rfq_recipients,
    state_at_deadline,
    validate_terms,
)
from runtime.kernel.errors import FailedPrecondition, InvalidArgument
from runtime.kernel.validation import Validator

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
QUOTED, DECLINED = ResponseKind.QUOTED, ResponseKind.DECLINED


def terms(**changes):  # type: ignore[no-untyped-def]
    arguments = {
        "kind": IntentKind.RFQ,
        "hs_code": "6704.20",
        "quantity": 500,
        "unit": "piece",
        "target_price": Money("USD", 12, 500_000_000),
        "incoterm": 9,
        "destination_country": "de",
        "deadline": NOW + timedelta(days=7),
        "max_quotes": 0,
        "now": NOW,
        "check": Validator(),
    }
    arguments.update(changes)
    result = validate_terms(**arguments)
    arguments["check"].raise_if_invalid()
    return result


def test_terms_are_normalised_and_defaulted() -> None:
    rfq = terms()
    assert (rfq.hs_code, rfq.destination_country, rfq.max_quotes) == (
        "670420",
        "DE",
        DEFAULT_MAX_QUOTES,
    )
    assert terms(kind=IntentKind.INQUIRY, max_quotes=9).max_quotes == 1


def test_every_wrong_term_is_named() -> None:
    with pytest.raises(InvalidArgument) as error:
        terms(
            hs_code="67",
            quantity=0,
            unit=" ",
            target_price=Money("usd", -1, 0),
            incoterm=12,
            destination_country="ZZ",
            deadline=NOW - timedelta(seconds=1),
            max_quotes=51,
        )
    assert {v.field for v in error.value.violations} == {
        "hs_code",
        "quantity",
        "unit",
        "target_price.currency",
        "target_price",
        "incoterm",
        "destination_country",
        "deadline",
        "max_quotes",
    }


def test_a_missing_or_too_distant_deadline_is_refused() -> None:
    for deadline in (None, NOW + timedelta(days=181)):
        with pytest.raises(InvalidArgument) as error:
            terms(deadline=deadline)
        assert [v.field for v in error.value.violations] == ["deadline"]


def test_rfq_reaches_each_exhibitor_with_a_product_under_the_heading_once() -> None:
    listings = [("B", "670420"), ("A", "670490"), ("B", "670411"), ("C", "850152")]
    assert rfq_recipients("670420", listings) == ["A", "B"]
    assert rfq_recipients("090111", listings) == []


def test_quotes_then_close_at_max_quotes() -> None:
    recipients = ["A", "B", "C"]
    first = after_response(IntentState.MATCHED, recipients, {}, "A", QUOTED, max_quotes=2)
    assert (first.state, first.quotes, first.closed_by_quotes) == (IntentState.QUOTED, 1, False)
    second = after_response(IntentState.QUOTED, recipients, {"A": QUOTED}, "C", QUOTED, 2)
    assert (second.state, second.closed_by_quotes) == (IntentState.CLOSED, True)


def test_all_declined_is_declined_and_a_quote_outweighs_declines() -> None:
    recipients = ["A", "B"]
    partly = after_response(IntentState.MATCHED, recipients, {}, "A", DECLINED, 5)
    assert (partly.state, partly.all_declined) == (IntentState.MATCHED, False)
    last = after_response(IntentState.MATCHED, recipients, {"A": DECLINED}, "B", DECLINED, 5)
    assert (last.state, last.all_declined) == (IntentState.DECLINED, True)
    quoted = after_response(IntentState.MATCHED, recipients, {"A": DECLINED}, "B", QUOTED, 5)
    assert quoted.state == IntentState.QUOTED


@pytest.mark.parametrize(
    ("state", "responded", "responder", "message"),
    [
        (IntentState.CLOSED, {}, "A", "closed"),
        (IntentState.EXPIRED, {}, "A", "expired"),
        (IntentState.MATCHED, {}, "Z", "not addressed"),
        (IntentState.QUOTED, {"A": QUOTED}, "A", "already responded"),
    ],
)
def test_forbidden_responses(state, responded, responder, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FailedPrecondition, match=message):
        after_response(state, ["A", "B"], responded, responder, QUOTED, 5)


def test_deadline_closes_quoted_intents_and_expires_the_others() -> None:
    assert state_at_deadline(IntentState.QUOTED) == IntentState.CLOSED
    assert state_at_deadline(IntentState.MATCHED) == IntentState.EXPIRED


def test_rate_windows_are_fixed_and_aligned() -> None:
    hour = timedelta(hours=1)
    assert rate_window(NOW, hour) == rate_window(NOW + timedelta(minutes=59), hour)
    assert rate_window(NOW, hour) != rate_window(NOW + timedelta(hours=1), hour)
