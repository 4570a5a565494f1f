"""The notify domain: who is told what about which event, readers' preferences and quiet
hours, webhooks and their signatures, and how deliveries are planned and retried. Pure
Python: no gRPC, MongoDB or Kafka.

Facts are the events notify reads, as plain values (notify.messages makes them from the
envelopes). ``drafts_for`` turns one fact, with the joins notify keeps itself (``Known``),
into drafts of notifications, each for one reader; a draft's id depends only on its
source, reader and kind, so handling an event twice makes the same ids and the second
insert changes nothing."""

from __future__ import annotations

import enum
import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from runtime.kernel.errors import FailedPrecondition
from runtime.kernel.identity import Principal, Role
from runtime.kernel.validation import Validator


class Kind(enum.IntEnum):
    """Values match chuhai.notify.v1.NotificationKind."""

    FAIR_OPENED = 1
    APPLICATION_SCORED = 2
    BOOTH_ALLOCATED = 3
    APPLICATION_WAITLISTED = 4
    WAITLIST_PROMOTED = 5
    APPLICATION_REJECTED = 6
    PENALTY_CHARGED = 7
    INQUIRY_RECEIVED = 8
    RFQ_MATCHED = 9
    QUOTE_RECEIVED = 10
    INTENT_DECLINED = 11
    INTENT_CLOSED = 12
    INTENT_EXPIRED = 13
    WAREHOUSE_BOOKED = 14
    BOOKING_CANCELLED = 15
    UTILISATION_HIGH = 16
    ALLOCATION_COMPLETED = 17
    QUOTA_FILLED = 18
    DAILY_DIGEST = 19


class Channel(enum.IntEnum):
    """Values match chuhai.notify.v1.Channel."""

    IN_APP = 1
    WEBHOOK = 2
    EMAIL = 3


class DeliveryStatus(enum.IntEnum):
    """Values match chuhai.notify.v1.DeliveryStatus."""

    PENDING = 1
    DELIVERED = 2
    FAILED = 3


LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"
DEFAULT_ALERT_PERCENT = 90
EMAIL_MAX_LENGTH = 254
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
CLOCK_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
# An exporter may follow every heading of a few chapters; far fewer than the ~1,200 there are.
MAX_FAIR_HEADINGS = 200
URL_MAX_LENGTH = 2048
MAX_WEBHOOKS = 10
SIGNATURE_VERSION = "v1"
SIGNATURE_TOLERANCE_SECONDS = 300
# 32 random bytes, as RegisterWebhook promises.
SECRET_BYTES = 32
ID_LENGTH = 32
PREFERENCE_FIELDS = (
    "language",
    "email",
    "kinds",
    "quiet_hours",
    "fair_hs_headings",
    "utilisation_alert_percent",
)


# Readers.


@dataclass(frozen=True)
class Reader:
    """Whom a notification is for: one exporter firm, buyer or operator, or the bureau
    (every officer reads the bureau's notifications and shares their read state)."""

    role: Role
    party: str = ""

    @property
    def key(self) -> str:
        """ "officer", or "<role>:<party>" such as "exporter:91410000MA..."."""
        if self.role is Role.OFFICER:
            return Role.OFFICER.value
        return f"{self.role.value}:{self.party}"

    @classmethod
    def of(cls, principal: Principal) -> Reader | None:
        """The caller's reader; None for a service, or a buyer not registered yet."""
        if principal.role is Role.OFFICER:
            return OFFICERS
        if principal.role in READER_ROLES and principal.party:
            return cls(principal.role, principal.party)
        return None

    @classmethod
    def parse(cls, key: str) -> Reader:
        """The reader a ``key`` names; ValueError when it names none."""
        if key == Role.OFFICER.value:
            return OFFICERS
        role, _, party = key.partition(":")
        try:
            parsed = Role(role)
        except ValueError:
            raise ValueError(f"not a reader key: {key!r}") from None
        if parsed not in READER_ROLES or not party:
            raise ValueError(f"not a reader key: {key!r}")
        return cls(parsed, party)


READER_ROLES = frozenset({Role.EXPORTER, Role.BUYER, Role.OPERATOR})
OFFICERS = Reader(Role.OFFICER)


def require_reader(principal: Principal) -> Reader:
    """The caller's reader, for calls that change a reader's own settings."""
    reader = Reader.of(principal)
    if reader is None:
        raise FailedPrecondition(
            "only an exporter, a registered buyer, an operator or an officer has notifications",
            reason="NO_READER",
        )
    return reader


# Facts: the events notify reads, as plain values. Booth types, intent kinds and
# incoterms are their enum names without the prefix ("STANDARD", "RFQ", "FOB").


