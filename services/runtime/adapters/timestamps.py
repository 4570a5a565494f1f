"""Moments in API messages (google.protobuf.Timestamp), always in UTC."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from runtime.kernel.clock import to_millisecond


def timestamp(moment: datetime) -> Timestamp:
    """``moment`` (timezone-aware) as a Timestamp."""
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def moment(message: Message, field: str) -> datetime | None:
    """The Timestamp ``field`` of ``message`` in UTC, cut to the millisecond MongoDB
    keeps (an answer built from it equals a later read); None when it is not set."""
    if not message.HasField(field):
        return None
    return to_millisecond(getattr(message, field).ToDatetime(UTC))
