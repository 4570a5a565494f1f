"""The bureau's Faust agent under Faust's own test context (no broker)."""

from __future__ import annotations

from faust.types import AgentT

from bureau.figures import BureauFigures
from bureau.live import LiveStats
from bureau.stream import build_stream_app
from chuhai.expo.v1 import events_pb2
from runtime.adapters.events import envelope_for
from runtime.adapters.settings import Settings
from runtime.adapters.topics import BUREAU_STATS
from tests.waiting import eventually


class RecordingStore:
    def __init__(self) -> None:
        self.journal: list[tuple[str, bytes]] = []
        self.snapshots: list[int] = []

    async def append(self, entries: list[tuple[str, bytes]]) -> None:
        self.journal.extend(entries)

    async def snapshot(self, figures: BureauFigures) -> None:
        self.snapshots.append(figures.headline().events_applied)


Sent = list[tuple[str, bytes | None, bytes, list]]


def stream_app(live: LiveStats, store: RecordingStore, sent: Sent) -> AgentT:
    async def send(topic: str, key: bytes | None, value: bytes, headers: list) -> None:
        sent.append((topic, key, value, headers))

    app = build_stream_app(
        Settings(kafka_bootstrap_servers="127.0.0.1:1"), live, store, lambda: b"headline", send
    )
    [agent] = app.agents.values()
    return agent


def visit_of(buyer_id: str, country: str) -> events_pb2.ExhibitorVisited:
    return events_pb2.ExhibitorVisited(
        visit_id=f"visit-of-{buyer_id}", buyer_id=buyer_id, buyer_country=country
    )


async def test_agent_applies_each_event_once_dead_letters_junk_and_publishes_the_headline() -> None:
    live = LiveStats(BureauFigures())
    store = RecordingStore()
    sent: Sent = []
    agent = stream_app(live, store, sent)
    envelope = envelope_for(visit_of("b1", "KE"), aggregate_id="b1", producer="expo")
    visit = envelope.SerializeToString()

    async def snapshots() -> list[int]:
        return store.snapshots

    async with agent.test_context() as stream:
        await stream.put(visit, key=b"b1")
        await stream.put(visit, key=b"b1")  # redelivered
        await stream.put(b"\xff junk", key=b"junk")
        await eventually(snapshots, equals=[1], within_seconds=5)

    headline = live.figures.headline()
    assert (headline.buyers, headline.countries, headline.events_applied) == (1, 1, 1)
    # The event is journaled once, as received, before the batch is acknowledged.
    assert [event_id for event_id, _ in store.journal] == [envelope.event_id]
    assert store.journal[0][1] == visit
    assert store.snapshots == [1]
    dead = [s for s in sent if s[0].endswith(".dlq")]
    assert len(dead) == 1 and dead[0][1] == b"junk"
    assert dict(dead[0][3])["error_type"] == b"UndecodableEvent"
    assert (BUREAU_STATS.name, b"headline", b"headline", []) in sent


async def test_agent_skips_an_unreadable_version_without_journaling_or_dead_lettering() -> None:
    live = LiveStats(BureauFigures())
    store = RecordingStore()
    sent: Sent = []
    agent = stream_app(live, store, sent)
    unreadable = envelope_for(visit_of("b1", "KE"), aggregate_id="b1", producer="expo")
    unreadable.schema_version = 99
    readable = envelope_for(visit_of("b2", "DE"), aggregate_id="b2", producer="expo")

    async def journaled() -> list[str]:
        return [event_id for event_id, _ in store.journal]

    async with agent.test_context() as stream:
        await stream.put(unreadable.SerializeToString(), key=b"b1")
        await stream.put(readable.SerializeToString(), key=b"b2")
        await eventually(journaled, equals=[readable.event_id], within_seconds=5)

    headline = live.figures.headline()
    assert (headline.buyers, headline.events_applied) == (1, 1)
    assert live.figures.events_skipped() == 1
    assert not [s for s in sent if s[0].endswith(".dlq")]
