"""The bureau's stream processing: one Faust agent over every domain topic.

Exactness does not rest on Faust's table changelogs (see bureau's package docstring for
why), nor on offsets. Each batch is applied to the figures, whose dispatcher skips any
event_id already applied, and the events it applied are journaled in MongoDB (see
bureau.store). Faust acknowledges a batch only after that, so its committed offsets
never run ahead of what a restart restores; whatever is delivered again (a lagging
commit, a relay that published twice, a fresh in-memory broker fed again from the
outboxes) is recognised by its event_id. An event the bureau cannot read is skipped
(counted, not journaled); a record that is no envelope at all is dead-lettered.
Offsets are deliberately not part of the state: they mean nothing on a new broker.

Each batch is counted (StreamMetrics) and, when tracing is on, traced: an event recorded
in a traced call continues that call's trace (see runtime.adapters.tracing.BatchTrace)."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Set
from typing import Any

import faust
from faust.types import TP
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from bureau.live import LiveStats
from bureau.store import BureauStore, Entry
from runtime.adapters.dead_letters import Record, Send, dead_letter
from runtime.adapters.events import decode_envelope
from runtime.adapters.settings import Settings
from runtime.adapters.topics import BUREAU_STATS, DOMAIN_TOPICS
from runtime.adapters.tracing import BatchTrace

log = logging.getLogger(__name__)

BATCH_SIZE = 2000
# A batch closes after this long even if small, so the dashboard moves within a second.
BATCH_WINDOW_SECONDS = 0.3


class StreamMetrics:
    """The bureau's stream, in its host's registry (see runtime.adapters.metrics).

    - ``chuhai_bureau_events_applied_total`` (counter): events applied to the figures.
    - ``chuhai_bureau_events_redelivered_total`` (counter): deliveries of events applied
      before (duplicates: a lagging offset commit, a relay publishing twice, a replay),
      refused by event id.
    - ``chuhai_bureau_events_skipped_total`` (counter): events this bureau cannot read
      (unknown payload type or schema version), each counted once.
    - ``chuhai_bureau_dead_letters_total`` (counter; topic): records sent to the topic's
      .dlq twin (not an envelope at all).
    - ``chuhai_bureau_store_writes_total`` (counter; kind): "journal" (a batch's applied
      events made durable) and "snapshot" (the figures rewritten).
    - ``chuhai_bureau_consumer_lag_records`` (gauge; topic): see ConsumerLag.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.applied = Counter(
            "chuhai_bureau_events_applied", "Events applied to the figures.", registry=self.registry
        )
        self.redelivered = Counter(
            "chuhai_bureau_events_redelivered",
            "Deliveries of events applied before, refused by event id.",
            registry=self.registry,
        )
        self.skipped = Counter(
            "chuhai_bureau_events_skipped",
            "Events the bureau cannot read (unknown payload type or schema version).",
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "chuhai_bureau_dead_letters",
            "Records sent to the dead-letter twin of their topic.",
            ("topic",),
            registry=self.registry,
        )
        writes = Counter(
            "chuhai_bureau_store_writes",
            "Writes of the bureau's journal (one per batch) and snapshot.",
            ("kind",),
            registry=self.registry,
        )
        self.journal_writes = writes.labels("journal")
        self.snapshot_writes = writes.labels("snapshot")


