"""The one clock: the moment, in UTC, to the millisecond.

MongoDB keeps milliseconds, so every moment a service uses is cut to them: a response
built from this instant equals the one built later from the stored document. Tests
inject a clock they can move (tests/fakes.py) instead of patching time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current moment, timezone-aware UTC, whole milliseconds."""
        ...


def to_millisecond(moment: datetime) -> datetime:
    """``moment`` in UTC, cut to the millisecond."""
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        return to_millisecond(datetime.now(UTC))
