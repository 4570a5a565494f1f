"""The bureau's stream processing: one Faust agent over every domain topic.

Exactness does not rest on Faust's table changelogs (see bureau's package docstring for
why), nor on offsets. Each batch is applied to the figures, whose dispatcher skips any
event_id already applied, and the events it applied are journaled in MongoDB (see
bureau.store). Faust acknowledges a batch only after that, so its committed offsets
never run ahead of what a restart restores; whatever is delivered again (a lagging
commit, a relay that published twice, a fresh in-memory broker fed again from the
outboxes) is recognised by its event_id. An event the bureau cannot read is skipped
(counted, not journaled); a record that is no envelope at all is dead-lettered.
Offsets are deliberately not part of the state: they mean nothing on a new broker."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from bureau.live import LiveStats
from bureau.store import BureauStore, Entry
from runtime.adapters.events import decode_envelope
from runtime.adapters.settings import Settings
from runtime.adapters.topics import BUREAU_STATS, DOMAIN_TOPICS

log = logging.getLogger(__name__)

BATCH_SIZE = 2000
# A batch closes after this long even if small, so the dashboard moves within a second.
BATCH_WINDOW_SECONDS = 0.3


# Sends one record: topic, key, value, headers.
Send = Callable[[str, bytes | None, bytes, list[tuple[str, bytes]]], Awaitable[Any]]


def build_stream_app(
    settings: Settings,
    live: LiveStats,
    store: BureauStore,
    encode_headline: Callable[[], bytes],
    send: Send | None = None,
) -> faust.App:
    """The Faust app; ``send`` replaces Faust's producer (for dead letters and the stats
    topic) in tests."""
    app = faust.App(
        settings.bureau_consumer_group,
        broker=f"kafka://{settings.kafka_bootstrap_servers}",
        store="memory://",
        value_serializer="raw",
        key_serializer="raw",
        # The embedded broker holds a group's first join for half the session timeout.
        broker_session_timeout=10.0,
        consumer_auto_offset_reset="earliest",
        # Our topics are provisioned from runtime.adapters.topics; Faust declares nothing.
        topic_allow_declare=False,
        # No on_leader work here; the leader topic would be auto-created otherwise.
        topic_disable_leader=True,
        # The dashboard has its own aiohttp server, up before the first assignment.
        web_enabled=False,
    )
    sources = app.topic(*(t.name for t in DOMAIN_TOPICS), key_type=bytes, value_type=bytes)
    if send is None:
        outputs = {t.dlq.name: app.topic(t.dlq.name) for t in DOMAIN_TOPICS}
        outputs[BUREAU_STATS.name] = app.topic(BUREAU_STATS.name)

        async def send(topic: str, key: bytes | None, value: bytes, headers: list) -> Any:
            return await outputs[topic].send(key=key, value=value, headers=headers)

    @app.agent(sources)
    async def aggregate(stream: Any) -> None:
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WINDOW_SECONDS):
            applied: list[Entry] = []
            for event in events:
                try:
                    envelope = decode_envelope(event.value)
                    if live.figures.apply(envelope):
                        applied.append((envelope.event_id, event.value))
                except Exception as error:
                    await _dead_letter(send, event, error)
            if not applied:
                continue
            await live.changed()
            await store.append(applied)
            await store.snapshot(live.figures)
            # The stats topic is compacted on this key: it keeps the latest headline.
            await send(BUREAU_STATS.name, b"headline", encode_headline(), [])

    return app


async def _dead_letter(send: Send, event: Any, error: Exception) -> None:
    message = event.message
    log.error(
        "dead-lettering record",
        extra={
            "topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
            "error": str(error),
        },
    )
    await send(
        f"{message.topic}.dlq",
        message.key,
        event.value,
        [
            ("error", str(error).encode()),
            ("error_type", type(error).__name__.encode()),
            ("consumer", b"bureau"),
            ("original_topic", message.topic.encode()),
            ("original_partition", str(message.partition).encode()),
            ("original_offset", str(message.offset).encode()),
        ],
    )
