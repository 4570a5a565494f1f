"""Domain errors map to gRPC statuses; bad requests carry google.rpc.BadRequest details,
FAILED_PRECONDITION and ABORTED a google.rpc.ErrorInfo with their reason."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2

from runtime.adapters.grpc_errors import ERROR_DOMAIN, error_reason, status_for
from runtime.kernel import errors
from runtime.kernel.validation import Validator

CODES = [
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
]


def rich_status(status: grpc.Status) -> status_pb2.Status:
    (details,) = [v for k, v in status.trailing_metadata if k == "grpc-status-details-bin"]
    return status_pb2.Status.FromString(details)


@pytest.mark.parametrize(("error_type", "code"), CODES, ids=[t.__name__ for t, _ in CODES])
def test_each_domain_error_maps_to_its_status_code(error_type, code) -> None:
    status = status_for(error_type("fair canton-137 is closed"))
    assert status.code is code
    assert status.details == "fair canton-137 is closed"
    assert rich_status(status).code == code.value[0]
    assert not rich_status(status).details


REASONED = [
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Aborted, grpc.StatusCode.ABORTED),
]


@pytest.mark.parametrize(("error_type", "code"), REASONED, ids=[t.__name__ for t, _ in REASONED])
def test_errors_with_a_reason_carry_it_in_error_info(error_type, code) -> None:
    status = status_for(
        error_type(
            "fair canton-137 is not open for applications",
            reason="FAIR_NOT_OPEN",
            metadata={"fair_id": "canton-137"},
        )
    )
    assert status.code is code
    assert status.details == "fair canton-137 is not open for applications"
    rich = rich_status(status)
    assert rich.code == code.value[0]
    (detail,) = rich.details
    info = error_details_pb2.ErrorInfo()
    assert detail.Unpack(info)
    assert info.reason == "FAIR_NOT_OPEN"
    assert info.domain == ERROR_DOMAIN == "chuhai"
    assert dict(info.metadata) == {"fair_id": "canton-137"}


def test_a_reason_must_be_upper_snake_case() -> None:
    for wrong in ("fair_not_open", "FAIR NOT OPEN", "_FAIR", "FAIR_", "F", "A" * 64):
        with pytest.raises(ValueError, match="UPPER_SNAKE_CASE"):
            errors.FailedPrecondition("fair canton-137 is not open", reason=wrong)


class FailedCall(grpc.RpcError):
    """What a client holds after a failed call: the status's code, message and trailers."""

    def __init__(self, status: grpc.Status) -> None:
        self._status = status

    def code(self) -> grpc.StatusCode:
        return self._status.code

    def details(self) -> str:
        return self._status.details

    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return self._status.trailing_metadata


def test_a_client_reads_the_reason_of_a_failed_call() -> None:
    refused = status_for(
        errors.FailedPrecondition("request_id r-1 was used", reason="REQUEST_ID_REUSED")
    )
    assert error_reason(FailedCall(refused)) == "REQUEST_ID_REUSED"
    assert error_reason(FailedCall(status_for(errors.NotFound("no fair canton-137")))) == ""
    bad = status_for(errors.InvalidArgument(errors.FieldViolation("request_id", "is required")))
    assert error_reason(FailedCall(bad)) == ""


def test_invalid_argument_carries_its_field_violations_in_order() -> None:
    violations = [
        errors.FieldViolation("credit_code", "must be 18 characters, got 3"),
        errors.FieldViolation("profile.name", "is required"),
        errors.FieldViolation("profile.main_products[0].hs_code", "must be an HS code"),
    ]
    status = status_for(errors.InvalidArgument(violations))
    assert status.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "credit_code: must be 18 characters" in status.details
    rich = rich_status(status)
    assert rich.code == code_pb2.INVALID_ARGUMENT
    assert rich.message == status.details
    (detail,) = rich.details
    bad_request = error_details_pb2.BadRequest()
    assert detail.Unpack(bad_request)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        (v.field, v.description) for v in violations
    ]


def test_validator_collects_every_violation_and_raises_once() -> None:
    check = Validator()
    check.require(False, "a", "first")
    check.require(True, "b", "never reported")
    check.require(False, "c", "third")
    with pytest.raises(errors.InvalidArgument) as raised:
        check.raise_if_invalid()
    assert raised.value.violations == (
        errors.FieldViolation("a", "first"),
        errors.FieldViolation("c", "third"),
    )
    assert raised.value.message == "invalid request: a: first; c: third"


def test_validator_without_violations_does_not_raise() -> None:
    check = Validator()
    check.require(True, "a", "fine")
    check.raise_if_invalid()


def test_invalid_argument_accepts_a_single_violation() -> None:
    error = errors.InvalidArgument(errors.FieldViolation("request_id", "is required"))
    assert error.violations == (errors.FieldViolation("request_id", "is required"),)


def test_invalid_argument_without_violations_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        errors.InvalidArgument([])


def test_a_domain_error_without_its_own_code_is_internal() -> None:
    class Unmapped(errors.DomainError):
        pass

    assert status_for(Unmapped("oops")).code == grpc.StatusCode.INTERNAL
