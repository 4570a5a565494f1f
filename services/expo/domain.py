"""The cloud expo domain: editions, their exhibitors and showrooms, overseas buyers and
their visits, and purchase intents (inquiries and RFQs) with their state machine.

Pure Python. Commands are built from raw values here, with every wrong field reported;
operations return the new state and the past-tense events it produced."""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

from runtime.kernel.errors import FailedPrecondition, NotFound, ResourceExhausted
from runtime.kernel.standards import hs_heading
from runtime.kernel.validation import Validator

DESCRIPTION_MAX_LENGTH = 4000
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DEFAULT_MAX_QUOTES = 5
MAX_QUOTES_LIMIT = 50
# An intent may stay open for at most this long.
MAX_INTENT_LIFETIME = timedelta(days=180)
MAX_LEAD_TIME_DAYS = 365
VISITS_PER_CALL = 500
BUYERS_PER_CALL = 500
NANOS_PER_UNIT = 1_000_000_000
# Visit event ids derive from the client's visit ids in this namespace.
_VISIT_NAMESPACE = uuid.UUID("5d0b7c52-4c1e-4d5a-9f0e-6b1f3e0a2c11")


def new_id() -> str:
    """A fresh id for a product, buyer or intent."""
    return uuid.uuid4().hex


# Vocabulary: values match the chuhai.expo.v1 enums -------------------------------------


class EditionStatus(enum.IntEnum):
    DRAFT = 1
    OPEN = 2
    CLOSED = 3


class ExhibitorKind(enum.IntEnum):
    BOOTH = 1
    ONLINE_ONLY = 2


class BuyerType(enum.IntEnum):
    NEW = 1
    RETURNING = 2


class IntentKind(enum.IntEnum):
    INQUIRY = 1
    RFQ = 2


class IntentState(enum.IntEnum):
    SUBMITTED = 1
    MATCHED = 2
    QUOTED = 3
    DECLINED = 4
    CLOSED = 5
    EXPIRED = 6


OPEN_STATES = frozenset({IntentState.SUBMITTED, IntentState.MATCHED, IntentState.QUOTED})


class ResponseKind(enum.IntEnum):
    QUOTED = 1
    DECLINED = 2


class Incoterm(enum.IntEnum):
    """Incoterms 2020."""

    EXW = 1
    FCA = 2
    CPT = 3
    CIP = 4
    DAP = 5
    DPU = 6
    DDP = 7
    FAS = 8
    FOB = 9
    CFR = 10
    CIF = 11


def parse_incoterm(check: Validator, value: int, field: str = "incoterm") -> Incoterm:
    rule = check.member(
        value, Incoterm, field, description="must be one of the Incoterms 2020 rules"
    )
    return rule or Incoterm.EXW


# Money -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Money:
    """An amount as units plus nano units of an ISO 4217 currency."""

    currency: str
    units: int
    nanos: int

    @property
    def is_empty(self) -> bool:
        return not self.currency and self.units == 0 and self.nanos == 0

    def as_nanos(self) -> int:
        return self.units * NANOS_PER_UNIT + self.nanos


def required_money(check: Validator, field: str, money: Money) -> Money:
    currency = check.currency(money.currency, f"{field}.currency")
    check.require(
        money.units >= 0 and 0 <= money.nanos < NANOS_PER_UNIT,
        field,
        "must not be negative; nanos 0 to 999,999,999",
    )
    return Money(currency, money.units, money.nanos)


def optional_money(check: Validator, field: str, money: Money) -> Money | None:
    """None when left empty (no currency, zero amount)."""
    return None if money.is_empty else required_money(check, field, money)


# Events: what happened, in the past tense ------------------------------------------------


@dataclass(frozen=True)
class ExpoOpened:
    edition_id: str
    name: str
    fair_id: str
    starts_on: date
    ends_on: date
    allow_online_only: bool


@dataclass(frozen=True)
class ExpoClosed:
    edition_id: str


@dataclass(frozen=True)
class ExhibitorJoined:
    edition_id: str
    credit_code: str
    name: str
    industry: str
    kind: ExhibitorKind
    # Empty for an online-only exhibitor.
    booth_number: str


@dataclass(frozen=True)
class ProductListed:
    product_id: str
    edition_id: str
    credit_code: str
    name: str
    hs_code: str


@dataclass(frozen=True)
class BuyerRegistered:
    """Carries no personal data: the contact stays with the buyer."""

    buyer_id: str
    company: str
    country: str
    buyer_type: BuyerType


