"""Fakes for unit tests of use cases: a unit of work without MongoDB or Kafka.

Each service's in-memory repository lives beside its unit tests; this unit of work
holds one, fixes the moment, and keeps the domain events a use case recorded."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from runtime.kernel.clock import to_millisecond
from runtime.kernel.identity import Principal, Role

S = TypeVar("S")

DEFAULT_NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
DEFAULT_ACTOR = Principal(subject="officer-1", role=Role.OFFICER)


class FakeUnitOfWork(Generic[S]):
    """runtime.adapters.unit_of_work.UnitOfWork over an in-memory repository."""

    def __init__(
        self, store: S, now: datetime = DEFAULT_NOW, actor: Principal = DEFAULT_ACTOR
    ) -> None:
        self.store = store
        self.now = now
        # Who the use case runs for; a test acting as someone else sets it.
        self.actor = actor
        self.events: list[Any] = []
        # Client-derived event ids (visits) that earlier requests recorded.
        self.recorded_ids: set[str] = set()

    def record(self, *events: Any) -> None:
        self.events.extend(events)

    async def already_recorded(self, event_ids: Sequence[str]) -> set[str]:
        return self.recorded_ids & set(event_ids)

    def advance(self, delta: timedelta) -> None:
        """Move the moment the next use case runs at."""
        self.now += delta

    def take_events(self) -> list[Any]:
        """The events recorded so far, forgetting them (to look at the next use case's)."""
        taken, self.events = self.events, []
        return taken


class ShiftedClock:
    """runtime.kernel.clock.Clock: the machine's clock moved by ``offset``, which a
    test moves past deadlines while the services run."""

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return to_millisecond(datetime.now(UTC) + self.offset)
