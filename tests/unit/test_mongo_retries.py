"""Which MongoDB errors a transaction retries."""

from __future__ import annotations

from pymongo.errors import OperationFailure

from runtime.adapters.mongo import _commit_conflict


def test_secantus_commit_conflict_is_retried_and_other_failures_are_not() -> None:
    commit_conflict = OperationFailure(
        "internal server error", code=1, details={"errmsg": "internal server error", "code": 1}
    )
    assert _commit_conflict(commit_conflict)
    duplicate = OperationFailure("E11000 duplicate key", code=11000, details={"code": 11000})
    assert not _commit_conflict(duplicate)
    other_internal = OperationFailure("boom", code=1, details={"errmsg": "boom", "code": 1})
    assert not _commit_conflict(other_internal)
