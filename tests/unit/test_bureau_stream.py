"""The bureau's Faust agent under Faust's own test context (no broker)."""

from __future__ import annotations

import asyncio

from bureau.aggregates import Aggregates
from bureau.live import LiveStats
from bureau.stream import build_stream_app
from chuhai.expo.v1 import events_pb2
from runtime.adapters.events import envelope_for
from runtime.adapters.settings import Settings
from runtime.adapters.topics import BUREAU_STATS


class RecordingStore:
    def __init__(self) -> None:
        self.journal: list[tuple[str, bytes]] = []
        self.snapshots: list[int] = []

    async def append(self, entries: list[tuple[str, bytes]]) -> None:
        self.journal.extend(entries)

    async def snapshot(self, aggregates: Aggregates) -> None:
        self.snapshots.append(aggregates.headline().events_applied)


async def test_agent_applies_each_event_once_dead_letters_junk_and_publishes_the_headline() -> None:
    live = LiveStats(Aggregates())
    store = RecordingStore()
    sent: list[tuple[str, bytes | None, bytes, list]] = []

    async def send(topic: str, key: bytes | None, value: bytes, headers: list) -> None:
        sent.append((topic, key, value, headers))

    app = build_stream_app(
        Settings(kafka_bootstrap_servers="127.0.0.1:1"), live, store, lambda: b"headline", send
    )
    [agent] = app.agents.values()
    envelope = envelope_for(
        events_pb2.ExhibitorVisited(visit_id="v1", buyer_id="b1", buyer_country="KE"),
        aggregate_id="b1",
        producer="expo",
    )
    visit = envelope.SerializeToString()

    async with agent.test_context() as stream:
        await stream.put(visit, key=b"b1")
        await stream.put(visit, key=b"b1")  # redelivered
        await stream.put(b"\xff junk", key=b"junk")
        for _ in range(50):
            if store.snapshots:
                break
            await asyncio.sleep(0.1)

    headline = live.aggregates.headline()
    assert (headline.buyers, headline.countries, headline.events_applied) == (1, 1, 1)
    # The event is journaled once, as received, before the batch is acknowledged.
    assert [event_id for event_id, _ in store.journal] == [envelope.event_id]
    assert store.journal[0][1] == visit
    assert store.snapshots == [1]
    dead = [s for s in sent if s[0].endswith(".dlq")]
    assert len(dead) == 1 and dead[0][1] == b"junk"
    assert dict(dead[0][3])["error_type"] == b"UndecodableEvent"
    assert (BUREAU_STATS.name, b"headline", b"headline", []) in sent
