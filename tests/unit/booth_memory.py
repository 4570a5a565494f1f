"""An in-memory booth.storage.BoothStore, for the booth use cases' unit tests.

Same methods and answers as the MongoDB store, without transactions (a unit test runs
one use case at a time)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from booth.domain import (
    Application,
    ApplicationQuery,
    ApplicationState,
    BoothType,
    Exporter,
    Fair,
    QuotaUse,
    Ranked,
    priority_key,
    ranked,
)
from runtime.adapters.pagination import PageRequest, keyset_slice


class MemoryBoothStore:
    def __init__(self) -> None:
        self.exporters: dict[str, Exporter] = {}
        self.fairs: dict[str, Fair] = {}
        self.applications: dict[str, Application] = {}
        self.quota_counters: dict[tuple[str, BoothType], QuotaUse] = {}
        # How often each quota counter was written (the MongoDB store bumps a version).
        self.counter_writes: dict[tuple[str, BoothType], int] = {}

    # Exporters -------------------------------------------------------------------------

    async def exporter(self, credit_code: str) -> Exporter | None:
        return self.exporters.get(credit_code)

    async def add_exporter(self, exporter: Exporter) -> bool:
        return self.exporters.setdefault(exporter.credit_code, exporter) is exporter

    async def save_exporter(self, exporter: Exporter) -> None:
        self.exporters[exporter.credit_code] = exporter

    async def list_exporters(self, district: str, page: PageRequest) -> tuple[list[Exporter], str]:
        found = sorted(
            (e for e in self.exporters.values() if not district or e.profile.district == district),
            key=lambda e: e.credit_code,
        )
        return keyset_slice(found, lambda e: (e.credit_code,), page)

    # Fairs -----------------------------------------------------------------------------

    async def fair(self, fair_id: str) -> Fair | None:
        return self.fairs.get(fair_id)

    async def add_fair(self, fair: Fair) -> bool:
        if self.fairs.setdefault(fair.fair_id, fair) is not fair:
            return False
        for quota in fair.quotas:
            key = (fair.fair_id, quota.booth_type)
            self.quota_counters[key] = QuotaUse(fair.fair_id, quota.booth_type, quota.quota)
            self.counter_writes[key] = 0
        return True

    async def save_fair(self, fair: Fair) -> None:
        self.fairs[fair.fair_id] = fair

    async def list_fairs(self, page: PageRequest) -> tuple[list[Fair], str]:
        found = sorted(self.fairs.values(), key=lambda f: f.fair_id)
        return keyset_slice(found, lambda f: (f.fair_id,), page)

    async def quota_use(self, fair_id: str, booth_type: BoothType) -> QuotaUse:
        return self.quota_counters[fair_id, booth_type]

    async def quota_uses(self, fair_id: str, booth_types: Collection[BoothType]) -> list[QuotaUse]:
        return [self.quota_counters[fair_id, t] for t in booth_types]

    async def save_quota_use(self, usage: QuotaUse) -> None:
        key = (usage.fair_id, usage.booth_type)
        self.quota_counters[key] = usage
        self.counter_writes[key] += 1

    # Applications ----------------------------------------------------------------------

    async def application(self, application_id: str) -> Application | None:
        return self.applications.get(application_id)

    async def add_application(self, application: Application) -> bool:
        return self.applications.setdefault(application.application_id, application) is (
            application
        )

    async def save_application(self, application: Application) -> None:
        self.applications[application.application_id] = application

    async def save_applications(self, applications: Sequence[Application]) -> None:
        for application in applications:
            await self.save_application(application)

    async def applications_in(
        self, fair_id: str, booth_type: BoothType, states: Collection[ApplicationState]
    ) -> list[Application]:
        return [
            a
            for a in self.applications.values()
            if (a.fair_id, a.booth_type) == (fair_id, booth_type) and a.state in states
        ]

    async def waitlist(self, fair_id: str, booth_type: BoothType) -> list[Ranked]:
        return [
            Ranked(a.application_id, a.score, a.submitted_at)
            for a in await self.applications_in(fair_id, booth_type, [ApplicationState.WAITLISTED])
        ]

    async def applications_of(self, credit_code: str, fair_id: str) -> list[Application]:
        return [
            a
            for a in self.applications.values()
            if (a.credit_code, a.fair_id) == (credit_code, fair_id)
        ]

    async def list_applications(
        self, query: ApplicationQuery, page: PageRequest
    ) -> tuple[list[Application], str]:
        found = ranked(
            a
            for a in self.applications.values()
            if (not query.fair_id or a.fair_id == query.fair_id)
            and (not query.credit_code or a.credit_code == query.credit_code)
            and (query.state is None or a.state == query.state)
            and (query.booth_type is None or a.booth_type == query.booth_type)
        )
        return keyset_slice(found, priority_key, page)
