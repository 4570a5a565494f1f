"""The booth service's use cases.

A mutating use case runs on a UnitOfWork: it loads through ``uow.store``, lets the
domain decide, saves, and records the domain events, all in one transaction. Read use
cases take the store alone. No MongoDB or protobuf here: tests run these on an
in-memory store (tests/unit/booth_memory.py)."""

from __future__ import annotations

from dataclasses import dataclass
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
from runtime.kernel.errors import AlreadyExists, NotFound

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


async def register_exporter(uow: UnitOfWork[BoothStore], command: RegisterExporter) -> Exporter:
    exporter, registered = Exporter.register(command, uow.now)
    if not await uow.store.add_exporter(exporter):
        raise AlreadyExists(f"exporter {command.credit_code} is already registered")
    uow.record(registered)
    return exporter


async def update_exporter(uow: UnitOfWork[BoothStore], command: UpdateExporter) -> Exporter:
    exporter = await get_exporter(uow.store, command.credit_code)
    updated, event = exporter.update(command.profile, uow.now)
    await uow.store.save_exporter(updated)
    uow.record(event)
    return updated


async def get_exporter(store: BoothStore, credit_code: str) -> Exporter:
    exporter = await store.exporter(credit_code)
    if exporter is None:
        raise NotFound(f"no exporter with credit code {credit_code}")
    return exporter


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
    store = uow.store
    fair = await _fair(store, command.fair_id)
    # The fair's answer comes before the exporter is looked up.
    admission = fair.admit(command.booth_type, command.hs_code, uow.now)
    exporter = await get_exporter(store, command.credit_code)
    application, events = Application.submit(admission, exporter)
    if not await store.add_application(application):
        raise AlreadyExists(
            f"{command.credit_code} already applied for a "
            f"{command.booth_type.name.lower()} booth at {command.fair_id}"
        )
    uow.record(*events)
    return application


async def find_application(store: BoothStore, application_id: str) -> Application:
    application = await store.application(application_id)
    if application is None:
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
    store = uow.store
    application = await find_application(store, command.application_id)
    fair = await _fair(store, application.fair_id)
    withdrawn, event = application.withdraw(command.reason, fair, uow.now)
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
    application = await find_application(uow.store, command.application_id)
    rejected, event = application.reject(command.reason, uow.now)
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
    allocation = allocate_booths(usage, candidates, uow.now)
    for application in allocation.changed:
        await store.save_application(application)
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


async def get_application(store: BoothStore, application_id: str) -> ApplicationView:
    [view] = await _with_positions(store, [await find_application(store, application_id)])
    return view


async def list_applications(
    store: BoothStore, query: ApplicationQuery, page: PageRequest
) -> tuple[list[ApplicationView], str]:
    """Applications in priority order, each with its waitlist position."""
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
