"""One validation style for every request: a Validator collects every wrong field, then
raises one INVALID_ARGUMENT naming all of them.

    check = Validator()
    fair_id = check.identifier(request.fair_id, "fair_id")
    credit_code = check.credit_code(request.credit_code)
    check.raise_if_invalid()

Each method returns the value normalised (trimmed, upper-cased codes, parsed dates), or
a harmless placeholder when the value is wrong: the caller raises before using it."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from datetime import date
from typing import TypeVar

from runtime.kernel import standards
from runtime.kernel.credit_code import credit_code_problem
from runtime.kernel.errors import FieldViolation, InvalidArgument

E = TypeVar("E", bound=enum.Enum)
T = TypeVar("T")

REQUEST_ID_MAX_LENGTH = 128
TEXT_MAX_LENGTH = 200
IDENTIFIER_MAX_LENGTH = 200
SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
SLUG_RULE = "2-63 characters: lowercase letters, digits and '-'"
CALENDAR_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class Validator:
    """Collects field violations so a request reports all its wrong fields at once."""

    def __init__(self) -> None:
        self._violations: list[FieldViolation] = []

    @property
    def violations(self) -> tuple[FieldViolation, ...]:
        return tuple(self._violations)

    def require(self, condition: bool, field: str, description: str) -> bool:
        """Record a violation unless ``condition`` holds; return ``condition``."""
        if not condition:
            self._violations.append(FieldViolation(field, description))
        return condition

    def raise_if_invalid(self) -> None:
        if self._violations:
            raise InvalidArgument(self._violations)

    # Shapes -----------------------------------------------------------------------------

    def text(
        self,
        value: str,
        field: str,
        *,
        required: bool = True,
        max_length: int = TEXT_MAX_LENGTH,
    ) -> str:
        """Free text, trimmed."""
        value = value.strip()
        if required and not value:
            self.require(False, field, "is required")
        else:
            self.require(len(value) <= max_length, field, f"at most {max_length} characters")
        return value

    def identifier(
        self, value: str, field: str, *, pattern: re.Pattern[str] | None = None, rule: str = ""
    ) -> str:
        """The id of an object the request names, trimmed; ``pattern`` when ids have a form."""
        value = value.strip()
        if not self.require(bool(value), field, "is required"):
            return value
        if pattern is not None:
            self.require(bool(pattern.match(value)), field, rule or "is not a valid id")
        else:
            self.require(
                len(value) <= IDENTIFIER_MAX_LENGTH,
                field,
                f"at most {IDENTIFIER_MAX_LENGTH} characters",
            )
        return value

    def request_id(self, value: str, field: str = "request_id") -> str:
        """The client's id of a mutating request (a retry sends the same one)."""
        self.require(
            0 < len(value) <= REQUEST_ID_MAX_LENGTH,
            field,
            f"is required, 1 to {REQUEST_ID_MAX_LENGTH} characters",
        )
        return value

    def date(self, text: str, field: str, *, required: bool = True) -> date | None:
        """The one date parser: YYYY-MM-DD (ISO 8601 calendar date)."""
        text = text.strip()
        if not text:
            self.require(not required, field, "is required, a date YYYY-MM-DD")
            return None
        # fromisoformat alone also takes "20260701" and week dates; the API promises one form.
        if CALENDAR_DATE.match(text):
            try:
                return date.fromisoformat(text)
            except ValueError:
                pass
        self.require(False, field, "must be a date YYYY-MM-DD")
        return None

    def member(
        self,
        value: int,
        kind: type[E],
        field: str,
        *,
        required: bool = True,
        description: str = "",
    ) -> E | None:
        """An enum value sent as its number; 0 (unspecified) only when not required.
        ``description`` says what is allowed in the API's words (its enum names)."""
        if value == 0 and not required:
            return None
        try:
            return kind(value)
        except ValueError:
            names = ", ".join(member.name for member in kind)
            self.require(False, field, description or f"must be one of {names}")
            return None

    def slug(self, value: str, field: str) -> str:
        """An id chosen by a person for something others will type, such as a fair or an
        expo edition: 2 to 63 lowercase letters, digits and '-'."""
        return self.identifier(value, field, pattern=SLUG_PATTERN, rule=SLUG_RULE)

    # Standards --------------------------------------------------------------------------

    def credit_code(self, value: str, field: str = "credit_code") -> str:
        """A unified social credit code (GB 32100-2015), trimmed and upper-cased."""
        normalised = value.strip().upper()
        problem = credit_code_problem(normalised)
        self.require(problem is None, field, problem or "")
        return normalised

    def country(self, value: str, field: str, *, required: bool = True) -> str:
        """An ISO 3166-1 alpha-2 code, upper-cased."""
        code = value.strip().upper()
        if not code and not required:
            return code
        self.require(
            standards.is_country(code),
            field,
            f"{value.strip()!r} is not an ISO 3166-1 alpha-2 country code",
        )
        return code

    def currency(self, value: str, field: str) -> str:
        """An ISO 4217 code, upper-cased."""
        code = value.strip().upper()
        self.require(
            standards.is_currency(code),
            field,
            f"{value.strip()!r} is not an ISO 4217 currency code",
        )
        return code

    def hs_code(self, value: str, field: str) -> str:
        """A Harmonized System code of 6 to 10 digits; dots and spaces are dropped."""
        code = standards.normalise_hs_code(value)
        self.require(standards.is_hs_code(code), field, "must be an HS code of 6 to 10 digits")
        return code

    def hs_heading(self, value: str, field: str) -> str:
        heading = value.strip()
        self.require(
            standards.is_hs_heading(heading), field, f"{heading!r} is not a 4-digit HS heading"
        )
        return heading


def validated(build: Callable[[Validator], T]) -> T:
    """Run ``build`` with a fresh Validator and raise if it recorded any violation."""
    check = Validator()
    result = build(check)
    check.raise_if_invalid()
    return result