@dataclass(frozen=True)
class ExhibitorVisited:
    # Derived from the client's visit id: a visit reported twice is recorded once.
    event_id: str
    visit_id: str
    edition_id: str
    buyer_id: str
    buyer_country: str
    credit_code: str
    product_id: str
    visited_at: datetime


@dataclass(frozen=True)
class IntentSubmitted:
    intent_id: str
    edition_id: str
    buyer_id: str
    buyer_country: str
    kind: IntentKind
    hs_code: str
    quantity: int
    unit: str
    target_price: Money | None
    incoterm: Incoterm
    destination_country: str
    deadline: datetime
    # Industries of the exhibitors it reached.
    industries: tuple[str, ...]
    # Credit codes of the exhibitors it reached: the one an inquiry names, or those an
    # RFQ matched.
    recipients: tuple[str, ...]


@dataclass(frozen=True)
class RfqMatched:
    intent_id: str
    edition_id: str
    recipients: tuple[str, ...]


@dataclass(frozen=True)
class QuoteSent:
    intent_id: str
    edition_id: str
    quote: Response


@dataclass(frozen=True)
class IntentDeclined:
    intent_id: str
    edition_id: str
    decline: Response
    # This was the last recipient and nobody quoted.
    all_declined: bool


@dataclass(frozen=True)
class IntentClosed:
    intent_id: str
    edition_id: str
    quotes: int
    # "max_quotes", "buyer" or "deadline".
    reason: str


@dataclass(frozen=True)
class IntentExpired:
    intent_id: str
    edition_id: str


# Editions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewEdition:
    edition_id: str
    name: str
    fair_id: str
    starts_on: date
    ends_on: date
    allow_online_only: bool

    @classmethod
    def parse(
        cls,
        check: Validator,
        *,
        edition_id: str,
        name: str,
        fair_id: str,
        starts_on: str,
        ends_on: str,
        allow_online_only: bool,
    ) -> NewEdition:
        edition_id = check.slug(edition_id, "edition_id")
        name = check.text(name, "name")
        fair_id = check.identifier(fair_id, "fair_id")
        starts = check.date(starts_on, "starts_on")
        ends = check.date(ends_on, "ends_on")
        if starts is not None and ends is not None:
            check.require(starts <= ends, "ends_on", "must not be before starts_on")
        return cls(
            edition_id, name, fair_id, starts or date.min, ends or date.min, allow_online_only
        )


@dataclass(frozen=True)
class BoothStanding:
    """What the booth service says of an exporter at the edition's fair."""

    name: str
    industry: str
    has_booth: bool
    booth_number: str


