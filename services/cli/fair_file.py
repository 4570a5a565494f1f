"""A fair written down by a bureau officer: a YAML (or JSON) file with the fields of
CreateFairRequest, read into that request. Booth types in words, deadlines as dates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from chuhai.booth.v1 import booth_service_pb2 as booth_pb
from cli.failures import CommandFailed, ExitCode

_TIMESTAMP = "google.protobuf.Timestamp"


def read_fair(path: Path) -> booth_pb.CreateFairRequest:
    """The request a fair file describes (without its request id)."""
    return parse_fair(path.read_text(encoding="utf-8"), str(path))


def parse_fair(text: str, source: str) -> booth_pb.CreateFairRequest:
    try:
        # The base loader keeps every scalar as written: HS heading 0712 stays "0712".
        data = YAML(typ="base").load(text)
    except YAMLError as error:
        raise CommandFailed(
            ExitCode.INVALID_ARGUMENT, f"{source} is not YAML or JSON: {error}"
        ) from None
    if not isinstance(data, dict):
        raise CommandFailed(ExitCode.INVALID_ARGUMENT, f"{source} should hold a fair's fields")
    if "request_id" in data:
        raise CommandFailed(
            ExitCode.INVALID_ARGUMENT,
            f"{source}: a fair file has no request_id; give --request-id to retry a creation",
        )
    request = booth_pb.CreateFairRequest()
    try:
        json_format.ParseDict(_normalised(data, request.DESCRIPTOR), request)
    except json_format.ParseError as error:
        raise CommandFailed(ExitCode.INVALID_ARGUMENT, f"{source}: {error}") from None
    return request


def _normalised(data: dict[str, Any], descriptor: Descriptor) -> dict[str, Any]:
    """What people write, as the API's JSON: an unknown field is left for ParseDict to
    name."""
    result: dict[str, Any] = {}
    for key, value in data.items():
        field = descriptor.fields_by_name.get(key)
        if field is None:
            result[key] = value
        elif field.is_repeated and isinstance(value, list):
            result[key] = [_value(field, item) for item in value]
        else:
            result[key] = _value(field, value)
    return result


def _value(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if field.message_type.full_name == _TIMESTAMP and isinstance(value, str):
            return _moment(value)
        if isinstance(value, dict):
            return _normalised(value, field.message_type)
    if field.type == FieldDescriptor.TYPE_ENUM and isinstance(value, str):
        prefix = field.enum_type.values_by_number[0].name.removesuffix("UNSPECIFIED")
        name = value.strip().upper().replace("-", "_").replace(" ", "_")
        return name if name.startswith(prefix) else prefix + name
    return value


def _moment(text: str) -> str:
    """A date is the end of that day (UTC); a date and time without an offset is UTC."""
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return f"{day.isoformat()}T23:59:59Z"
        moment = datetime.fromisoformat(text)
    except ValueError:
        # ParseDict names the field and what it expected.
        return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def template(fair_id: str, today: date) -> str:
    """A fair file to copy and edit, with dates a few weeks ahead of ``today``."""
    opens = today + timedelta(days=60)
    return f"""\
# A trade fair for `chuhai bureau fair create FILE`. The names are the fields of the
# booth API's CreateFairRequest. Dates are YYYY-MM-DD; a deadline is a date (until the
# end of that day, UTC) or a date and time with its offset, e.g. {today}T18:00:00+08:00.
fair_id: {fair_id}   # lowercase letters, digits and '-'; it never changes
name: China Import and Export Fair (Canton Fair)
organiser: Ministry of Commerce; People's Government of Guangdong Province
session: 139th
venue: Guangzhou, China Import and Export Fair Complex
phases:
  - name: Phase 1
    starts_on: {opens}
    ends_on: {opens + timedelta(days=4)}
# An application's main product must fall under one of a zone's 4-digit HS headings.
zones:
  - code: A-HAIR
    name: Hair products
    hs_headings: ["6703", "6704"]
  - code: B-POWER
    name: Power equipment
    hs_headings: ["8501", "8504", "8544"]
# The booths the city's delegation holds, per booth type (standard or brand).
booth_quotas:
  - booth_type: standard
    quota: 43
    application_deadline: {today + timedelta(days=21)}
    # Withdrawal is free until then, costs half the fee until the fair opens, all after.
    allocation_deadline: {today + timedelta(days=35)}
    fee_fen: 2500000   # per booth, in fen (CNY cents)
# Optional: without it the default sheet applies, whose points are these.
# scoring_sheet:
#   points_per_million_usd: 2
#   turnover_cap_points: 40
#   points_per_past_fair: 5
#   participation_cap_points: 25
#   brand_owner_points: 15
#   specialised_innovative_points: 15
#   high_tech_points: 5
"""
