"""The booth domain: exporters, fairs and booth applications, with every rule they follow
(scoring, THE ranking rule, the application state machine, allocation against the quota,
promotion from the waitlist, withdrawal penalties, fair status).

Operations return the new state and the past-tense domain events it produced. Pure
Python: no gRPC, MongoDB or Kafka; only runtime.kernel."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Protocol, TypeVar

from runtime.kernel.errors import FailedPrecondition, FieldViolation, InvalidArgument
from runtime.kernel.identity import SYSTEM
from runtime.kernel.standards import hs_heading
from runtime.kernel.validation import Validator

NAME_MAX_LENGTH = 200
MAX_QUOTA = 10_000


class BoothType(enum.IntEnum):
    """Values match chuhai.booth.v1.BoothType."""

    STANDARD = 1
    BRAND = 2


class FairStatus(enum.IntEnum):
    """Values match chuhai.booth.v1.FairStatus."""

    DRAFT = 1
    OPEN = 2
    CLOSED = 3


class ApplicationState(enum.IntEnum):
    """Values match chuhai.booth.v1.ApplicationState."""

    SUBMITTED = 1
    SCORED = 2
    ALLOCATED = 3
    WAITLISTED = 4
    REJECTED = 5
    WITHDRAWN = 6


# Which state may follow which. Withdrawal is possible from every live state;
# rejected and withdrawn are final. A booth is never transferred: an allocated
# application only ever leaves by withdrawal.
TRANSITIONS: dict[ApplicationState, frozenset[ApplicationState]] = {
    ApplicationState.SUBMITTED: frozenset(
        {ApplicationState.SCORED, ApplicationState.REJECTED, ApplicationState.WITHDRAWN}
    ),
    ApplicationState.SCORED: frozenset(
        {
            ApplicationState.ALLOCATED,
            ApplicationState.WAITLISTED,
            ApplicationState.REJECTED,
            ApplicationState.WITHDRAWN,
        }
    ),
    ApplicationState.WAITLISTED: frozenset(
        {ApplicationState.ALLOCATED, ApplicationState.REJECTED, ApplicationState.WITHDRAWN}
    ),
    ApplicationState.ALLOCATED: frozenset({ApplicationState.WITHDRAWN}),
    ApplicationState.REJECTED: frozenset(),
    ApplicationState.WITHDRAWN: frozenset(),
}


def require_transition(
    current: ApplicationState, target: ApplicationState, application_id: str
) -> None:
    if target not in TRANSITIONS[current]:
        raise FailedPrecondition(
            f"application {application_id} is {current.name.lower()}; "
            f"it cannot become {target.name.lower()}",
            reason="APPLICATION_TRANSITION_NOT_ALLOWED",
        )


# Domain events (the proto events of chuhai.booth.v1 carry the same facts) ---------------


@dataclass(frozen=True)
class ExporterRegistered:
    credit_code: str
    name: str
    district: str
    industry: str
    main_product_hs_codes: tuple[str, ...]


@dataclass(frozen=True)
class ExporterUpdated:
    credit_code: str
    name: str
    district: str
    industry: str
    main_product_hs_codes: tuple[str, ...]


@dataclass(frozen=True)
class FairCreated:
    fair_id: str
    name: str
    session: str
    opens_at: datetime
    quotas: tuple[BoothQuota, ...]


@dataclass(frozen=True)
class FairOpened:
    fair_id: str
    name: str
    session: str
    # Every HS heading of the fair's exhibition zones, sorted: whose products may apply.
    hs_headings: tuple[str, ...]


@dataclass(frozen=True)
class FairClosed:
    fair_id: str


@dataclass(frozen=True)
class BoothApplicationSubmitted:
    application_id: str
    fair_id: str
    credit_code: str
    booth_type: BoothType
    main_product_hs_code: str
    zone_code: str
    district: str
    industry: str


@dataclass(frozen=True)
class BoothApplicationScored:
    application_id: str
    fair_id: str
    booth_type: BoothType
    score: int


@dataclass(frozen=True)
class BoothAllocated:
    application_id: str
    fair_id: str
    credit_code: str
    booth_type: BoothType
    booth_number: str
    quota: int
    # A waitlist promotion's allocation (a WaitlistPromoted follows it).
    from_waitlist: bool = False


@dataclass(frozen=True)
class BoothApplicationWaitlisted:
    application_id: str
    fair_id: str
    booth_type: BoothType
    waitlist_position: int


@dataclass(frozen=True)
class BoothApplicationRejected:
    application_id: str
    fair_id: str
    booth_type: BoothType
    reason: str


@dataclass(frozen=True)
class BoothApplicationWithdrawn:
    application_id: str
    fair_id: str
    credit_code: str
    booth_type: BoothType
    previous_state: ApplicationState
    # The booth it gave up, if it held one.
    booth_number: str
    penalty_fen: int


@dataclass(frozen=True)
class WaitlistPromoted:
    application_id: str
    fair_id: str
    booth_type: BoothType
    booth_number: str
    freed_by_application_id: str


@dataclass(frozen=True)
class AllocationCompleted:
    """One allocation run of a fair's booth type finished; the counts are this run's."""

    fair_id: str
    booth_type: BoothType
    quota: int
    allocated: int
    waitlisted: int
    rejected: int


# Exporters -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Product:
    name: str
    hs_code: str


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


def validate_profile(profile: ExporterProfile, check: Validator) -> ExporterProfile:
    """Normalise a firm's profile, recording every problem in ``check``."""
    name = check.text(profile.name, "profile.name", max_length=NAME_MAX_LENGTH)
    check.require(
        profile.export_turnover_usd >= 0, "profile.export_turnover_usd", "must not be negative"
    )
    products = []
    for index, product in enumerate(profile.main_products):
        path = f"profile.main_products[{index}]"
        product_name = product.name.strip()
        check.require(bool(product_name), f"{path}.name", "is required")
        products.append(Product(product_name, check.hs_code(product.hs_code, f"{path}.hs_code")))
    return replace(
        profile,
        name=name,
        district=profile.district.strip(),
        industry=profile.industry.strip(),
        main_products=tuple(products),
        past_fairs=tuple(sorted({f.strip() for f in profile.past_fairs if f.strip()})),
    )