@dataclass(frozen=True)
class ExporterProfiled:
    """ExporterRegistered or ExporterUpdated: the HS headings of its main products."""

    event_id: str
    occurred_at: datetime
    credit_code: str
    hs_headings: tuple[str, ...]


@dataclass(frozen=True)
class FairOpened:
    event_id: str
    occurred_at: datetime
    fair_id: str
    name: str
    session: str
    hs_headings: tuple[str, ...]


@dataclass(frozen=True)
class ApplicationSubmitted:
    event_id: str
    occurred_at: datetime
    application_id: str
    fair_id: str
    credit_code: str
    booth_type: str


@dataclass(frozen=True)
class ApplicationScored:
    event_id: str
    occurred_at: datetime
    application_id: str
    fair_id: str
    booth_type: str
    score: int


@dataclass(frozen=True)
class BoothAllocated:
    event_id: str
    occurred_at: datetime
    application_id: str
    fair_id: str
    credit_code: str
    booth_type: str
    booth_number: str
    quota: int
    # A promotion's allocation: WAITLIST_PROMOTED tells the exporter, not this.
    from_waitlist: bool = False


@dataclass(frozen=True)
class ApplicationWaitlisted:
    event_id: str
    occurred_at: datetime
    application_id: str
    fair_id: str
    booth_type: str
    position: int


@dataclass(frozen=True)
class WaitlistPromoted:
    event_id: str
    occurred_at: datetime
    application_id: str
    fair_id: str
    booth_type: str
    booth_number: str


@dataclass(frozen=True)
class ApplicationRejected:
    event_id: str
    occurred_at: datetime
    application_id: str
    fair_id: str
    booth_type: str
    reason: str


@dataclass(frozen=True)
class ApplicationWithdrawn:
    event_id: str
    occurred_at: datetime
    application_id: str
    fair_id: str
    credit_code: str
    booth_type: str
    booth_number: str
    penalty_fen: int


@dataclass(frozen=True)
class AllocationCompleted:
    event_id: str
    occurred_at: datetime
    fair_id: str
    booth_type: str
    quota: int
    allocated: int
    waitlisted: int
    rejected: int


@dataclass(frozen=True)
class IntentSubmitted:
    """What exhibitors may learn of a buyer's intent. The buyer's company and contact
    are not here at all: the expo shows them only through GetBuyer's rule."""

    event_id: str
    occurred_at: datetime
    intent_id: str
    edition_id: str
    # For the intent -> buyer join; never put in a notification.
    buyer_id: str
    buyer_country: str
    kind: str
    hs_code: str
    quantity: int
    unit: str
    deadline: datetime | None
    recipients: tuple[str, ...]


@dataclass(frozen=True)
class QuoteSent:
    event_id: str
    occurred_at: datetime
    intent_id: str
    edition_id: str
    credit_code: str
    currency: str
    unit_price: Decimal
    moq: int
    lead_time_days: int
    incoterm: str
    valid_until: datetime | None


@dataclass(frozen=True)
class IntentDeclined:
    event_id: str
    occurred_at: datetime
    intent_id: str
    edition_id: str
    credit_code: str
    reason: str
    all_declined: bool


@dataclass(frozen=True)
class IntentClosed:
    event_id: str
    occurred_at: datetime
    intent_id: str
    edition_id: str
    quotes: int
    # "max_quotes", "buyer" or "deadline".
    reason: str


@dataclass(frozen=True)
class IntentExpired:
    event_id: str
    occurred_at: datetime
    intent_id: str
    edition_id: str


@dataclass(frozen=True)
class CapacityReserved:
    event_id: str
    occurred_at: datetime
    reservation_id: str
    warehouse_code: str
    exporter_credit_code: str
    pallet_positions: int
    cubic_metres: int
    start_date: date
    end_date: date
    # Empty in events recorded before operators were named in them: nobody is told.
    operator_id: str
    peak_utilisation_percent: int


@dataclass(frozen=True)
class ReservationCancelled:
    event_id: str
    occurred_at: datetime
    reservation_id: str
    warehouse_code: str
    exporter_credit_code: str
    pallet_positions: int
    cubic_metres: int
    start_date: date
    end_date: date
    reason: str
    operator_id: str


Fact = (
    ExporterProfiled
    | FairOpened
    | ApplicationSubmitted
    | ApplicationScored
    | BoothAllocated
    | ApplicationWaitlisted
    | WaitlistPromoted
    | ApplicationRejected
    | ApplicationWithdrawn
    | AllocationCompleted
    | IntentSubmitted
    | QuoteSent
    | IntentDeclined
    | IntentClosed
    | IntentExpired
    | CapacityReserved
    | ReservationCancelled
)

