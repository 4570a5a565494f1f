"""`chuhai events`: read the platform's event topics, each record's envelope decoded
into JSON. Partitions are assigned by hand, never by a consumer group, so reading
commits nothing and disturbs no service."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError
from rich.json import JSON
from rich.markup import escape

from cli.failures import CommandFailed, ExitCode
from cli.invocation import JsonOutput, endpoints, fail
from cli.output import Column, as_json, listing, say, stdout, write_json
from runtime.adapters.events import UndecodableEvent, decode_envelope
from runtime.adapters.topics import ALL_TOPICS

app = typer.Typer(
    help="Event topics: list them, and tail one with every envelope decoded as JSON.",
    epilog="Examples:\n\n"
    "  chuhai events topics\n\n"
    "  chuhai events tail booth.applications --from-beginning --max 10\n\n"
    "  chuhai events tail chuhai.expo.intents.v1 --json | jq .envelope.type",
    no_args_is_help=True,
)

POLL_MS = 200


def topic_name(given: str) -> str:
    """A catalogue topic by its full name or its short one (booth.applications)."""
    for topic in ALL_TOPICS:
        if given in (topic.name, topic.name.removeprefix("chuhai.").removesuffix(".v1")):
            return topic.name
    return given


def _consumer(bootstrap_servers: str, deadline_seconds: float) -> KafkaConsumer:
    try:
        return KafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            client_id="chuhai-cli",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            bootstrap_timeout_ms=int(deadline_seconds * 1000),
        )
    except KafkaError as error:
        raise CommandFailed(
            ExitCode.UNAVAILABLE, f"Cannot reach Kafka at {bootstrap_servers}: {error}"
        ) from None


@app.command()
def topics(ctx: typer.Context, json_output: JsonOutput = False) -> None:
    """List the platform's topics and whether the broker has them."""
    where = endpoints(ctx)
    try:
        consumer = _consumer(where.kafka_bootstrap_servers, where.deadline_seconds)
    except CommandFailed as failure:
        raise fail(ctx, failure) from None
    try:
        existing = consumer.topics()
    finally:
        consumer.close()
    rows = [
        {
            "name": topic.name,
            "partitions": topic.partitions,
            "compacted": topic.compacted,
            "exists": topic.name in existing,
        }
        for topic in ALL_TOPICS
    ]
    if json_output:
        write_json(rows)
        return
    show_rows = listing(
        "Topics",
        (
            Column("topic", lambda r: r["name"]),
            Column("partitions", lambda r: str(r["partitions"]), "right"),
            Column("cleanup", lambda r: "compact" if r["compacted"] else "delete"),
            Column("on the broker", lambda r: "yes" if r["exists"] else "no"),
        ),
        rows,
    )
    stdout.print(show_rows)


def record_json(record: ConsumerRecord) -> dict[str, Any]:
    """Where a record sits, and its envelope as the API's JSON (or why it is none)."""
    found: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp_ms": record.timestamp,
        "key": record.key.decode("utf-8", "replace") if record.key is not None else None,
    }
    if record.headers:
        found["headers"] = {
            name: value.decode("utf-8", "replace") for name, value in record.headers
        }
    try:
        found["envelope"] = as_json(decode_envelope(record.value))
    except UndecodableEvent as error:
        found["undecodable"] = str(error)
        found["value_base64"] = base64.b64encode(record.value or b"").decode("ascii")
    return found


def records(consumer: KafkaConsumer, *, most: int, seconds: float) -> Iterator[ConsumerRecord]:
    """Records as they come, until ``most`` (0: no limit) or ``seconds`` (0: no limit).
    Never "until the end offset": the embedded broker's end offsets are unreliable."""
    deadline = time.monotonic() + seconds if seconds else None
    seen = 0
    while deadline is None or time.monotonic() < deadline:
        wait = (
            POLL_MS
            if deadline is None
            else min(POLL_MS, max(1, int((deadline - time.monotonic()) * 1000)))
        )
        for batch in consumer.poll(timeout_ms=wait).values():
            for record in batch:
                yield record
                seen += 1
                if most and seen >= most:
                    return


@app.command()
def tail(
    ctx: typer.Context,
    topic: Annotated[
        str,
        typer.Argument(
            metavar="TOPIC",
            help="Full name (chuhai.booth.applications.v1) or short (booth.applications).",
            show_default=False,
        ),
    ],
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start with the oldest record kept.")
    ] = False,
    most: Annotated[
        int, typer.Option("--max", min=0, help="Stop after this many; 0: no limit.")
    ] = 0,
    seconds: Annotated[
        float, typer.Option("--timeout", min=0, help="Stop after this many seconds; 0: no limit.")
    ] = 0,
    json_output: Annotated[
        bool, typer.Option("--json", help="One JSON object per line, for jq and scripts.")
    ] = False,
) -> None:
    """Print a topic's events as they arrive, decoded, until --max or --timeout (or Ctrl-C)."""
    name = topic_name(topic)
    where = endpoints(ctx)
    try:
        consumer = _consumer(where.kafka_bootstrap_servers, where.deadline_seconds)
        try:
            # Asking for a topic by name would make some brokers create it: list first.
            if name not in consumer.topics():
                raise CommandFailed(
                    ExitCode.NOT_FOUND,
                    f"No topic {name} on {where.kafka_bootstrap_servers} "
                    "(`chuhai events topics` lists them).",
                )
            partitions = consumer.partitions_for_topic(name) or set()
            consumer.assign([TopicPartition(name, p) for p in sorted(partitions)])
            if from_beginning:
                consumer.seek_to_beginning()
            else:
                consumer.seek_to_end()
            for record in records(consumer, most=most, seconds=seconds):
                _print(record_json(record), json_output)
        except KafkaError as error:
            raise CommandFailed(ExitCode.UNAVAILABLE, f"Kafka failed: {error}") from None
        except KeyboardInterrupt:
            pass
        finally:
            consumer.close()
    except CommandFailed as failure:
        raise fail(ctx, failure) from None


def _print(found: dict[str, Any], json_output: bool) -> None:
    if json_output:
        write_json(found, indent=None)
        return
    envelope = found.get("envelope", {})
    say(
        f"[bold]{found['topic']}[/bold] [{found['partition']}]@{found['offset']} "
        f"key={escape(str(found['key']))} [cyan]{envelope.get('type', 'undecodable')}[/cyan]"
    )
    show_json = {k: v for k, v in found.items() if k not in ("topic", "partition", "offset", "key")}
    stdout.print(JSON.from_data(show_json, ensure_ascii=False))
