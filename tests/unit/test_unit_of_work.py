"""The unit of work writes a use case's events to the outbox, in order, at its moment,
stamped with who made the change and for which request."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chuhai.booth.v1 import events_pb2
from runtime.adapters.outbox import GroupCommit
from runtime.adapters.settings import Settings
from runtime.adapters.topics import BOOTH_FAIRS
from runtime.adapters.unit_of_work import MongoUnitOfWork, OutgoingEvent
from runtime.kernel.identity import Principal, Role

NOW = datetime(2026, 4, 15, 9, 30, 0, 123000, tzinfo=UTC)
OFFICER = Principal(subject="officer-7", role=Role.OFFICER)


@dataclass(frozen=True)
class FairOpened:
    fair_id: str


def encode(event: FairOpened) -> OutgoingEvent:
    return OutgoingEvent(
        BOOTH_FAIRS,
        events_pb2.FairOpened(fair_id=event.fair_id),
        aggregate_id=event.fair_id,
        event_id=f"opened:{event.fair_id}",
    )


class RecordingTransaction:
    def __init__(self) -> None:
        self.recorded: list[dict[str, Any]] = []

    async def record(self, topic: Any, payload: Any, **headers: Any) -> None:
        self.recorded.append({"topic": topic, "payload": payload, **headers})


async def test_flush_writes_the_recorded_events_in_order_at_the_units_moment() -> None:
    tx = RecordingTransaction()
    uow = MongoUnitOfWork(store=None, now=NOW, actor=OFFICER, tx=tx, encode=encode)  # type: ignore[arg-type]
    uow.record(FairOpened("canton-137"))
    uow.record(FairOpened("asean-21"), FairOpened("canton-138"))
    assert tx.recorded == []

    await uow.flush()

    assert [r["payload"].fair_id for r in tx.recorded] == ["canton-137", "asean-21", "canton-138"]
    assert {r["occurred_at"] for r in tx.recorded} == {NOW}
    assert {r["topic"] for r in tx.recorded} == {BOOTH_FAIRS}
    assert {r["actor"] for r in tx.recorded} == {OFFICER}
    assert tx.recorded[0]["event_id"] == "opened:canton-137"
    assert tx.recorded[0]["aggregate_id"] == "canton-137"
    await uow.flush()
    assert len(tx.recorded) == 3


async def test_flush_stamps_its_own_requests_correlation_id_and_trace() -> None:
    # Several requests share a transaction under group commit: each unit of work's
    # events carry its own request, not the transaction's.
    tx = RecordingTransaction()
    first = MongoUnitOfWork(
        None, NOW, OFFICER, tx, encode, correlation_id="req-1", traceparent="00-aa-01-01"
    )  # type: ignore[arg-type]
    second = MongoUnitOfWork(None, NOW, OFFICER, tx, encode, correlation_id="req-2")  # type: ignore[arg-type]
    first.record(FairOpened("canton-137"))
    second.record(FairOpened("asean-21"))

    await first.flush()
    await second.flush()

    assert [(r["correlation_id"], r["traceparent"]) for r in tx.recorded] == [
        ("req-1", "00-aa-01-01"),
        ("req-2", None),
    ]


def test_group_commit_defaults_are_the_settings_defaults() -> None:
    assert GroupCommit.from_settings(Settings.model_construct()) == GroupCommit()