# The facts whose reader is found through a join: the application's applicant (saved
# from ApplicationSubmitted), the intent's buyer (saved from IntentSubmitted).
NEEDS_APPLICANT = (ApplicationScored, ApplicationWaitlisted, WaitlistPromoted, ApplicationRejected)
NEEDS_BUYER = (QuoteSent, IntentDeclined, IntentClosed, IntentExpired)


@dataclass(frozen=True)
class Known:
    """What a handler looked up for one fact in the joins notify keeps.

    ``applicant``: the credit code that submitted the fact's application; ``buyer``: the
    buyer id of the fact's intent; ``followers``: the credit codes following one of an
    opened fair's headings; ``allocated``: the applications of the fact's fair and booth
    type allocated so far, this one included; ``alert_percent``: the fact's operator's
    utilisation threshold."""

    applicant: str = ""
    buyer: str = ""
    followers: tuple[str, ...] = ()
    allocated: int = 0
    alert_percent: int = DEFAULT_ALERT_PERCENT


def follows(
    fair_headings: Collection[str], preferred: Sequence[str], registered: Iterable[str]
) -> bool:
    """Whether an exporter follows a fair of ``fair_headings``: by the headings of its
    preferences, or when it named none by those of its registered main products."""
    followed = set(preferred) if preferred else set(registered)
    return not followed.isdisjoint(fair_headings)


# Drafts: a notification before it is rendered.


def _digest_id(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:ID_LENGTH]


@dataclass(frozen=True)
class Draft:
    """One notification to make: for ``reader``, of ``kind``, caused by ``source`` (an
    event id, or a natural key such as "quota:<fair>:<type>" for what must be said once
    whichever event says it). ``facts`` are sorted (name, value) pairs; ``event_id`` the
    event that caused it, empty for the daily digest."""

    source: str
    reader: Reader
    kind: Kind
    facts: tuple[tuple[str, str], ...]
    event_id: str = ""

    @property
    def notification_id(self) -> str:
        return _digest_id(self.source, self.reader.key, self.kind.name)

    def notification(
        self, title: str, body: str, language: str, created_at: datetime
    ) -> Notification:
        """The notification this draft makes, rendered in ``language``."""
        return Notification(
            notification_id=self.notification_id,
            reader=self.reader,
            kind=self.kind,
            title=title,
            body=body,
            language=language,
            facts=dict(self.facts),
            event_id=self.event_id,
            created_at=created_at,
        )


def _facts(**values: object) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((name, _text(value)) for name, value in values.items()))


def _text(value: object) -> str:
    match value:
        case bool():
            return "true" if value else "false"
        case datetime():
            return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
        case date():
            return value.isoformat()
        case Decimal():
            return decimal_text(value)
        case None:
            return ""
    return str(value)


def decimal_text(amount: Decimal) -> str:
    """An amount with at least two decimals, more only when it has them: "12.50", "0.125"."""
    exponent = amount.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        return format(amount.normalize(), "f")
    return f"{amount:.2f}"


def _one(fact: Fact, reader: Reader, kind: Kind, **values: object) -> Draft:
    return Draft(fact.event_id, reader, kind, _facts(**values), fact.event_id)


def _exporter(credit_code: str) -> Reader:
    return Reader(Role.EXPORTER, credit_code)


