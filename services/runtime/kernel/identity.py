"""Who is calling: the principal a verified token names. Pure on purpose: use cases
decide what a principal may see and change without knowing about tokens or gRPC."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """The parts people and services play on the platform."""

    # A Chinese exporting firm, bound to its unified social credit code.
    EXPORTER = "exporter"
    # An overseas buyer, bound to the buyer id the expo gave it at registration.
    BUYER = "buyer"
    # A warehouse operator, bound to its operator id.
    OPERATOR = "operator"
    # A commerce bureau officer: runs fairs and allocation, reads every figure.
    OFFICER = "officer"
    # Another Chuhai service calling on its own behalf (expo asking booth).
    SERVICE = "service"


@dataclass(frozen=True)
class Principal:
    """The caller, as its token names it.

    ``party`` is the id of the firm or person the principal acts for: a credit code, a
    buyer id, an operator id or a service's name; empty for an officer, and for a buyer
    that has not registered yet (its first call is the registration that gives it one).
    """

    subject: str
    role: Role
    party: str = ""

    @property
    def audit_name(self) -> str:
        """How histories and events name who made a change: role and subject."""
        return f"{self.role.value}:{self.subject}"

    def acts_for(self, role: Role, party: str) -> bool:
        """Whether this principal is ``party`` playing ``role`` (and party is known)."""
        return self.role is role and bool(self.party) and self.party == party

    @property
    def is_officer(self) -> bool:
        return self.role is Role.OFFICER


SYSTEM = Principal(subject="chuhai", role=Role.SERVICE, party="chuhai")
"""The platform itself, for changes no caller made (a waitlist promotion, an expiry)."""
