"""Domain errors. Pure Python on purpose: domain code raises these without knowing
about gRPC; the server's error interceptor maps each one to its status code."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    """One wrong field of a request: the path of the field and what is wrong with it."""

    field: str
    description: str


class DomainError(Exception):
    """Base of every error a caller can act on; carries a message meant for them."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(DomainError):
    """The request itself is wrong; ``violations`` names every wrong field."""

    def __init__(self, violations: list[FieldViolation] | FieldViolation) -> None:
        if isinstance(violations, FieldViolation):
            violations = [violations]
        if not violations:
            raise ValueError("InvalidArgument needs at least one field violation")
        self.violations = tuple(violations)
        summary = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(f"invalid request: {summary}")


class NotFound(DomainError):
    pass


class AlreadyExists(DomainError):
    pass


class FailedPrecondition(DomainError):
    pass


class PermissionDenied(DomainError):
    pass


class Unauthenticated(DomainError):
    pass


class ResourceExhausted(DomainError):
    pass


class Unavailable(DomainError):
    """A dependency (another service, the database) cannot be reached right now."""


class Aborted(DomainError):
    """A concurrency conflict outlasted the server's retries; retrying the same request
    (with the same request id) is safe."""
