"""The booth domain: exporters, fairs, scoring, the application state machine and
withdrawal penalties. Pure Python: no gRPC, MongoDB or Kafka."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime

from runtime.kernel.errors import FailedPrecondition
from runtime.kernel.standards import HS_HEADING_PATTERN, is_hs_code, normalise_hs_code
from runtime.kernel.validation import Validator

NAME_MAX_LENGTH = 200
FAIR_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
MAX_QUOTA = 10_000


class BoothType(enum.IntEnum):
    """Values match chuhai.booth.v1.BoothType."""

    STANDARD = 1
    BRAND = 2


class FairStatus(enum.IntEnum):
    DRAFT = 1
    OPEN = 2
    CLOSED = 3


class State(enum.IntEnum):
    """Values match chuhai.booth.v1.ApplicationState."""

    SUBMITTED = 1
    SCORED = 2
    ALLOCATED = 3
    WAITLISTED = 4
    REJECTED = 5
    WITHDRAWN = 6


LIVE_STATES = frozenset({State.SUBMITTED, State.SCORED, State.ALLOCATED, State.WAITLISTED})

# Which state may follow which. Withdrawal is possible from every live state;
# rejected and withdrawn are final. A booth is never transferred: an allocated
# application only ever leaves by withdrawal.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.SUBMITTED: frozenset({State.SCORED, State.REJECTED, State.WITHDRAWN}),
    State.SCORED: frozenset({State.ALLOCATED, State.WAITLISTED, State.REJECTED, State.WITHDRAWN}),
    State.WAITLISTED: frozenset({State.ALLOCATED, State.REJECTED, State.WITHDRAWN}),
    State.ALLOCATED: frozenset({State.WITHDRAWN}),
    State.REJECTED: frozenset(),
    State.WITHDRAWN: frozenset(),
}


def require_transition(current: State, target: State, application_id: str) -> None:
    if target not in TRANSITIONS[current]:
        raise FailedPrecondition(
            f"application {application_id} is {current.name.lower()}; "
            f"it cannot become {target.name.lower()}"
        )


@dataclass(frozen=True)
class Product:
    name: str
    hs_code: str

    @property
    def heading(self) -> str:
        return self.hs_code[:4]


@dataclass(frozen=True)
class ExporterProfile:
    name: str
    district: str = ""
    industry: str = ""
    main_products: tuple[Product, ...] = ()
    export_turnover_usd: int = 0
    specialised_innovative: bool = False
    brand_owner: bool = False
    high_tech_enterprise: bool = False
    past_fairs: tuple[str, ...] = ()


def validate_hs_code(hs_code: str, check: Validator, field_name: str) -> str:
    normalised = normalise_hs_code(hs_code)
    check.require(is_hs_code(normalised), field_name, "must be an HS code of 6 to 10 digits")
    return normalised


def validate_profile(profile: ExporterProfile, check: Validator) -> ExporterProfile:
    """Normalise a firm's profile, recording every problem in ``check``."""
    name = profile.name.strip()
    check.require(bool(name), "profile.name", "is required")
    check.require(
        len(name) <= NAME_MAX_LENGTH, "profile.name", f"at most {NAME_MAX_LENGTH} characters"
    )
    check.require(
        profile.export_turnover_usd >= 0, "profile.export_turnover_usd", "must not be negative"
    )
    products = []
    for index, product in enumerate(profile.main_products):
        check.require(
            bool(product.name.strip()), f"profile.main_products[{index}].name", "is required"
        )
        code = validate_hs_code(product.hs_code, check, f"profile.main_products[{index}].hs_code")
        products.append(Product(product.name.strip(), code))
    return replace(
        profile,
        name=name,
        district=profile.district.strip(),
        industry=profile.industry.strip(),
        main_products=tuple(products),
        past_fairs=tuple(sorted({f.strip() for f in profile.past_fairs if f.strip()})),
    )


@dataclass(frozen=True)
class ScoringSheet:
    """The points an application earns; its priority is their sum."""

    points_per_million_usd: int = 2
    turnover_cap_points: int = 40
    points_per_past_fair: int = 5
    participation_cap_points: int = 25
    brand_owner_points: int = 15
    specialised_innovative_points: int = 15
    high_tech_points: int = 5

    def validate(self, check: Validator) -> None:
        for name, value in vars(self).items():
            check.require(value >= 0, f"scoring_sheet.{name}", "must not be negative")


DEFAULT_SCORING_SHEET = ScoringSheet()


def score(profile: ExporterProfile, sheet: ScoringSheet) -> int:
    """Integer points, so that ranking is exact and reproducible."""
    millions = profile.export_turnover_usd // 1_000_000
    points = min(millions * sheet.points_per_million_usd, sheet.turnover_cap_points)
    points += min(
        len(profile.past_fairs) * sheet.points_per_past_fair, sheet.participation_cap_points
    )
    if profile.brand_owner:
        points += sheet.brand_owner_points
    if profile.specialised_innovative:
        points += sheet.specialised_innovative_points
    if profile.high_tech_enterprise:
        points += sheet.high_tech_points
    return points