@dataclass(frozen=True)
class RegisterExporter:
    credit_code: str
    profile: ExporterProfile

    @classmethod
    def parse(
        cls, check: Validator, credit_code: str, profile: ExporterProfile
    ) -> RegisterExporter:
        """The command from a request's values, normalised; every problem goes to ``check``."""
        return cls(check.credit_code(credit_code), validate_profile(profile, check))


@dataclass(frozen=True)
class UpdateExporter:
    credit_code: str
    profile: ExporterProfile

    @classmethod
    def parse(cls, check: Validator, credit_code: str, profile: ExporterProfile) -> UpdateExporter:
        """The command from a request's values, normalised; every problem goes to ``check``."""
        return cls(check.credit_code(credit_code), validate_profile(profile, check))


@dataclass(frozen=True)
class Exporter:
    """A Chinese firm registered with the city's trading delegation, by its credit code."""

    credit_code: str
    profile: ExporterProfile
    registered_at: datetime
    updated_at: datetime

    @classmethod
    def register(
        cls, command: RegisterExporter, at: datetime
    ) -> tuple[Exporter, ExporterRegistered]:
        """A new exporter from a valid command (as RegisterExporter.parse builds them)."""
        exporter = cls(command.credit_code, command.profile, registered_at=at, updated_at=at)
        return exporter, ExporterRegistered(*exporter._facts())

    def update(self, profile: ExporterProfile, at: datetime) -> tuple[Exporter, ExporterUpdated]:
        """Replace the profile (a valid one: see validate_profile); the credit code never
        changes."""
        updated = replace(self, profile=profile, updated_at=at)
        return updated, ExporterUpdated(*updated._facts())

    def _facts(self) -> tuple[str, str, str, str, tuple[str, ...]]:
        """What events tell about an exporter, in their fields' order."""
        profile = self.profile
        hs_codes = tuple(p.hs_code for p in profile.main_products)
        return self.credit_code, profile.name, profile.district, profile.industry, hs_codes


