"""The booth domain on its own: scoring, ranking, allocation plans, the state machine,
penalties and fair validation."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from booth.domain import (
    DEFAULT_SCORING_SHEET,
    BoothQuota,
    BoothType,
    ExporterProfile,
    Fair,
    Phase,
    Product,
    Ranked,
    ScoringSheet,
    State,
    Zone,
    application_id_for,
    booth_number,
    plan_allocation,
    require_transition,
    score,
    validate_fair,
    validate_profile,
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
        (State.SCORED, State.ALLOCATED),
        (State.SCORED, State.WAITLISTED),
        (State.WAITLISTED, State.ALLOCATED),
        (State.ALLOCATED, State.WITHDRAWN),
        (State.WAITLISTED, State.WITHDRAWN),
        (State.SUBMITTED, State.REJECTED),
    ],
)
def test_allowed_transitions(current: State, target: State) -> None:
    require_transition(current, target, "x")


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (State.ALLOCATED, State.WAITLISTED),
        (State.ALLOCATED, State.REJECTED),
        (State.WITHDRAWN, State.ALLOCATED),
        (State.REJECTED, State.WITHDRAWN),
        (State.WITHDRAWN, State.WITHDRAWN),
    ],
)
def test_forbidden_transitions_name_both_states(current: State, target: State) -> None:
    with pytest.raises(FailedPrecondition, match=f"{current.name.lower()}.*{target.name.lower()}"):
        require_transition(current, target, "app-1")


def test_withdrawal_is_free_then_half_then_full_fee() -> None:
    quota = BoothQuota(BoothType.STANDARD, 43, T0, T0 + timedelta(days=10), fee_fen=2_000_001)
    opens = T0 + timedelta(days=30)
    assert withdrawal_penalty_fen(quota, opens, T0 + timedelta(days=10)) == 0
    assert withdrawal_penalty_fen(quota, opens, T0 + timedelta(days=10, seconds=1)) == 1_000_000
    assert withdrawal_penalty_fen(quota, opens, opens - timedelta(seconds=1)) == 1_000_000
    assert withdrawal_penalty_fen(quota, opens, opens) == 2_000_001


def fair(**changes: object) -> Fair:
    base = Fair(
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
        opens_at=datetime(2026, 4, 15, tzinfo=UTC),
    )
    return replace(base, **changes)


def violations_of(candidate: Fair) -> dict[str, list[str]]:
    check = Validator()
    validate_fair(candidate, check)
    found: dict[str, list[str]] = {}
    try:
        check.raise_if_invalid()
    except InvalidArgument as error:
        for violation in error.violations:
            found.setdefault(violation.field, []).append(violation.description)
    return found


def test_a_sound_fair_validates_and_finds_zones_by_heading() -> None:
    sound = fair()
    assert violations_of(sound) == {}
    assert sound.zone_for("670420").code == "H2"
    assert sound.zone_for("850152").code == "E1"
    assert sound.zone_for("090111") is None
    assert sound.quota_for(BoothType.BRAND) is None


def test_fair_validation_names_each_wrong_field() -> None:
    wrong = fair(
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
