"""The history checker catches each broken property: test doubles of what the platform
holds, each with one fault in it (an outbox row dropped, an event twice, a refused
request that wrote, a bureau figure off, a notification or an e-mail missing or twice)."""

from __future__ import annotations

import dataclasses

from tests.reliability.checker import (
    DELIVERED,
    DOUBLE,
    LEAK,
    MISSING,
    CaughtMail,
    EmailDelivery,
    MadeNotification,
    NotifyObservation,
    Observation,
    OutboxEvent,
    check,
    check_notify,
    implied_notifications,
)
from tests.reliability.history import (
    ACKNOWLEDGED,
    FAILED,
    INDETERMINATE,
    Expectation,
    History,
    Request,
)

CODE = "91411000MA44XKRN1X"


def history() -> History:
    """An exporter registered (acknowledged), one refused, one whose answer never came."""
    ours = History()
    ours.add(
        Request(
            "r-1",
            "booth",
            "RegisterExporter",
            CODE,
            own_state=[("booth", "exporters", CODE)],
            expect=Expectation(
                state=[("booth", "exporters", CODE)],
                events={"ExporterRegistered": 1},
                counted=[("firms_served", CODE, 1)],
            ),
            outcome=ACKNOWLEDGED,
            status="OK",
            attempts=["UNAVAILABLE", "OK"],
        )
    )
    ours.add(
        Request(
            "r-2",
            "booth",
            "RegisterExporter",
            "bad",
            bad_input=True,
            own_state=[("booth", "exporters", "bad")],
            outcome=FAILED,
            status="INVALID_ARGUMENT",
            attempts=["INVALID_ARGUMENT"],
        )
    )
    ours.add(
        Request(
            "r-3",
            "expo",
            "SubmitIntent",
            "b-1 -> c",
            expect=Expectation(events={"IntentSubmitted": 1}),
            outcome=INDETERMINATE,
            status="UNAVAILABLE",
            attempts=["UNAVAILABLE"] * 3,
        )
    )
    return ours


def exact() -> Observation:
    """All the history implies, once."""
    return Observation(
        events=[OutboxEvent("booth", "e-1", "ExporterRegistered", "r-1")],
        answered={("booth", "RegisterExporter:r-1")},
        state={("booth", "exporters", CODE)},
        bureau={"firms_served": 1, "events_applied": 1},
    )


def kinds(observation: Observation) -> list[str]:
    return [finding.kind for finding in check(history(), observation).findings]


def test_an_exact_platform_passes() -> None:
    verdict = check(history(), exact())
    assert verdict.findings == []
    assert verdict.writes_checked == 1


def test_a_dropped_outbox_row_is_missing() -> None:
    dropped = dataclasses.replace(
        exact(), events=[], bureau={"firms_served": 1, "events_applied": 0}
    )
    verdict = check(history(), dropped)
    assert [str(f) for f in verdict.findings] == ["missing: r-1: event ExporterRegistered: 0 of 1"]


def test_lost_state_and_a_lost_answer_are_missing() -> None:
    assert kinds(dataclasses.replace(exact(), state=set())) == [MISSING]
    assert kinds(dataclasses.replace(exact(), answered=set())) == [MISSING]


def test_an_event_recorded_twice_is_double() -> None:
    twice = dataclasses.replace(
        exact(),
        events=[*exact().events, OutboxEvent("booth", "e-2", "ExporterRegistered", "r-1")],
        bureau={"firms_served": 1, "events_applied": 2},
    )
    assert kinds(twice) == [DOUBLE]


def test_a_bureau_counting_twice_is_double_and_one_lagging_is_missing() -> None:
    assert kinds(dataclasses.replace(exact(), bureau={"firms_served": 2, "events_applied": 1})) == [
        DOUBLE
    ]
    assert kinds(dataclasses.replace(exact(), bureau={"firms_served": 1, "events_applied": 2})) == [
        DOUBLE
    ]
    assert kinds(dataclasses.replace(exact(), bureau={"firms_served": 1})) == [MISSING]


def test_a_refused_request_that_left_anything_is_a_leak() -> None:
    with_state = dataclasses.replace(exact(), state={*exact().state, ("booth", "exporters", "bad")})
    assert kinds(with_state) == [LEAK]
    with_answer = dataclasses.replace(
        exact(), answered={*exact().answered, ("booth", "RegisterExporter:r-2")}
    )
    assert kinds(with_answer) == [LEAK]
    with_event = dataclasses.replace(
        exact(),
        events=[*exact().events, OutboxEvent("booth", "e-9", "ExporterRegistered", "r-2")],
        bureau={"firms_served": 1, "events_applied": 2},
    )
    assert kinds(with_event) == [LEAK]