# Scoring and ranking -------------------------------------------------------------------


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


class Rankable(Protocol):
    """What ranking looks at: an Application, or a stored one's Ranked summary."""

    @property
    def application_id(self) -> str: ...

    @property
    def score(self) -> int: ...

    @property
    def submitted_at(self) -> datetime: ...


@dataclass(frozen=True)
class Ranked:
    """An application as ranking sees it."""

    application_id: str
    score: int
    submitted_at: datetime


@dataclass(frozen=True)
class SortKey:
    attribute: str
    # Descending keys are numbers (their sort value is negated).
    descending: bool = False


# THE ranking rule, best first: higher score, then earlier submission, then the id. The
# id makes the order total, so every run ranks the same applications the same way. It
# decides who gets a booth, the waitlist's order and positions, and the order lists
# come in; storage derives its sort order and index from it.
PRIORITY: tuple[SortKey, ...] = (
    SortKey("score", descending=True),
    SortKey("submitted_at"),
    SortKey("application_id"),
)


def priority_key(application: Rankable) -> tuple[object, ...]:
    """Sort key of PRIORITY: sorting by it puts the best application first."""
    values: list[object] = []
    for key in PRIORITY:
        value = getattr(application, key.attribute)
        values.append(-value if key.descending else value)
    return tuple(values)


R = TypeVar("R", bound=Rankable)


def ranked(applications: Iterable[R]) -> list[R]:
    return sorted(applications, key=priority_key)


def waitlist_positions(waitlist: Iterable[Rankable]) -> dict[str, int]:
    """1-based place of each waitlisted application (of one fair and booth type)."""
    return {a.application_id: place for place, a in enumerate(ranked(waitlist), start=1)}


@dataclass(frozen=True)
class AllocationPlan:
    allocate: list[Rankable] = field(default_factory=list)
    waitlist: list[Rankable] = field(default_factory=list)


def plan_allocation(candidates: Sequence[R], free_booths: int) -> AllocationPlan:
    """Give the free booths to the best candidates; the rest wait, in priority order."""
    order = ranked(candidates)
    free = max(free_booths, 0)
    return AllocationPlan(allocate=list(order[:free]), waitlist=list(order[free:]))


# Fairs ---------------------------------------------------------------------------------


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


def opening_moment(phases: Sequence[Phase]) -> datetime:
    """A fair opens at the start of its first phase (UTC midnight of that day)."""
    if not phases:
        return datetime.max.replace(tzinfo=UTC)
    first_day = min(p.starts_on for p in phases)
    return datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)


def withdrawal_penalty_fen(quota: BoothQuota, opens_at: datetime, at: datetime) -> int:
    """Free until the allocation deadline, half the fee until the fair opens, all of it after."""
    if at <= quota.allocation_deadline:
        return 0
    if at < opens_at:
        return quota.fee_fen // 2
    return quota.fee_fen


