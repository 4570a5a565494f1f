"""The booth service's use cases.

A mutating use case runs on a UnitOfWork: it loads through ``uow.store``, lets the
domain decide, saves, and records the domain events, all in one transaction. Read use
cases take the store alone. No MongoDB or protobuf here: tests run these on an
in-memory store (tests/unit/booth_memory.py).

Who may call which use case is the access table's business (grpc_api.ACCESS); which
objects a caller may touch is decided here, from ``uow.actor`` or the ``viewer``: an
exporter its own firm and applications, an officer any. Someone else's object is
reported exactly like a missing one, so a caller never learns that it exists."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from booth.domain import (
    Application,
    ApplicationQuery,
    ApplicationState,
    CreateFair,
    Exporter,
    Fair,
    RegisterExporter,
    RejectApplication,
    RunAllocation,
    SubmitApplication,
    UpdateExporter,
    WithdrawApplication,
    allocate_booths,
    hand_over_booth,
    waitlist_positions,
)
from runtime.kernel.errors import AlreadyExists, NotFound, PermissionDenied
from runtime.kernel.identity import Principal, Role

if TYPE_CHECKING:
    from booth.storage import BoothStore
    from runtime.adapters.pagination import PageRequest
    from runtime.adapters.unit_of_work import UnitOfWork


async def _fair(store: BoothStore, fair_id: str) -> Fair:
    fair = await store.fair(fair_id)
    if fair is None:
        raise NotFound(f"no fair {fair_id!r}")
    return fair


# Exporters -----------------------------------------------------------------------------


def _is_exporter(principal: Principal, credit_code: str) -> bool:
    return principal.acts_for(Role.EXPORTER, credit_code)


def _no_exporter(credit_code: str) -> NotFound:
    return NotFound(f"no exporter with credit code {credit_code}")


async def register_exporter(uow: UnitOfWork[BoothStore], command: RegisterExporter) -> Exporter:
    """An exporter registers itself: its token's credit code, and no other."""
    if not _is_exporter(uow.actor, command.credit_code):
        raise PermissionDenied(
            f"a token for {uow.actor.party or 'no firm'} registers only "
            f"{uow.actor.party or 'no firm'}, not {command.credit_code}"
        )
    exporter, registered = Exporter.register(command, uow.now)
    if not await uow.store.add_exporter(exporter):
        raise AlreadyExists(f"exporter {command.credit_code} is already registered")
    uow.record(registered)
    return exporter


async def update_exporter(uow: UnitOfWork[BoothStore], command: UpdateExporter) -> Exporter:
    """An exporter updates its own profile; another firm's reads as missing."""
    if not _is_exporter(uow.actor, command.credit_code):
        raise _no_exporter(command.credit_code)
    exporter = await _exporter(uow.store, command.credit_code)
    updated, event = exporter.update(command.profile, uow.now)
    await uow.store.save_exporter(updated)
    uow.record(event)
    return updated


async def _exporter(store: BoothStore, credit_code: str) -> Exporter:
    exporter = await store.exporter(credit_code)
    if exporter is None:
        raise _no_exporter(credit_code)
    return exporter


async def get_exporter(store: BoothStore, credit_code: str, viewer: Principal) -> Exporter:
    """An exporter's record, for itself, an officer, or a service (the expo checks who
    joins an edition); another exporter's reads as missing."""
    if not (viewer.role in (Role.OFFICER, Role.SERVICE) or _is_exporter(viewer, credit_code)):
        raise _no_exporter(credit_code)
    return await _exporter(store, credit_code)


async def list_exporters(
    store: BoothStore, district: str, page: PageRequest
) -> tuple[list[Exporter], str]:
    """Exporters by credit code, of one district or all; and the next page's token."""
    return await store.list_exporters(district, page)


# Fairs ---------------------------------------------------------------------------------


async def create_fair(uow: UnitOfWork[BoothStore], command: CreateFair) -> Fair:
    fair, created = Fair.create(command, uow.now)
    if not await uow.store.add_fair(fair):
        raise AlreadyExists(f"fair {fair.fair_id} already exists")
    uow.record(created)
    return fair


async def open_fair(uow: UnitOfWork[BoothStore], fair_id: str) -> Fair:
    fair, opened = (await _fair(uow.store, fair_id)).open()
    await uow.store.save_fair(fair)
    uow.record(opened)
    return fair


async def close_fair(uow: UnitOfWork[BoothStore], fair_id: str) -> Fair:
    fair, closed = (await _fair(uow.store, fair_id)).close()
    await uow.store.save_fair(fair)
    uow.record(closed)
    return fair


@dataclass(frozen=True)
class FairView:
    fair: Fair
    # Booths allocated so far, per booth type, in the order of fair.quotas.
    allocated: tuple[int, ...]


async def get_fair(store: BoothStore, fair_id: str) -> FairView:
    fair = await _fair(store, fair_id)
    uses = await store.quota_uses(fair.fair_id, [q.booth_type for q in fair.quotas])
    return FairView(fair, tuple(u.allocated for u in uses))


async def list_fairs(store: BoothStore, page: PageRequest) -> tuple[list[Fair], str]:
    return await store.list_fairs(page)


# Applications --------------------------------------------------------------------------


