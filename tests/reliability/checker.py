"""The history checker: every acknowledged request against what MongoDB, the outboxes
and the bureau hold afterwards; every refused request against the nothing it must have
left; and notify's notifications and e-mails against what the outboxes imply. Pure: it
reads an Observation the suite collects (or a unit test makes up)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

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
    # The payload's fields (protobuf JSON names, enums by name, int64 as text, defaults
    # left out) for the types notify reads; empty for the others.
    fields: Mapping[str, Any] = field(default_factory=dict, compare=False)


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


# Notify ------------------------------------------------------------------------------------

# The event types notify reads (services/notify, the design's table of what each event
# makes): its `events` collection must hold every one of them the outboxes hold.
NOTIFY_READS = frozenset(
    {
        "ExporterRegistered",
        "ExporterUpdated",
        "FairOpened",
        "BoothApplicationSubmitted",
        "BoothApplicationScored",
        "BoothAllocated",
        "BoothApplicationWaitlisted",
        "WaitlistPromoted",
        "BoothApplicationRejected",
        "BoothApplicationWithdrawn",
        "AllocationCompleted",
        "IntentSubmitted",
        "QuoteSent",
        "IntentDeclined",
        "IntentClosed",
        "IntentExpired",
        "CapacityReserved",
        "ReservationCancelled",
    }
)
# The kinds the outboxes alone decide. Not these: FAIR_OPENED (which exporters notify knew
# when it read FairOpened, a race with the registrations) and DAILY_DIGEST (the clock).
CHECKED_KINDS = (
    "APPLICATION_SCORED",
    "BOOTH_ALLOCATED",
    "QUOTA_FILLED",
    "APPLICATION_WAITLISTED",
    "WAITLIST_PROMOTED",
    "APPLICATION_REJECTED",
    "PENALTY_CHARGED",
    "ALLOCATION_COMPLETED",
    "INQUIRY_RECEIVED",
    "RFQ_MATCHED",
    "QUOTE_RECEIVED",
    "INTENT_DECLINED",
    "INTENT_CLOSED",
    "INTENT_EXPIRED",
    "WAREHOUSE_BOOKED",
    "UTILISATION_HIGH",
    "BOOKING_CANCELLED",
)
OFFICER = "officer"
# An operator's UTILISATION_HIGH threshold when its preferences name none (the suite's
# operator names none).
DEFAULT_ALERT_PERCENT = 90
DELIVERED = "DELIVERED"

# (kind, source, reader key): the source is the event's id, or for QUOTA_FILLED the
# fair and booth type ("quota:<fair>:<type>", said once whichever event fills it).
NotificationKey = tuple[str, str, str]


@dataclass(frozen=True)
class MadeNotification:
    notification_id: str
    kind: str
    source: str
    reader: str


@dataclass(frozen=True)
class EmailDelivery:
    delivery_id: str
    notification_id: str
    target: str
    status: str


@dataclass(frozen=True)
class CaughtMail:
    """One message the mail server kept: whom the envelope named, and the delivery its
    Message-ID names (``<delivery id@domain>``)."""

    delivery_id: str
    to: str


@dataclass
class NotifyObservation:
    """What notify made, once it covered the outboxes and no e-mail was pending."""

    notifications: list[MadeNotification]
    email: list[EmailDelivery]
    mail: list[CaughtMail]
    # The reader keys the load gave an e-mail address, and the address.
    addresses: dict[str, str]


@dataclass
class NotifyVerdict:
    # kind -> (implied by the outboxes, made by notify), for the CHECKED_KINDS.
    by_kind: dict[str, tuple[int, int]] = field(default_factory=dict)
    notifications_missing: int = 0
    notifications_doubled: int = 0
    email_deliveries: int = 0
    email_deliveries_missing: int = 0
    email_deliveries_doubled: int = 0
    email_not_delivered: int = 0
    emails_caught: int = 0
    emails_missing: int = 0
    emails_unexplained: int = 0
    # Messages sent again for a delivery already caught: by design after a notify killed
    # (or a database lost) between handing a message to the server and recording it; the
    # same Message-ID lets mail clients show it once. Reported, not a failure.
    emails_resent: int = 0
    findings: list[Finding] = field(default_factory=list)


def implied_notifications(events: Iterable[OutboxEvent]) -> Counter[NotificationKey]:
    """The notifications of the CHECKED_KINDS the outboxes imply, worked out from the
    events alone (not with notify's code): who applied, whose intent it is, which
    applications of a fair's booth type were allocated."""
    unique = list({(e.service, e.event_id): e for e in events}.values())
    applicant: dict[str, str] = {}
    buyer: dict[str, str] = {}
    for event in unique:
        f = event.fields
        if event.type == "BoothApplicationSubmitted":
            applicant[f.get("application_id", "")] = f.get("credit_code", "")
        elif event.type == "IntentSubmitted":
            buyer[f.get("intent_id", "")] = f.get("buyer_id", "")
    implied: Counter[NotificationKey] = Counter()
    allocated: dict[tuple[str, str], set[str]] = defaultdict(set)
    quotas: dict[tuple[str, str], int] = {}

    def add(kind: str, source: str, reader: str, party: str) -> None:
        # No party (an old event without it, a join missing): nobody to tell.
        if kind and party:
            implied[kind, source, f"{reader}:{party}"] += 1

    by_applicant = {
        "BoothApplicationScored": "APPLICATION_SCORED",
        "BoothApplicationWaitlisted": "APPLICATION_WAITLISTED",
        "WaitlistPromoted": "WAITLIST_PROMOTED",
        "BoothApplicationRejected": "APPLICATION_REJECTED",
    }
    by_buyer = {
        "QuoteSent": "QUOTE_RECEIVED",
        "IntentDeclined": "INTENT_DECLINED",
        "IntentClosed": "INTENT_CLOSED",
        "IntentExpired": "INTENT_EXPIRED",
    }
    for event in unique:
        f, eid = event.fields, event.event_id
        if event.type in by_applicant:
            code = applicant.get(f.get("application_id", ""), "")
            add(by_applicant[event.type], eid, "exporter", code)
        elif event.type in by_buyer:
            add(by_buyer[event.type], eid, "buyer", buyer.get(f.get("intent_id", ""), ""))
        elif event.type == "BoothAllocated":
            if not f.get("from_waitlist", False):
                add("BOOTH_ALLOCATED", eid, "exporter", f.get("credit_code", ""))
            where = (f.get("fair_id", ""), str(f.get("booth_type", "")).removeprefix("BOOTH_TYPE_"))
            allocated[where].add(f.get("application_id", ""))
            quotas[where] = int(f.get("quota", 0))
        elif event.type == "BoothApplicationWithdrawn" and int(f.get("penalty_fen", 0)) > 0:
            add("PENALTY_CHARGED", eid, "exporter", f.get("credit_code", ""))
        elif event.type == "AllocationCompleted":
            implied["ALLOCATION_COMPLETED", eid, OFFICER] += 1
        elif event.type == "IntentSubmitted":
            kind = {"INTENT_KIND_INQUIRY": "INQUIRY_RECEIVED", "INTENT_KIND_RFQ": "RFQ_MATCHED"}
            for code in sorted(set(f.get("recipients", ()))):
                add(kind.get(f.get("kind", ""), ""), eid, "exporter", code)
        elif event.type == "CapacityReserved":
            operator = f.get("operator_id", "")
            add("WAREHOUSE_BOOKED", eid, "operator", operator)
            if int(f.get("peak_utilisation_percent", 0)) >= DEFAULT_ALERT_PERCENT:
                add("UTILISATION_HIGH", eid, "operator", operator)
        elif event.type == "ReservationCancelled":
            add("BOOKING_CANCELLED", eid, "operator", f.get("operator_id", ""))
    for (fair_id, booth_type), applications in allocated.items():
        if 0 < quotas[fair_id, booth_type] <= len(applications):
            implied["QUOTA_FILLED", f"quota:{fair_id}:{booth_type}", OFFICER] += 1
    return implied


def check_notify(events: Iterable[OutboxEvent], seen: NotifyObservation) -> NotifyVerdict:
    verdict = NotifyVerdict()
    implied = implied_notifications(events)
    made: Counter[NotificationKey] = Counter(
        (n.kind, n.source, n.reader) for n in seen.notifications if n.kind in CHECKED_KINDS
    )
    for kind in CHECKED_KINDS:
        wanted = sum(n for key, n in implied.items() if key[0] == kind)
        got = sum(n for key, n in made.items() if key[0] == kind)
        if wanted or got:
            verdict.by_kind[kind] = (wanted, got)
    for key in sorted(set(implied) | set(made)):
        wanted, got = implied[key], made[key]
        what = f"notification {key[0]} for {key[2]} of {key[1]}"
        if got < wanted:
            verdict.notifications_missing += wanted - got
            verdict.findings.append(Finding(MISSING, "", f"{what}: {got} of {wanted}"))
        elif got > wanted:
            verdict.notifications_doubled += got - wanted
            verdict.findings.append(Finding(DOUBLE, "", f"{what}: {got}, implied {wanted}"))
    _check_email(seen, verdict)
    return verdict


def _check_email(seen: NotifyObservation, verdict: NotifyVerdict) -> None:
    """One e-mail delivery for each notification of a reader that gave an address, to
    that address, and none other; each delivered, and caught by the mail server once
    (or sent again, with its own Message-ID)."""
    readers = {n.notification_id: n.reader for n in seen.notifications}
    planned: Counter[str] = Counter()
    for delivery in seen.email:
        reader = readers.get(delivery.notification_id, "")
        if reader and seen.addresses.get(reader) == delivery.target:
            planned[delivery.notification_id] += 1
        else:
            verdict.email_deliveries_doubled += 1
            verdict.findings.append(
                Finding(
                    DOUBLE,
                    "",
                    f"e-mail delivery {delivery.delivery_id} to {delivery.target}"
                    f" for {reader or 'no notification'}",
                )
            )
    verdict.email_deliveries = len(seen.email)
    for notification in seen.notifications:
        if notification.reader not in seen.addresses:
            continue
        count = planned[notification.notification_id]
        what = f"e-mail delivery of {notification.kind} for {notification.reader}"
        if count == 0:
            verdict.email_deliveries_missing += 1
            verdict.findings.append(Finding(MISSING, "", f"{what}: none"))
        elif count > 1:
            verdict.email_deliveries_doubled += count - 1
            verdict.findings.append(Finding(DOUBLE, "", f"{what}: {count}"))
    targets = {d.delivery_id: d.target for d in seen.email}
    not_delivered = [d for d in seen.email if d.status != DELIVERED]
    verdict.email_not_delivered = len(not_delivered)
    verdict.findings += [
        Finding(MISSING, "", f"e-mail delivery {d.delivery_id} is {d.status}")
        for d in not_delivered
    ]
    verdict.emails_caught = len(seen.mail)
    caught = Counter(m.delivery_id for m in seen.mail if targets.get(m.delivery_id) == m.to)
    unexplained = [m for m in seen.mail if targets.get(m.delivery_id) != m.to]
    verdict.emails_unexplained = len(unexplained)
    verdict.findings += [
        Finding(DOUBLE, "", f"e-mail to {m.to} for no such delivery ({m.delivery_id or '-'})")
        for m in unexplained
    ]
    verdict.emails_resent = sum(n - 1 for n in caught.values())
    lost = [d for d in seen.email if d.status == DELIVERED and d.delivery_id not in caught]
    verdict.emails_missing = len(lost)
    verdict.findings += [
        Finding(MISSING, "", f"e-mail delivery {d.delivery_id} delivered but not caught")
        for d in lost
    ]