@dataclass(frozen=True)
class Edition:
    edition_id: str
    name: str
    # The booth service's fair whose booth holders may exhibit.
    fair_id: str
    starts_on: date
    ends_on: date
    allow_online_only: bool
    status: EditionStatus

    @classmethod
    def create(cls, command: NewEdition) -> Edition:
        return cls(
            edition_id=command.edition_id,
            name=command.name,
            fair_id=command.fair_id,
            starts_on=command.starts_on,
            ends_on=command.ends_on,
            allow_online_only=command.allow_online_only,
            status=EditionStatus.DRAFT,
        )

    def open(self) -> tuple[Edition, ExpoOpened]:
        """A draft opens; a closed edition may open again."""
        if self.status not in (EditionStatus.DRAFT, EditionStatus.CLOSED):
            raise FailedPrecondition(
                f"expo edition {self.edition_id} cannot be opened now",
                reason="EDITION_TRANSITION_NOT_ALLOWED",
            )
        opened = replace(self, status=EditionStatus.OPEN)
        return opened, ExpoOpened(
            edition_id=self.edition_id,
            name=self.name,
            fair_id=self.fair_id,
            starts_on=self.starts_on,
            ends_on=self.ends_on,
            allow_online_only=self.allow_online_only,
        )

    def close(self) -> tuple[Edition, ExpoClosed]:
        if self.status != EditionStatus.OPEN:
            raise FailedPrecondition(
                f"expo edition {self.edition_id} cannot be closed now",
                reason="EDITION_TRANSITION_NOT_ALLOWED",
            )
        return replace(self, status=EditionStatus.CLOSED), ExpoClosed(self.edition_id)

    def ensure_not_closed(self) -> None:
        """Exhibitors join and list products before and while the edition is open."""
        if self.status == EditionStatus.CLOSED:
            raise FailedPrecondition(
                f"expo edition {self.edition_id} is closed", reason="EDITION_CLOSED"
            )

    def ensure_open(self) -> None:
        """Buyers visit and send intents only while the edition is open."""
        if self.status != EditionStatus.OPEN:
            raise FailedPrecondition(
                f"expo edition {self.edition_id} is not open", reason="EDITION_NOT_OPEN"
            )

    def fair_for_joining(self) -> str:
        """The fair whose booth service standing decides how an exporter exhibits (admit);
        asked only while the edition still takes exhibitors."""
        self.ensure_not_closed()
        return self.fair_id

    def admit(
        self, credit_code: str, standing: BoothStanding, now: datetime
    ) -> tuple[Exhibitor, ExhibitorJoined]:
        """A booth holder at the linked fair exhibits with its booth; anyone else only
        online, and only if the edition admits online-only exhibitors."""
        self.ensure_not_closed()
        if standing.has_booth:
            kind = ExhibitorKind.BOOTH
        elif self.allow_online_only:
            kind = ExhibitorKind.ONLINE_ONLY
        else:
            raise FailedPrecondition(
                f"{credit_code} holds no allocated booth at fair {self.fair_id}, and "
                f"expo edition {self.edition_id} admits no online-only exhibitors",
                reason="ONLINE_ONLY_NOT_ADMITTED",
            )
        exhibitor = Exhibitor(
            edition_id=self.edition_id,
            credit_code=credit_code,
            name=standing.name,
            industry=standing.industry,
            kind=kind,
            booth_number=standing.booth_number if standing.has_booth else "",
            joined_at=now,
        )
        joined = ExhibitorJoined(
            edition_id=exhibitor.edition_id,
            credit_code=exhibitor.credit_code,
            name=exhibitor.name,
            industry=exhibitor.industry,
            kind=exhibitor.kind,
            booth_number=exhibitor.booth_number,
        )
        return exhibitor, joined

    def receive_visits(
        self,
        visits: Sequence[Visit],
        *,
        buyer_countries: Mapping[str, str],
        exhibitors: Set[str],
        recorded: Set[str],
        now: datetime,
    ) -> list[ExhibitorVisited]:
        """The visits not recorded before (``recorded`` holds their event ids), each once;
        every visit must name a registered buyer and an exhibitor of this edition."""
        self.ensure_open()
        check = Validator()
        for index, visit in enumerate(visits):
            check.require(
                visit.buyer_id in buyer_countries, f"visits[{index}].buyer_id", "unknown buyer"
            )
            check.require(
                visit.credit_code in exhibitors,
                f"visits[{index}].credit_code",
                "not an exhibitor of this edition",
            )
        check.raise_if_invalid()
        seen = set(recorded)
        events = []
        for visit in visits:
            event_id = visit_event_id(self.edition_id, visit.visit_id)
            if event_id in seen:
                continue
            seen.add(event_id)
            events.append(
                ExhibitorVisited(
                    event_id=event_id,
                    visit_id=visit.visit_id,
                    edition_id=self.edition_id,
                    buyer_id=visit.buyer_id,
                    buyer_country=buyer_countries[visit.buyer_id],
                    credit_code=visit.credit_code,
                    product_id=visit.product_id,
                    visited_at=now,
                )
            )
        return events

    def admit_intent(self, draft: IntentDraft, now: datetime) -> IntentAdmission:
        """Whether the edition takes this intent at ``now``: its deadline must lie ahead
        (a field of the request, so INVALID_ARGUMENT) and the edition be open.

        The deadline is checked here, at the moment of the request's transaction, not when
        the request is decoded: a retry of an accepted intent after its deadline gets the
        first answer back instead of a refusal."""
        check = Validator()
        draft.check_deadline(check, now)
        check.raise_if_invalid()
        self.ensure_open()
        return IntentAdmission(draft, now)


# Exhibitors and their showrooms ----------------------------------------------------------


def exhibitor_id(edition_id: str, credit_code: str) -> str:
    """An exhibitor is an exporter at one edition."""
    return f"{edition_id}:{credit_code}"


