"""Exit codes that mean something, and failures told in plain words on stderr."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from enum import IntEnum
from typing import Protocol

import grpc
from typer.core import TyperArgument

from cli.connection import ServiceCallFailed
from runtime.adapters.grpc_errors import field_violations


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    INVALID_ARGUMENT = 3
    NOT_FOUND = 4
    CONFLICT = 5
    UNAVAILABLE = 6
    REFUSED = 7
    UNAUTHENTICATED = 8


EXIT_CODES_HELP = """\
[bold]Exit codes[/bold]

  0  done
  1  unexpected failure
  2  wrong usage: unknown option, missing argument, malformed value
  3  invalid argument: the service (or a file) refused values; each wrong field is named
  4  not found
  5  conflict: already exists, or not possible in its current state
  6  unavailable: a service, the dashboard or Kafka did not answer in time (a change
     may be retried safely with the same --request-id)
  7  refused: rate limit reached, or not permitted to your token's role or firm
  8  not signed in: no token, or it expired or is not trusted (chuhai login)"""

LOGIN_HINT = "Log in again: chuhai login --token <JWT> (or set CHUHAI_TOKEN)."

_EXIT_CODES: dict[grpc.StatusCode, ExitCode] = {
    grpc.StatusCode.INVALID_ARGUMENT: ExitCode.INVALID_ARGUMENT,
    grpc.StatusCode.OUT_OF_RANGE: ExitCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND: ExitCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: ExitCode.CONFLICT,
    grpc.StatusCode.FAILED_PRECONDITION: ExitCode.CONFLICT,
    grpc.StatusCode.ABORTED: ExitCode.CONFLICT,
    grpc.StatusCode.UNAVAILABLE: ExitCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: ExitCode.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ExitCode.REFUSED,
    grpc.StatusCode.PERMISSION_DENIED: ExitCode.REFUSED,
    grpc.StatusCode.UNAUTHENTICATED: ExitCode.UNAUTHENTICATED,
}

_HEADLINES: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.INVALID_ARGUMENT: "The request was refused: some values are invalid.",
    grpc.StatusCode.OUT_OF_RANGE: "A value is out of range",
    grpc.StatusCode.NOT_FOUND: "Not found",
    grpc.StatusCode.ALREADY_EXISTS: "Already exists",
    grpc.StatusCode.FAILED_PRECONDITION: "Not possible now",
    grpc.StatusCode.ABORTED: "A concurrent change got in the way; run the command again",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "Limit reached",
    grpc.StatusCode.PERMISSION_DENIED: "Not permitted",
    grpc.StatusCode.UNAUTHENTICATED: "Not signed in",
}

_INDEX = re.compile(r"\[\d+\]")


class CommandParameter(Protocol):
    """An option or argument of the running command (Typer's own click)."""

    name: str | None
    opts: list[str]
    metavar: str | None


class CommandFailed(Exception):
    """A failure the command line found itself: a bad file, an unreachable dashboard or
    broker, a missing topic."""

    def __init__(
        self, code: ExitCode, message: str, violations: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.violations = dict(violations or {})


def exit_code_for(status: grpc.StatusCode) -> ExitCode:
    return _EXIT_CODES.get(status, ExitCode.FAILED)


def option_for_field(field: str, options: Iterable[CommandParameter]) -> str:
    """The command's option that sets a request field, or "" when none does: by the
    field's path (`profile.name` -> name), else by its last part (`main_product_hs_code`,
    then `hs_code`), else an option the field's name ends with (`exporter_credit_code`
    -> `credit_code`)."""
    path = _INDEX.sub("", field)
    parts = path.split(".")
    candidates = [path.replace(".", "_"), parts[-1]]
    by_name = {p.name: p for p in options if p.name}
    for candidate in candidates:
        if candidate in by_name:
            return _flag(by_name[candidate])
    for name, parameter in by_name.items():
        if parts[-1].endswith(f"_{name}"):
            return _flag(parameter)
    return ""


def _flag(parameter: CommandParameter) -> str:
    if isinstance(parameter, TyperArgument):
        return parameter.metavar or (parameter.name or "").upper()
    return max(parameter.opts, key=len)


def describe_violations(
    violations: Mapping[str, str], options: Iterable[CommandParameter]
) -> list[str]:
    options = list(options)
    lines = []
    for field, description in violations.items():
        flag = option_for_field(field, options)
        where = f"{field} ({flag})" if flag else field
        lines.append(f"  {where}: {description}")
    return lines


def describe_call_failure(
    failure: ServiceCallFailed,
    options: Iterable[CommandParameter],
    *,
    request_id: str = "",
    deadline_seconds: float = 0.0,
) -> list[str]:
    """Plain words for a failed call: what went wrong, the fields at fault, and for a
    change whose fate is unknown how to retry it safely."""
    status = failure.error.code()
    details = failure.error.details() or ""
    where = f"the {failure.service} service at {failure.target}"
    if status == grpc.StatusCode.UNAVAILABLE:
        lines = [f"Cannot reach {where}: {details}"]
    elif status == grpc.StatusCode.DEADLINE_EXCEEDED:
        lines = [f"No answer from {where} within {deadline_seconds:g} s (see --timeout)."]
    elif status == grpc.StatusCode.INVALID_ARGUMENT:
        violations = field_violations(failure.error)
        lines = [_HEADLINES[status]]
        lines += describe_violations(violations, options) if violations else [f"  {details}"]
    elif status == grpc.StatusCode.UNAUTHENTICATED:
        lines = [f"{_HEADLINES[status]}: {details}", LOGIN_HINT]
    elif status == grpc.StatusCode.PERMISSION_DENIED:
        lines = [f"{_HEADLINES[status]}: {details}", "See who you are: chuhai whoami."]
    elif status in _HEADLINES:
        lines = [f"{_HEADLINES[status]}: {details}"]
    else:
        lines = [f"{where.capitalize()} failed ({status.name}): {details}"]
    if request_id and exit_code_for(status) == ExitCode.UNAVAILABLE:
        lines.append(
            "The change may or may not have been made. Run the command again with "
            f"--request-id {request_id}: it is made at most once."
        )
    return lines
