"""The cloud expo domain: validation of buyers, products and intents, RFQ matching,
the intent state machine and the per-buyer intent rate limit. Pure Python."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from runtime.kernel.errors import FailedPrecondition
from runtime.kernel.standards import (
    hs_heading,
    is_country,
    is_currency,
    is_hs_code,
    normalise_hs_code,
)
from runtime.kernel.validation import Validator

EDITION_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
TEXT_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 4000
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DEFAULT_MAX_QUOTES = 5
MAX_QUOTES_LIMIT = 50
# An intent may stay open for at most this long.
MAX_INTENT_LIFETIME = timedelta(days=180)
VISITS_PER_CALL = 500
NANOS_PER_UNIT = 1_000_000_000


class IntentKind(enum.IntEnum):
    """Values match chuhai.expo.v1.IntentKind."""

    INQUIRY = 1
    RFQ = 2


class IntentState(enum.IntEnum):
    """Values match chuhai.expo.v1.IntentState."""

    SUBMITTED = 1
    MATCHED = 2
    QUOTED = 3
    DECLINED = 4
    CLOSED = 5
    EXPIRED = 6


OPEN_STATES = frozenset({IntentState.SUBMITTED, IntentState.MATCHED, IntentState.QUOTED})


class ResponseKind(enum.IntEnum):
    QUOTED = 1
    DECLINED = 2


@dataclass(frozen=True)
class Money:
    currency: str
    units: int
    nanos: int

    @property
    def is_zero(self) -> bool:
        return self.units == 0 and self.nanos == 0

    def as_nanos(self) -> int:
        return self.units * NANOS_PER_UNIT + self.nanos


def validate_money(money: Money, check: Validator, field: str, *, required: bool) -> None:
    if not required and not money.currency and money.is_zero:
        return
    check.require(is_currency(money.currency), f"{field}.currency", "must be an ISO 4217 code")
    check.require(
        0 <= money.nanos < NANOS_PER_UNIT and money.units >= 0,
        field,
        "must not be negative; nanos 0 to 999,999,999",
    )


def validate_text(value: str, check: Validator, field: str, *, required: bool = True) -> str:
    value = value.strip()
    if required:
        check.require(bool(value), field, "is required")
    check.require(len(value) <= TEXT_MAX_LENGTH, field, f"at most {TEXT_MAX_LENGTH} characters")
    return value


def validate_country(country: str, check: Validator, field: str) -> str:
    country = country.strip().upper()
    check.require(is_country(country), field, "must be an ISO 3166-1 alpha-2 country code")
    return country


def validate_hs(hs_code: str, check: Validator, field: str) -> str:
    code = normalise_hs_code(hs_code)
    check.require(is_hs_code(code), field, "must be an HS code of 6 to 10 digits")
    return code


def validate_email(email: str, check: Validator, field: str) -> str:
    email = email.strip()
    check.require(not email or bool(EMAIL_PATTERN.match(email)), field, "is not an email address")
    return email


@dataclass(frozen=True)
class IntentTerms:
    """What a buyer asks for, validated."""

    hs_code: str
    quantity: int
    unit: str
    destination_country: str
    deadline: datetime
    max_quotes: int


def validate_terms(
    *,
    kind: IntentKind,
    hs_code: str,
    quantity: int,
    unit: str,
    target_price: Money,
    incoterm: int,
    destination_country: str,
    deadline: datetime | None,
    max_quotes: int,
    now: datetime,
    check: Validator,
) -> IntentTerms:
    code = validate_hs(hs_code, check, "hs_code")
    check.require(quantity > 0, "quantity", "must be positive")
    unit = validate_text(unit, check, "unit")
    validate_money(target_price, check, "target_price", required=False)
    check.require(1 <= incoterm <= 11, "incoterm", "must be one of the Incoterms 2020 rules")
    country = validate_country(destination_country, check, "destination_country")
    if deadline is None:
        check.require(False, "deadline", "is required")
        deadline = now
    else:
        check.require(deadline > now, "deadline", "must be in the future")
        check.require(
            deadline <= now + MAX_INTENT_LIFETIME, "deadline", "at most 180 days from now"
        )
    if kind == IntentKind.RFQ:
        check.require(0 <= max_quotes <= MAX_QUOTES_LIMIT, "max_quotes", f"0 to {MAX_QUOTES_LIMIT}")
        max_quotes = max_quotes or DEFAULT_MAX_QUOTES
    else:
        max_quotes = 1
    return IntentTerms(code, quantity, unit, country, deadline, max_quotes)


def rfq_recipients(hs_code: str, listings: Iterable[tuple[str, str]]) -> list[str]:
    """Every exhibitor with a product under the intent's HS heading, each once, sorted.

    ``listings`` are (credit code, product HS code) pairs of the edition's showrooms.
    """
    heading = hs_heading(hs_code)
    return sorted({code for code, product_hs in listings if hs_heading(product_hs) == heading})


@dataclass(frozen=True)
class IntentProgress:
    """Where an intent stands after a response."""

    state: IntentState
    quotes: int
    closed_by_quotes: bool
    all_declined: bool


def after_response(
    state: IntentState,
    recipients: list[str],
    responded: dict[str, ResponseKind],
    responder: str,
    kind: ResponseKind,
    max_quotes: int,
) -> IntentProgress:
    """Apply one exhibitor's quote or decline; refuse what the state machine forbids."""
    if state not in OPEN_STATES:
        raise FailedPrecondition(f"the intent is {state.name.lower()}; it takes no more responses")
    if responder not in recipients:
        raise FailedPrecondition(f"exhibitor {responder} was not addressed by this intent")
    if responder in responded:
        raise FailedPrecondition(f"exhibitor {responder} has already responded")
    answers = {**responded, responder: kind}
    quotes = sum(1 for k in answers.values() if k == ResponseKind.QUOTED)
    if quotes >= max_quotes:
        return IntentProgress(IntentState.CLOSED, quotes, closed_by_quotes=True, all_declined=False)
    if quotes:
        return IntentProgress(
            IntentState.QUOTED, quotes, closed_by_quotes=False, all_declined=False
        )
    if len(answers) == len(recipients):
        return IntentProgress(IntentState.DECLINED, 0, closed_by_quotes=False, all_declined=True)
    return IntentProgress(state, 0, closed_by_quotes=False, all_declined=False)


def state_at_deadline(state: IntentState) -> IntentState:
    """An open intent past its deadline: closed if someone quoted, expired otherwise."""
    return IntentState.CLOSED if state == IntentState.QUOTED else IntentState.EXPIRED


def rate_window(now: datetime, window: timedelta) -> str:
    """The fixed window a moment falls in, as a stable key."""
    seconds = int(window.total_seconds())
    return str(int(now.timestamp()) // seconds * seconds)