def drafts_for(fact: Fact, known: Known) -> list[Draft]:
    """The notifications ``fact`` makes, each for one reader, and for nobody else. A fact
    whose reader is unknown (a join missing from an old history, an old event without
    the operator or the recipients) makes none."""
    match fact:
        case FairOpened():
            return [
                _one(
                    fact,
                    _exporter(code),
                    Kind.FAIR_OPENED,
                    fair_id=fact.fair_id,
                    fair_name=fact.name,
                    session=fact.session,
                    hs_headings=", ".join(fact.hs_headings),
                )
                for code in sorted(set(known.followers))
                if code
            ]
        case ApplicationScored() if known.applicant:
            return [
                _one(
                    fact,
                    _exporter(known.applicant),
                    Kind.APPLICATION_SCORED,
                    application_id=fact.application_id,
                    fair_id=fact.fair_id,
                    booth_type=fact.booth_type,
                    score=fact.score,
                )
            ]
        case BoothAllocated():
            return _allocated(fact, known)
        case ApplicationWaitlisted() if known.applicant:
            return [
                _one(
                    fact,
                    _exporter(known.applicant),
                    Kind.APPLICATION_WAITLISTED,
                    application_id=fact.application_id,
                    fair_id=fact.fair_id,
                    booth_type=fact.booth_type,
                    position=fact.position,
                )
            ]
        case WaitlistPromoted() if known.applicant:
            return [
                _one(
                    fact,
                    _exporter(known.applicant),
                    Kind.WAITLIST_PROMOTED,
                    application_id=fact.application_id,
                    fair_id=fact.fair_id,
                    booth_type=fact.booth_type,
                    booth_number=fact.booth_number,
                )
            ]
        case ApplicationRejected() if known.applicant:
            return [
                _one(
                    fact,
                    _exporter(known.applicant),
                    Kind.APPLICATION_REJECTED,
                    application_id=fact.application_id,
                    fair_id=fact.fair_id,
                    booth_type=fact.booth_type,
                    reason=fact.reason,
                )
            ]
        case ApplicationWithdrawn() if fact.penalty_fen > 0 and fact.credit_code:
            return [
                _one(
                    fact,
                    _exporter(fact.credit_code),
                    Kind.PENALTY_CHARGED,
                    application_id=fact.application_id,
                    fair_id=fact.fair_id,
                    booth_type=fact.booth_type,
                    booth_number=fact.booth_number,
                    penalty_fen=fact.penalty_fen,
                )
            ]
        case AllocationCompleted():
            return [
                _one(
                    fact,
                    OFFICERS,
                    Kind.ALLOCATION_COMPLETED,
                    fair_id=fact.fair_id,
                    booth_type=fact.booth_type,
                    quota=fact.quota,
                    allocated=fact.allocated,
                    waitlisted=fact.waitlisted,
                    rejected=fact.rejected,
                )
            ]
        case IntentSubmitted():
            return _intent_submitted(fact)
        case QuoteSent() if known.buyer:
            return [
                _one(
                    fact,
                    Reader(Role.BUYER, known.buyer),
                    Kind.QUOTE_RECEIVED,
                    intent_id=fact.intent_id,
                    edition_id=fact.edition_id,
                    credit_code=fact.credit_code,
                    currency=fact.currency,
                    unit_price=fact.unit_price,
                    moq=fact.moq,
                    lead_time_days=fact.lead_time_days,
                    incoterm=fact.incoterm,
                    valid_until=fact.valid_until,
                )
            ]
        case IntentDeclined() if known.buyer:
            return [
                _one(
                    fact,
                    Reader(Role.BUYER, known.buyer),
                    Kind.INTENT_DECLINED,
                    intent_id=fact.intent_id,
                    edition_id=fact.edition_id,
                    credit_code=fact.credit_code,
                    reason=fact.reason,
                    all_declined=fact.all_declined,
                )
            ]
        case IntentClosed() if known.buyer:
            return [
                _one(
                    fact,
                    Reader(Role.BUYER, known.buyer),
                    Kind.INTENT_CLOSED,
                    intent_id=fact.intent_id,
                    edition_id=fact.edition_id,
                    quotes=fact.quotes,
                    reason=fact.reason,
                )
            ]
        case IntentExpired() if known.buyer:
            return [
                _one(
                    fact,
                    Reader(Role.BUYER, known.buyer),
                    Kind.INTENT_EXPIRED,
                    intent_id=fact.intent_id,
                    edition_id=fact.edition_id,
                )
            ]
        case CapacityReserved() if fact.operator_id:
            return _reserved(fact, known)
        case ReservationCancelled() if fact.operator_id:
            return [
                _one(
                    fact,
                    Reader(Role.OPERATOR, fact.operator_id),
                    Kind.BOOKING_CANCELLED,
                    reservation_id=fact.reservation_id,
                    warehouse_code=fact.warehouse_code,
                    exporter_credit_code=fact.exporter_credit_code,
                    pallet_positions=fact.pallet_positions,
                    cubic_metres=fact.cubic_metres,
                    start_date=fact.start_date,
                    end_date=fact.end_date,
                    reason=fact.reason,
                )
            ]
    return []


def _allocated(fact: BoothAllocated, known: Known) -> list[Draft]:
    drafts = []
    if fact.credit_code and not fact.from_waitlist:
        drafts.append(
            _one(
                fact,
                _exporter(fact.credit_code),
                Kind.BOOTH_ALLOCATED,
                application_id=fact.application_id,
                fair_id=fact.fair_id,
                booth_type=fact.booth_type,
                booth_number=fact.booth_number,
            )
        )
    # Said once per fair and booth type, whichever allocation fills the quota: a
    # natural key as the source makes every such event produce the same id.
    if 0 < fact.quota <= known.allocated:
        drafts.append(
            Draft(
                f"quota:{fact.fair_id}:{fact.booth_type}",
                OFFICERS,
                Kind.QUOTA_FILLED,
                _facts(fair_id=fact.fair_id, booth_type=fact.booth_type, quota=fact.quota),
                fact.event_id,
            )
        )
    return drafts


