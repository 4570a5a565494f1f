"""The booth use cases on an in-memory store: state changes, the events recorded, and
which objects each caller may touch (someone else's reads exactly as a missing one)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from booth import handlers
from booth.domain import (
    PRIORITY,
    AllocationCompleted,
    ApplicationQuery,
    ApplicationState,
    BoothAllocated,
    BoothApplicationRejected,
    BoothApplicationScored,
    BoothApplicationSubmitted,
    BoothApplicationWaitlisted,
    BoothApplicationWithdrawn,
    BoothQuota,
    BoothType,
    CreateFair,
    ExporterProfile,
    ExporterRegistered,
    ExporterUpdated,
    FairClosed,
    FairCreated,
    FairOpened,
    FairStatus,
    Phase,
    Product,
    RegisterExporter,
    RejectApplication,
    RunAllocation,
    SubmitApplication,
    UpdateExporter,
    WaitlistPromoted,
    WithdrawApplication,
    Zone,
)
from runtime.adapters.pagination import PageRequest, page_request
from runtime.kernel.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from runtime.kernel.identity import Principal, Role
from runtime.kernel.validation import Validator
from tests.fakes import DEFAULT_NOW, FakeUnitOfWork
from tests.unit.booth_memory import MemoryBoothStore

FAIR = "canton-139"
HAIR, MOTORS = "670420", "850152"
Uow = FakeUnitOfWork[MemoryBoothStore]
OFFICER = Principal(subject="officer-1", role=Role.OFFICER)
EXPO = Principal(subject="expo", role=Role.SERVICE, party="expo")


def exporter(code: str) -> Principal:
    """The token of the firm with credit code ``code``."""
    return Principal(subject=f"user-{code.lower()}", role=Role.EXPORTER, party=code)


def acting(uow: Uow, principal: Principal) -> Uow:
    """The unit of work, now run for ``principal``."""
    uow.actor = principal
    return uow


def page(size: int = 0, token: str = "", query: object = "q", keys: int = 1) -> PageRequest:
    check = Validator()
    request = page_request(size, token, query, check, key_length=keys)
    check.raise_if_invalid()
    return request


def profile(name: str, turnover_usd: int = 0, district: str = "建安区") -> ExporterProfile:
    return ExporterProfile(
        name=name,
        district=district,
        industry="hair products",
        main_products=(Product("wigs", HAIR),),
        export_turnover_usd=turnover_usd,
    )


def announcement(fair_id: str = FAIR, quota: int = 2, fee_fen: int = 2_000_000) -> CreateFair:
    return CreateFair(
        fair_id=fair_id,
        name="Canton Fair",
        organiser="MOFCOM",
        session="139th",
        venue="Guangzhou",
        phases=(Phase("Phase 1", date(2026, 4, 10), date(2026, 4, 14)),),
        zones=(Zone("H2", "Hair products", frozenset({"6704"})),),
        quotas=(
            BoothQuota(
                BoothType.STANDARD,
                quota,
                application_deadline=DEFAULT_NOW + timedelta(days=10),
                allocation_deadline=DEFAULT_NOW + timedelta(days=20),
                fee_fen=fee_fen,
            ),
        ),
    )


@pytest.fixture
def uow() -> Uow:
    return FakeUnitOfWork(MemoryBoothStore())


async def open_fair_with(uow: Uow, turnovers: dict[str, int], quota: int = 2) -> None:
    """An open fair, and one scored application per exporter (score: 2 per million USD),
    submitted a minute apart in the order given."""
    await handlers.create_fair(acting(uow, OFFICER), announcement(quota=quota))
    await handlers.open_fair(uow, FAIR)
    for code, turnover in turnovers.items():
        await register(uow, code, turnover)
        await handlers.submit_application(uow, SubmitApplication(FAIR, BoothType.STANDARD, HAIR))
        uow.advance(timedelta(minutes=1))
    acting(uow, OFFICER)
    uow.take_events()


async def register(uow: Uow, code: str, turnover: int = 0, district: str = "建安区") -> None:
    """Registers the firm ``code``, as itself; the unit of work then runs for it."""
    await handlers.register_exporter(
        acting(uow, exporter(code)),
        RegisterExporter(code, profile(f"firm {code}", turnover, district)),
    )


def app_id(code: str) -> str:
    return f"{FAIR}:{code}:standard"


async def allocate(uow: Uow) -> handlers.AllocationResult:
    return await handlers.run_allocation(
        acting(uow, OFFICER), RunAllocation(FAIR, BoothType.STANDARD)
    )


async def withdraw(uow: Uow, code: str, reason: str = "") -> handlers.Withdrawal:
    """The firm ``code`` withdraws its application."""
    return await handlers.withdraw_application(
        acting(uow, exporter(code)), WithdrawApplication(app_id(code), reason)
    )


# Exporters -------------------------------------------------------------------------------


async def test_register_exporter_stores_it_and_says_so_once(uow: Uow) -> None:
    acting(uow, exporter("C1"))
    firm = await handlers.register_exporter(uow, RegisterExporter("C1", profile("许昌发制品")))
    assert uow.store.exporters["C1"] == firm
    assert firm.registered_at == firm.updated_at == DEFAULT_NOW
    assert uow.take_events() == [
        ExporterRegistered("C1", "许昌发制品", "建安区", "hair products", (HAIR,))
    ]
    with pytest.raises(AlreadyExists, match="exporter C1 is already registered"):
        await handlers.register_exporter(uow, RegisterExporter("C1", profile("other")))
    assert uow.events == []
    assert uow.store.exporters["C1"].profile.name == "许昌发制品"


async def test_update_exporter_replaces_the_profile(uow: Uow) -> None:
    await handlers.register_exporter(
        acting(uow, exporter("C1")), RegisterExporter("C1", profile("old"))
    )
    uow.take_events()
    uow.advance(timedelta(hours=1))
    updated = await handlers.update_exporter(
        uow, UpdateExporter("C1", profile("new", district="魏都区"))
    )
    assert (updated.profile.name, updated.registered_at, updated.updated_at) == (
        "new",
        DEFAULT_NOW,
        DEFAULT_NOW + timedelta(hours=1),
    )
    assert uow.store.exporters["C1"] == updated
    assert uow.take_events() == [ExporterUpdated("C1", "new", "魏都区", "hair products", (HAIR,))]
    with pytest.raises(NotFound, match="no exporter with credit code C9"):
        await handlers.update_exporter(
            acting(uow, exporter("C9")), UpdateExporter("C9", profile("x"))
        )


async def test_get_and_list_exporters_by_district_page_by_page(uow: Uow) -> None:
    for code, district in [("C3", "A"), ("C1", "A"), ("C2", "B"), ("C4", "A")]:
        await register(uow, code, district=district)
    store = uow.store
    assert (await handlers.get_exporter(store, "C2", OFFICER)).profile.district == "B"
    with pytest.raises(NotFound):
        await handlers.get_exporter(store, "C9", OFFICER)
    first, token = await handlers.list_exporters(store, "A", page(2))
    assert [e.credit_code for e in first] == ["C1", "C3"]
    rest, last = await handlers.list_exporters(store, "A", page(2, token))
    assert ([e.credit_code for e in rest], last) == (["C4"], "")


# Fairs -----------------------------------------------------------------------------------


async def test_create_fair_starts_a_draft_with_an_empty_quota(uow: Uow) -> None:
    fair = await handlers.create_fair(uow, announcement(quota=43))
    assert (fair.status, fair.created_at) == (FairStatus.DRAFT, DEFAULT_NOW)
    [created] = uow.take_events()
    assert isinstance(created, FairCreated)
    assert (created.fair_id, created.opens_at.date(), created.quotas) == (
        FAIR,
        date(2026, 4, 10),
        fair.quotas,
    )
    view = await handlers.get_fair(uow.store, FAIR)
    assert (view.fair, view.allocated) == (fair, (0,))
    with pytest.raises(AlreadyExists, match=f"fair {FAIR} already exists"):
        await handlers.create_fair(uow, announcement())
    assert uow.events == []


async def test_open_and_close_fair_follow_the_status_rules(uow: Uow) -> None:
    await handlers.create_fair(uow, announcement())
    uow.take_events()
    with pytest.raises(FailedPrecondition, match="draft; it cannot become closed"):
        await handlers.close_fair(uow, FAIR)
    opened = await handlers.open_fair(uow, FAIR)
    closed = await handlers.close_fair(uow, FAIR)
    assert (opened.status, closed.status) == (FairStatus.OPEN, FairStatus.CLOSED)
    assert uow.store.fairs[FAIR].status == FairStatus.CLOSED
    assert uow.take_events() == [
        FairOpened(FAIR, "Canton Fair", "139th", ("6704",)),
        FairClosed(FAIR),
    ]
    with pytest.raises(NotFound, match="no fair 'nope'"):
        await handlers.open_fair(uow, "nope")


async def test_list_fairs_pages_by_id(uow: Uow) -> None:
    for fair_id in ("fair-c", "fair-a", "fair-b"):
        await handlers.create_fair(uow, announcement(fair_id))
    first, token = await handlers.list_fairs(uow.store, page(2))
    rest, last = await handlers.list_fairs(uow.store, page(2, token))
    assert [f.fair_id for f in [*first, *rest]] == ["fair-a", "fair-b", "fair-c"]
    assert last == ""


# Applications ----------------------------------------------------------------------------


async def test_submit_application_scores_it_and_records_both_facts(uow: Uow) -> None:
    await open_fair_with(uow, {})
    await register(uow, "C1", 7_900_000)
    uow.take_events()
    application = await handlers.submit_application(
        uow, SubmitApplication(FAIR, BoothType.STANDARD, HAIR)
    )
    assert uow.store.applications[app_id("C1")] == application
    assert (application.state, application.score, application.zone_code) == (
        ApplicationState.SCORED,
        14,
        "H2",
    )
    assert uow.take_events() == [
        BoothApplicationSubmitted(
            app_id("C1"), FAIR, "C1", BoothType.STANDARD, HAIR, "H2", "建安区", "hair products"
        ),
        BoothApplicationScored(app_id("C1"), FAIR, BoothType.STANDARD, 14),
    ]
    with pytest.raises(AlreadyExists, match=f"C1 already applied for a standard booth at {FAIR}"):
        await handlers.submit_application(uow, SubmitApplication(FAIR, BoothType.STANDARD, HAIR))
    assert uow.events == []


async def test_submission_is_refused_with_the_fairs_reason_first(uow: Uow) -> None:
    await handlers.create_fair(uow, announcement())
    # An unregistered firm's token: a draft fair refuses whoever asks; an open one then
    # asks who the exporter is.
    submit = SubmitApplication(FAIR, BoothType.STANDARD, HAIR)
    with pytest.raises(FailedPrecondition, match="not open for applications"):
        await handlers.submit_application(acting(uow, exporter("UNKNOWN")), submit)
    await handlers.open_fair(acting(uow, OFFICER), FAIR)
    acting(uow, exporter("UNKNOWN"))
    with pytest.raises(NotFound, match="no exporter with credit code UNKNOWN"):
        await handlers.submit_application(uow, submit)
    with pytest.raises(InvalidArgument) as wrong_zone:
        await handlers.submit_application(uow, SubmitApplication(FAIR, BoothType.STANDARD, MOTORS))
    assert wrong_zone.value.violations[0].field == "main_product_hs_code"
    with pytest.raises(NotFound, match="no fair 'nope'"):
        await handlers.submit_application(uow, SubmitApplication("nope", BoothType.STANDARD, HAIR))
    uow.advance(timedelta(days=11))
    with pytest.raises(FailedPrecondition, match="closed at"):
        await handlers.submit_application(uow, submit)
    assert uow.store.applications == {}


async def test_allocation_respects_the_quota_and_the_priority_order(uow: Uow) -> None:
    # Scores: C1 10, C2 30, C3 10 (submitted after C1), C4 20.
    await open_fair_with(uow, {"C1": 5_000_000, "C2": 15_000_000, "C3": 5_000_000, "C4": 10**7})
    result = await allocate(uow)
    assert result == handlers.AllocationResult(
        quota=2, allocated_total=2, newly_allocated=2, newly_waitlisted=2
    )
    applications = uow.store.applications
    holders = [applications[app_id(code)] for code in ("C2", "C4")]
    assert [(a.state, a.booth_number) for a in holders] == [
        (ApplicationState.ALLOCATED, "S-0001"),
        (ApplicationState.ALLOCATED, "S-0002"),
    ]
    assert uow.take_events() == [
        BoothAllocated(app_id("C2"), FAIR, "C2", BoothType.STANDARD, "S-0001", 2),
        BoothAllocated(app_id("C4"), FAIR, "C4", BoothType.STANDARD, "S-0002", 2),
        BoothApplicationWaitlisted(app_id("C1"), FAIR, BoothType.STANDARD, 1),
        BoothApplicationWaitlisted(app_id("C3"), FAIR, BoothType.STANDARD, 2),
        AllocationCompleted(FAIR, BoothType.STANDARD, 2, allocated=2, waitlisted=2, rejected=0),
    ]
    holder = applications[app_id("C2")]
    assert (holder.history[-1].by, holder.history[-1].reason, holder.allocated_at) == (
        "officer:officer-1",
        "allocation",
        uow.now,
    )
    # Nothing is free any more: another run changes nothing but says how things stand,
    # and that it ran.
    again = await allocate(uow)
    assert (again.allocated_total, again.newly_allocated, again.newly_waitlisted) == (2, 0, 0)
    assert uow.take_events() == [
        AllocationCompleted(FAIR, BoothType.STANDARD, 2, allocated=0, waitlisted=0, rejected=0)
    ]
    assert (await handlers.get_fair(uow.store, FAIR)).allocated == (2,)


async def test_allocation_needs_an_opened_fair_and_a_booth_type_it_has(uow: Uow) -> None:
    await handlers.create_fair(uow, announcement())
    with pytest.raises(FailedPrecondition, match="has not opened for applications yet"):
        await allocate(uow)
    await handlers.open_fair(uow, FAIR)
    with pytest.raises(InvalidArgument) as no_brand:
        await handlers.run_allocation(uow, RunAllocation(FAIR, BoothType.BRAND))
    assert no_brand.value.violations[0].field == "booth_type"


async def test_withdrawing_a_booth_promotes_the_first_waitlisted_and_charges_the_penalty(
    uow: Uow,
) -> None:
    await open_fair_with(uow, {"C1": 5_000_000, "C2": 15_000_000, "C3": 8_000_000})
    await allocate(uow)
    uow.take_events()
    writes = uow.store.counter_writes[FAIR, BoothType.STANDARD]
    uow.advance(timedelta(days=25))  # past the allocation deadline, before the opening
    withdrawal = await withdraw(uow, "C2", "production capacity")
    withdrawn, promoted = withdrawal.application, withdrawal.promoted
    assert (withdrawn.state, withdrawn.penalty_fen) == (ApplicationState.WITHDRAWN, 1_000_000)
    assert withdrawn.history[-1].reason == "production capacity"
    assert promoted is not None and promoted.application_id == app_id("C1")
    assert (promoted.state, promoted.booth_number) == (ApplicationState.ALLOCATED, "S-0001")
    assert uow.store.applications[app_id("C1")] == promoted
    assert uow.take_events() == [
        BoothApplicationWithdrawn(
            app_id("C2"),
            FAIR,
            "C2",
            BoothType.STANDARD,
            ApplicationState.ALLOCATED,
            "S-0001",
            1_000_000,
        ),
        BoothAllocated(
            app_id("C1"), FAIR, "C1", BoothType.STANDARD, "S-0001", 2, from_waitlist=True
        ),
        WaitlistPromoted(app_id("C1"), FAIR, BoothType.STANDARD, "S-0001", app_id("C2")),
    ]
    # The booth changed hands: the count holds, and the counter was written all the same.
    assert uow.store.quota_counters[FAIR, BoothType.STANDARD].allocated == 2
    assert uow.store.counter_writes[FAIR, BoothType.STANDARD] == writes + 1

    uow.advance(timedelta(days=30))  # the fair has opened: the whole fee
    late = await withdraw(uow, "C1")
    assert (late.application.penalty_fen, late.promoted) == (2_000_000, None)
    assert uow.store.quota_counters[FAIR, BoothType.STANDARD].allocated == 1
    with pytest.raises(FailedPrecondition, match="withdrawn; it cannot become withdrawn"):
        await withdraw(uow, "C1")
    with pytest.raises(NotFound, match="no application 'nope'"):
        await handlers.withdraw_application(uow, WithdrawApplication("nope", ""))


async def test_a_freed_booth_without_a_waitlist_gets_a_new_number_next_round(uow: Uow) -> None:
    await open_fair_with(uow, {"C1": 5_000_000, "C2": 15_000_000}, quota=2)
    await allocate(uow)
    await withdraw(uow, "C2")
    await register(uow, "C3")
    await handlers.submit_application(uow, SubmitApplication(FAIR, BoothType.STANDARD, HAIR))
    uow.take_events()
    result = await allocate(uow)
    assert (result.allocated_total, result.newly_allocated) == (2, 1)
    assert uow.store.applications[app_id("C3")].booth_number == "S-0003"


async def test_withdrawing_a_waitlisted_application_is_free_and_frees_nothing(uow: Uow) -> None:
    await open_fair_with(uow, {"C1": 5_000_000, "C2": 15_000_000}, quota=1)
    await allocate(uow)
    uow.take_events()
    uow.advance(timedelta(days=60))
    withdrawal = await withdraw(uow, "C1")
    assert (withdrawal.application.penalty_fen, withdrawal.promoted) == (0, None)
    [event] = uow.take_events()
    assert isinstance(event, BoothApplicationWithdrawn)
    assert (event.previous_state, event.booth_number) == (ApplicationState.WAITLISTED, "")
    assert uow.store.quota_counters[FAIR, BoothType.STANDARD].allocated == 1


async def test_reject_application_ends_it_unless_it_holds_a_booth(uow: Uow) -> None:
    await open_fair_with(uow, {"C1": 5_000_000, "C2": 15_000_000}, quota=1)
    await allocate(uow)
    uow.take_events()
    rejected = await handlers.reject_application(
        uow, RejectApplication(app_id("C1"), "documents incomplete")
    )
    assert rejected.state == ApplicationState.REJECTED
    assert (rejected.history[-1].by, rejected.history[-1].reason) == (
        "officer:officer-1",
        "documents incomplete",
    )
    assert uow.store.applications[app_id("C1")] == rejected
    assert uow.take_events() == [
        BoothApplicationRejected(app_id("C1"), FAIR, BoothType.STANDARD, "documents incomplete")
    ]
    with pytest.raises(FailedPrecondition, match="allocated; it cannot become rejected"):
        await handlers.reject_application(uow, RejectApplication(app_id("C2"), "late"))


async def test_reads_give_waitlist_positions_in_priority_order(uow: Uow) -> None:
    turnovers = {"C1": 5_000_000, "C2": 15_000_000, "C3": 5_000_000, "C4": 10**7, "C5": 0}
    await open_fair_with(uow, turnovers, quota=1)
    await allocate(uow)
    store = uow.store
    view = await handlers.get_application(store, app_id("C4"), OFFICER)
    assert (view.application.state, view.waitlist_position) == (ApplicationState.WAITLISTED, 1)
    assert (await handlers.get_application(store, app_id("C2"), OFFICER)).waitlist_position == 0
    with pytest.raises(NotFound, match="no application 'nope'"):
        await handlers.get_application(store, "nope", OFFICER)

    query = ApplicationQuery(fair_id=FAIR, state=ApplicationState.WAITLISTED)
    keys = len(PRIORITY)
    first, token = await handlers.list_applications(store, query, page(3, keys=keys), OFFICER)
    rest, last = await handlers.list_applications(store, query, page(3, token, keys=keys), OFFICER)
    assert last == ""
    assert [(v.application.credit_code, v.waitlist_position) for v in [*first, *rest]] == [
        ("C4", 1),
        ("C1", 2),
        ("C3", 3),
        ("C5", 4),
    ]
    everyone, _ = await handlers.list_applications(store, ApplicationQuery(), page(keys=3), OFFICER)
    assert [v.application.credit_code for v in everyone] == ["C2", "C4", "C1", "C3", "C5"]
    mine, _ = await handlers.list_applications(
        store, ApplicationQuery(credit_code="C3"), page(), OFFICER
    )
    assert [v.application.application_id for v in mine] == [app_id("C3")]


async def test_exhibitor_status_names_the_booth_held_at_the_fair(uow: Uow) -> None:
    await open_fair_with(uow, {"C1": 5_000_000, "C2": 15_000_000}, quota=1)
    await allocate(uow)
    holder = await handlers.get_exhibitor_status(uow.store, "C2", FAIR)
    assert holder is not None and holder.booth_number == "S-0001"
    assert await handlers.get_exhibitor_status(uow.store, "C1", FAIR) is None
    with pytest.raises(NotFound, match="no fair 'nope'"):
        await handlers.get_exhibitor_status(uow.store, "C2", "nope")


# Who may touch what ----------------------------------------------------------------------


async def test_register_exporter_only_for_the_callers_own_credit_code(uow: Uow) -> None:
    with pytest.raises(PermissionDenied, match="a token for C1 registers only C1, not C2"):
        await handlers.register_exporter(
            acting(uow, exporter("C1")), RegisterExporter("C2", profile("not mine"))
        )
    partyless = Principal(subject="someone", role=Role.EXPORTER)
    with pytest.raises(PermissionDenied):
        await handlers.register_exporter(
            acting(uow, partyless), RegisterExporter("C2", profile("nobody's"))
        )
    assert (uow.store.exporters, uow.events) == ({}, [])


async def test_update_exporter_of_another_firm_reads_as_missing(uow: Uow) -> None:
    await register(uow, "C1")
    await register(uow, "C2")
    uow.take_events()
    with pytest.raises(NotFound) as missing:
        await handlers.update_exporter(
            acting(uow, exporter("C9")), UpdateExporter("C9", profile("x"))
        )
    for someone_else in (exporter("C2"), OFFICER):
        with pytest.raises(NotFound) as other:
            await handlers.update_exporter(
                acting(uow, someone_else), UpdateExporter("C1", profile("taken over"))
            )
        assert str(other.value) == str(missing.value).replace("C9", "C1")
    assert uow.store.exporters["C1"].profile.name == "firm C1"
    assert uow.events == []


async def test_get_exporter_for_itself_officers_and_services_only(uow: Uow) -> None:
    await register(uow, "C1")
    store = uow.store
    for viewer in (exporter("C1"), OFFICER, EXPO):
        assert (await handlers.get_exporter(store, "C1", viewer)).credit_code == "C1"
    with pytest.raises(NotFound) as missing:
        await handlers.get_exporter(store, "C9", OFFICER)
    for viewer in (exporter("C2"), Principal("b", Role.BUYER, "B1"), Principal("e", Role.EXPORTER)):
        with pytest.raises(NotFound) as hidden:
            await handlers.get_exporter(store, "C1", viewer)
        assert str(hidden.value) == str(missing.value).replace("C9", "C1")


async def test_submit_application_applies_for_the_calling_exporter(uow: Uow) -> None:
    await open_fair_with(uow, {"C1": 0, "C2": 0})
    assert {a.credit_code for a in uow.store.applications.values()} == {"C1", "C2"}
    submitted = uow.store.applications[app_id("C1")]
    assert [t.by for t in submitted.history] == ["exporter:user-c1", "service:chuhai"]
    partyless = Principal(subject="someone", role=Role.EXPORTER)
    with pytest.raises(PermissionDenied):
        await handlers.submit_application(
            acting(uow, partyless), SubmitApplication(FAIR, BoothType.STANDARD, HAIR)
        )
    assert len(uow.store.applications) == 2


async def test_withdraw_someone_elses_application_reads_as_missing(uow: Uow) -> None:
    await open_fair_with(uow, {"C1": 5_000_000, "C2": 15_000_000}, quota=1)
    await allocate(uow)
    uow.take_events()
    with pytest.raises(NotFound) as missing:
        await handlers.withdraw_application(
            acting(uow, exporter("C2")), WithdrawApplication("nope", "")
        )
    # Another firm, and an officer too: withdrawing is the applicant's own move.
    for someone_else in (exporter("C1"), OFFICER):
        with pytest.raises(NotFound) as other:
            await handlers.withdraw_application(
                acting(uow, someone_else), WithdrawApplication(app_id("C2"), "")
            )
        assert str(other.value) == str(missing.value).replace("nope", app_id("C2"))
    assert uow.store.applications[app_id("C2")].state == ApplicationState.ALLOCATED
    assert uow.events == []


async def test_get_application_for_the_applicant_and_officers_only(uow: Uow) -> None:
    await open_fair_with(uow, {"C1": 0, "C2": 0})
    store = uow.store
    for viewer in (exporter("C1"), OFFICER):
        view = await handlers.get_application(store, app_id("C1"), viewer)
        assert view.application.credit_code == "C1"
    with pytest.raises(NotFound) as missing:
        await handlers.get_application(store, "nope", OFFICER)
    for viewer in (exporter("C2"), EXPO, Principal("e", Role.EXPORTER)):
        with pytest.raises(NotFound) as hidden:
            await handlers.get_application(store, app_id("C1"), viewer)
        assert str(hidden.value) == str(missing.value).replace("nope", app_id("C1"))


async def test_list_applications_for_an_exporter_shows_only_its_own(uow: Uow) -> None:
    await open_fair_with(uow, {"C1": 0, "C2": 0, "C3": 0})
    store = uow.store

    async def codes(viewer: Principal, query: ApplicationQuery) -> list[str]:
        found, _ = await handlers.list_applications(store, query, page(keys=3), viewer)
        return [v.application.credit_code for v in found]

    assert await codes(exporter("C1"), ApplicationQuery()) == ["C1"]
    # A filter naming another firm still only ever shows the caller's own.
    assert await codes(exporter("C1"), ApplicationQuery(credit_code="C2")) == ["C1"]
    assert await codes(exporter("C9"), ApplicationQuery()) == []
    assert await codes(Principal("e", Role.EXPORTER), ApplicationQuery()) == []
    assert await codes(EXPO, ApplicationQuery()) == []
    assert await codes(OFFICER, ApplicationQuery(credit_code="C2")) == ["C2"]
    assert sorted(await codes(OFFICER, ApplicationQuery())) == ["C1", "C2", "C3"]


async def test_application_histories_name_the_principal_or_the_platform(uow: Uow) -> None:
    await open_fair_with(uow, {"C1": 5_000_000, "C2": 15_000_000, "C3": 0}, quota=1)
    clerk = Principal(subject="clerk-7", role=Role.OFFICER)
    await handlers.run_allocation(acting(uow, clerk), RunAllocation(FAIR, BoothType.STANDARD))
    await handlers.reject_application(acting(uow, clerk), RejectApplication(app_id("C3"), "late"))
    await withdraw(uow, "C2", "capacity")
    applications = uow.store.applications
    assert [(t.state, t.by) for t in applications[app_id("C2")].history] == [
        (ApplicationState.SUBMITTED, "exporter:user-c2"),
        (ApplicationState.SCORED, "service:chuhai"),
        (ApplicationState.ALLOCATED, "officer:clerk-7"),
        (ApplicationState.WITHDRAWN, "exporter:user-c2"),
    ]
    assert [(t.state, t.by) for t in applications[app_id("C1")].history[2:]] == [
        (ApplicationState.WAITLISTED, "officer:clerk-7"),
        (ApplicationState.ALLOCATED, "service:chuhai"),
    ]
    assert applications[app_id("C3")].history[-1].by == "officer:clerk-7"
