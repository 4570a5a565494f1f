"""Notification texts: every kind renders in Chinese and English from exactly the facts
the domain gives it (a missing fact fails: StrictUndefined), money reads as yuan, and
every notification makes an e-mail with a subject, a text and an escaped HTML part."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import jinja2
import pytest

from notify import domain, templates
from notify.domain import Draft, Kind, Known, Reader
from runtime.kernel.identity import Role
from tests.credit_codes import random_credit_code

NOW = datetime(2026, 7, 1, 9, 30, tzinfo=UTC)
EXPORTER = random_credit_code()
CJK = re.compile(r"[\u4e00-\u9fff]")


def _facts() -> list[domain.Fact]:
    at: dict[str, object] = {"event_id": "e-1", "occurred_at": NOW}
    booth = {"application_id": "app-1", "fair_id": "canton-139", "booth_type": "BRAND"}
    intent = {"intent_id": "intent-1", "edition_id": "cloud-expo-2026"}
    period = {
        "reservation_id": "r-1",
        "warehouse_code": "HAM-1",
        "exporter_credit_code": EXPORTER,
        "pallet_positions": 40,
        "cubic_metres": 120,
        "start_date": date(2026, 7, 1),
        "end_date": date(2026, 8, 1),
        "operator_id": "henan-logistics",
    }
    submitted = {
        **intent,
        "buyer_id": "buyer-1",
        "buyer_country": "DE",
        "hs_code": "670420",
        "quantity": 5000,
        "unit": "pieces",
        "deadline": NOW + timedelta(days=7),
        "recipients": (EXPORTER,),
    }
    return [
        domain.FairOpened(
            **at,
            fair_id="canton-139",
            name="第139届广交会",
            session="第一期",
            hs_headings=("6704", "8501"),
        ),
        domain.ApplicationScored(**at, **booth, score=87),
        domain.BoothAllocated(**at, **booth, credit_code=EXPORTER, booth_number="12.1A01", quota=1),
        domain.ApplicationWaitlisted(**at, **booth, position=3),
        domain.WaitlistPromoted(**at, **booth, booth_number="12.1A02"),
        domain.ApplicationRejected(**at, **booth, reason="营业执照已过期"),
        domain.ApplicationWithdrawn(
            **at, **booth, credit_code=EXPORTER, booth_number="12.1A01", penalty_fen=123_450
        ),
        domain.AllocationCompleted(
            **at,
            fair_id="canton-139",
            booth_type="STANDARD",
            quota=10,
            allocated=10,
            waitlisted=4,
            rejected=1,
        ),
        domain.IntentSubmitted(**at, **submitted, kind="INQUIRY"),
        domain.IntentSubmitted(**at, **submitted, kind="RFQ"),
        domain.QuoteSent(
            **at,
            **intent,
            credit_code=EXPORTER,
            currency="USD",
            unit_price=Decimal("12.5"),
            moq=100,
            lead_time_days=30,
            incoterm="FOB",
            valid_until=NOW + timedelta(days=30),
        ),
        domain.IntentDeclined(
            **at, **intent, credit_code=EXPORTER, reason="out of stock", all_declined=True
        ),
        domain.IntentClosed(**at, **intent, quotes=3, reason="max_quotes"),
        domain.IntentExpired(**at, **intent),
        domain.CapacityReserved(**at, **period, peak_utilisation_percent=95),
        domain.ReservationCancelled(**at, **period, reason="plans changed"),
    ]


def drafts() -> dict[Kind, Draft]:
    """One draft of every kind, with the facts the domain gives it."""
    known = Known(applicant=EXPORTER, buyer="buyer-1", followers=(EXPORTER,), allocated=1)
    made = {draft.kind: draft for fact in _facts() for draft in domain.drafts_for(fact, known)}
    made[Kind.DAILY_DIGEST] = domain.digest_draft(
        date(2026, 6, 30), {"chuhai.booth.v1.BoothAllocated": 3, "chuhai.expo.v1.QuoteSent": 5}
    )
    return made


DRAFTS = drafts()


def test_the_samples_cover_every_kind() -> None:
    assert set(DRAFTS) == set(Kind)


@pytest.mark.parametrize("kind", list(Kind), ids=lambda kind: kind.name)
def test_every_kind_renders_in_chinese_and_english(kind: Kind) -> None:
    facts = dict(DRAFTS[kind].facts)
    chinese = templates.render(kind, facts, "zh")
    english = templates.render(kind, facts, "en")
    for text in (chinese, english):
        assert text.title and text.body
        assert "\n" not in text.title
    assert CJK.search(chinese.title) and CJK.search(chinese.body)
    # English texts show Chinese only where a fact is Chinese (a fair's name, a reason).
    assert not CJK.search(english.title.replace("第139届广交会", ""))
    assert chinese.body != english.body


@pytest.mark.parametrize("kind", list(Kind), ids=lambda kind: kind.name)
@pytest.mark.parametrize("language", ["zh", "en"])
def test_a_missing_fact_fails_the_render(kind: Kind, language: str) -> None:
    with pytest.raises(jinja2.UndefinedError):
        templates.render(kind, {}, language)


def test_texts_say_what_happened() -> None:
    allocated = dict(DRAFTS[Kind.BOOTH_ALLOCATED].facts)
    # Chinese text punctuates with full-width marks, which ruff takes for look-alikes.
    assert templates.render(Kind.BOOTH_ALLOCATED, allocated, "zh") == templates.Rendered(
        "展位分配结果：获得展位 12.1A01",  # noqa: RUF001
        "恭喜！您在展会 canton-139 的品牌展位申请（app-1）已获分配，展位号 12.1A01。",  # noqa: RUF001
    )
    english = templates.render(Kind.BOOTH_ALLOCATED, allocated, "en")
    assert english.title == "Booth 12.1A01 allocated to you"
    rfq = templates.render(Kind.RFQ_MATCHED, dict(DRAFTS[Kind.RFQ_MATCHED].facts), "en")
    assert "HS code 670420, quantity 5000 pieces" in rfq.body
    assert "2026-07-08 09:30 UTC" in rfq.body


def test_money_in_fen_reads_as_yuan_with_two_decimals() -> None:
    facts = dict(DRAFTS[Kind.PENALTY_CHARGED].facts)
    assert "1,234.50 元" in templates.render(Kind.PENALTY_CHARGED, facts, "zh").body
    assert "CNY 1,234.50" in templates.render(Kind.PENALTY_CHARGED, facts, "en").body
    facts["penalty_fen"] = "5"
    assert "0.05 元" in templates.render(Kind.PENALTY_CHARGED, facts, "zh").title


def test_a_periods_last_day_is_the_day_before_its_exclusive_end() -> None:
    body = templates.render(Kind.WAREHOUSE_BOOKED, dict(DRAFTS[Kind.WAREHOUSE_BOOKED].facts), "zh")
    assert "2026-07-01 至 2026-07-31" in body.body


def test_the_digest_lists_counts_most_frequent_first() -> None:
    digest = templates.render(Kind.DAILY_DIGEST, dict(DRAFTS[Kind.DAILY_DIGEST].facts), "zh")
    assert digest.title == "每日动态：2026-06-30"  # noqa: RUF001
    assert digest.body.splitlines() == [
        "2026-06-30 平台共处理 8 个事件：",  # noqa: RUF001
        "· 展商报价：5",  # noqa: RUF001
        "· 展位分配：3",  # noqa: RUF001
    ]
    quiet = domain.digest_draft(date(2026, 6, 30), {})
    assert "没有新的动态" in templates.render(Kind.DAILY_DIGEST, dict(quiet.facts), "zh").body


def test_an_unknown_language_reads_as_chinese() -> None:
    facts = dict(DRAFTS[Kind.INTENT_EXPIRED].facts)
    assert templates.render(Kind.INTENT_EXPIRED, facts, "fr") == templates.render(
        Kind.INTENT_EXPIRED, facts, "zh"
    )


def test_a_title_is_one_line_whatever_the_facts_hold() -> None:
    facts = dict(DRAFTS[Kind.FAIR_OPENED].facts) | {"fair_name": "Canton\nFair"}
    assert templates.render(Kind.FAIR_OPENED, facts, "en").title == (
        "Open for applications: Canton Fair"
    )


# E-mail.


def notification(kind: Kind, language: str, **facts: str) -> domain.Notification:
    draft = DRAFTS[kind]
    merged = dict(draft.facts) | facts
    rendered = templates.render(kind, merged, language)
    return domain.Notification(
        notification_id=draft.notification_id,
        reader=Reader(Role.EXPORTER, EXPORTER),
        kind=kind,
        title=rendered.title,
        body=rendered.body,
        language=language,
        facts=merged,
        event_id="e-1",
        created_at=NOW,
    )


@pytest.mark.parametrize("kind", list(Kind), ids=lambda kind: kind.name)
@pytest.mark.parametrize("language", ["zh", "en"])
def test_every_notification_makes_an_email(kind: Kind, language: str) -> None:
    note = notification(kind, language)
    mail = templates.render_mail(note)
    assert note.title in mail.subject
    assert "\n" not in mail.subject
    assert note.title in mail.text
    assert mail.html.startswith("<!DOCTYPE html>")
    assert f'<html lang="{language}">' in mail.html
    for line in note.body.splitlines():
        assert line in mail.text


def test_the_mail_is_in_the_notifications_language() -> None:
    chinese = templates.render_mail(notification(Kind.INTENT_EXPIRED, "zh"))
    english = templates.render_mail(notification(Kind.INTENT_EXPIRED, "en"))
    assert chinese.subject.startswith("【出海】")
    assert "通知偏好" in chinese.text
    assert english.subject.startswith("[Chuhai] ")
    assert "notification preferences" in english.text


def test_the_html_part_escapes_what_facts_bring_and_the_text_keeps_it() -> None:
    reason = "<script>alert('x')</script> & more"
    mail = templates.render_mail(notification(Kind.APPLICATION_REJECTED, "en", reason=reason))
    assert reason not in mail.html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more" in mail.html
    assert reason in mail.text