def _intent_submitted(fact: IntentSubmitted) -> list[Draft]:
    kinds = {"INQUIRY": Kind.INQUIRY_RECEIVED, "RFQ": Kind.RFQ_MATCHED}
    kind = kinds.get(fact.kind)
    if kind is None:
        return []
    # The buyer is named by country only: its company and contact stay with the expo.
    return [
        _one(
            fact,
            _exporter(code),
            kind,
            intent_id=fact.intent_id,
            edition_id=fact.edition_id,
            hs_code=fact.hs_code,
            quantity=fact.quantity,
            unit=fact.unit,
            buyer_country=fact.buyer_country,
            deadline=fact.deadline,
        )
        for code in sorted(set(fact.recipients))
        if code
    ]


def _reserved(fact: CapacityReserved, known: Known) -> list[Draft]:
    operator = Reader(Role.OPERATOR, fact.operator_id)
    drafts = [
        _one(
            fact,
            operator,
            Kind.WAREHOUSE_BOOKED,
            reservation_id=fact.reservation_id,
            warehouse_code=fact.warehouse_code,
            exporter_credit_code=fact.exporter_credit_code,
            pallet_positions=fact.pallet_positions,
            cubic_metres=fact.cubic_metres,
            start_date=fact.start_date,
            end_date=fact.end_date,
            peak_utilisation_percent=fact.peak_utilisation_percent,
        )
    ]
    if fact.peak_utilisation_percent >= known.alert_percent:
        drafts.append(
            _one(
                fact,
                operator,
                Kind.UTILISATION_HIGH,
                reservation_id=fact.reservation_id,
                warehouse_code=fact.warehouse_code,
                start_date=fact.start_date,
                end_date=fact.end_date,
                peak_utilisation_percent=fact.peak_utilisation_percent,
                alert_percent=known.alert_percent,
            )
        )
    return drafts


# The officers' daily digest.

DIGEST_COUNT_PREFIX = "count_"


def digest_draft(day: date, counts: Mapping[str, int]) -> Draft:
    """The officers' digest of ``day`` (a local date in the bureau's time zone).
    ``counts``: event type (the envelope's full type name, or its last part) -> how
    many were handled that day."""
    per_type: dict[str, int] = {}
    for type_name, count in counts.items():
        short = type_name.rpartition(".")[2]
        per_type[short] = per_type.get(short, 0) + count
    values: dict[str, object] = {
        f"{DIGEST_COUNT_PREFIX}{name}": count for name, count in per_type.items() if count
    }
    return Draft(
        f"digest:{day.isoformat()}",
        OFFICERS,
        Kind.DAILY_DIGEST,
        _facts(day=day, total=sum(per_type.values()), **values),
    )