@dataclass(frozen=True)
class ProductDraft:
    """A product as its exhibitor (the caller) describes it."""

    edition_id: str
    name: str
    hs_code: str
    description: str
    moq: int
    unit: str
    price_min: Money | None
    price_max: Money | None
    certifications: tuple[str, ...]

    @classmethod
    def parse(
        cls,
        check: Validator,
        *,
        edition_id: str,
        name: str,
        hs_code: str,
        description: str,
        moq: int,
        unit: str,
        price_min: Money,
        price_max: Money,
        certifications: Iterable[str],
    ) -> ProductDraft:
        edition_id = check.identifier(edition_id, "edition_id")
        name = check.text(name, "name")
        hs_code = check.hs_code(hs_code, "hs_code")
        description = check.text(
            description, "description", required=False, max_length=DESCRIPTION_MAX_LENGTH
        )
        check.require(moq >= 0, "moq", "must not be negative")
        unit = check.text(unit, "unit")
        low = optional_money(check, "price_min", price_min)
        high = optional_money(check, "price_max", price_max)
        if low is not None and high is not None:
            check.require(low.currency == high.currency, "price_max.currency", "as price_min")
            check.require(low.as_nanos() <= high.as_nanos(), "price_max", "below price_min")
        return cls(
            edition_id=edition_id,
            name=name,
            hs_code=hs_code,
            description=description,
            moq=moq,
            unit=unit,
            price_min=low,
            price_max=high,
            certifications=tuple(c.strip() for c in certifications if c.strip()),
        )


@dataclass(frozen=True)
class Exhibitor:
    edition_id: str
    credit_code: str
    name: str
    industry: str
    kind: ExhibitorKind
    # Empty for an online-only exhibitor.
    booth_number: str
    joined_at: datetime

    @property
    def exhibitor_id(self) -> str:
        return exhibitor_id(self.edition_id, self.credit_code)

    def list_product(
        self, edition: Edition, draft: ProductDraft, product_id: str
    ) -> tuple[Product, ProductListed]:
        """A product in this exhibitor's showroom at ``edition`` (its own), while the edition
        has not closed."""
        edition.ensure_not_closed()
        product = Product(
            product_id=product_id,
            edition_id=self.edition_id,
            credit_code=self.credit_code,
            name=draft.name,
            hs_code=draft.hs_code,
            description=draft.description,
            moq=draft.moq,
            unit=draft.unit,
            price_min=draft.price_min,
            price_max=draft.price_max,
            certifications=draft.certifications,
        )
        listed = ProductListed(
            product_id=product_id,
            edition_id=self.edition_id,
            credit_code=self.credit_code,
            name=draft.name,
            hs_code=draft.hs_code,
        )
        return product, listed

    def ensure_shows(self, product: Product | None, product_id: str) -> None:
        """An inquiry about a product names one of this exhibitor's products."""
        if product is None or product.credit_code != self.credit_code:
            raise NotFound(f"no product {product_id!r} in the showroom of {self.credit_code}")


@dataclass(frozen=True)
class Product:
    product_id: str
    edition_id: str
    credit_code: str
    name: str
    hs_code: str
    description: str
    moq: int
    # Unit of quantity, e.g. "piece", "kg", "set".
    unit: str
    price_min: Money | None
    price_max: Money | None
    certifications: tuple[str, ...]

    @property
    def hs_heading(self) -> str:
        return hs_heading(self.hs_code)


# Buyers and their visits -----------------------------------------------------------------


@dataclass(frozen=True)
class Contact:
    """Personal data: shown only to the buyer itself, officers and the exhibitors the
    buyer addressed (see handlers.get_buyer)."""

    name: str
    email: str
    phone: str


@dataclass(frozen=True)
class BuyerDraft:
    company: str
    country: str
    buyer_type: BuyerType
    contact: Contact

    @classmethod
    def parse(
        cls,
        check: Validator,
        *,
        company: str,
        country: str,
        buyer_type: int,
        contact_name: str,
        contact_email: str,
        contact_phone: str,
        path: str = "",
    ) -> BuyerDraft:
        """``path`` prefixes field names of a buyer inside a list ("buyers[3].")."""
        company = check.text(company, f"{path}company")
        country = check.country(country, f"{path}country")
        kind = check.member(
            buyer_type,
            BuyerType,
            f"{path}buyer_type",
            description="must be BUYER_TYPE_NEW or BUYER_TYPE_RETURNING",
        )
        email = contact_email.strip()
        check.require(
            not email or bool(EMAIL_PATTERN.match(email)),
            f"{path}contact.email",
            "is not an email address",
        )
        contact = Contact(
            name=check.text(contact_name, f"{path}contact.name", required=False),
            email=email,
            phone=check.text(contact_phone, f"{path}contact.phone", required=False),
        )
        return cls(company, country, kind or BuyerType.NEW, contact)