class ConsumerLag(Collector):
    """``chuhai_bureau_consumer_lag_records`` (gauge; topic): records of the topic not
    processed yet, summed over the partitions assigned to this process: each partition's
    highwater less the offset after the last record processed from it. Computed at
    scrape time (on the event loop, like the stream), so it keeps growing while the
    stream is stuck. A partition nothing was processed from since start is not counted.

    The highwater is the one the consumer saw in its last fetch response, not one asked
    of the broker: the embedded broker's answers to end-offset requests are unreliable,
    and the fetch highwater costs no request at all."""

    def __init__(
        self,
        highwater: Callable[[TP], int | None],
        assignment: Callable[[], Set[TP]],
    ) -> None:
        self._highwater = highwater
        self._assignment = assignment
        # Partition -> the offset after the last record processed from it.
        self.next_offsets: dict[TP, int] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "chuhai_bureau_consumer_lag_records",
            "Records of the topic not processed yet (fetch highwater less position).",
            labels=("topic",),
        )
        lag: dict[str, int] = defaultdict(int)
        if self.next_offsets:
            try:
                assigned = set(self._assignment())
            except Exception:
                # Stopping or rebalancing: no lag to speak of until assigned again.
                assigned = set()
            for tp in assigned:
                next_offset = self.next_offsets.get(tp)
                highwater = self._highwater(tp)
                if next_offset is not None and highwater is not None:
                    lag[tp.topic] += max(0, highwater - next_offset)
        for topic, records in sorted(lag.items()):
            family.add_metric((topic,), records)
        yield family


def build_stream_app(
    settings: Settings,
    live: LiveStats,
    store: BureauStore,
    encode_headline: Callable[[], bytes],
    send: Send | None = None,
    *,
    metrics: StreamMetrics | None = None,
    tracer: Tracer | None = None,
) -> faust.App:
    """The Faust app; ``send`` replaces Faust's producer (for dead letters and the stats
    topic) in tests. Its counts go to ``metrics`` (a registry of their own without), its
    spans to ``tracer`` (none without)."""
    metrics = metrics or StreamMetrics()
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

    lag = ConsumerLag(lambda tp: app.consumer.highwater(tp), lambda: app.consumer.assignment())
    metrics.registry.register(lag)
    next_offsets = lag.next_offsets

    handle = RecordHandler(live, send, metrics)

    @app.agent(sources)
    async def aggregate(stream: Any) -> None:
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WINDOW_SECONDS):
            dispatcher = live.figures.dispatcher
            redelivered, skipped = dispatcher.redelivered_count, dispatcher.skipped_count
            traced = BatchTrace(
                tracer, "bureau apply batch", {"messaging.batch.message_count": len(events)}
            )
            try:
                applied: list[Entry] = []
                for event in events:
                    message = event.message
                    record = Record(
                        message.topic, message.partition, message.offset, message.key, event.value
                    )
                    entry = await handle(record, traced)
                    if entry is not None:
                        applied.append(entry)
                    next_offsets[message.tp] = message.offset + 1
                metrics.applied.inc(len(applied))
                metrics.redelivered.inc(dispatcher.redelivered_count - redelivered)
                metrics.skipped.inc(dispatcher.skipped_count - skipped)
                if not applied:
                    continue
                await live.changed()
                await store.append(applied)
                metrics.journal_writes.inc()
                if await store.snapshot(live.figures):
                    metrics.snapshot_writes.inc()
                # The stats topic is compacted on this key: it keeps the latest headline.
                await send(BUREAU_STATS.name, b"headline", encode_headline(), [])
            finally:
                traced.end()

    return app


class RecordHandler:
    """The agent's step for each record: apply it to the figures, or dead-letter it.

    Whatever a record holds, this returns: a record that is no usable envelope, or
    whose event the dispatcher refuses, goes to its topic's .dlq twin and is counted,
    changing no figure; an event the bureau cannot read yet is skipped by the dispatcher
    and counted there. Only a failure to send the dead letter itself propagates: that is
    the broker's trouble, not the record's."""

    def __init__(self, live: LiveStats, send: Send, metrics: StreamMetrics) -> None:
        self._live = live
        self._send = send
        self._metrics = metrics

    async def __call__(self, record: Record, traced: BatchTrace) -> Entry | None:
        """The journal entry of an event applied now; None for anything else."""
        try:
            envelope = decode_envelope(record.value)
            with traced.event(
                envelope.traceparent, record.topic, envelope.event_id, envelope.type
            ) as span:
                fresh = self._live.figures.apply(envelope)
                if span is not None:
                    span.set_attribute("chuhai.event.applied", fresh)
        except Exception as error:
            await dead_letter(self._send, record, error, consumer="bureau")
            self._metrics.dead_letters.labels(record.topic).inc()
            return None
        return (envelope.event_id, record.value) if fresh else None