def digest_day_due(now: datetime, hour: int, tz: str | tzinfo) -> date | None:
    """The local day whose digest is due at ``now``: the previous day, once the local
    clock has reached ``hour``; None before."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    local = now.astimezone(zone)
    if local.hour < hour:
        return None
    return local.date() - timedelta(days=1)


# Preferences.


@dataclass(frozen=True)
class QuietHours:
    """Hours when e-mail and webhooks wait, [start, end) on the clock of ``time_zone``;
    a start after the end spans midnight."""

    start: time
    end: time
    time_zone: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def release_at(self, now: datetime) -> datetime:
        """``now`` outside quiet hours; inside, the moment they end (UTC)."""
        local = now.astimezone(self.zone)
        clock = local.time().replace(tzinfo=None)
        today = local.date()
        if self.start < self.end:
            quiet = self.start <= clock < self.end
            ends_on = today
        elif clock >= self.start:
            quiet, ends_on = True, today + timedelta(days=1)
        else:
            quiet, ends_on = clock < self.end, today
        if not quiet:
            return now
        return datetime.combine(ends_on, self.end, tzinfo=self.zone).astimezone(UTC)


ALL_CHANNELS = frozenset(Channel)


@dataclass(frozen=True)
class Preferences:
    """A reader's preferences. ``kinds`` names the channels of some kinds (an empty
    set: the kind is not made at all); every other kind goes everywhere."""

    language: str = DEFAULT_LANGUAGE
    email: str = ""
    kinds: tuple[tuple[Kind, frozenset[Channel]], ...] = ()
    quiet_hours: QuietHours | None = None
    fair_hs_headings: tuple[str, ...] = ()
    # 0: the default.
    utilisation_alert_percent: int = 0

    def channels_for(self, kind: Kind) -> frozenset[Channel]:
        """Where ``kind`` goes: empty means nowhere, not even in the platform. In-app is
        implied by any channel: the platform keeps every notification that is made."""
        for named, channels in self.kinds:
            if named is kind:
                return channels | {Channel.IN_APP} if channels else frozenset()
        return ALL_CHANNELS

    def wants(self, kind: Kind) -> bool:
        """Whether notifications of ``kind`` are made for this reader at all."""
        return bool(self.channels_for(kind))

    def release_at(self, now: datetime) -> datetime:
        """When e-mail and webhooks may go: ``now``, or the end of the quiet hours."""
        return now if self.quiet_hours is None else self.quiet_hours.release_at(now)

    @property
    def alert_percent(self) -> int:
        return self.utilisation_alert_percent or DEFAULT_ALERT_PERCENT


DEFAULT = Preferences()


@dataclass(frozen=True)
class QuietHoursDraft:
    """Quiet hours as a request sends them."""

    start: str
    end: str
    time_zone: str


@dataclass(frozen=True)
class PreferencesDraft:
    """Preferences as a request sends them, before validation: numbers for enums."""

    language: str = ""
    email: str = ""
    kinds: tuple[tuple[int, tuple[int, ...]], ...] = ()
    quiet_hours: QuietHoursDraft | None = None
    fair_hs_headings: tuple[str, ...] = ()
    utilisation_alert_percent: int = 0


@dataclass(frozen=True)
class PreferencesUpdate:
    """Take the fields named in ``paths`` (every field when empty) from ``preferences``."""

    preferences: Preferences
    paths: frozenset[str] = frozenset()

    @classmethod
    def validated(
        cls,
        draft: PreferencesDraft,
        paths: Sequence[str],
        check: Validator,
        prefix: str = "preferences",
    ) -> PreferencesUpdate:
        """Validate the fields the mask names, recording every problem in ``check``
        (fields as "preferences.quiet_hours.start", "update_mask.paths[0]")."""
        named: set[str] = set()
        for index, path in enumerate(paths):
            if check.require(
                path in PREFERENCE_FIELDS,
                f"update_mask.paths[{index}]",
                f"{path!r} is not one of {', '.join(PREFERENCE_FIELDS)}",
            ):
                named.add(path)
        every = not paths
        preferences = DEFAULT
        if every or "language" in named:
            preferences = replace(preferences, language=_language(draft.language, check, prefix))
        if every or "email" in named:
            preferences = replace(preferences, email=_email(draft.email, check, prefix))
        if every or "kinds" in named:
            preferences = replace(preferences, kinds=_kinds(draft.kinds, check, prefix))
        if every or "quiet_hours" in named:
            preferences = replace(
                preferences, quiet_hours=_quiet_hours(draft.quiet_hours, check, prefix)
            )
        if every or "fair_hs_headings" in named:
            preferences = replace(
                preferences, fair_hs_headings=_headings(draft.fair_hs_headings, check, prefix)
            )
        if every or "utilisation_alert_percent" in named:
            percent = draft.utilisation_alert_percent
            check.require(
                0 <= percent <= 100,
                f"{prefix}.utilisation_alert_percent",
                f"must be 1 to 100 (0: the default, {DEFAULT_ALERT_PERCENT})",
            )
            preferences = replace(preferences, utilisation_alert_percent=percent)
        return cls(preferences, frozenset(named))

    def apply(self, current: Preferences) -> Preferences:
        if not self.paths:
            return self.preferences
        return replace(
            current, **{path: getattr(self.preferences, path) for path in sorted(self.paths)}
        )


def _language(value: str, check: Validator, prefix: str) -> str:
    language = value.strip().lower() or DEFAULT_LANGUAGE
    check.require(language in LANGUAGES, f"{prefix}.language", 'must be "zh" or "en"')
    return language


def _email(value: str, check: Validator, prefix: str) -> str:
    address = value.strip()
    if address:
        check.require(
            len(address) <= EMAIL_MAX_LENGTH and bool(EMAIL_PATTERN.match(address)),
            f"{prefix}.email",
            "must be an e-mail address such as sales@example.com (empty: no e-mail)",
        )
    return address


def _kinds(
    values: Sequence[tuple[int, Sequence[int]]], check: Validator, prefix: str
) -> tuple[tuple[Kind, frozenset[Channel]], ...]:
    kinds: dict[Kind, frozenset[Channel]] = {}
    for index, (number, channel_numbers) in enumerate(values):
        path = f"{prefix}.kinds[{index}]"
        kind = check.member(number, Kind, f"{path}.kind")
        channels = {
            check.member(channel, Channel, f"{path}.channels[{position}]")
            for position, channel in enumerate(channel_numbers)
        }
        if kind is None:
            continue
        if check.require(kind not in kinds, f"{path}.kind", f"{kind.name} is named twice"):
            kinds[kind] = frozenset(c for c in channels if c is not None)
    return tuple(sorted(kinds.items()))


def _clock(value: str, check: Validator, field: str) -> time:
    match = CLOCK_TIME.match(value.strip())
    if not check.require(match is not None, field, "must be a time HH:MM (00:00 to 23:59)"):
        return time()
    assert match is not None
    return time(int(match[1]), int(match[2]))


def _zone(value: str, check: Validator, field: str) -> str:
    name = value.strip()
    try:
        ZoneInfo(name)
        known = bool(name)
    except (ZoneInfoNotFoundError, ValueError):
        known = False
    check.require(known, field, f"{name!r} is not an IANA time zone such as Asia/Shanghai")
    return name


def _quiet_hours(draft: QuietHoursDraft | None, check: Validator, prefix: str) -> QuietHours | None:
    if draft is None:
        return None
    path = f"{prefix}.quiet_hours"
    start = _clock(draft.start, check, f"{path}.start")
    end = _clock(draft.end, check, f"{path}.end")
    if CLOCK_TIME.match(draft.start.strip()) and CLOCK_TIME.match(draft.end.strip()):
        check.require(start != end, f"{path}.end", "must differ from the start")
    return QuietHours(start, end, _zone(draft.time_zone, check, f"{path}.time_zone"))


def _headings(values: Sequence[str], check: Validator, prefix: str) -> tuple[str, ...]:
    path = f"{prefix}.fair_hs_headings"
    check.require(len(values) <= MAX_FAIR_HEADINGS, path, f"at most {MAX_FAIR_HEADINGS}")
    headings = {check.hs_heading(value, f"{path}[{index}]") for index, value in enumerate(values)}
    return tuple(sorted(headings))


# Notifications.


@dataclass(frozen=True)
class Notification:
    notification_id: str
    reader: Reader
    kind: Kind
    title: str
    body: str
    language: str
    facts: Mapping[str, str]
    event_id: str
    created_at: datetime
    read_at: datetime | None = None


@dataclass(frozen=True)
class MarkRead:
    """Mark these notifications of the caller read, or every unread one (``all``)."""

    notification_ids: tuple[str, ...] = ()
    all: bool = False


# Webhooks.


@dataclass(frozen=True)
class Webhook:
    webhook_id: str
    reader: Reader
    url: str
    # Empty: every kind.
    kinds: frozenset[Kind]
    secret: str
    created_at: datetime
    enabled: bool = True
    disabled_reason: str = ""
    consecutive_failures: int = 0

    def accepts(self, kind: Kind) -> bool:
        return not self.kinds or kind in self.kinds

    def failed(self, disable_after: int) -> Webhook:
        """After a failed attempt: disabled when it is the ``disable_after``-th in a row."""
        failures = self.consecutive_failures + 1
        if failures >= disable_after and self.enabled:
            return replace(
                self,
                consecutive_failures=failures,
                enabled=False,
                disabled_reason=f"disabled after {failures} failed deliveries in a row",
            )
        return replace(self, consecutive_failures=failures)

    def succeeded(self) -> Webhook:
        return replace(self, consecutive_failures=0)

    def enabled_again(self) -> Webhook:
        return replace(self, enabled=True, disabled_reason="", consecutive_failures=0)


def new_secret() -> str:
    """A webhook's signing secret: 32 random bytes, base64url without padding."""
    return secrets.token_urlsafe(SECRET_BYTES)


