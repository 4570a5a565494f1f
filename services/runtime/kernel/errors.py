"""Domain errors. Pure Python on purpose: domain code raises these without knowing
about gRPC; the server's error interceptor maps each one to its status code."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

# google.rpc.ErrorInfo's rule for a reason: UPPER_SNAKE_CASE, at most 63 characters.
_REASON = re.compile(r"[A-Z][A-Z0-9_]{0,61}[A-Z0-9]")


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


class ErrorWithReason(DomainError):
    """An error a client may branch on: ``reason`` names the condition in
    UPPER_SNAKE_CASE (stable, unlike the message, which is for people), ``metadata``
    adds the values that matter to it. Sent as a ``google.rpc.ErrorInfo``."""

    def __init__(
        self, message: str, *, reason: str, metadata: Mapping[str, str] | None = None
    ) -> None:
        if not _REASON.fullmatch(reason):
            raise ValueError(f"error reason {reason!r} must be UPPER_SNAKE_CASE, 2-63 characters")
        super().__init__(message)
        self.reason = reason
        self.metadata = dict(metadata or {})


class FailedPrecondition(ErrorWithReason):
    """The request is well formed, but the state it meets refuses it; ``reason`` says
    which state, so a client can tell "fair not open" from "quota exceeded"."""


class PermissionDenied(DomainError):
    pass


class Unauthenticated(DomainError):
    pass


class ResourceExhausted(DomainError):
    """A limit was reached; ``retry_after_seconds``, when known, says when a retry can
    succeed (sent as google.rpc.RetryInfo)."""

    def __init__(self, message: str, *, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class Unavailable(DomainError):
    """A dependency (another service, the database) cannot be reached right now."""


class Aborted(ErrorWithReason):
    """A concurrency conflict outlasted the server's retries; retrying the same request
    (with the same request id) is safe."""