@dataclass(frozen=True)
class CreateFair:
    """The bureau's announcement of a fair: everything a fair is but its status."""

    fair_id: str
    name: str
    organiser: str
    session: str
    venue: str
    phases: tuple[Phase, ...]
    zones: tuple[Zone, ...]
    quotas: tuple[BoothQuota, ...]
    scoring_sheet: ScoringSheet = DEFAULT_SCORING_SHEET

    @property
    def opens_at(self) -> datetime:
        return opening_moment(self.phases)

    @classmethod
    def parse(
        cls,
        check: Validator,
        *,
        fair_id: str,
        name: str,
        organiser: str,
        session: str,
        venue: str,
        phases: Sequence[Phase],
        zones: Sequence[Zone],
        quotas: Sequence[BoothQuota],
        scoring_sheet: ScoringSheet = DEFAULT_SCORING_SHEET,
    ) -> CreateFair:
        """The announcement from a request's values, trimmed, every broken rule recorded in
        ``check``. A date, booth type or moment the request got wrong is a placeholder
        already reported in ``check``: see validate."""
        command = cls(
            fair_id=fair_id.strip(),
            name=name.strip(),
            organiser=organiser.strip(),
            session=session.strip(),
            venue=venue.strip(),
            phases=tuple(phases),
            zones=tuple(
                Zone(z.code.strip(), z.name.strip(), frozenset(h.strip() for h in z.hs_headings))
                for z in zones
            ),
            quotas=tuple(quotas),
            scoring_sheet=scoring_sheet,
        )
        command.validate(check)
        return command

    def validate(self, check: Validator) -> None:
        """Record every broken rule of the announcement in ``check``.

        A rule that needs a value ``check`` already holds a violation of (a date that was no
        date, say) is skipped: that value is a placeholder, and the answer names the field
        once. The other rules still run, so one answer names every wrong field."""
        unreadable = {v.field for v in check.violations}
        check.slug(self.fair_id, "fair_id")
        check.require(bool(self.name.strip()), "name", "is required")
        check.require(bool(self.phases), "phases", "at least one phase")
        for index, phase in enumerate(self.phases):
            starts_on, ends_on = f"phases[{index}].starts_on", f"phases[{index}].ends_on"
            if unreadable.isdisjoint({starts_on, ends_on}):
                check.require(phase.starts_on <= phase.ends_on, ends_on, "before starts_on")
        opening_known = unreadable.isdisjoint(
            f"phases[{index}].starts_on" for index in range(len(self.phases))
        )
        self._validate_zones(check)
        self._validate_quotas(check, unreadable, opening_known)
        self.scoring_sheet.validate(check)

    def _validate_zones(self, check: Validator) -> None:
        check.require(bool(self.zones), "zones", "at least one exhibition zone")
        seen_headings: dict[str, str] = {}
        for index, zone in enumerate(self.zones):
            check.require(bool(zone.code.strip()), f"zones[{index}].code", "is required")
            check.require(bool(zone.hs_headings), f"zones[{index}].hs_headings", "at least one")
            for heading in sorted(zone.hs_headings):
                check.hs_heading(heading, f"zones[{index}].hs_headings")
                # An HS code belongs to exactly one exhibition zone.
                other = seen_headings.setdefault(heading, zone.code)
                check.require(
                    other == zone.code,
                    f"zones[{index}].hs_headings",
                    f"heading {heading} is already in zone {other}",
                )

    def _validate_quotas(self, check: Validator, unreadable: set[str], opening_known: bool) -> None:
        check.require(bool(self.quotas), "booth_quotas", "at least one booth type")
        booth_types = [
            q.booth_type
            for index, q in enumerate(self.quotas)
            if f"booth_quotas[{index}].booth_type" not in unreadable
        ]
        check.require(
            len(set(booth_types)) == len(booth_types), "booth_quotas", "one entry per booth type"
        )
        # Without every phase's first day, the opening is unknown: only the order of the
        # two deadlines can be checked.
        latest = self.opens_at if opening_known else datetime.max.replace(tzinfo=UTC)
        for index, quota in enumerate(self.quotas):
            path = f"booth_quotas[{index}]"
            check.require(0 < quota.quota <= MAX_QUOTA, f"{path}.quota", f"1 to {MAX_QUOTA}")
            check.require(quota.fee_fen >= 0, f"{path}.fee_fen", "must not be negative")
            deadlines = {f"{path}.application_deadline", f"{path}.allocation_deadline"}
            if unreadable.isdisjoint(deadlines):
                check.require(
                    quota.application_deadline <= quota.allocation_deadline <= latest,
                    f"{path}.allocation_deadline",
                    "must fall between the application deadline and the fair's opening",
                )