def check_webhook_limit(registered: int) -> None:
    """Refuse one more webhook to a reader that has ``registered`` already."""
    if registered >= MAX_WEBHOOKS:
        raise FailedPrecondition(
            f"a reader has at most {MAX_WEBHOOKS} webhooks; delete one first",
            reason="TOO_MANY_WEBHOOKS",
            metadata={"limit": str(MAX_WEBHOOKS)},
        )


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def webhook_url(value: str, check: Validator, field: str = "url") -> str:
    """https://, or http:// to this machine only (receivers under development)."""
    url = value.strip()
    rule = "must be an https:// URL (http:// only to localhost, 127.0.0.0/8 or ::1)"
    if not check.require(bool(url), field, "is required"):
        return url
    if not check.require(len(url) <= URL_MAX_LENGTH, field, f"at most {URL_MAX_LENGTH} characters"):
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        # Raises ValueError on a port that is no number.
        _ = parts.port
    except ValueError:
        check.require(False, field, rule)
        return url
    scheme = parts.scheme.lower()
    check.require(
        bool(host) and (scheme == "https" or (scheme == "http" and _loopback(host))), field, rule
    )
    return url


@dataclass(frozen=True)
class WebhookRegistration:
    url: str
    # Empty: every kind.
    kinds: frozenset[Kind]

    @classmethod
    def validated(cls, url: str, kinds: Sequence[int], check: Validator) -> WebhookRegistration:
        members = {
            check.member(number, Kind, f"kinds[{index}]") for index, number in enumerate(kinds)
        }
        return cls(webhook_url(url, check), frozenset(k for k in members if k is not None))

    def webhook(self, webhook_id: str, reader: Reader, secret: str, now: datetime) -> Webhook:
        return Webhook(webhook_id, reader, self.url, self.kinds, secret, now)


