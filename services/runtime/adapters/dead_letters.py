"""Dead letters: a consumed record a consumer cannot read goes to its topic's ``.dlq``
twin (runtime.adapters.topics), unchanged, with why and where it came from in its
headers, so it can be read (``chuhai events tail <topic>.dlq``) and published again
once the consumer can read it. The bureau's stream and notify's consumer both send
them this way; the ``consumer`` header says which of them gave up on it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# Sends one record: topic, key, value, headers.
Send = Callable[[str, bytes | None, bytes, list[tuple[str, bytes]]], Awaitable[Any]]


@dataclass(frozen=True)
class Record:
    """One consumed record, as a consumer reads it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


async def dead_letter(send: Send, record: Record, error: Exception, *, consumer: str) -> None:
    """Log ``record`` and send it, as it came, to its topic's ``.dlq`` twin."""
    log.error(
        "dead-lettering record",
        extra={
            "consumer": consumer,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "error": str(error),
        },
    )
    await send(
        f"{record.topic}.dlq",
        record.key,
        record.value or b"",
        [
            ("error", str(error).encode()),
            ("error_type", type(error).__name__.encode()),
            ("consumer", consumer.encode()),
            ("original_topic", record.topic.encode()),
            ("original_partition", str(record.partition).encode()),
            ("original_offset", str(record.offset).encode()),
        ],
    )