@dataclass(frozen=True)
class Admission:
    """A fair's yes to an application for this booth type and main product, at this moment."""

    fair_id: str
    booth_type: BoothType
    hs_code: str
    zone_code: str
    scoring_sheet: ScoringSheet
    at: datetime


# A fair may become OPEN from these states, or CLOSED from these.
_FAIR_STATUS_FROM: dict[FairStatus, frozenset[FairStatus]] = {
    FairStatus.OPEN: frozenset({FairStatus.DRAFT, FairStatus.CLOSED}),
    FairStatus.CLOSED: frozenset({FairStatus.OPEN}),
}


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
    created_at: datetime
    scoring_sheet: ScoringSheet = DEFAULT_SCORING_SHEET
    status: FairStatus = FairStatus.DRAFT

    @classmethod
    def create(cls, command: CreateFair, at: datetime) -> tuple[Fair, FairCreated]:
        """A draft fair from a valid announcement (as CreateFair.parse builds them)."""
        fair = cls(
            fair_id=command.fair_id,
            name=command.name,
            organiser=command.organiser,
            session=command.session,
            venue=command.venue,
            phases=command.phases,
            zones=command.zones,
            quotas=command.quotas,
            opens_at=command.opens_at,
            created_at=at,
            scoring_sheet=command.scoring_sheet,
        )
        created = FairCreated(fair.fair_id, fair.name, fair.session, fair.opens_at, fair.quotas)
        return fair, created

    def quota_for(self, booth_type: BoothType) -> BoothQuota | None:
        return next((q for q in self.quotas if q.booth_type == booth_type), None)

    def zone_for(self, hs_code: str) -> Zone | None:
        heading = hs_heading(hs_code)
        return next((z for z in self.zones if heading in z.hs_headings), None)

    @property
    def hs_headings(self) -> tuple[str, ...]:
        """Every HS heading of the exhibition zones, sorted."""
        return tuple(sorted({h for zone in self.zones for h in zone.hs_headings}))

    def open(self) -> tuple[Fair, FairOpened]:
        opened = FairOpened(self.fair_id, self.name, self.session, self.hs_headings)
        return self._become(FairStatus.OPEN), opened

    def close(self) -> tuple[Fair, FairClosed]:
        return self._become(FairStatus.CLOSED), FairClosed(self.fair_id)

    def _become(self, target: FairStatus) -> Fair:
        if self.status not in _FAIR_STATUS_FROM[target]:
            raise FailedPrecondition(
                f"fair {self.fair_id} is {self.status.name.lower()}; "
                f"it cannot become {target.name.lower()}",
                reason="FAIR_TRANSITION_NOT_ALLOWED",
            )
        return replace(self, status=target)

    def _quota(self, booth_type: BoothType) -> BoothQuota:
        quota = self.quota_for(booth_type)
        if quota is None:
            raise InvalidArgument(
                FieldViolation(
                    "booth_type", f"fair {self.fair_id} has no {booth_type.name.lower()} booths"
                )
            )
        return quota

    def admit(self, booth_type: BoothType, hs_code: str, at: datetime) -> Admission:
        """Whether an application for this booth type and main product may be submitted now."""
        quota = self._quota(booth_type)
        zone = self.zone_for(hs_code)
        if zone is None:
            raise InvalidArgument(
                FieldViolation(
                    "main_product_hs_code",
                    f"HS heading {hs_heading(hs_code)} belongs to no exhibition zone of fair "
                    f"{self.fair_id}",
                )
            )
        if self.status != FairStatus.OPEN:
            raise FailedPrecondition(
                f"fair {self.fair_id} is not open for applications", reason="FAIR_NOT_OPEN"
            )
        if at > quota.application_deadline:
            raise FailedPrecondition(
                f"applications for {booth_type.name.lower()} booths at {self.fair_id} closed at "
                f"{quota.application_deadline.isoformat()}",
                reason="APPLICATION_DEADLINE_PASSED",
            )
        return Admission(self.fair_id, booth_type, hs_code, zone.code, self.scoring_sheet, at)

    def require_allocation(self, booth_type: BoothType) -> None:
        """Booths of a type are allocated once the fair has opened for applications."""
        self._quota(booth_type)
        if self.status == FairStatus.DRAFT:
            raise FailedPrecondition(
                f"fair {self.fair_id} has not opened for applications yet",
                reason="FAIR_NOT_YET_OPENED",
            )