async def submit_application(
    uow: UnitOfWork[BoothStore], command: SubmitApplication
) -> Application:
    """The calling exporter applies; its token's credit code is the applicant."""
    store = uow.store
    actor = uow.actor
    if actor.role is not Role.EXPORTER or not actor.party:
        raise PermissionDenied("only an exporter's token, naming its credit code, applies")
    fair = await _fair(store, command.fair_id)
    # The fair's answer comes before the exporter is looked up.
    admission = fair.admit(command.booth_type, command.hs_code, uow.now)
    exporter = await _exporter(store, actor.party)
    application, events = Application.submit(admission, exporter, actor.audit_name)
    if not await store.add_application(application):
        raise AlreadyExists(
            f"{actor.party} already applied for a "
            f"{command.booth_type.name.lower()} booth at {command.fair_id}"
        )
    uow.record(*events)
    return application


def _may_see(viewer: Principal, application: Application) -> bool:
    return viewer.is_officer or _is_exporter(viewer, application.credit_code)


async def find_application(
    store: BoothStore, application_id: str, viewer: Principal
) -> Application:
    """An application an officer, or the exporter that applied, may see; anyone else's
    reads as missing."""
    application = await store.application(application_id)
    if application is None or not _may_see(viewer, application):
        raise NotFound(f"no application {application_id!r}")
    return application


@dataclass(frozen=True)
class Withdrawal:
    application: Application
    # The waitlisted application that received the freed booth, if any.
    promoted: Application | None


async def withdraw_application(
    uow: UnitOfWork[BoothStore], command: WithdrawApplication
) -> Withdrawal:
    """The exporter that applied withdraws; a booth it held goes to the waitlist's first."""
    store = uow.store
    application = await find_application(store, command.application_id, uow.actor)
    if not _is_exporter(uow.actor, application.credit_code):
        # An officer sees it but may not give it up for the firm: rejection is its move.
        raise NotFound(f"no application {command.application_id!r}")
    fair = await _fair(store, application.fair_id)
    withdrawn, event = application.withdraw(command.reason, fair, uow.now, uow.actor.audit_name)
    await store.save_application(withdrawn)
    uow.record(event)
    if not application.holds_booth:
        return Withdrawal(withdrawn, None)
    usage = await store.quota_use(application.fair_id, application.booth_type)
    waitlist = await store.applications_in(
        application.fair_id, application.booth_type, [ApplicationState.WAITLISTED]
    )
    handover = hand_over_booth(withdrawn, usage, waitlist, uow.now)
    await store.save_quota_use(handover.usage)
    if handover.promoted is not None:
        await store.save_application(handover.promoted)
    uow.record(*handover.events)
    return Withdrawal(withdrawn, handover.promoted)


async def reject_application(
    uow: UnitOfWork[BoothStore], command: RejectApplication
) -> Application:
    application = await find_application(uow.store, command.application_id, uow.actor)
    rejected, event = application.reject(command.reason, uow.now, uow.actor.audit_name)
    await uow.store.save_application(rejected)
    uow.record(event)
    return rejected


@dataclass(frozen=True)
class AllocationResult:
    quota: int
    allocated_total: int
    newly_allocated: int
    newly_waitlisted: int


async def run_allocation(uow: UnitOfWork[BoothStore], command: RunAllocation) -> AllocationResult:
    store = uow.store
    fair = await _fair(store, command.fair_id)
    fair.require_allocation(command.booth_type)
    usage = await store.quota_use(fair.fair_id, command.booth_type)
    candidates = await store.applications_in(
        fair.fair_id, command.booth_type, [ApplicationState.SCORED, ApplicationState.WAITLISTED]
    )
    allocation = allocate_booths(usage, candidates, uow.now, uow.actor.audit_name)
    await store.save_applications(allocation.changed)
    await store.save_quota_use(allocation.usage)
    uow.record(*allocation.events)
    return AllocationResult(
        quota=allocation.usage.quota,
        allocated_total=allocation.usage.allocated,
        newly_allocated=allocation.newly_allocated,
        newly_waitlisted=allocation.newly_waitlisted,
    )


@dataclass(frozen=True)
class ApplicationView:
    application: Application
    # 1-based place on the waitlist; 0 when not waitlisted.
    waitlist_position: int = 0


async def get_application(
    store: BoothStore, application_id: str, viewer: Principal
) -> ApplicationView:
    application = await find_application(store, application_id, viewer)
    [view] = await _with_positions(store, [application])
    return view


async def list_applications(
    store: BoothStore, query: ApplicationQuery, page: PageRequest, viewer: Principal
) -> tuple[list[ApplicationView], str]:
    """Applications in priority order, each with its waitlist position: any for an
    officer; an exporter's own only, whatever credit code its filter names."""
    if not viewer.is_officer:
        if viewer.role is not Role.EXPORTER or not viewer.party:
            return [], ""
        query = replace(query, credit_code=viewer.party)
    applications, token = await store.list_applications(query, page)
    return await _with_positions(store, applications), token


async def _with_positions(
    store: BoothStore, applications: list[Application]
) -> list[ApplicationView]:
    """Each waitlist the applications are on is read once, and ranked by the domain."""
    positions: dict[str, int] = {}
    waitlists = {
        (a.fair_id, a.booth_type) for a in applications if a.state == ApplicationState.WAITLISTED
    }
    for fair_id, booth_type in sorted(waitlists):
        positions.update(waitlist_positions(await store.waitlist(fair_id, booth_type)))
    return [ApplicationView(a, positions.get(a.application_id, 0)) for a in applications]


async def get_exhibitor_status(
    store: BoothStore, credit_code: str, fair_id: str
) -> Application | None:
    """The application by which the exporter holds a booth at the fair, if it does."""
    await _fair(store, fair_id)
    applications = await store.applications_of(credit_code, fair_id)
    return next((a for a in applications if a.holds_booth), None)