def test_an_event_of_no_request_is_a_leak() -> None:
    orphan = dataclasses.replace(
        exact(),
        events=[*exact().events, OutboxEvent("expo", "e-7", "BuyerRegistered", "nobody")],
        bureau={"firms_served": 1, "events_applied": 2},
    )
    assert kinds(orphan) == [LEAK]


def test_an_indeterminate_request_may_have_happened_once_but_never_twice() -> None:
    once = dataclasses.replace(
        exact(),
        events=[*exact().events, OutboxEvent("expo", "e-3", "IntentSubmitted", "r-3")],
        bureau={"firms_served": 1, "events_applied": 2},
    )
    assert kinds(once) == []
    twice = dataclasses.replace(
        once,
        events=[*once.events, OutboxEvent("expo", "e-4", "IntentSubmitted", "r-3")],
        bureau={"firms_served": 1, "events_applied": 3},
    )
    assert kinds(twice) == [DOUBLE]


def test_the_largest_weight_of_a_member_counts_once() -> None:
    """Two allocation runs report 3 then 5 booths: the figure is 5, not 8."""
    ours = History()
    for n, total in enumerate((3, 5)):
        ours.add(
            Request(
                f"a-{n}",
                "booth",
                "RunAllocation",
                "fair",
                expect=Expectation(counted=[("booths_allocated", "fair", total)]),
                outcome=ACKNOWLEDGED,
            )
        )
    seen = Observation(
        events=[],
        answered={("booth", "RunAllocation:a-0"), ("booth", "RunAllocation:a-1")},
        state=set(),
        bureau={"booths_allocated": 5},
    )
    assert check(ours, seen).findings == []


def test_a_document_a_later_request_made_is_no_leak_of_a_refused_one() -> None:
    """Refused while booth was down, the same exporter joins later with a new request id."""
    ours = history()
    key = ("expo", "exhibitors", f"expo-1:{CODE}")
    ours.add(
        Request(
            "j-1",
            "expo",
            "JoinEdition",
            CODE,
            own_state=[key],
            outcome=FAILED,
            status="UNAVAILABLE",
        )
    )
    ours.add(
        Request(
            "j-2",
            "expo",
            "JoinEdition",
            CODE,
            own_state=[key],
            expect=Expectation(state=[key], events={"ExhibitorJoined": 1}),
            outcome=ACKNOWLEDGED,
        )
    )
    seen = exact()
    seen = dataclasses.replace(
        seen,
        events=[*seen.events, OutboxEvent("expo", "e-5", "ExhibitorJoined", "j-2")],
        answered={*seen.answered, ("expo", "JoinEdition:j-2")},
        state={*seen.state, key},
        bureau={"firms_served": 1, "events_applied": 2},
    )
    assert check(ours, seen).findings == []
    made_by_the_refused_one = dataclasses.replace(
        seen, answered={*seen.answered, ("expo", "JoinEdition:j-1")}
    )
    assert [f.kind for f in check(ours, made_by_the_refused_one).findings] == [LEAK]


# Notify: the notifications the outboxes imply, and the e-mails.

APPLICANT = "91411000MA44XKRN1X"
BUYER = "b-1"
OPERATOR = "op-1"
MAILED = {f"exporter:{APPLICANT}": "a@reliability.test", "officer": "o@reliability.test"}