# Applications --------------------------------------------------------------------------


def application_id_for(fair_id: str, credit_code: str, booth_type: BoothType) -> str:
    """One application per exporter, fair and booth type: the id says so."""
    return f"{fair_id}:{credit_code}:{booth_type.name.lower()}"


def booth_number(booth_type: BoothType, sequence: int) -> str:
    prefix = "B" if booth_type == BoothType.BRAND else "S"
    return f"{prefix}-{sequence:04d}"


@dataclass(frozen=True)
class Transition:
    """One entry of an application's history."""

    state: ApplicationState
    at: datetime
    by: str
    reason: str = ""


@dataclass(frozen=True)
class SubmitApplication:
    """What an exporter applies for; the applicant is the exporter calling."""

    fair_id: str
    booth_type: BoothType
    hs_code: str


@dataclass(frozen=True)
class WithdrawApplication:
    application_id: str
    reason: str


@dataclass(frozen=True)
class RejectApplication:
    application_id: str
    reason: str

    @classmethod
    def parse(cls, check: Validator, application_id: str, reason: str) -> RejectApplication:
        """A rejection names its reason: the exporter is told why."""
        application_id = check.identifier(application_id, "application_id")
        reason = reason.strip()
        check.require(bool(reason), "reason", "is required")
        return cls(application_id, reason)


@dataclass(frozen=True)
class RunAllocation:
    fair_id: str
    booth_type: BoothType


@dataclass(frozen=True)
class ApplicationQuery:
    """Which applications a list shows; None or empty means any."""

    fair_id: str = ""
    credit_code: str = ""
    state: ApplicationState | None = None
    booth_type: BoothType | None = None


