"""Notification texts, in Chinese and English, from the jinja2 templates next to this
module: templates/<language>/<kind>.j2 holds a kind's title and body blocks,
templates/<language>/mail.j2 an e-mail's subject and footer, and templates/mail/ the
e-mail itself (plain text, and HTML with autoescape).

Templates read the facts as ``f`` (f.booth_number); undefined names fail the render
(StrictUndefined), so a fact a template needs and the domain does not give fails a test
instead of printing an empty string."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import jinja2

from notify.domain import DEFAULT_LANGUAGE, DIGEST_COUNT_PREFIX, LANGUAGES, Kind, Notification

TEMPLATES = Path(__file__).parent / "templates"

_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    undefined=jinja2.StrictUndefined,
    autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class Rendered:
    title: str
    body: str


@dataclass(frozen=True)
class Mail:
    subject: str
    text: str
    html: str


# Words the templates show for vocabulary the facts carry as codes: booth types, how an
# intent was closed, and event types (the digest).
_LABELS: dict[str, dict[str, str]] = {
    "zh": {
        "STANDARD": "标准展位",
        "BRAND": "品牌展位",
        "closed:max_quotes": "已收到足够的报价",
        "closed:buyer": "由您关闭",
        "closed:deadline": "已到截止时间",
        "ExporterRegistered": "出口企业注册",
        "ExporterUpdated": "企业信息更新",
        "FairCreated": "展会创建",
        "FairOpened": "展会开放申请",
        "FairClosed": "展会截止申请",
        "BoothApplicationSubmitted": "展位申请提交",
        "BoothApplicationScored": "展位申请评分",
        "BoothAllocated": "展位分配",
        "BoothApplicationWaitlisted": "列入候补",
        "BoothApplicationRejected": "申请未通过",
        "BoothApplicationWithdrawn": "申请撤回",
        "WaitlistPromoted": "候补递补",
        "AllocationCompleted": "分配完成",
        "BuyerRegistered": "买家注册",
        "ExpoOpened": "云展会开幕",
        "ExpoClosed": "云展会闭幕",
        "ExhibitorJoined": "展商入驻",
        "ProductListed": "产品上架",
        "ExhibitorVisited": "买家访问展商",
        "IntentSubmitted": "采购意向",
        "RfqMatched": "RFQ 匹配",
        "QuoteSent": "展商报价",
        "IntentDeclined": "展商婉拒",
        "IntentClosed": "意向关闭",
        "IntentExpired": "意向过期",
        "WarehouseRegistered": "海外仓登记",
        "WarehouseUpdated": "海外仓信息更新",
        "WarehouseSuspended": "海外仓暂停",
        "WarehouseReactivated": "海外仓恢复",
        "CapacityReserved": "仓位预订",
        "ReservationCancelled": "预订取消",
    },
    "en": {
        "STANDARD": "standard booth",
        "BRAND": "brand booth",
        "closed:max_quotes": "it received enough quotes",
        "closed:buyer": "you closed it",
        "closed:deadline": "its deadline passed",
        "ExporterRegistered": "Exporters registered",
        "ExporterUpdated": "Exporter profiles updated",
        "FairCreated": "Fairs created",
        "FairOpened": "Fairs opened for applications",
        "FairClosed": "Fairs closed for applications",
        "BoothApplicationSubmitted": "Booth applications submitted",
        "BoothApplicationScored": "Applications scored",
        "BoothAllocated": "Booths allocated",
        "BoothApplicationWaitlisted": "Applications waitlisted",
        "BoothApplicationRejected": "Applications rejected",
        "BoothApplicationWithdrawn": "Applications withdrawn",
        "WaitlistPromoted": "Waitlist promotions",
        "AllocationCompleted": "Allocation runs completed",
        "BuyerRegistered": "Buyers registered",
        "ExpoOpened": "Expo editions opened",
        "ExpoClosed": "Expo editions closed",
        "ExhibitorJoined": "Exhibitors joined",
        "ProductListed": "Products listed",
        "ExhibitorVisited": "Exhibitor visits",
        "IntentSubmitted": "Purchase intents",
        "RfqMatched": "RFQs matched",
        "QuoteSent": "Quotes sent",
        "IntentDeclined": "Intents declined",
        "IntentClosed": "Intents closed",
        "IntentExpired": "Intents expired",
        "WarehouseRegistered": "Warehouses registered",
        "WarehouseUpdated": "Warehouses updated",
        "WarehouseSuspended": "Warehouses suspended",
        "WarehouseReactivated": "Warehouses reactivated",
        "CapacityReserved": "Warehouse bookings",
        "ReservationCancelled": "Bookings cancelled",
    },
}


def _yuan(fen: str | int) -> str:
    """An amount in fen (1/100 yuan) as yuan with two decimals: "123450" -> "1,234.50"."""
    return f"{Decimal(int(fen)).scaleb(-2):,.2f}"


def _moment(text: str) -> str:
    """An RFC 3339 moment as the reader reads it: "2026-07-01 08:00 UTC"."""
    return datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M UTC")


def _last_day(text: str) -> str:
    """The last day of a period given by its exclusive end date."""
    return (date.fromisoformat(text) - timedelta(days=1)).isoformat()


_environment.filters.update(yuan=_yuan, moment=_moment, last_day=_last_day)


def _language(language: str) -> str:
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


def render(kind: Kind, facts: Mapping[str, str], language: str) -> Rendered:
    """A notification's title and body in ``language`` ("zh" or "en"; anything else
    reads as the default, Chinese)."""
    language = _language(language)
    labels = _LABELS[language]
    title, body = _blocks(
        f"{language}/{kind.name.lower()}.j2",
        ("title", "body"),
        {
            "f": dict(facts),
            "label": lambda code: labels.get(code, code),
            # The digest's counts: (event type, number), most frequent first.
            "counts": sorted(
                (
                    (name.removeprefix(DIGEST_COUNT_PREFIX), int(value))
                    for name, value in facts.items()
                    if name.startswith(DIGEST_COUNT_PREFIX)
                ),
                key=lambda item: (-item[1], item[0]),
            ),
        },
    )
    # A title is one line wherever it goes (a list, an e-mail's Subject header), whatever
    # line breaks a fact such as a fair's name brings.
    return Rendered(" ".join(title.split()), body)


def _blocks(name: str, names: tuple[str, ...], variables: dict[str, object]) -> list[str]:
    template = _environment.get_template(name)
    context = template.new_context(variables)
    return ["".join(template.blocks[block](context)).strip() for block in names]


def render_mail(notification: Notification) -> Mail:
    """The e-mail of a notification, in the language it was made in."""
    language = _language(notification.language)
    subject, brand, footer = _blocks(
        f"{language}/mail.j2", ("subject", "brand", "footer"), {"title": notification.title}
    )
    context = {
        "title": notification.title,
        "paragraphs": [line for line in notification.body.splitlines() if line.strip()],
        "brand": brand,
        "footer": footer,
        "language": language,
    }
    return Mail(
        subject=subject,
        text=_environment.get_template("mail/message.txt.j2").render(context),
        html=_environment.get_template("mail/message.html.j2").render(context),
    )
