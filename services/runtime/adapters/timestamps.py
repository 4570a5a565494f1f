"""Moments in API messages (google.protobuf.Timestamp), always in UTC."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from runtime.kernel.clock import to_millisecond
from runtime.kernel.errors import FieldViolation, InvalidArgument


def timestamp(moment: datetime) -> Timestamp:
    """``moment`` (timezone-aware) as a Timestamp."""
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def moment(message: Message, field: str, path: str = "") -> datetime | None:
    """The Timestamp ``field`` of ``message`` in UTC, cut to the millisecond MongoDB
    keeps (an answer built from it equals a later read); None when it is not set.

    A Timestamp outside years 1 to 9999 or with nanos outside a second is the caller's
    mistake: InvalidArgument naming ``path`` (the field's path in the request, by
    default its name)."""
    if not message.HasField(field):
        return None
    stamp: Timestamp = getattr(message, field)
    try:
        return to_millisecond(stamp.ToDatetime(UTC))
    except (ValueError, OverflowError):
        raise InvalidArgument(
            FieldViolation(
                path or field,
                "a moment from 0001-01-01 to 9999-12-31 (seconds and nanos of a Timestamp)",
            )
        ) from None
