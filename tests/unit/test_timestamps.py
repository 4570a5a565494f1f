"""Moments to and from API messages: UTC, and read back to the millisecond."""

from __future__ import annotations

from datetime import UTC, datetime

from chuhai.bureau.v1 import bureau_service_pb2 as pb
from runtime.adapters.timestamps import moment, timestamp


def test_a_set_timestamp_reads_back_in_utc_to_the_millisecond() -> None:
    sent = datetime(2026, 4, 15, 9, 30, 0, 123456, tzinfo=UTC)
    request = pb.QueryStatsRequest(since=timestamp(sent))
    assert moment(request, "since") == datetime(2026, 4, 15, 9, 30, 0, 123000, tzinfo=UTC)


def test_an_unset_timestamp_is_none() -> None:
    assert moment(pb.QueryStatsRequest(), "until") is None
