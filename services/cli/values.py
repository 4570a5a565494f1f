"""Turning what people type into request values: enum choices in plain words, amounts
of money, moments and places. The services validate the rest and name what is wrong."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation

import typer
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.timestamp_pb2 import Timestamp

from chuhai.booth.v1 import resources_pb2 as booth_res
from chuhai.expo.v1 import resources_pb2 as expo_res
from chuhai.notify.v1 import resources_pb2 as notify_res
from chuhai.warehouse.v1 import resources_pb2 as warehouse_res
from runtime.adapters.timestamps import timestamp


class ProtoChoices:
    """A proto enum offered as choices in words (BOOTH_TYPE_STANDARD -> "standard"),
    as a Python enum Typer lists in the help and completes in the shell."""

    def __init__(self, wrapper: EnumTypeWrapper, name: str) -> None:
        self._wrapper = wrapper
        self._prefix = wrapper.DESCRIPTOR.values_by_number[0].name.removesuffix("UNSPECIFIED")
        words = [
            value.name.removeprefix(self._prefix).lower().replace("_", "-")
            for value in wrapper.DESCRIPTOR.values
            if value.number != 0
        ]
        self.enum: type[enum.Enum] = enum.Enum(name, {word: word for word in words})  # type: ignore[misc]

    @property
    def words(self) -> list[str]:
        return [member.value for member in self.enum]

    def number_of_word(self, word: str) -> int | None:
        """The proto value of a word as people may write it (booth-allocated,
        BOOTH_ALLOCATED, NOTIFICATION_KIND_BOOTH_ALLOCATED); None when it names none."""
        normal = word.strip().upper().replace("-", "_").removeprefix(self._prefix)
        if not normal or normal == "UNSPECIFIED":
            return None
        try:
            return self._wrapper.Value(self._prefix + normal)
        except ValueError:
            return None

    def number(self, choice: enum.Enum | None) -> int:
        """The proto value of a choice; 0 (unspecified) for none."""
        if choice is None:
            return 0
        return self._wrapper.Value(self._prefix + str(choice.value).upper().replace("-", "_"))


BOOTH_TYPES = ProtoChoices(booth_res.BoothType, "BoothType")
APPLICATION_STATES = ProtoChoices(booth_res.ApplicationState, "ApplicationState")
BUYER_TYPES = ProtoChoices(expo_res.BuyerType, "BuyerType")
INCOTERMS = ProtoChoices(expo_res.Incoterm, "Incoterm")
INTENT_STATES = ProtoChoices(expo_res.IntentState, "IntentState")
LOGISTICS_SERVICES = ProtoChoices(warehouse_res.LogisticsService, "LogisticsService")
OPERATOR_KINDS = ProtoChoices(warehouse_res.OperatorKind, "OperatorKind")
RESERVATION_STATUSES = ProtoChoices(warehouse_res.ReservationStatus, "ReservationStatus")
NOTIFICATION_KINDS = ProtoChoices(notify_res.NotificationKind, "NotificationKind")
CHANNELS = ProtoChoices(notify_res.Channel, "Channel")

# Names Typer can read in a signature.
BoothType = BOOTH_TYPES.enum
ApplicationState = APPLICATION_STATES.enum
BuyerType = BUYER_TYPES.enum
Incoterm = INCOTERMS.enum
IntentState = INTENT_STATES.enum
LogisticsService = LOGISTICS_SERVICES.enum
OperatorKind = OPERATOR_KINDS.enum
ReservationStatus = RESERVATION_STATUSES.enum
NotificationKind = NOTIFICATION_KINDS.enum


def money(text: str) -> expo_res.Money:
    """ "USD 12.50" (or "12.50 USD") as Money; the service checks the currency code."""
    parts = text.split()
    if len(parts) != 2:
        raise typer.BadParameter(f"{text!r}: give a currency and an amount, e.g. 'USD 12.50'")
    currency, amount = parts if not parts[0][0].isdigit() else reversed(parts)
    try:
        value = Decimal(amount.replace(",", ""))
    except InvalidOperation:
        raise typer.BadParameter(f"{amount!r} is not an amount, e.g. 12.50") from None
    units = int(value)
    nanos = int((value - units) * 1_000_000_000)
    return expo_res.Money(currency=currency.upper(), units=units, nanos=nanos)


def moment(text: str, *, default_days: int) -> Timestamp:
    """A moment from a date (the end of that day, UTC) or an ISO 8601 date and time
    (UTC unless it names its offset); empty means ``default_days`` from now."""
    if not text:
        return timestamp(datetime.now(UTC) + timedelta(days=default_days))
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return timestamp(datetime.combine(day, time(23, 59, 59), tzinfo=UTC))
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: give a date YYYY-MM-DD or a date and time, e.g. 2026-06-30T18:00+08:00"
        ) from None
    return timestamp(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))


def day(text: str, *, default_days: int = 0) -> str:
    """A calendar day YYYY-MM-DD as the warehouse service takes it; empty means
    ``default_days`` from today (UTC). The service checks the format."""
    return text or (datetime.now(UTC).date() + timedelta(days=default_days)).isoformat()


def after(first: str, days: int) -> str:
    """The day ``days`` after the day ``first``; empty when ``first`` is no date (the
    service then names the wrong field)."""
    try:
        return (date.fromisoformat(first) + timedelta(days=days)).isoformat()
    except ValueError:
        return ""


def geo_point(text: str) -> warehouse_res.GeoPoint:
    """ "53.55,9.99" (latitude, longitude in decimal degrees) as a GeoPoint."""
    try:
        latitude, longitude = (float(part) for part in text.split(","))
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: give latitude,longitude in decimal degrees, e.g. 53.55,9.99"
        ) from None
    return warehouse_res.GeoPoint(latitude=latitude, longitude=longitude)


def product(text: str) -> booth_res.Product:
    """ "670420:human hair wigs" (HS code, then the product's name) as a Product."""
    hs_code, separator, name = text.partition(":")
    if not separator:
        raise typer.BadParameter(f"{text!r}: give HS-CODE:NAME, e.g. '670420:human hair wigs'")
    return booth_res.Product(hs_code=hs_code.strip(), name=name.strip())


# Kinds whose channels `preferences set --kind` puts back to the default: in-app, e-mail
# when an address is set, and every webhook subscribed.
DEFAULT_CHANNELS = "default"
NO_CHANNEL = "none"


def kind_channels(text: str) -> tuple[int, list[int] | None]:
    """ "booth-allocated=in-app,email" as a notification kind and its channels: "KIND="
    or "KIND=none" turns the kind off (no channels), "KIND=default" gives it the default
    channels again (None)."""
    kind_word, separator, channel_words = text.partition("=")
    kind = NOTIFICATION_KINDS.number_of_word(kind_word)
    if not separator or kind is None:
        raise typer.BadParameter(
            f"{text!r}: give KIND=CHANNELS, e.g. booth-allocated=in-app,email; kinds: "
            + ", ".join(NOTIFICATION_KINDS.words)
        )
    words = [word.strip() for word in channel_words.split(",") if word.strip()]
    if [word.lower() for word in words] == [DEFAULT_CHANNELS]:
        return kind, None
    if [word.lower() for word in words] in ([], [NO_CHANNEL]):
        return kind, []
    channels = []
    for word in words:
        channel = CHANNELS.number_of_word(word)
        if channel is None:
            raise typer.BadParameter(
                f"{word!r} is no channel: give {', '.join(CHANNELS.words)}, "
                f"'{NO_CHANNEL}' or '{DEFAULT_CHANNELS}'"
            )
        if channel not in channels:
            channels.append(channel)
    return kind, channels


def quiet_hours(text: str) -> tuple[str, str]:
    """ "22:00-08:00" as its start and end (HH:MM, 24-hour clock; the service checks
    them). A start after the end spans midnight."""
    start, separator, end = text.partition("-")
    if not separator or not start.strip() or not end.strip():
        raise typer.BadParameter(f"{text!r}: give START-END, e.g. 22:00-08:00")
    return start.strip(), end.strip()
