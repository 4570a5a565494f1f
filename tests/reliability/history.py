"""The load's history: every request the driver sent, with each attempt and its final
outcome, and what an acknowledged request must have left behind.

Outcomes follow the client's view, as in a Jepsen history: ``acknowledged`` (the server
answered OK), ``failed`` (the server itself refused: a definite no, nothing may remain)
and ``indeterminate`` (no definite answer even after the retries: it may have happened
once, never twice)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

ACKNOWLEDGED = "acknowledged"
FAILED = "failed"
INDETERMINATE = "indeterminate"

# (service, collection, _id): a document an acknowledged request must have left.
StateKey = tuple[str, str, str]


@dataclass
class Expectation:
    """What a request leaves when it takes effect: documents, and its events by type
    (exactly this many of each, all carrying the request id as correlation id)."""

    state: list[StateKey] = field(default_factory=list)
    events: dict[str, int] = field(default_factory=dict)
    # What the bureau must count: (figure, member, weight); a figure sums, over its
    # distinct members, the largest weight recorded for each (checker.implied_figures).
    counted: list[tuple[str, str, int]] = field(default_factory=list)


@dataclass
class Request:
    request_id: str
    service: str
    method: str
    summary: str
    # A request the driver made wrong on purpose: it must be refused and leave nothing.
    bad_input: bool = False
    # Documents only this request could create: one present after a failure is a leak.
    own_state: list[StateKey] = field(default_factory=list)
    expect: Expectation = field(default_factory=Expectation)
    outcome: str = ""
    status: str = ""
    # One entry per attempt: "OK" or the status code's name (retries reuse the request id).
    attempts: list[str] = field(default_factory=list)
    response: str = ""
    started: float = 0.0
    finished: float = 0.0

    @property
    def answered_key(self) -> str:
        """The runner's record of the answer (runtime.adapters.idempotency), written in the
        same transaction as the state and the events."""
        return f"{self.method}:{self.request_id}"


@dataclass
class History:
    requests: list[Request] = field(default_factory=list)

    def add(self, request: Request) -> Request:
        self.requests.append(request)
        return request

    def with_outcome(self, outcome: str) -> list[Request]:
        return [r for r in self.requests if r.outcome == outcome]

    def failures_by_status(self) -> dict[str, int]:
        return dict(sorted(Counter(r.status for r in self.with_outcome(FAILED)).items()))

    def retries(self) -> int:
        return sum(max(0, len(r.attempts) - 1) for r in self.requests)

    def write(self, path: Path) -> None:
        """One JSON object per request, for reading a failed run afterwards."""
        with path.open("w") as out:
            for request in self.requests:
                out.write(json.dumps(asdict(request), ensure_ascii=False) + "\n")
