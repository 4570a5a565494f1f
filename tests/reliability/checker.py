"""The history checker: every acknowledged request against what MongoDB, the outboxes
and the bureau hold afterwards; every refused request against the nothing it must have
left. Pure: it reads an Observation the suite collects (or a unit test makes up)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from tests.reliability.history import (
    ACKNOWLEDGED,
    FAILED,
    INDETERMINATE,
    History,
    Request,
    StateKey,
)

MISSING = "missing"
DOUBLE = "double"
LEAK = "leak"


@dataclass(frozen=True)
class OutboxEvent:
    service: str
    event_id: str
    # The payload's short name, e.g. "ExporterRegistered".
    type: str
    # The request id of the call that recorded it ("" for a service's own work).
    correlation_id: str


@dataclass
class Observation:
    """What the platform holds once the load has stopped and the bureau caught up."""

    events: list[OutboxEvent]
    # (service, "method:request_id") of every answer a service's runner stored.
    answered: set[tuple[str, str]]
    # The documents among those the history names that exist.
    state: set[StateKey]
    # The bureau's figures, by the names implied_figures() gives them.
    bureau: dict[str, int]


@dataclass(frozen=True)
class Finding:
    kind: str
    request_id: str
    what: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.request_id or '-'}: {self.what}"


@dataclass
class Verdict:
    writes_checked: int = 0
    findings: list[Finding] = field(default_factory=list)

    def of(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]

    @property
    def missing(self) -> int:
        return len(self.of(MISSING))

    @property
    def double(self) -> int:
        return len(self.of(DOUBLE))

    @property
    def leaks(self) -> int:
        return len(self.of(LEAK))


def implied_figures(history: History, events: list[OutboxEvent]) -> dict[str, int]:
    """The bureau's figures as the acknowledged history implies them: each figure sums,
    over its distinct members, the largest weight a request gave the member; plus
    ``events_applied``, every event of the outboxes once."""
    largest: dict[str, dict[str, int]] = defaultdict(dict)
    for request in history.with_outcome(ACKNOWLEDGED):
        for figure, member, weight in request.expect.counted:
            members = largest[figure]
            members[member] = max(weight, members.get(member, weight))
    figures = {figure: sum(members.values()) for figure, members in largest.items()}
    figures["events_applied"] = len({(e.service, e.event_id) for e in events})
    return figures


def check(history: History, seen: Observation) -> Verdict:
    verdict = Verdict()
    by_request: dict[str, Counter[str]] = defaultdict(Counter)
    for event in seen.events:
        by_request[event.correlation_id][event.type] += 1
    known = {r.request_id for r in history.requests}
    # A document a refused request would have made may still come from a later request
    # that succeeded (a join retried under a new request id once booth is back).
    claimed = {key for r in history.requests if r.outcome != FAILED for key in r.expect.state}
    for request in history.requests:
        events = by_request.get(request.request_id, Counter())
        if request.outcome == ACKNOWLEDGED:
            verdict.writes_checked += 1
            verdict.findings += _acknowledged(request, events, seen)
        elif request.outcome == FAILED:
            verdict.findings += _left_nothing(request, events, seen, claimed)
        elif request.outcome == INDETERMINATE:
            # May have happened once, never more.
            verdict.findings += [
                Finding(DOUBLE, request.request_id, f"{kind} x{count}")
                for kind, count in events.items()
                if count > request.expect.events.get(kind, 0)
            ]
    for correlation_id, events in by_request.items():
        if correlation_id and correlation_id not in known:
            verdict.findings.append(
                Finding(LEAK, correlation_id, f"events of no request sent: {dict(events)}")
            )
    verdict.findings += _figures(implied_figures(history, seen.events), seen.bureau)
    return verdict


def _acknowledged(request: Request, events: Counter[str], seen: Observation) -> list[Finding]:
    found: list[Finding] = []
    rid = request.request_id
    if (request.service, request.answered_key) not in seen.answered:
        found.append(Finding(MISSING, rid, f"{request.service} stored no answer"))
    found += [
        Finding(MISSING, rid, f"document {'/'.join(key)}")
        for key in request.expect.state
        if key not in seen.state
    ]
    for kind in sorted(set(request.expect.events) | set(events)):
        wanted, got = request.expect.events.get(kind, 0), events.get(kind, 0)
        if got < wanted:
            found.append(Finding(MISSING, rid, f"event {kind}: {got} of {wanted}"))
        elif got > wanted:
            found.append(Finding(DOUBLE, rid, f"event {kind}: {got}, expected {wanted}"))
    return found


def _left_nothing(
    request: Request, events: Counter[str], seen: Observation, claimed: set[StateKey]
) -> list[Finding]:
    rid = request.request_id
    found = [
        Finding(LEAK, rid, f"refused ({request.status}) but left event {kind} x{count}")
        for kind, count in sorted(events.items())
    ]
    if (request.service, request.answered_key) in seen.answered:
        found.append(Finding(LEAK, rid, f"refused ({request.status}) but its answer is stored"))
    found += [
        Finding(LEAK, rid, f"refused ({request.status}) but left {'/'.join(key)}")
        for key in request.own_state
        if key in seen.state and key not in claimed
    ]
    return found


def _figures(implied: dict[str, int], bureau: dict[str, int]) -> list[Finding]:
    found: list[Finding] = []
    for figure in sorted(set(implied) | set(bureau)):
        wanted, got = implied.get(figure, 0), bureau.get(figure, 0)
        if got > wanted:
            found.append(Finding(DOUBLE, "", f"bureau {figure} = {got}, history implies {wanted}"))
        elif got < wanted:
            found.append(Finding(MISSING, "", f"bureau {figure} = {got}, history implies {wanted}"))
    return found