def priority_key(score_points: int, submitted_at: datetime, application_id: str) -> tuple:
    """Sort key, best first: higher score, then earlier submission, then id. The id makes
    the order total, so every run ranks the same applications the same way."""
    return (-score_points, submitted_at, application_id)


@dataclass(frozen=True)
class Phase:
    name: str
    starts_on: date
    ends_on: date


@dataclass(frozen=True)
class Zone:
    code: str
    name: str
    hs_headings: frozenset[str]


@dataclass(frozen=True)
class BoothQuota:
    booth_type: BoothType
    quota: int
    application_deadline: datetime
    allocation_deadline: datetime
    fee_fen: int


@dataclass(frozen=True)
class Fair:
    fair_id: str
    name: str
    organiser: str
    session: str
    venue: str
    phases: tuple[Phase, ...]
    zones: tuple[Zone, ...]
    quotas: tuple[BoothQuota, ...]
    opens_at: datetime
    scoring_sheet: ScoringSheet = DEFAULT_SCORING_SHEET
    status: FairStatus = FairStatus.DRAFT

    def quota_for(self, booth_type: BoothType) -> BoothQuota | None:
        return next((q for q in self.quotas if q.booth_type == booth_type), None)

    def zone_for(self, hs_code: str) -> Zone | None:
        heading = hs_code[:4]
        return next((z for z in self.zones if heading in z.hs_headings), None)


def validate_fair(fair: Fair, check: Validator) -> None:
    check.require(
        bool(FAIR_ID_PATTERN.match(fair.fair_id)),
        "fair_id",
        "2-63 characters: lowercase letters, digits and '-'",
    )
    check.require(bool(fair.name.strip()), "name", "is required")
    check.require(bool(fair.phases), "phases", "at least one phase")
    for index, phase in enumerate(fair.phases):
        check.require(
            phase.starts_on <= phase.ends_on, f"phases[{index}].ends_on", "before starts_on"
        )
    check.require(bool(fair.zones), "zones", "at least one exhibition zone")
    seen_headings: dict[str, str] = {}
    for index, zone in enumerate(fair.zones):
        check.require(bool(zone.code.strip()), f"zones[{index}].code", "is required")
        check.require(bool(zone.hs_headings), f"zones[{index}].hs_headings", "at least one")
        for heading in sorted(zone.hs_headings):
            check.require(
                bool(HS_HEADING_PATTERN.match(heading)),
                f"zones[{index}].hs_headings",
                f"{heading!r} is not a 4-digit HS heading",
            )
            # An HS code belongs to exactly one exhibition zone.
            other = seen_headings.setdefault(heading, zone.code)
            check.require(
                other == zone.code,
                f"zones[{index}].hs_headings",
                f"heading {heading} is already in zone {other}",
            )
    check.require(bool(fair.quotas), "booth_quotas", "at least one booth type")
    booth_types = [q.booth_type for q in fair.quotas]
    check.require(
        len(set(booth_types)) == len(booth_types), "booth_quotas", "one entry per booth type"
    )
    for index, quota in enumerate(fair.quotas):
        path = f"booth_quotas[{index}]"
        check.require(0 < quota.quota <= MAX_QUOTA, f"{path}.quota", f"1 to {MAX_QUOTA}")
        check.require(quota.fee_fen >= 0, f"{path}.fee_fen", "must not be negative")
        check.require(
            quota.application_deadline <= quota.allocation_deadline <= fair.opens_at,
            f"{path}.allocation_deadline",
            "must fall between the application deadline and the fair's opening",
        )
    fair.scoring_sheet.validate(check)


def withdrawal_penalty_fen(quota: BoothQuota, opens_at: datetime, at: datetime) -> int:
    """Free until the allocation deadline, half the fee until the fair opens, all of it after."""
    if at <= quota.allocation_deadline:
        return 0
    if at < opens_at:
        return quota.fee_fen // 2
    return quota.fee_fen


def application_id_for(fair_id: str, credit_code: str, booth_type: BoothType) -> str:
    """One application per exporter, fair and booth type: the id says so."""
    return f"{fair_id}:{credit_code}:{booth_type.name.lower()}"


def booth_number(booth_type: BoothType, sequence: int) -> str:
    prefix = "B" if booth_type == BoothType.BRAND else "S"
    return f"{prefix}-{sequence:04d}"


@dataclass(frozen=True)
class Ranked:
    """An application as allocation sees it."""

    application_id: str
    score: int
    submitted_at: datetime


@dataclass
class AllocationPlan:
    allocate: list[Ranked] = field(default_factory=list)
    waitlist: list[Ranked] = field(default_factory=list)


def plan_allocation(candidates: list[Ranked], free_booths: int) -> AllocationPlan:
    """Give the free booths to the best candidates; the rest wait, in priority order."""
    ranked = sorted(
        candidates, key=lambda c: priority_key(c.score, c.submitted_at, c.application_id)
    )
    free = max(free_booths, 0)
    return AllocationPlan(allocate=ranked[:free], waitlist=ranked[free:])
