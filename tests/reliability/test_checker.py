"""The history checker catches each broken property: test doubles of what the platform
holds, each with one fault in it (an outbox row dropped, an event twice, a refused
request that wrote, a bureau figure off)."""

from __future__ import annotations

import dataclasses

from tests.reliability.checker import (
    DOUBLE,
    LEAK,
    MISSING,
    Observation,
    OutboxEvent,
    check,
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
