"""What a command shows: rich tables for people, the API's own JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from rich import box
from rich.console import Console, RenderableType
from rich.table import Table

stdout = Console(highlight=False)
stderr = Console(stderr=True, highlight=False)


def as_json(message: Message) -> dict[str, Any]:
    """The API's JSON of a message: proto field names, every field (zero values too),
    enum names, and 64-bit numbers as numbers where they fit."""
    return json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
        unquote_int64_if_possible=True,
    )


def write_json(data: Message | dict[str, Any] | list[Any], *, indent: int | None = 2) -> None:
    """JSON on stdout, written plainly: no wrapping or colour that would break a parser."""
    if isinstance(data, Message):
        data = as_json(data)
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=indent) + "\n")
    sys.stdout.flush()


def show(reply: Message, json_output: bool, *renderables: RenderableType) -> None:
    """The reply as JSON with --json, else the renderables for people."""
    if json_output:
        write_json(reply)
        return
    for renderable in renderables:
        stdout.print(renderable)


def say(text: str) -> None:
    """A line for people (never with --json: commands call it only in table mode)."""
    stdout.print(text)


# ----- values in words


def enum_text(enum_type: EnumDescriptor, number: int) -> str:
    """An enum value in words: BOOTH_TYPE_STANDARD -> standard; unspecified -> ""."""
    if number == 0:
        return ""
    value = enum_type.values_by_number.get(number)
    if value is None:
        return str(number)
    prefix = enum_type.values_by_number[0].name.removesuffix("UNSPECIFIED")
    return value.name.removeprefix(prefix).lower().replace("_", "-")


def enum_label(message: Message, field: str) -> str:
    """An enum field of a message in words."""
    descriptor = message.DESCRIPTOR.fields_by_name[field]
    return enum_text(descriptor.enum_type, getattr(message, field))


def moment(stamp: Timestamp) -> str:
    if not stamp.seconds and not stamp.nanos:
        return ""
    return stamp.ToDatetime().strftime("%Y-%m-%d %H:%M UTC")


def day_of(stamp: Timestamp) -> str:
    """The UTC day of a moment, for lists where the hour would crowd the table."""
    return moment(stamp)[:10]


def money(amount: Message) -> str:
    """expo.v1.Money as "USD 12.50"; empty when unset."""
    currency, units, nanos = amount.currency, amount.units, amount.nanos  # type: ignore[attr-defined]
    if not currency and not units and not nanos:
        return ""
    value = units + nanos / 1e9
    return f"{currency} {value:,.2f}"


def space(amount: Message) -> str:
    """warehouse.v1.Space as "200 pallets, 1,500 m³"."""
    pallets, cubic = amount.pallet_positions, amount.cubic_metres  # type: ignore[attr-defined]
    return f"{pallets:,} pallets, {cubic:,} m³"


def percent(ratio: float) -> str:
    return f"{ratio:.0%}"


_FORMATTERS: dict[str, Callable[[Any], str]] = {
    "google.protobuf.Timestamp": moment,
    "chuhai.expo.v1.Money": money,
    "chuhai.warehouse.v1.Space": space,
    "chuhai.warehouse.v1.GeoPoint": lambda p: f"{p.latitude:.4f}, {p.longitude:.4f}",
}


def _scalar(field: FieldDescriptor, value: Any) -> str:
    if field.type == FieldDescriptor.TYPE_ENUM:
        return enum_text(field.enum_type, value)
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        formatter = _FORMATTERS.get(field.message_type.full_name)
        return formatter(value) if formatter else f"{len(value.ListFields())} fields"
    if field.type == FieldDescriptor.TYPE_BOOL:
        return "yes" if value else "no"
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value)


def _rows(message: Message, prefix: str = "") -> Iterable[tuple[str, str]]:
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        name = f"{prefix}{field.name}"
        is_record = field.type == FieldDescriptor.TYPE_MESSAGE and (
            field.message_type.full_name not in _FORMATTERS
        )
        if field.is_repeated and is_record:
            # Each record of a list in one line: "human hair wigs, 670420; wigs, 670490".
            yield (
                name,
                "; ".join(", ".join(text for _, text in _rows(item) if text) for item in value),
            )
        elif field.is_repeated:
            yield name, ", ".join(_scalar(field, item) for item in value)
        elif is_record:
            yield from _rows(value, f"{name}.")
        else:
            yield name, _scalar(field, value)


def details(message: Message, title: str, omit: Sequence[str] = ()) -> Table:
    """One record as a two-column table of its fields; nested records flattened into
    dotted names, empty fields and the ``omit``ted ones (shown in tables of their own)
    left out."""
    table = Table(title=title, show_header=False, title_justify="left", title_style="bold")
    table.add_column("field", style="dim")
    table.add_column("value", overflow="fold")
    for name, text in _rows(message):
        if text and name not in omit:
            table.add_row(name, text)
    return table


@dataclass(frozen=True)
class Column:
    header: str
    value: Callable[[Any], str]
    justify: str = "left"


def listing(title: str, columns: Sequence[Column], items: Sequence[Any]) -> Table:
    """Items as rows; the first column, their id, is never wrapped: it is what people
    copy into the next command."""
    table = Table(
        title=f"{title} ({len(items)})",
        title_justify="left",
        title_style="bold",
        # Lines only under the header, like `kubectl get`: wide lists still fit.
        box=box.SIMPLE_HEAD,
        show_edge=False,
    )
    for index, column in enumerate(columns):
        table.add_column(
            column.header,
            justify=column.justify,  # type: ignore[arg-type]
            overflow="fold",
            no_wrap=index == 0,
        )
    for item in items:
        table.add_row(*(column.value(item) for column in columns))
    return table
