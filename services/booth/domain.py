"""The booth domain, free of gRPC, MongoDB and Kafka."""

from __future__ import annotations

from dataclasses import dataclass

from booth.credit_code import credit_code_problem
from runtime.errors import Validator

NAME_MAX_LENGTH = 200


@dataclass(frozen=True)
class Exporter:
    """A Chinese firm exporting through the city's trading delegation."""

    credit_code: str
    name: str
    district: str
    industry: str


def new_exporter(credit_code: str, name: str, district: str, industry: str) -> Exporter:
    """Validate a registration; raise InvalidArgument naming every wrong field."""
    credit_code = credit_code.strip().upper()
    name = name.strip()
    check = Validator()
    problem = credit_code_problem(credit_code)
    check.require(problem is None, "credit_code", problem or "")
    check.require(bool(name), "name", "is required")
    check.require(len(name) <= NAME_MAX_LENGTH, "name", f"at most {NAME_MAX_LENGTH} characters")
    check.raise_if_invalid()
    return Exporter(credit_code, name, district.strip(), industry.strip())