@dataclass(frozen=True)
class Buyer:
    buyer_id: str
    company: str
    country: str
    buyer_type: BuyerType
    contact: Contact
    registered_at: datetime
    # The identity provider's subject of the buyer that registered itself: the account
    # its tokens are bound to. Empty for a buyer an officer imported.
    subject: str = ""

    @classmethod
    def register(
        cls, draft: BuyerDraft, buyer_id: str, now: datetime, subject: str = ""
    ) -> tuple[Buyer, BuyerRegistered]:
        buyer = cls(
            buyer_id, draft.company, draft.country, draft.buyer_type, draft.contact, now, subject
        )
        return buyer, BuyerRegistered(buyer_id, draft.company, draft.country, draft.buyer_type)


@dataclass(frozen=True)
class Visit:
    # Client-chosen: a visit reported twice counts once.
    visit_id: str
    buyer_id: str
    credit_code: str
    product_id: str

    @classmethod
    def parse(
        cls,
        check: Validator,
        index: int,
        *,
        visit_id: str,
        buyer_id: str,
        credit_code: str,
        product_id: str,
    ) -> Visit:
        field = f"visits[{index}]"
        return cls(
            visit_id=check.identifier(visit_id, f"{field}.visit_id"),
            buyer_id=check.identifier(buyer_id, f"{field}.buyer_id"),
            credit_code=check.credit_code(credit_code, f"{field}.credit_code"),
            product_id=product_id.strip(),
        )


def visit_event_id(edition_id: str, visit_id: str) -> str:
    """The event id of a visit, derived from the client's id: the outbox itself then
    tells which visits were recorded before, with no second write per visit."""
    return str(uuid.uuid5(_VISIT_NAMESPACE, f"{edition_id}:{visit_id}"))


# Intents ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class IntentDraft:
    """What a buyer (the caller) asks for, validated."""

    edition_id: str
    kind: IntentKind
    # The exhibitor an inquiry addresses; empty for an RFQ.
    exhibitor_credit_code: str
    product_id: str
    hs_code: str
    quantity: int
    unit: str
    target_price: Money | None
    incoterm: Incoterm
    destination_country: str
    destination_port: str
    deadline: datetime
    # An RFQ closes once this many quotes arrived; an inquiry after its one quote.
    max_quotes: int

    @classmethod
    def parse(
        cls,
        check: Validator,
        *,
        edition_id: str,
        kind: int,
        exhibitor_credit_code: str,
        product_id: str,
        hs_code: str,
        quantity: int,
        unit: str,
        target_price: Money,
        incoterm: int,
        destination_country: str,
        destination_port: str,
        deadline: datetime | None,
        max_quotes: int,
    ) -> IntentDraft:
        """The request's terms; of the deadline only that it is there: whether it lies
        ahead depends on the moment of submission (check_deadline, by Edition.admit_intent)."""
        edition_id = check.identifier(edition_id, "edition_id")
        intent_kind = check.member(
            kind, IntentKind, "kind", description="must be INTENT_KIND_INQUIRY or INTENT_KIND_RFQ"
        )
        intent_kind = intent_kind or IntentKind.RFQ
        exhibitor = ""
        if intent_kind == IntentKind.INQUIRY:
            exhibitor = check.credit_code(exhibitor_credit_code, "exhibitor_credit_code")
        hs_code = check.hs_code(hs_code, "hs_code")
        check.require(quantity > 0, "quantity", "must be positive")
        unit = check.text(unit, "unit")
        price = optional_money(check, "target_price", target_price)
        rule = parse_incoterm(check, incoterm)
        country = check.country(destination_country, "destination_country")
        if deadline is None:
            check.require(False, "deadline", "is required")
            deadline = datetime.min.replace(tzinfo=UTC)
        if intent_kind == IntentKind.RFQ:
            check.require(
                0 <= max_quotes <= MAX_QUOTES_LIMIT, "max_quotes", f"0 to {MAX_QUOTES_LIMIT}"
            )
            max_quotes = max_quotes or DEFAULT_MAX_QUOTES
        else:
            max_quotes = 1
        return cls(
            edition_id=edition_id,
            kind=intent_kind,
            exhibitor_credit_code=exhibitor,
            product_id=product_id.strip(),
            hs_code=hs_code,
            quantity=quantity,
            unit=unit,
            target_price=price,
            incoterm=rule,
            destination_country=country,
            destination_port=destination_port.strip(),
            deadline=deadline,
            max_quotes=max_quotes,
        )

    @property
    def hs_heading(self) -> str:
        return hs_heading(self.hs_code)

    def check_deadline(self, check: Validator, now: datetime) -> None:
        """The deadline of an intent submitted at ``now`` lies after it, by at most
        MAX_INTENT_LIFETIME."""
        check.require(self.deadline > now, "deadline", "must be in the future")
        check.require(
            self.deadline <= now + MAX_INTENT_LIFETIME, "deadline", "at most 180 days from now"
        )

    def recipients(
        self,
        *,
        exhibitor: Exhibitor | None = None,
        product: Product | None = None,
        listings: Iterable[tuple[str, str]] = (),
    ) -> list[str]:
        """The exhibitors the intent reaches, or why none would receive it.

        An inquiry reaches the exhibitor it names (``exhibitor``, None when that exporter
        does not exhibit at the edition), about one of its products if it names one
        (``product``, None when there is no such product). An RFQ reaches every exhibitor
        among ``listings`` (the edition's (credit code, HS code) pairs under its HS
        heading) with a product under that heading, and is refused when there is none."""
        if self.kind == IntentKind.INQUIRY:
            if exhibitor is None:
                raise NotFound(
                    f"{self.exhibitor_credit_code} is not an exhibitor of expo edition "
                    f"{self.edition_id}"
                )
            if self.product_id:
                exhibitor.ensure_shows(product, self.product_id)
            return [exhibitor.credit_code]
        recipients = rfq_recipients(self.hs_code, listings)
        if not recipients:
            raise FailedPrecondition(
                f"no exhibitor of {self.edition_id} lists products under HS heading "
                f"{self.hs_heading}",
                reason="NO_RFQ_RECIPIENTS",
            )
        return recipients