# Deliveries.


@dataclass(frozen=True)
class RetryPolicy:
    """After a failed attempt the next waits ``base`` seconds, doubling with every
    attempt up to ``max``; the ``max_attempts``-th failure is the last."""

    base: float
    max: float
    max_attempts: int

    def delay(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt."""
        return timedelta(seconds=min(self.max, self.base * 2 ** max(0, attempts - 1)))


def delivery_id(notification_id: str, channel: Channel, target: str) -> str:
    return _digest_id(notification_id, channel.name, target)


@dataclass(frozen=True)
class Delivery:
    """One notification on its way through one channel to one target (the webhook id,
    or the e-mail address)."""

    delivery_id: str
    notification_id: str
    reader: Reader
    channel: Channel
    target: str
    status: DeliveryStatus
    next_attempt_at: datetime
    created_at: datetime
    attempts: int = 0
    last_error: str = ""
    delivered_at: datetime | None = None

    @classmethod
    def planned(
        cls, notification: Notification, channel: Channel, target: str, due: datetime, now: datetime
    ) -> Delivery:
        return cls(
            delivery_id=delivery_id(notification.notification_id, channel, target),
            notification_id=notification.notification_id,
            reader=notification.reader,
            channel=channel,
            target=target,
            status=DeliveryStatus.PENDING,
            next_attempt_at=due,
            created_at=now,
        )

    def delivered(self, now: datetime) -> Delivery:
        return replace(
            self,
            status=DeliveryStatus.DELIVERED,
            attempts=self.attempts + 1,
            last_error="",
            delivered_at=now,
        )

    def failed(self, error: str, now: datetime, policy: RetryPolicy, retryable: bool) -> Delivery:
        """After a failed attempt: pending again after the policy's delay, or FAILED when
        the failure is permanent or it was the last attempt."""
        attempts = self.attempts + 1
        if not retryable or attempts >= policy.max_attempts:
            return replace(self, status=DeliveryStatus.FAILED, attempts=attempts, last_error=error)
        return replace(
            self,
            attempts=attempts,
            last_error=error,
            next_attempt_at=now + policy.delay(attempts),
        )


def plan_deliveries(
    notification: Notification,
    preferences: Preferences,
    webhooks: Iterable[Webhook],
    now: datetime,
    stale: bool,
    mail_configured: bool,
) -> list[Delivery]:
    """The e-mail and webhook deliveries of a new notification (in-app is the
    notification itself). A stale event's notification stays in the platform; quiet
    hours hold the others until they end."""
    if stale:
        return []
    channels = preferences.channels_for(notification.kind)
    due = preferences.release_at(now)
    planned = []
    if Channel.EMAIL in channels and preferences.email and mail_configured:
        planned.append(Delivery.planned(notification, Channel.EMAIL, preferences.email, due, now))
    if Channel.WEBHOOK in channels:
        planned.extend(
            Delivery.planned(notification, Channel.WEBHOOK, hook.webhook_id, due, now)
            for hook in webhooks
            if hook.enabled
            and hook.reader == notification.reader
            and hook.accepts(notification.kind)
        )
    return planned


def is_stale(occurred_at: datetime, now: datetime, after_hours: float) -> bool:
    """Whether an event is too old when notify reads it to go further than the platform."""
    return now - occurred_at > timedelta(hours=after_hours)


# Webhook signatures: HMAC-SHA256 over "<timestamp>.<body>" with the secret's UTF-8 bytes.


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The Chuhai-Signature header's value: "v1=<hex>"."""
    message = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def signature_valid(
    secret: str,
    timestamp: int | str,
    body: bytes,
    signature: str,
    now: datetime,
    tolerance: float = SIGNATURE_TOLERANCE_SECONDS,
) -> bool:
    """What a receiver checks: the signature of exactly these bytes with this secret, at
    a timestamp no further than ``tolerance`` seconds from its clock (against replay)."""
    try:
        stamp = int(timestamp)
    except ValueError:
        return False
    if abs(now.timestamp() - stamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, stamp, body), signature)