def notify_events() -> list[OutboxEvent]:
    """An application waitlisted, another allocated (filling a quota of 1, then again
    when a redelivered copy came), an inquiry to two exhibitors quoted by one, a booking."""
    return [
        OutboxEvent(
            "booth",
            "s-1",
            "BoothApplicationSubmitted",
            "r-1",
            {"application_id": "app-1", "credit_code": APPLICANT},
        ),
        OutboxEvent("booth", "w-1", "BoothApplicationWaitlisted", "", {"application_id": "app-1"}),
        OutboxEvent(
            "booth",
            "al-1",
            "BoothAllocated",
            "",
            {
                "application_id": "app-2",
                "credit_code": "CODE-2",
                "fair_id": "fair",
                "booth_type": "BOOTH_TYPE_STANDARD",
                "quota": 1,
            },
        ),
        OutboxEvent(
            "booth",
            "al-2",
            "BoothAllocated",
            "",
            {
                "application_id": "app-3",
                "credit_code": "CODE-3",
                "fair_id": "fair",
                "booth_type": "BOOTH_TYPE_STANDARD",
                "quota": 1,
                "from_waitlist": True,
            },
        ),
        OutboxEvent("booth", "ac-1", "AllocationCompleted", "", {"fair_id": "fair"}),
        OutboxEvent(
            "expo",
            "i-1",
            "IntentSubmitted",
            "",
            {
                "intent_id": "int-1",
                "buyer_id": BUYER,
                "kind": "INTENT_KIND_INQUIRY",
                "recipients": [APPLICANT, "CODE-2"],
            },
        ),
        OutboxEvent("expo", "q-1", "QuoteSent", "", {"intent_id": "int-1"}),
        OutboxEvent(
            "warehouse",
            "c-1",
            "CapacityReserved",
            "",
            {"operator_id": OPERATOR, "peak_utilisation_percent": 95},
        ),
        # An event of a type notify does not read, and a booking of an old version.
        OutboxEvent("expo", "v-1", "ExhibitorVisited", ""),
        OutboxEvent("warehouse", "c-0", "CapacityReserved", "", {}),
    ]


IMPLIED = [
    ("APPLICATION_WAITLISTED", "w-1", f"exporter:{APPLICANT}"),
    ("BOOTH_ALLOCATED", "al-1", "exporter:CODE-2"),
    ("QUOTA_FILLED", "quota:fair:STANDARD", "officer"),
    ("ALLOCATION_COMPLETED", "ac-1", "officer"),
    ("INQUIRY_RECEIVED", "i-1", f"exporter:{APPLICANT}"),
    ("INQUIRY_RECEIVED", "i-1", "exporter:CODE-2"),
    ("QUOTE_RECEIVED", "q-1", f"buyer:{BUYER}"),
    ("WAREHOUSE_BOOKED", "c-1", f"operator:{OPERATOR}"),
    ("UTILISATION_HIGH", "c-1", f"operator:{OPERATOR}"),
]


def made() -> list[MadeNotification]:
    # FAIR_OPENED is not decided by the outboxes alone: not checked, but mailed.
    return [MadeNotification(f"n-{n}", *key) for n, key in enumerate(IMPLIED)] + [
        MadeNotification("n-f", "FAIR_OPENED", "f-1", f"exporter:{APPLICANT}")
    ]


def notify_exact() -> NotifyObservation:
    """Every implied notification once; an e-mail for each of a reader with an
    address, delivered and caught once."""
    notifications = made()
    email = [
        EmailDelivery(f"d-{n.notification_id}", n.notification_id, MAILED[n.reader], DELIVERED)
        for n in notifications
        if n.reader in MAILED
    ]
    mail = [CaughtMail(d.delivery_id, d.target) for d in email]
    return NotifyObservation(notifications, email, mail, dict(MAILED))


def test_the_notifications_the_outboxes_imply() -> None:
    """The waitlisted applicant is found through its application, the buyer through its
    intent; an allocation from the waitlist is no new allocation; the quota is filled
    once; an old event without its reader tells nobody."""
    assert sorted(implied_notifications(notify_events()).elements()) == sorted(IMPLIED)


def test_an_exact_notify_passes() -> None:
    verdict = check_notify(notify_events(), notify_exact())
    assert verdict.findings == []
    assert verdict.by_kind["INQUIRY_RECEIVED"] == (2, 2)
    assert "FAIR_OPENED" not in verdict.by_kind
    assert (verdict.email_deliveries, verdict.emails_caught) == (5, 5)


def notify_findings(seen: NotifyObservation) -> list[str]:
    return [str(f) for f in check_notify(notify_events(), seen).findings]


def test_a_notification_not_made_is_missing() -> None:
    seen = notify_exact()
    without = dataclasses.replace(
        seen, notifications=[n for n in seen.notifications if n.kind != "QUOTE_RECEIVED"]
    )
    verdict = check_notify(notify_events(), without)
    assert verdict.notifications_missing == 1
    assert notify_findings(without) == [
        f"missing: -: notification QUOTE_RECEIVED for buyer:{BUYER} of q-1: 0 of 1"
    ]