@dataclass(frozen=True)
class Application:
    """An exporter's application for a booth type at a fair."""

    application_id: str
    fair_id: str
    credit_code: str
    booth_type: BoothType
    hs_code: str
    zone_code: str
    state: ApplicationState
    score: int
    submitted_at: datetime
    history: tuple[Transition, ...]
    booth_number: str = ""
    penalty_fen: int = 0
    allocated_at: datetime | None = None

    @classmethod
    def submit(
        cls, admission: Admission, exporter: Exporter, by: str
    ) -> tuple[Application, list[BoothApplicationSubmitted | BoothApplicationScored]]:
        """A new application submitted ``by`` (an audit name), scored at once by the
        platform on the fair's scoring sheet."""
        at = admission.at
        application = cls(
            application_id=application_id_for(
                admission.fair_id, exporter.credit_code, admission.booth_type
            ),
            fair_id=admission.fair_id,
            credit_code=exporter.credit_code,
            booth_type=admission.booth_type,
            hs_code=admission.hs_code,
            zone_code=admission.zone_code,
            state=ApplicationState.SCORED,
            score=score(exporter.profile, admission.scoring_sheet),
            submitted_at=at,
            history=(
                Transition(ApplicationState.SUBMITTED, at, by),
                Transition(ApplicationState.SCORED, at, SYSTEM.audit_name, "scoring sheet"),
            ),
        )
        events = [
            BoothApplicationSubmitted(
                application_id=application.application_id,
                fair_id=application.fair_id,
                credit_code=application.credit_code,
                booth_type=application.booth_type,
                main_product_hs_code=application.hs_code,
                zone_code=application.zone_code,
                district=exporter.profile.district,
                industry=exporter.profile.industry,
            ),
            BoothApplicationScored(
                application.application_id,
                application.fair_id,
                application.booth_type,
                application.score,
            ),
        ]
        return application, events

    @property
    def holds_booth(self) -> bool:
        return self.state == ApplicationState.ALLOCATED

    def _move(
        self, target: ApplicationState, at: datetime, by: str, reason: str = "", **changes: object
    ) -> Application:
        require_transition(self.state, target, self.application_id)
        return replace(
            self,
            state=target,
            history=(*self.history, Transition(target, at, by, reason)),
            **changes,
        )

    def allocate(
        self,
        number: str,
        quota: int,
        at: datetime,
        by: str,
        reason: str = "allocation",
    ) -> tuple[Application, BoothAllocated]:
        allocated = self._move(
            ApplicationState.ALLOCATED, at, by, reason, booth_number=number, allocated_at=at
        )
        event = BoothAllocated(
            self.application_id, self.fair_id, self.credit_code, self.booth_type, number, quota
        )
        return allocated, event

    def waitlist(
        self, position: int, at: datetime, by: str
    ) -> tuple[Application, BoothApplicationWaitlisted]:
        waitlisted = self._move(ApplicationState.WAITLISTED, at, by, "quota taken")
        event = BoothApplicationWaitlisted(
            self.application_id, self.fair_id, self.booth_type, position
        )
        return waitlisted, event

    def reject(
        self, reason: str, at: datetime, by: str
    ) -> tuple[Application, BoothApplicationRejected]:
        rejected = self._move(ApplicationState.REJECTED, at, by, reason)
        event = BoothApplicationRejected(self.application_id, self.fair_id, self.booth_type, reason)
        return rejected, event

    def withdraw(
        self, reason: str, fair: Fair, at: datetime, by: str
    ) -> tuple[Application, BoothApplicationWithdrawn]:
        """The exporter gives up; a booth it held costs the penalty due at ``at``."""
        quota = fair.quota_for(self.booth_type)
        penalty = 0
        if self.holds_booth and quota is not None:
            penalty = withdrawal_penalty_fen(quota, fair.opens_at, at)
        withdrawn = self._move(ApplicationState.WITHDRAWN, at, by, reason, penalty_fen=penalty)
        event = BoothApplicationWithdrawn(
            application_id=self.application_id,
            fair_id=self.fair_id,
            credit_code=self.credit_code,
            booth_type=self.booth_type,
            previous_state=self.state,
            booth_number=self.booth_number,
            penalty_fen=penalty,
        )
        return withdrawn, event

    def promote(
        self, number: str, quota: int, freed_by: str, at: datetime
    ) -> tuple[Application, list[BoothAllocated | WaitlistPromoted]]:
        """A waitlisted application receives the booth ``freed_by`` gave up: the
        platform's move, whoever withdrew."""
        promoted, allocated = self.allocate(
            number, quota, at, SYSTEM.audit_name, reason="waitlist promotion"
        )
        event = WaitlistPromoted(
            self.application_id, self.fair_id, self.booth_type, number, freed_by
        )
        return promoted, [replace(allocated, from_waitlist=True), event]


# Allocation against the quota ----------------------------------------------------------


def quota_key(fair_id: str, booth_type: BoothType) -> str:
    """Names a fair's quota for one booth type: "<fair id>:<booth type number>"."""
    return f"{fair_id}:{int(booth_type)}"


