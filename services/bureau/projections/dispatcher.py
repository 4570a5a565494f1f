"""Routes every event to the one projection that reads its payload type, exactly once.

Exactly once, twice over. The dispatcher refuses an event id it has applied before, and
on top of that every projection's handlers are idempotent on the state of their own
aggregate (see Projection). So a copy of an event under a new id, or an event applied
again after a restore whose id set lagged the snapshot, changes no figure either.

An older version of a payload is upcast to the current one before it is routed (see
bureau.projections.upcast), so projections only ever see the versions they declare.
An event the bureau still cannot read — a payload type no projection declares, or a
schema version neither its projection nor an upcaster handles — is skipped: logged,
counted, and neither applied nor remembered as applied, so a bureau that learns to read
it applies it when it is delivered again (a rebuild from the outboxes, a replay).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from bureau.projections.base import Projection, Route, timestamp_us
from bureau.projections.upcast import upcast
from chuhai.events.v1.envelope_pb2 import EventEnvelope

log = logging.getLogger(__name__)

# The composed snapshot's layout: 2 has one section per projection; 3 adds the exhibitors
# per edition and each intent's state to the expo section, and each reservation's country
# to the warehouse section. A format-2 snapshot is refused rather than restored with those
# empty: the events they come from were applied already and would never count again, so
# bureau.store rebuilds the figures from its journal instead (once, at the first start).
SNAPSHOT_FORMAT = 3
# Envelopes written before payloads were versioned carry 0: their payloads are version 1.
_UNVERSIONED = 1
# The range of google.protobuf.Timestamp: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
_FIRST_SECOND = -62_135_596_800
_LAST_SECOND = 253_402_300_799

P = TypeVar("P", bound=Projection)


class Dispatcher:
    """Applies envelopes to the projections by payload type, each event id once, and
    keeps which events it applied, which it skipped and when the newest one occurred."""

    def __init__(
        self,
        projections: Sequence[Projection],
        *,
        applied_event_ids: Iterable[str] = (),
        newest_event_us: int | None = None,
    ) -> None:
        self._projections = {projection.name: projection for projection in projections}
        if len(self._projections) != len(projections):
            raise ValueError("two projections share a name, and so a snapshot section")
        self._routes: dict[str, Route] = {}
        for projection in projections:
            for route in projection.routes():
                if route.type_name in self._routes:
                    raise ValueError(f"{route.type_name} is routed to two projections")
                self._routes[route.type_name] = route
        self._applied_event_ids = set(applied_event_ids)
        self._newest_event_us = newest_event_us
        self._redelivered = 0
        self._skipped_event_ids: set[str] = set()
        # (payload type, schema version) -> distinct events skipped.
        self._skipped: Counter[tuple[str, int]] = Counter()

    def apply(self, envelope: EventEnvelope) -> bool:
        """Apply one event once: True when applied, False (changing no figure) when its
        id was applied before or it is skipped as unreadable."""
        event_id = envelope.event_id
        if not event_id:
            raise ValueError("an envelope without an event_id cannot be applied exactly once")
        if event_id in self._applied_event_ids:
            self._redelivered += 1
            return False
        occurred_at = envelope.occurred_at
        if not (
            _FIRST_SECOND <= occurred_at.seconds <= _LAST_SECOND
            and 0 <= occurred_at.nanos < 1_000_000_000
        ):
            # Outside what a Timestamp may hold (years 1 to 9999): no figure can place it
            # in time, and as the newest event it would stop the headline being read.
            raise ValueError(
                f"occurred_at {occurred_at.seconds} s {occurred_at.nanos} ns is not a time"
            )
        version = envelope.schema_version or _UNVERSIONED
        payload_field = envelope.WhichOneof("payload")
        if payload_field is None:
            # A payload this build's envelope does not know parses as none at all.
            self._skip(event_id, envelope.type, version, known_type=False)
            return False
        payload = getattr(envelope, payload_field)
        # The payload's own type routes it, not the envelope's oneof field name nor its
        # `type` text.
        type_name = payload.DESCRIPTOR.full_name
        route = self._routes.get(type_name)
        payload, readable_version = upcast(payload, version)
        if route is None or readable_version not in route.versions:
            # Counted under the version it was recorded at, as the producer stamped it.
            self._skip(event_id, type_name, version, known_type=route is not None)
            return False
        occurred_us = timestamp_us(occurred_at)
        route.handle(payload, occurred_us)
        self._applied_event_ids.add(event_id)
        if self._newest_event_us is None or occurred_us > self._newest_event_us:
            self._newest_event_us = occurred_us
        return True

    def _skip(self, event_id: str, type_name: str, version: int, *, known_type: bool) -> None:
        if event_id in self._skipped_event_ids:
            return
        self._skipped_event_ids.add(event_id)
        kind = (type_name, version)
        if not self._skipped[kind]:
            # Once per kind: a producer ahead of the bureau would otherwise flood the log.
            log.warning(
                "skipping events the bureau cannot read; counting them as skipped",
                extra={
                    "payload_type": type_name,
                    "schema_version": version,
                    "reason": "unhandled schema version" if known_type else "unknown payload type",
                    "event_id": event_id,
                },
            )
        self._skipped[kind] += 1

    # Bookkeeping ------------------------------------------------------------------------

    @property
    def applied_count(self) -> int:
        return len(self._applied_event_ids)

    @property
    def redelivered_count(self) -> int:
        """Deliveries this process refused because their event was applied before."""
        return self._redelivered

    @property
    def skipped_count(self) -> int:
        """Distinct events skipped by this process (not persisted: skipped events are not
        journaled, so a restart starts again from zero)."""
        return len(self._skipped_event_ids)

    def skipped_by_kind(self) -> dict[str, int]:
        """Skipped events by "<payload type> v<schema version>", sorted."""
        return {
            f"{type_name} v{version}": count
            for (type_name, version), count in sorted(self._skipped.items())
        }

    @property
    def newest_event_us(self) -> int | None:
        """occurred_at of the newest event applied, in microseconds; None before any."""
        return self._newest_event_us

    def projection(self, kind: type[P]) -> P:
        for projection in self._projections.values():
            if isinstance(projection, kind):
                return projection
        raise KeyError(f"no {kind.__name__} in this dispatcher")

    # Persistence ------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Every projection's section and the newest event's time, without the applied
        event ids (they are persisted apart: the journal)."""
        return {
            "format": SNAPSHOT_FORMAT,
            "newest_event_us": self._newest_event_us,
            "projections": {
                name: projection.snapshot() for name, projection in self._projections.items()
            },
        }

    @classmethod
    def restore(
        cls,
        snapshot: dict[str, Any],
        applied_event_ids: Iterable[str],
        kinds: Sequence[type[Projection]],
    ) -> Dispatcher:
        """The dispatcher `snapshot` was taken of, given the ids of the events it holds.

        The ids must be those whose effects the snapshot holds. Persist both in one
        write, or the snapshot first: since every handler is idempotent on its own
        aggregate, an id missing from the set only lets its event be applied again
        harmlessly, whereas an id persisted without its effect would lose the event.
        """
        if snapshot.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"unknown bureau snapshot format {snapshot.get('format')!r}")
        sections = snapshot["projections"]
        missing = sorted({kind.name for kind in kinds} - sections.keys())
        if missing:
            raise ValueError(f"the bureau snapshot has no section for {', '.join(missing)}")
        return cls(
            [kind.restore(sections[kind.name]) for kind in kinds],
            applied_event_ids=applied_event_ids,
            newest_event_us=snapshot["newest_event_us"],
        )
