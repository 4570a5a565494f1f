"""The booth domain on its own: scoring, ranking, allocation plans and rounds, the state
machine, submission, withdrawal and promotion, penalties, fair status and validation."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from booth.domain import (
    DEFAULT_SCORING_SHEET,
    AllocationCompleted,
    Application,
    ApplicationState,
    BoothApplicationScored,
    BoothApplicationSubmitted,
    BoothApplicationWaitlisted,
    BoothQuota,
    BoothType,
    CreateFair,
    Exporter,
    ExporterProfile,
    Fair,
    FairClosed,
    FairOpened,
    FairStatus,
    Phase,
    Product,
    QuotaUse,
    Ranked,
    RejectApplication,
    ScoringSheet,
    WaitlistPromoted,
    Zone,
    allocate_booths,
    application_id_for,
    booth_number,
    hand_over_booth,
    plan_allocation,
    priority_key,
    quota_key,
    require_transition,
    score,
    validate_profile,
    waitlist_positions,
    withdrawal_penalty_fen,
)
from runtime.kernel.errors import FailedPrecondition, InvalidArgument
from runtime.kernel.validation import Validator

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_score_adds_capped_turnover_and_participation_and_flags() -> None:
    sheet = ScoringSheet(
        points_per_million_usd=2,
        turnover_cap_points=40,
        points_per_past_fair=5,
        participation_cap_points=25,
        brand_owner_points=15,
        specialised_innovative_points=10,
        high_tech_points=3,
    )
    modest = ExporterProfile(name="a", export_turnover_usd=7_900_000, past_fairs=("c133", "c135"))
    assert score(modest, sheet) == 7 * 2 + 2 * 5
    big = replace(
        modest,
        export_turnover_usd=500_000_000,
        past_fairs=tuple(f"c{n}" for n in range(10)),
        brand_owner=True,
        specialised_innovative=True,
        high_tech_enterprise=True,
    )
    assert score(big, sheet) == 40 + 25 + 15 + 10 + 3


def test_allocation_plan_ranks_by_score_then_submission_then_id() -> None:
    candidates = [
        Ranked("c", 50, T0 + timedelta(minutes=1)),
        Ranked("a", 70, T0 + timedelta(minutes=5)),
        Ranked("b", 50, T0),
        Ranked("e", 50, T0),
        Ranked("d", 10, T0),
    ]
    plan = plan_allocation(candidates, free_booths=2)
    assert [r.application_id for r in plan.allocate] == ["a", "b"]
    assert [r.application_id for r in plan.waitlist] == ["e", "c", "d"]
    # The order does not depend on the order candidates arrive in.
    reversed_plan = plan_allocation(list(reversed(candidates)), free_booths=2)
    assert reversed_plan == plan


@pytest.mark.parametrize("free", [0, -3])
def test_no_free_booth_waitlists_everybody(free: int) -> None:
    plan = plan_allocation([Ranked("a", 1, T0)], free_booths=free)
    assert plan.allocate == [] and [r.application_id for r in plan.waitlist] == ["a"]


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (ApplicationState.SCORED, ApplicationState.ALLOCATED),
        (ApplicationState.SCORED, ApplicationState.WAITLISTED),
        (ApplicationState.WAITLISTED, ApplicationState.ALLOCATED),
        (ApplicationState.ALLOCATED, ApplicationState.WITHDRAWN),
        (ApplicationState.WAITLISTED, ApplicationState.WITHDRAWN),
        (ApplicationState.SUBMITTED, ApplicationState.REJECTED),
    ],
)
def test_allowed_transitions(current: ApplicationState, target: ApplicationState) -> None:
    require_transition(current, target, "x")


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (ApplicationState.ALLOCATED, ApplicationState.WAITLISTED),
        (ApplicationState.ALLOCATED, ApplicationState.REJECTED),
        (ApplicationState.WITHDRAWN, ApplicationState.ALLOCATED),
        (ApplicationState.REJECTED, ApplicationState.WITHDRAWN),
        (ApplicationState.WITHDRAWN, ApplicationState.WITHDRAWN),
    ],
)
def test_forbidden_transitions_name_both_states(
    current: ApplicationState, target: ApplicationState
) -> None:
    with pytest.raises(
        FailedPrecondition, match=f"{current.name.lower()}.*{target.name.lower()}"
    ) as refused:
        require_transition(current, target, "app-1")
    assert refused.value.reason == "APPLICATION_TRANSITION_NOT_ALLOWED"


def test_withdrawal_is_free_then_half_then_full_fee() -> None:
    quota = BoothQuota(BoothType.STANDARD, 43, T0, T0 + timedelta(days=10), fee_fen=2_000_001)
    opens = T0 + timedelta(days=30)
    assert withdrawal_penalty_fen(quota, opens, T0 + timedelta(days=10)) == 0
    assert withdrawal_penalty_fen(quota, opens, T0 + timedelta(days=10, seconds=1)) == 1_000_000
    assert withdrawal_penalty_fen(quota, opens, opens - timedelta(seconds=1)) == 1_000_000
    assert withdrawal_penalty_fen(quota, opens, opens) == 2_000_001


def announcement(**changes: object) -> CreateFair:
    base = CreateFair(
        fair_id="canton-139",
        name="Canton Fair",
        organiser="MOFCOM",
        session="139th",
        venue="Guangzhou",
        phases=(Phase("Phase 1", date(2026, 4, 15), date(2026, 4, 19)),),
        zones=(
            Zone("E1", "Power equipment", frozenset({"8501", "8502"})),
            Zone("H2", "Hair products", frozenset({"6704"})),
        ),
        quotas=(BoothQuota(BoothType.STANDARD, 43, T0, T0 + timedelta(days=10), 2_000_000),),
    )
    return replace(base, **changes)


def violations_of(candidate: CreateFair) -> dict[str, list[str]]:
    check = Validator()
    candidate.validate(check)
    found: dict[str, list[str]] = {}
    try:
        check.raise_if_invalid()
    except InvalidArgument as error:
        for violation in error.violations:
            found.setdefault(violation.field, []).append(violation.description)
    return found


def test_a_sound_fair_validates_and_finds_zones_by_heading() -> None:
    assert violations_of(announcement()) == {}
    sound, _ = Fair.create(announcement(), T0)
    assert sound.zone_for("670420").code == "H2"
    assert sound.zone_for("850152").code == "E1"
    assert sound.zone_for("090111") is None
    assert sound.quota_for(BoothType.BRAND) is None


def test_fair_validation_names_each_wrong_field() -> None:
    wrong = announcement(
        fair_id="Canton Fair!",
        zones=(
            Zone("E1", "Power", frozenset({"8501"})),
            Zone("X", "Overlap", frozenset({"8501", "85"})),
        ),
        quotas=(
            BoothQuota(BoothType.STANDARD, 0, T0, T0 - timedelta(days=1), -5),
            BoothQuota(BoothType.STANDARD, 5, T0, T0, 0),
        ),
        scoring_sheet=replace(DEFAULT_SCORING_SHEET, brand_owner_points=-1),
    )
    found = violations_of(wrong)
    assert set(found) == {
        "fair_id",
        "zones[1].hs_headings",
        "booth_quotas",
        "booth_quotas[0].quota",
        "booth_quotas[0].fee_fen",
        "booth_quotas[0].allocation_deadline",
        "scoring_sheet.brand_owner_points",
    }
    assert found["zones[1].hs_headings"] == [
        "'85' is not a 4-digit HS heading",
        "heading 8501 is already in zone E1",
    ]


def test_profile_validation_normalises_and_reports_every_problem() -> None:
    check = Validator()
    cleaned = validate_profile(
        ExporterProfile(
            name="  许昌发制品  ",
            main_products=(Product("wigs", "6704.20"),),
            past_fairs=("c135", " c135 ", ""),
        ),
        check,
    )
    check.raise_if_invalid()
    assert cleaned.name == "许昌发制品"
    assert cleaned.main_products == (Product("wigs", "670420"),)
    assert cleaned.past_fairs == ("c135",)

    check = Validator()
    validate_profile(
        ExporterProfile(name="", export_turnover_usd=-1, main_products=(Product("", "12"),)), check
    )
    with pytest.raises(InvalidArgument) as error:
        check.raise_if_invalid()
    assert {v.field for v in error.value.violations} == {
        "profile.name",
        "profile.export_turnover_usd",
        "profile.main_products[0].name",
        "profile.main_products[0].hs_code",
    }


def test_ids_and_booth_numbers_are_stable() -> None:
    assert application_id_for("canton-139", "91411000X", BoothType.BRAND) == (
        "canton-139:91411000X:brand"
    )
    assert booth_number(BoothType.STANDARD, 7) == "S-0007"
    assert booth_number(BoothType.BRAND, 12) == "B-0012"


def test_a_quota_is_named_by_its_fair_and_booth_type() -> None:
    # The quota counter's id and the key its changes queue on.
    assert quota_key("canton-139", BoothType.BRAND) == "canton-139:2"


def test_a_rejection_needs_a_reason() -> None:
    check = Validator()
    command = RejectApplication.parse(check, " canton-139:C1:brand ", " late ")
    check.raise_if_invalid()
    assert command == RejectApplication("canton-139:C1:brand", "late")
    check = Validator()
    RejectApplication.parse(check, "canton-139:C1:brand", "  ")
    assert [(v.field, v.description) for v in check.violations] == [("reason", "is required")]


def test_a_fair_opens_at_utc_midnight_of_its_first_phase() -> None:
    later_first = announcement(
        phases=(
            Phase("Phase 2", date(2026, 4, 23), date(2026, 4, 27)),
            Phase("Phase 1", date(2026, 4, 15), date(2026, 4, 19)),
        )
    )
    fair, created = Fair.create(later_first, T0)
    assert fair.opens_at == datetime(2026, 4, 15, tzinfo=UTC) == created.opens_at
    assert (fair.status, fair.created_at) == (FairStatus.DRAFT, T0)
    assert created.quotas == fair.quotas


def test_fair_status_goes_draft_open_closed_open() -> None:
    fair, _ = Fair.create(announcement(), T0)
    with pytest.raises(FailedPrecondition, match="draft; it cannot become closed") as refused:
        fair.close()
    assert refused.value.reason == "FAIR_TRANSITION_NOT_ALLOWED"
    opened, event = fair.open()
    assert opened.status == FairStatus.OPEN
    # Every zone's headings, sorted across zones (E1 holds 8501 and 8502, H2 6704).
    assert event == FairOpened("canton-139", "Canton Fair", "139th", ("6704", "8501", "8502"))
    with pytest.raises(FailedPrecondition, match="open; it cannot become open"):
        opened.open()
    closed, event = opened.close()
    assert (closed.status, event) == (FairStatus.CLOSED, FairClosed("canton-139"))
    assert closed.open()[0].status == FairStatus.OPEN


def test_a_fair_admits_an_application_only_when_open_in_time_and_zone() -> None:
    draft, _ = Fair.create(announcement(), T0)
    with pytest.raises(FailedPrecondition, match="not open") as not_open:
        draft.admit(BoothType.STANDARD, "670420", T0)
    assert not_open.value.reason == "FAIR_NOT_OPEN"
    fair, _ = draft.open()
    with pytest.raises(InvalidArgument) as no_zone:
        fair.admit(BoothType.STANDARD, "090111", T0)
    assert no_zone.value.violations[0].field == "main_product_hs_code"
    with pytest.raises(InvalidArgument) as no_brand:
        fair.admit(BoothType.BRAND, "670420", T0)
    assert no_brand.value.violations[0].field == "booth_type"
    with pytest.raises(FailedPrecondition, match="closed at") as late:
        fair.admit(BoothType.STANDARD, "670420", T0 + timedelta(seconds=1))
    assert late.value.reason == "APPLICATION_DEADLINE_PASSED"
    admission = fair.admit(BoothType.STANDARD, "670420", T0)
    assert (admission.zone_code, admission.at) == ("H2", T0)


def exporter(credit_code: str = "91411000X") -> Exporter:
    profile = ExporterProfile(name="a", district="建安区", export_turnover_usd=3_000_000)
    return Exporter(credit_code, profile, T0, T0)


def test_submission_scores_at_once_and_says_so_twice() -> None:
    fair, _ = Fair.create(announcement(), T0)
    fair, _ = fair.open()
    application, events = Application.submit(
        fair.admit(BoothType.STANDARD, "670420", T0), exporter(), "exporter:alice"
    )
    assert application.application_id == "canton-139:91411000X:standard"
    assert (application.state, application.score) == (ApplicationState.SCORED, 6)
    # The submission is the caller's; the score is the platform's.
    assert [(t.state, t.by, t.reason) for t in application.history] == [
        (ApplicationState.SUBMITTED, "exporter:alice", ""),
        (ApplicationState.SCORED, "service:chuhai", "scoring sheet"),
    ]
    assert [type(e) for e in events] == [BoothApplicationSubmitted, BoothApplicationScored]
    assert events[0].district == "建安区"


def candidate(application_id: str, points: int, at: datetime, **changes: object) -> Application:
    base = Application(
        application_id=application_id,
        fair_id="canton-139",
        credit_code=application_id.upper(),
        booth_type=BoothType.STANDARD,
        hs_code="670420",
        zone_code="H2",
        state=ApplicationState.SCORED,
        score=points,
        submitted_at=at,
        history=(),
    )
    return replace(base, **changes)


def test_allocation_numbers_new_booths_and_waitlists_the_rest_in_rank_order() -> None:
    usage = QuotaUse("canton-139", BoothType.STANDARD, quota=3, allocated=1, issued=4)
    candidates = [
        candidate("c", 50, T0 + timedelta(minutes=1)),
        candidate("a", 70, T0),
        candidate("w", 60, T0, state=ApplicationState.WAITLISTED),
        candidate("d", 10, T0),
    ]
    round_ = allocate_booths(usage, candidates, T0 + timedelta(days=1), "officer:bob")
    assert (round_.newly_allocated, round_.newly_waitlisted) == (2, 2)
    assert (round_.usage.allocated, round_.usage.issued) == (3, 6)
    assert [(e.application_id, e.booth_number, e.quota) for e in round_.events[:2]] == [
        ("a", "S-0005", 3),
        ("w", "S-0006", 3),
    ]
    assert round_.events[2:] == [
        BoothApplicationWaitlisted("c", "canton-139", BoothType.STANDARD, 1),
        BoothApplicationWaitlisted("d", "canton-139", BoothType.STANDARD, 2),
        # Last, the run's own counts: "w" was waitlisted before and is allocated now.
        AllocationCompleted(
            "canton-139", BoothType.STANDARD, 3, allocated=2, waitlisted=2, rejected=0
        ),
    ]
    assert {a.application_id: a.state for a in round_.changed} == {
        "a": ApplicationState.ALLOCATED,
        "w": ApplicationState.ALLOCATED,
        "c": ApplicationState.WAITLISTED,
        "d": ApplicationState.WAITLISTED,
    }
    assert {a.history[-1].by for a in round_.changed} == {"officer:bob"}


def test_a_run_with_nothing_to_do_still_says_it_ran_with_its_counts() -> None:
    usage = QuotaUse("canton-139", BoothType.BRAND, quota=2, allocated=2, issued=2)
    waiting = candidate("w", 60, T0, state=ApplicationState.WAITLISTED, booth_type=BoothType.BRAND)
    round_ = allocate_booths(usage, [waiting], T0, "officer:bob")
    # Already waitlisted, still waitlisted: no news about "w", and none counted.
    assert (round_.changed, round_.newly_allocated, round_.newly_waitlisted) == ([], 0, 0)
    assert round_.events == [
        AllocationCompleted("canton-139", BoothType.BRAND, 2, allocated=0, waitlisted=0, rejected=0)
    ]


def test_the_quota_is_never_exceeded() -> None:
    usage = QuotaUse("canton-139", BoothType.STANDARD, quota=2, allocated=2, issued=2)
    assert usage.free == 0
    with pytest.raises(FailedPrecondition, match="quota of canton-139 would be exceeded") as full:
        usage.allocate(1)
    assert full.value.reason == "QUOTA_EXCEEDED"


def test_waitlist_positions_follow_the_ranking_rule() -> None:
    waitlist = [Ranked("c", 50, T0 + timedelta(minutes=1)), Ranked("b", 50, T0), Ranked("a", 9, T0)]
    assert waitlist_positions(waitlist) == {"b": 1, "c": 2, "a": 3}
    assert sorted(waitlist, key=priority_key) == plan_allocation(waitlist, 0).waitlist


def test_withdrawing_a_booth_charges_the_penalty_and_hands_the_booth_on() -> None:
    fair, _ = Fair.create(announcement(), T0)
    holder = candidate(
        "h", 80, T0, state=ApplicationState.ALLOCATED, booth_number="S-0001", allocated_at=T0
    )
    late = T0 + timedelta(days=11)
    withdrawn, event = holder.withdraw("capacity", fair, late, "exporter:alice")
    assert (withdrawn.state, withdrawn.penalty_fen) == (ApplicationState.WITHDRAWN, 1_000_000)
    assert withdrawn.history[-1].by == "exporter:alice"
    assert (event.previous_state, event.booth_number, event.penalty_fen) == (
        ApplicationState.ALLOCATED,
        "S-0001",
        1_000_000,
    )
    usage = QuotaUse("canton-139", BoothType.STANDARD, quota=1, allocated=1, issued=1)
    waiting = [
        candidate("second", 40, T0, state=ApplicationState.WAITLISTED),
        candidate("first", 60, T0, state=ApplicationState.WAITLISTED),
    ]
    handover = hand_over_booth(withdrawn, usage, waiting, late)
    assert handover.usage == usage
    assert handover.promoted is not None
    assert (handover.promoted.application_id, handover.promoted.booth_number) == (
        "first",
        "S-0001",
    )
    # Nobody asked for the promotion: the platform made it.
    assert (handover.promoted.history[-1].by, handover.promoted.history[-1].reason) == (
        "service:chuhai",
        "waitlist promotion",
    )
    assert handover.events[1] == WaitlistPromoted(
        "first", "canton-139", BoothType.STANDARD, "S-0001", "h"
    )
    # The allocation before it says where the booth came from, so nobody announces it twice.
    assert handover.events[0].from_waitlist
    assert handover.events[0].booth_number == "S-0001"
    nobody = hand_over_booth(withdrawn, usage, [], late)
    assert (nobody.promoted, nobody.usage.allocated, nobody.events) == (None, 0, [])


def test_a_waitlisted_withdrawal_costs_nothing() -> None:
    fair, _ = Fair.create(announcement(), T0)
    waiting = candidate("w", 1, T0, state=ApplicationState.WAITLISTED)
    withdrawn, event = waiting.withdraw("", fair, T0 + timedelta(days=365), "exporter:alice")
    assert (withdrawn.penalty_fen, event.booth_number) == (0, "")