@dataclass(frozen=True)
class QuotaUse:
    """How much of a fair's quota for a booth type is taken: the booths allocated now, and
    the booth numbers issued so far (a freed booth keeps its number for its next holder)."""

    fair_id: str
    booth_type: BoothType
    quota: int
    allocated: int = 0
    issued: int = 0

    @property
    def free(self) -> int:
        return max(self.quota - self.allocated, 0)

    def next_number(self, offset: int) -> str:
        return booth_number(self.booth_type, self.issued + offset)

    def allocate(self, count: int) -> QuotaUse:
        """``count`` new booths, with new numbers."""
        if self.allocated + count > self.quota:
            raise FailedPrecondition(
                f"quota of {self.fair_id} would be exceeded", reason="QUOTA_EXCEEDED"
            )
        return replace(self, allocated=self.allocated + count, issued=self.issued + count)

    def release(self) -> QuotaUse:
        return replace(self, allocated=self.allocated - 1)


@dataclass(frozen=True)
class AllocationRound:
    usage: QuotaUse
    changed: list[Application]
    # The applications' events, then the run's AllocationCompleted.
    events: list[BoothAllocated | BoothApplicationWaitlisted | AllocationCompleted]
    newly_allocated: int
    newly_waitlisted: int


def allocate_booths(
    usage: QuotaUse, candidates: Iterable[Application], at: datetime, by: str
) -> AllocationRound:
    """Allocate the free booths in priority order among scored and waitlisted
    applications; the others (re)join the waitlist in priority order. ``by`` is who
    ran the allocation, as the histories name it."""
    waiting = [
        a
        for a in candidates
        if a.state in (ApplicationState.SCORED, ApplicationState.WAITLISTED)
        and (a.fair_id, a.booth_type) == (usage.fair_id, usage.booth_type)
    ]
    plan = plan_allocation(waiting, usage.free)
    by_id = {a.application_id: a for a in waiting}
    changed: list[Application] = []
    events: list[BoothAllocated | BoothApplicationWaitlisted | AllocationCompleted] = []
    for offset, chosen in enumerate(plan.allocate, start=1):
        allocated, event = by_id[chosen.application_id].allocate(
            usage.next_number(offset), usage.quota, at, by
        )
        changed.append(allocated)
        events.append(event)
    positions = waitlist_positions(plan.waitlist)
    newly_waitlisted = 0
    for left in plan.waitlist:
        application = by_id[left.application_id]
        if application.state == ApplicationState.SCORED:
            waitlisted, event = application.waitlist(positions[application.application_id], at, by)
            changed.append(waitlisted)
            events.append(event)
            newly_waitlisted += 1
    # A run rejects nobody: rejection is an officer's move (RejectApplication).
    events.append(
        AllocationCompleted(
            usage.fair_id,
            usage.booth_type,
            usage.quota,
            allocated=len(plan.allocate),
            waitlisted=newly_waitlisted,
            rejected=0,
        )
    )
    return AllocationRound(
        usage=usage.allocate(len(plan.allocate)),
        changed=changed,
        events=events,
        newly_allocated=len(plan.allocate),
        newly_waitlisted=newly_waitlisted,
    )


@dataclass(frozen=True)
class Handover:
    """What becomes of the booth a withdrawal freed."""

    usage: QuotaUse
    promoted: Application | None
    events: list[BoothAllocated | WaitlistPromoted]


def hand_over_booth(
    withdrawn: Application, usage: QuotaUse, waitlist: Iterable[Application], at: datetime
) -> Handover:
    """The booth ``withdrawn`` gave up goes to the first application on the waitlist, with
    its number; without one, the quota has a free booth again."""
    waiting = ranked(a for a in waitlist if a.state == ApplicationState.WAITLISTED)
    if not waiting:
        return Handover(usage.release(), None, [])
    promoted, events = waiting[0].promote(
        withdrawn.booth_number, usage.quota, withdrawn.application_id, at
    )
    return Handover(usage, promoted, events)