def test_a_notification_made_twice_or_for_nothing_is_doubled() -> None:
    seen = notify_exact()
    # A second id for one event and reader (a handling that was not idempotent).
    twice = dataclasses.replace(
        seen,
        notifications=[
            *seen.notifications,
            MadeNotification("n-again", "WAREHOUSE_BOOKED", "c-1", f"operator:{OPERATOR}"),
        ],
    )
    assert check_notify(notify_events(), twice).notifications_doubled == 1
    # The quota said again for another event: its natural key makes it one.
    quota = dataclasses.replace(
        seen,
        notifications=[
            *seen.notifications,
            MadeNotification("n-q2", "QUOTA_FILLED", "quota:fair:STANDARD", "officer"),
        ],
    )
    assert check_notify(notify_events(), quota).notifications_doubled == 1
    # Told to someone no event names.
    stray = dataclasses.replace(
        seen,
        notifications=[
            *seen.notifications,
            MadeNotification("n-x", "BOOTH_ALLOCATED", "al-1", "exporter:CODE-9"),
        ],
    )
    assert notify_findings(stray) == [
        "double: -: notification BOOTH_ALLOCATED for exporter:CODE-9 of al-1: 1, implied 0"
    ]


def test_an_email_not_planned_planned_twice_or_to_nobody_is_found() -> None:
    seen = notify_exact()
    first = seen.email[0]
    unplanned = dataclasses.replace(
        seen,
        email=seen.email[1:],
        mail=[m for m in seen.mail if m.delivery_id != first.delivery_id],
    )
    verdict = check_notify(notify_events(), unplanned)
    assert (verdict.email_deliveries_missing, len(verdict.findings)) == (1, 1)
    twice = dataclasses.replace(
        seen,
        email=[*seen.email, dataclasses.replace(first, delivery_id="d-again", status="PENDING")],
    )
    verdict = check_notify(notify_events(), twice)
    assert (verdict.email_deliveries_doubled, verdict.email_not_delivered) == (1, 1)
    # The operator gave no address: no e-mail may go to it.
    operator = next(n for n in seen.notifications if n.reader.startswith("operator:"))
    stray = dataclasses.replace(
        seen,
        email=[*seen.email, EmailDelivery("d-op", operator.notification_id, "x@y", DELIVERED)],
        mail=[*seen.mail, CaughtMail("d-op", "x@y")],
    )
    assert check_notify(notify_events(), stray).email_deliveries_doubled == 1


def test_an_email_left_pending_or_not_caught_is_missing() -> None:
    seen = notify_exact()
    pending = dataclasses.replace(
        seen,
        email=[dataclasses.replace(seen.email[0], status="PENDING"), *seen.email[1:]],
        mail=seen.mail[1:],
    )
    verdict = check_notify(notify_events(), pending)
    assert (verdict.email_not_delivered, verdict.emails_missing) == (1, 0)
    lost = dataclasses.replace(seen, mail=seen.mail[1:])
    verdict = check_notify(notify_events(), lost)
    assert verdict.emails_missing == 1
    assert [f.kind for f in verdict.findings] == [MISSING]


def test_an_email_caught_again_is_resent_and_one_for_no_delivery_unexplained() -> None:
    seen = notify_exact()
    again = dataclasses.replace(seen, mail=[*seen.mail, seen.mail[0]])
    verdict = check_notify(notify_events(), again)
    # By design after a kill between sending and recording: reported, not a failure.
    assert (verdict.emails_resent, verdict.findings) == (1, [])
    strange = dataclasses.replace(
        seen,
        mail=[
            *seen.mail,
            CaughtMail("d-none", "a@reliability.test"),
            dataclasses.replace(seen.mail[0], to="someone@else.test"),
        ],
    )
    verdict = check_notify(notify_events(), strange)
    assert verdict.emails_unexplained == 2
    assert {f.kind for f in verdict.findings} == {DOUBLE}


def test_a_quota_is_filled_by_distinct_applications_only() -> None:
    """Two allocations of a quota of 3, one of them recorded again: not filled."""

    def allocated(event_id: str, application_id: str) -> OutboxEvent:
        fields = {
            "application_id": application_id,
            "credit_code": f"C-{application_id}",
            "fair_id": "fair",
            "booth_type": "BOOTH_TYPE_STANDARD",
            "quota": 3,
        }
        return OutboxEvent("booth", event_id, "BoothAllocated", "", fields)

    events = [allocated("e-1", "a-1"), allocated("e-2", "a-2"), allocated("e-3", "a-2")]
    assert "QUOTA_FILLED" not in {kind for kind, _, _ in implied_notifications(events)}
    filled = implied_notifications([*events, allocated("e-4", "a-3")])
    assert filled["QUOTA_FILLED", "quota:fair:STANDARD", "officer"] == 1
