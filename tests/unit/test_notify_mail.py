"""The e-mail sender: the message it builds, and each answer of a real SMTP server
(aiosmtpd, started here on a free port) classified for the retry rules."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import parsedate_to_datetime

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from notify.mail import MailSender
from notify.templates import Mail
from notify.webhooks import SendOutcome
from runtime.adapters.settings import Settings

MAIL = Mail(
    subject="展位分配结果 广交会第 137 届",
    text="您的展位申请已分配展位 A-12。\n",
    html="<p>您的展位申请已分配展位 <b>A-12</b>。</p>",
)


def _parse(data: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


@dataclass
class SmtpServer:
    """Accepts mail, except for a few recipients that get the answers under test."""

    port: int = 0
    received: list[Envelope] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 <nobody@example.com>: Recipient address rejected"
        if address.startswith("greylisted@"):
            return "451 4.7.1 Greylisted, please try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if "spamtrap@example.com" in envelope.rcpt_tos:
            return "554 5.7.1 Message rejected\r\n"
        self.received.append(envelope)
        return "250 OK"


@pytest.fixture
async def smtp_server() -> AsyncIterator[SmtpServer]:
    found = SmtpServer()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(found, hostname="test-smtp", loop=loop), "127.0.0.1", 0
    )
    found.port = int(server.sockets[0].getsockname()[1])
    try:
        yield found
    finally:
        server.close()
        await server.wait_closed()


def _sender(port: int, **options: object) -> MailSender:
    settings = Settings(smtp_host="127.0.0.1", smtp_port=port, **options)
    return MailSender.from_settings(settings)


def test_not_configured_without_a_host() -> None:
    assert not MailSender.from_settings(Settings(smtp_host="")).configured
    assert MailSender.from_settings(Settings(smtp_host="smtp.example.com")).configured


def test_starttls_and_tls_together_are_refused() -> None:
    with pytest.raises(ValueError, match="SMTP_STARTTLS and SMTP_TLS"):
        MailSender.from_settings(Settings(smtp_host="x", smtp_starttls=True, smtp_tls=True))


def test_the_message_carries_text_html_and_encoded_chinese_headers() -> None:
    sender = MailSender.from_settings(
        Settings(smtp_host="x", notify_mail_from="出海通知 <notify@chuhai.example>")
    )

    built = sender.message("firm@example.com", MAIL, message_key="d" * 32)
    wire = built.as_bytes()
    parsed = _parse(wire)

    # Encoded words on the wire, the Chinese back when read.
    assert wire.isascii()
    assert parsed["Subject"] == MAIL.subject
    assert parsed["From"].addresses[0].display_name == "出海通知"
    assert parsed["From"].addresses[0].addr_spec == "notify@chuhai.example"
    assert parsed["To"] == "firm@example.com"
    assert parsed["Message-ID"] == f"<{'d' * 32}@chuhai.example>"
    assert parsedate_to_datetime(parsed["Date"]).tzinfo is not None
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed.get_body(("plain",)).get_content() == MAIL.text
    assert parsed.get_body(("html",)).get_content().strip() == MAIL.html


def test_message_ids_are_unique_without_a_key() -> None:
    sender = MailSender.from_settings(Settings(smtp_host="x"))
    first = sender.message("a@example.com", MAIL)["Message-ID"]
    second = sender.message("a@example.com", MAIL)["Message-ID"]
    assert first != second
    assert first.endswith("@chuhai.localhost>")


async def test_a_message_reaches_the_server(smtp_server: SmtpServer) -> None:
    outcome = await _sender(smtp_server.port).send("firm@example.com", MAIL)

    assert outcome == SendOutcome(ok=True, retryable=False, error="")
    [envelope] = smtp_server.received
    assert envelope.mail_from == "notify@chuhai.localhost"
    assert envelope.rcpt_tos == ["firm@example.com"]
    assert envelope.original_content is not None
    parsed = _parse(envelope.original_content)
    assert parsed["From"] == "Chuhai <notify@chuhai.localhost>"
    assert parsed["To"] == "firm@example.com"
    assert parsed["Subject"] == MAIL.subject
    assert parsed.get_body(("plain",)).get_content() == MAIL.text
    assert parsed.get_body(("html",)).get_content().strip() == MAIL.html


async def test_a_refused_recipient_is_permanent(smtp_server: SmtpServer) -> None:
    outcome = await _sender(smtp_server.port).send("nobody@example.com", MAIL)

    assert outcome == SendOutcome(
        ok=False,
        retryable=False,
        error="550 5.1.1 <nobody@example.com>: Recipient address rejected",
    )
    assert smtp_server.received == []


async def test_a_temporary_refusal_is_retried(smtp_server: SmtpServer) -> None:
    outcome = await _sender(smtp_server.port).send("greylisted@example.com", MAIL)

    assert outcome == SendOutcome(
        ok=False, retryable=True, error="451 4.7.1 Greylisted, please try again later"
    )


async def test_a_message_refused_after_data_is_permanent(smtp_server: SmtpServer) -> None:
    outcome = await _sender(smtp_server.port).send("spamtrap@example.com", MAIL)

    assert outcome == SendOutcome(ok=False, retryable=False, error="554 5.7.1 Message rejected")


async def test_no_server_is_retried() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = int(sock.getsockname()[1])

    outcome = await _sender(closed).send("firm@example.com", MAIL)

    assert outcome == SendOutcome(ok=False, retryable=True, error="connection refused")


async def test_a_server_that_never_answers_is_retried_after_the_timeout() -> None:
    silent_connections: list[asyncio.StreamWriter] = []

    async def never_greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent_connections.append(writer)

    server = await asyncio.start_server(never_greet, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    try:
        outcome = await _sender(port, smtp_timeout_seconds=0.2).send("firm@example.com", MAIL)
    finally:
        for writer in silent_connections:
            writer.close()
        server.close()
        await server.wait_closed()

    assert outcome == SendOutcome(ok=False, retryable=True, error="timed out after 0.2 s")
    assert silent_connections, "the sender never connected"


@pytest.mark.parametrize(
    "address", ["", "a@example.com, b@example.com", "a@example.com\r\nBcc: b@example.com", "<>"]
)
async def test_anything_but_one_address_is_refused_before_sending(
    smtp_server: SmtpServer, address: str
) -> None:
    outcome = await _sender(smtp_server.port).send(address, MAIL)

    assert not outcome.ok
    assert not outcome.retryable
    assert outcome.error.startswith(f"cannot send to {address!r}: "), outcome.error
    assert smtp_server.received == []