@dataclass(frozen=True)
class IntentAdmission:
    """An open edition's yes to an intent submitted at this moment (Edition.admit_intent)."""

    draft: IntentDraft
    at: datetime


def rfq_recipients(hs_code: str, listings: Iterable[tuple[str, str]]) -> list[str]:
    """Every exhibitor with a product under the intent's HS heading, each once, sorted.

    ``listings`` are (credit code, product HS code) pairs of the edition's showrooms.
    """
    heading = hs_heading(hs_code)
    return sorted({code for code, product_hs in listings if hs_heading(product_hs) == heading})


@dataclass(frozen=True)
class RateLimit:
    """At most ``intents`` intents per buyer in each fixed window."""

    intents: int
    window: timedelta

    def slot(self, buyer_id: str, now: datetime) -> str:
        """The counter a buyer's intent at ``now`` takes a slot of."""
        return f"{buyer_id}:{rate_window(now, self.window)}"

    def admit(self, buyer_id: str, taken: int) -> None:
        """``taken`` counts the slots of the window, this intent's included."""
        if taken > self.intents:
            raise ResourceExhausted(
                f"buyer {buyer_id} may submit {self.intents} intents per "
                f"{int(self.window.total_seconds())} s; try again later"
            )


def rate_window(now: datetime, window: timedelta) -> str:
    """The fixed window a moment falls in, as a stable key."""
    seconds = int(window.total_seconds())
    return str(int(now.timestamp()) // seconds * seconds)


@dataclass(frozen=True)
class Answer:
    """An addressed exhibitor's quote or decline, validated; the exhibitor is the caller."""

    intent_id: str
    kind: ResponseKind
    unit_price: Money | None = None
    moq: int = 0
    lead_time_days: int = 0
    incoterm: Incoterm | None = None
    valid_until: datetime | None = None
    reason: str = ""

    @classmethod
    def parse(
        cls,
        check: Validator,
        *,
        intent_id: str,
        kind: int,
        unit_price: Money,
        moq: int,
        lead_time_days: int,
        incoterm: int,
        valid_until: datetime | None,
        reason: str,
    ) -> Answer:
        intent_id = check.identifier(intent_id, "intent_id")
        if kind == ResponseKind.QUOTED:
            price = required_money(check, "unit_price", unit_price)
            check.require(moq >= 0, "moq", "must not be negative")
            check.require(
                0 <= lead_time_days <= MAX_LEAD_TIME_DAYS,
                "lead_time_days",
                f"0 to {MAX_LEAD_TIME_DAYS} days",
            )
            rule = parse_incoterm(check, incoterm)
            check.require(valid_until is not None, "valid_until", "is required")
            return cls(
                intent_id,
                ResponseKind.QUOTED,
                unit_price=price,
                moq=moq,
                lead_time_days=lead_time_days,
                incoterm=rule,
                valid_until=valid_until,
            )
        if kind == ResponseKind.DECLINED:
            reason = check.text(reason, "reason", required=False)
            return cls(intent_id, ResponseKind.DECLINED, reason=reason)
        check.require(False, "kind", "must be RESPONSE_KIND_QUOTED or RESPONSE_KIND_DECLINED")
        return cls(intent_id, ResponseKind.DECLINED)


@dataclass(frozen=True)
class Response:
    """An exhibitor's answer to an intent, as it stands on the intent."""

    credit_code: str
    kind: ResponseKind
    responded_at: datetime
    # From the intent's submission to this answer.
    response_seconds: int
    unit_price: Money | None = None
    moq: int = 0
    lead_time_days: int = 0
    incoterm: Incoterm | None = None
    valid_until: datetime | None = None
    reason: str = ""


@dataclass(frozen=True)
class Intent:
    intent_id: str
    edition_id: str
    buyer_id: str
    buyer_country: str
    kind: IntentKind
    exhibitor_credit_code: str
    product_id: str
    hs_code: str
    quantity: int
    unit: str
    target_price: Money | None
    incoterm: Incoterm
    destination_country: str
    destination_port: str
    deadline: datetime
    max_quotes: int
    state: IntentState
    # The exhibitors it reached.
    recipients: tuple[str, ...]
    responses: tuple[Response, ...]
    submitted_at: datetime
    # Why it closed or expired: "max_quotes", "buyer" or "deadline"; empty while open.
    finished_reason: str = ""

    @classmethod
    def submit(
        cls,
        admission: IntentAdmission,
        *,
        intent_id: str,
        buyer: Buyer,
        recipients: Sequence[str],
        reached: Iterable[Exhibitor],
    ) -> tuple[Intent, list[IntentSubmitted | RfqMatched]]:
        """The intent the edition admitted, matched to ``recipients`` (IntentDraft.recipients;
        ``reached`` are those exhibitors)."""
        draft = admission.draft
        intent = cls(
            intent_id=intent_id,
            edition_id=draft.edition_id,
            buyer_id=buyer.buyer_id,
            buyer_country=buyer.country,
            kind=draft.kind,
            exhibitor_credit_code=draft.exhibitor_credit_code,
            product_id=draft.product_id,
            hs_code=draft.hs_code,
            quantity=draft.quantity,
            unit=draft.unit,
            target_price=draft.target_price,
            incoterm=draft.incoterm,
            destination_country=draft.destination_country,
            destination_port=draft.destination_port,
            deadline=draft.deadline,
            max_quotes=draft.max_quotes,
            state=IntentState.MATCHED,
            recipients=tuple(recipients),
            responses=(),
            submitted_at=admission.at,
        )
        submitted = IntentSubmitted(
            intent_id=intent_id,
            edition_id=intent.edition_id,
            buyer_id=intent.buyer_id,
            buyer_country=intent.buyer_country,
            kind=intent.kind,
            hs_code=intent.hs_code,
            quantity=intent.quantity,
            unit=intent.unit,
            target_price=intent.target_price,
            incoterm=intent.incoterm,
            destination_country=intent.destination_country,
            deadline=intent.deadline,
            industries=tuple(sorted({e.industry for e in reached if e.industry})),
            recipients=intent.recipients,
        )
        events: list[IntentSubmitted | RfqMatched] = [submitted]
        if intent.kind == IntentKind.RFQ:
            events.append(RfqMatched(intent_id, intent.edition_id, intent.recipients))
        return intent, events

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def quotes(self) -> int:
        return sum(1 for r in self.responses if r.kind == ResponseKind.QUOTED)

    def is_due(self, now: datetime) -> bool:
        """Open past its deadline: the deadline settles it."""
        return self.is_open and self.deadline <= now

    def respond(
        self, responder: str, answer: Answer, now: datetime
    ) -> tuple[Intent, list[QuoteSent | IntentDeclined | IntentClosed]]:
        """Exhibitor ``responder``, addressed, quotes or declines, once, while the intent
        is open.

        Enough quotes close it; a first quote makes it QUOTED; the last of all
        recipients declining makes it DECLINED.

        The deadline comes first: an overdue intent is settled (settle_if_due) before a
        response is considered, in a transaction of its own, and the response is then
        refused; refusing it must not undo the settling. Here an overdue intent is only
        refused, for a caller that did not settle it."""
        if self.is_due(now):
            raise FailedPrecondition(
                f"intent {self.intent_id} passed its deadline", reason="INTENT_PAST_DEADLINE"
            )
        if not self.is_open:
            raise FailedPrecondition(
                f"the intent is {self.state.name.lower()}; it takes no more responses",
                reason="INTENT_NOT_OPEN",
            )
        if responder not in self.recipients:
            raise FailedPrecondition(
                f"exhibitor {responder} was not addressed by this intent", reason="NOT_ADDRESSED"
            )
        if any(r.credit_code == responder for r in self.responses):
            raise FailedPrecondition(
                f"exhibitor {responder} has already responded", reason="ALREADY_RESPONDED"
            )
        response = Response(
            credit_code=responder,
            kind=answer.kind,
            responded_at=now,
            response_seconds=int((now - self.submitted_at).total_seconds()),
            unit_price=answer.unit_price,
            moq=answer.moq,
            lead_time_days=answer.lead_time_days,
            incoterm=answer.incoterm,
            valid_until=answer.valid_until,
            reason=answer.reason,
        )
        answered = replace(self, responses=(*self.responses, response))
        quotes = answered.quotes
        all_declined = not quotes and len(answered.responses) == len(self.recipients)
        events: list[QuoteSent | IntentDeclined | IntentClosed]
        if answer.kind == ResponseKind.QUOTED:
            events = [QuoteSent(self.intent_id, self.edition_id, response)]
        else:
            events = [IntentDeclined(self.intent_id, self.edition_id, response, all_declined)]
        if quotes >= self.max_quotes:
            closed, closing = answered._close("max_quotes")
            return closed, [*events, closing]
        if quotes:
            return replace(answered, state=IntentState.QUOTED), events
        if all_declined:
            return replace(answered, state=IntentState.DECLINED), events
        return answered, events

    def close_by(self, buyer_id: str) -> tuple[Intent, IntentClosed]:
        """The buyer closes its own open intent."""
        if buyer_id != self.buyer_id:
            raise FailedPrecondition(
                f"intent {self.intent_id} belongs to another buyer", reason="NOT_INTENT_OWNER"
            )
        if not self.is_open:
            raise FailedPrecondition(
                f"intent {self.intent_id} is {self.state.name.lower()} already",
                reason="INTENT_NOT_OPEN",
            )
        return self._close("buyer")

    def settle_if_due(self, now: datetime) -> tuple[Intent, list[IntentClosed | IntentExpired]]:
        """What the deadline does to the intent at ``now``: past it an open intent closes
        if someone quoted and expires otherwise; before it (or once finished) nothing
        happens (no events). Due before any response is considered (see respond), and by
        the expiry sweep."""
        if not self.is_due(now):
            return self, []
        if self.state == IntentState.QUOTED:
            closed, event = self._close("deadline")
            return closed, [event]
        expired = replace(self, state=IntentState.EXPIRED, finished_reason="deadline")
        return expired, [IntentExpired(self.intent_id, self.edition_id)]

    def _close(self, reason: str) -> tuple[Intent, IntentClosed]:
        closed = replace(self, state=IntentState.CLOSED, finished_reason=reason)
        return closed, IntentClosed(self.intent_id, self.edition_id, self.quotes, reason)


@dataclass(frozen=True)
class WarehouseHint:
    """A public overseas warehouse serving an intent's destination country."""

    code: str
    name: str
    country: str
    city: str
    services: tuple[str, ...]


# Queries ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductQuery:
    """An edition's products, optionally of one exhibitor or under one HS heading."""

    edition_id: str
    credit_code: str = ""
    hs_heading: str = ""


@dataclass(frozen=True)
class IntentQuery:
    """An edition's intents, optionally of one buyer, reaching one exhibitor, or in one
    state (0: any)."""

    edition_id: str
    buyer_id: str = ""
    recipient: str = ""
    state: int = 0
