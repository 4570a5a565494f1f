"""The booth context's figures: firms served, fairs' quotas and applications by state."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Self

from bureau.projections.base import Handler, Projection, Route, no_figure, route
from chuhai.booth.v1 import events_pb2 as booth_events
from chuhai.booth.v1.resources_pb2 import ApplicationState, BoothType

_BOOTH_TYPE_NAMES: dict[int, str] = {
    BoothType.BOOTH_TYPE_STANDARD: "standard",
    BoothType.BOOTH_TYPE_BRAND: "brand",
}

# The booth service's application lifecycle is acyclic (submitted -> scored ->
# waitlisted -> allocated -> withdrawn, with rejection and withdrawal as exits along the
# way), so how deep a state lies orders it. An event that would move an application to
# a state no deeper than its current one is a repeated or late copy and is ignored.
_LIFECYCLE_DEPTH: dict[int, int] = {
    ApplicationState.APPLICATION_STATE_SUBMITTED: 1,
    ApplicationState.APPLICATION_STATE_SCORED: 2,
    ApplicationState.APPLICATION_STATE_WAITLISTED: 3,
    ApplicationState.APPLICATION_STATE_ALLOCATED: 4,
    ApplicationState.APPLICATION_STATE_REJECTED: 5,
    ApplicationState.APPLICATION_STATE_WITHDRAWN: 5,
}
_SUBMITTED = ApplicationState.APPLICATION_STATE_SUBMITTED
_SCORED = ApplicationState.APPLICATION_STATE_SCORED
_ALLOCATED = ApplicationState.APPLICATION_STATE_ALLOCATED
_WAITLISTED = ApplicationState.APPLICATION_STATE_WAITLISTED
_REJECTED = ApplicationState.APPLICATION_STATE_REJECTED
_WITHDRAWN = ApplicationState.APPLICATION_STATE_WITHDRAWN


@dataclass(frozen=True)
class BoothFigures:
    """One fair's booths of one type; applied counts every application ever submitted,
    the others count applications by their current state."""

    fair_id: str
    booth_type: str
    quota: int
    applied: int
    allocated: int
    waitlisted: int
    withdrawn: int


@dataclass(slots=True)
class _Application:
    fair_id: str
    booth_type: int
    state: int


class BoothProjection(Projection):
    """Firms that registered or applied, and every application's current state."""

    name = "booth"

    def __init__(self) -> None:
        self._firms: set[str] = set()
        self._quotas: dict[tuple[str, int], int] = {}
        self._applications: dict[str, _Application] = {}
        # Derived from the records above (rebuilt on restore), so reads need no scan.
        self._applied_by_booth: Counter[tuple[str, int]] = Counter()
        self._states_by_booth: Counter[tuple[str, int, int]] = Counter()
        self._booths_allocated = 0

    def routes(self) -> list[Route]:
        return [
            route(booth_events.ExporterRegistered, self._on_exporter_registered, versions=[2]),
            route(booth_events.ExporterUpdated, no_figure, versions=[2]),
            route(booth_events.FairCreated, self._on_fair_created, versions=[2]),
            route(booth_events.FairOpened, no_figure, versions=[1]),
            route(booth_events.FairClosed, no_figure, versions=[1]),
            route(
                booth_events.BoothApplicationSubmitted,
                self._on_application_submitted,
                versions=[1],
            ),
            route(booth_events.BoothApplicationScored, self._moving_to(_SCORED), versions=[1]),
            route(booth_events.BoothAllocated, self._moving_to(_ALLOCATED), versions=[1]),
            route(
                booth_events.BoothApplicationWaitlisted, self._moving_to(_WAITLISTED), versions=[1]
            ),
            route(booth_events.BoothApplicationRejected, self._moving_to(_REJECTED), versions=[1]),
            route(
                booth_events.BoothApplicationWithdrawn, self._moving_to(_WITHDRAWN), versions=[1]
            ),
            # The promoted application holds the booth, whether or not BoothAllocated came too.
            route(booth_events.WaitlistPromoted, self._moving_to(_ALLOCATED), versions=[1]),
            # A run's counts repeat the application events above, which the figures count.
            route(booth_events.AllocationCompleted, no_figure, versions=[1]),
        ]

    # Applying events ----------------------------------------------------------------------

    def _on_exporter_registered(self, event: booth_events.ExporterRegistered, _: int) -> None:
        self._firms.add(event.credit_code)

    def _on_fair_created(self, event: booth_events.FairCreated, _: int) -> None:
        for quota in event.quotas:
            self._quotas[(event.fair_id, quota.booth_type)] = quota.quota

    def _on_application_submitted(
        self, event: booth_events.BoothApplicationSubmitted, _: int
    ) -> None:
        self._firms.add(event.credit_code)
        self._move_application(event.application_id, event.fair_id, event.booth_type, _SUBMITTED)

    def _moving_to(self, state: int) -> Handler:
        """A handler for the application events whose only news for the figures is a state;
        each of them names its application's fair and booth type."""

        def handle(event: Any, _: int) -> None:
            self._move_application(event.application_id, event.fair_id, event.booth_type, state)

        return handle

    def _move_application(
        self, application_id: str, fair_id: str, booth_type: int, state: int
    ) -> None:
        record = self._applications.get(application_id)
        if record is None:
            record = _Application(fair_id, booth_type, state)
            self._applications[application_id] = record
            self._count_application(record, 1)
            return
        if _LIFECYCLE_DEPTH[state] <= _LIFECYCLE_DEPTH[record.state]:
            return
        self._count_state(record, -1)
        record.state = state
        self._count_state(record, 1)

    def _count_application(self, record: _Application, change: int) -> None:
        self._applied_by_booth[(record.fair_id, record.booth_type)] += change
        self._count_state(record, change)

    def _count_state(self, record: _Application, change: int) -> None:
        self._states_by_booth[(record.fair_id, record.booth_type, record.state)] += change
        if record.state == _ALLOCATED:
            self._booths_allocated += change

    # Figures ------------------------------------------------------------------------------

    def firms_served(self) -> int:
        """Distinct firms that registered or applied for a booth."""
        return len(self._firms)

    def booths_allocated(self) -> int:
        """Applications holding a booth now, over every fair."""
        return self._booths_allocated

    def booths(self, fair_id: str | None = None) -> list[BoothFigures]:
        """Every (fair, booth type) with a quota or an application, by fair then type."""
        booths = sorted(
            {
                booth
                for booth in (*self._quotas, *self._applied_by_booth)
                if fair_id is None or booth[0] == fair_id
            }
        )
        return [
            BoothFigures(
                fair_id=booth_fair_id,
                booth_type=_BOOTH_TYPE_NAMES.get(booth_type, "unspecified"),
                quota=self._quotas.get((booth_fair_id, booth_type), 0),
                applied=self._applied_by_booth[(booth_fair_id, booth_type)],
                allocated=self._states_by_booth[(booth_fair_id, booth_type, _ALLOCATED)],
                waitlisted=self._states_by_booth[(booth_fair_id, booth_type, _WAITLISTED)],
                withdrawn=self._states_by_booth[(booth_fair_id, booth_type, _WITHDRAWN)],
            )
            for booth_fair_id, booth_type in booths
        ]

    # Persistence --------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            # Sorted, as expo's sets are: the snapshot reads back as itself.
            "firms": sorted(self._firms),
            "quotas": [
                {"fair_id": fair_id, "booth_type": booth_type, "quota": quota}
                for (fair_id, booth_type), quota in self._quotas.items()
            ],
            "applications": [
                {
                    "application_id": application_id,
                    "fair_id": record.fair_id,
                    "booth_type": record.booth_type,
                    "state": record.state,
                }
                for application_id, record in self._applications.items()
            ],
        }

    @classmethod
    def restore(cls, snapshot: dict[str, Any]) -> Self:
        restored = cls()
        restored._firms = set(snapshot["firms"])
        restored._quotas = {
            (quota["fair_id"], quota["booth_type"]): quota["quota"] for quota in snapshot["quotas"]
        }
        for application in snapshot["applications"]:
            record = _Application(
                application["fair_id"], application["booth_type"], application["state"]
            )
            restored._applications[application["application_id"]] = record
            restored._count_application(record, 1)
        return restored
