"""What a projection is: the payload types (and schema versions) it reads, the state it
folds them into, and its own section of the bureau's snapshot."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Self

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

# Applies one payload that occurred at the given time (microseconds since the epoch).
Handler = Callable[[Any, int], None]


@dataclass(frozen=True)
class Route:
    """One payload type a projection reads, the versions of its schema it understands
    (the `(chuhai.schema.v1.schema_version)` option of the .proto), and its handler.

    Older versions that bureau.projections.upcast reads reach the handler upcast to one
    of these, so a route names only versions its handler is written for."""

    payload_type: type[Message]
    versions: frozenset[int]
    handle: Handler

    @property
    def type_name(self) -> str:
        """The payload's full protobuf name, e.g. "chuhai.booth.v1.FairCreated"."""
        return self.payload_type.DESCRIPTOR.full_name


def route(payload_type: type[Message], handle: Handler, *, versions: Iterable[int]) -> Route:
    return Route(payload_type, frozenset(versions), handle)


def no_figure(_payload: Any, _occurred_us: int) -> None:
    """For a payload a projection knows but draws no figure from: it still counts as
    applied, since the projection read it and found nothing to change."""


class Projection(ABC):
    """One context's figures, kept exact under redelivery.

    Every handler must be idempotent on the state of its own aggregate: the dispatcher
    refuses an event id it applied before, but a copy of an event recorded under a new
    id, or an event applied again after a restore whose id set lagged the snapshot, must
    change no figure either.
    """

    # The key of this projection's section in the composed snapshot.
    name: ClassVar[str]

    @abstractmethod
    def routes(self) -> list[Route]:
        """The payload types this projection reads, each with its handler."""

    @abstractmethod
    def snapshot(self) -> dict[str, Any]:
        """This projection's state as JSON- and BSON-friendly values.

        Collections are lists of records, never dicts keyed by data: ids may contain
        "." or "$", which BSON field names must not. Times are integer microseconds
        since the epoch because BSON dates keep only milliseconds, and a restored
        projection must compare times exactly as this one does.
        """

    @classmethod
    @abstractmethod
    def restore(cls, snapshot: dict[str, Any]) -> Self:
        """The projection ``snapshot`` was taken of."""


# Time, as the projections keep it -----------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def timestamp_us(timestamp: Timestamp) -> int:
    # Integer arithmetic on the fields: much cheaper than ToDatetime() per event, and
    # truncating nanoseconds the same way datetime does.
    return timestamp.seconds * 1_000_000 + timestamp.nanos // 1_000


def datetime_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"{moment.isoformat()} has no time zone; figures are kept in UTC")
    return (moment - _EPOCH) // _MICROSECOND


def utc_datetime(microseconds: int) -> datetime:
    return _EPOCH + timedelta(microseconds=microseconds)
