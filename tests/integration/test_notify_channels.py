"""notify's delivery channels against real servers started here (no Kafka, no MongoDB):
e-mail over STARTTLS with a login, over TLS from the start, and into the embedded rung's
mail catcher from a rendered notification; a webhook signed as notify signs it, verified
by a receiver written here. Certificates come from a CA made by trustme."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from launcher.mailbox import Mailbox
from notify.domain import Channel, Delivery, Kind, Notification, Reader, sign, signature_valid
from notify.mail import MailSender
from notify.messages import webhook_body
from notify.templates import Mail, render_mail
from notify.webhooks import (
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WEBHOOK_ID_HEADER,
    SendOutcome,
    WebhookSender,
    webhook_headers,
)
from runtime.kernel.identity import Role

USER, PASSWORD = "notify", "s3cret-密码"
MAIL = Mail(subject="展位分配结果", text="展位 A-12。\n", html="<p>展位 <b>A-12</b>。</p>")


@dataclass(frozen=True)
class Certificates:
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="module")
def certificates() -> Certificates:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return Certificates(server=server, client=client)


@dataclass
class Smtp:
    port: int = 0
    received: list[tuple[Envelope, Any, bool]] = field(default_factory=list)

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            USER.encode(),
            PASSWORD.encode(),
        )
        # Not handled here: aiosmtpd answers a failure with 535 itself.
        return AuthResult(success=ok, handled=False, auth_data=data.login if ok else None)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        # Who logged in, and whether the conversation was encrypted by then.
        self.received.append(
            (envelope, session.auth_data, server.transport.get_extra_info("ssl_object") is not None)
        )
        return "250 OK"


async def _serve(
    smtp: Smtp, *, ssl_context: ssl.SSLContext | None = None, **options: Any
) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            smtp, hostname="localhost", authenticator=smtp.authenticate, loop=loop, **options
        ),
        "127.0.0.1",
        0,
        ssl=ssl_context,
    )
    smtp.port = int(server.sockets[0].getsockname()[1])
    return server


@pytest.fixture
async def starttls_server(certificates: Certificates) -> AsyncIterator[Smtp]:
    """A submission server as they usually are: STARTTLS first, then a login, then mail."""
    smtp = Smtp()
    server = await _serve(
        smtp, tls_context=certificates.server, require_starttls=True, auth_required=True
    )
    try:
        yield smtp
    finally:
        server.close()
        await server.wait_closed()


def _starttls_sender(port: int, context: ssl.SSLContext, password: str = PASSWORD) -> MailSender:
    return MailSender(
        host="127.0.0.1",
        port=port,
        sender="出海 <notify@chuhai.localhost>",
        username=USER,
        password=password,
        starttls=True,
        tls_context=context,
    )


async def test_mail_over_starttls_with_a_login(
    starttls_server: Smtp, certificates: Certificates
) -> None:
    sender = _starttls_sender(starttls_server.port, certificates.client)

    outcome = await sender.send("exporter@example.com", MAIL)

    assert outcome == SendOutcome(ok=True)
    [(envelope, login, encrypted)] = starttls_server.received
    assert (login, encrypted) == (USER.encode(), True)
    assert envelope.rcpt_tos == ["exporter@example.com"]


async def test_a_wrong_password_is_retried_as_the_servers_problem(
    starttls_server: Smtp, certificates: Certificates
) -> None:
    sender = _starttls_sender(starttls_server.port, certificates.client, password="wrong")

    outcome = await sender.send("exporter@example.com", MAIL)

    assert not outcome.ok
    assert outcome.retryable
    assert outcome.error.startswith("login refused: 535"), outcome.error
    assert starttls_server.received == []


async def test_an_untrusted_certificate_sends_nothing(starttls_server: Smtp) -> None:
    # The system's CAs do not know the test CA.
    sender = _starttls_sender(starttls_server.port, ssl.create_default_context())

    outcome = await sender.send("exporter@example.com", MAIL)

    assert not outcome.ok
    assert outcome.retryable
    assert "certificate" in outcome.error.lower(), outcome.error
    assert starttls_server.received == []


async def test_credentials_never_travel_unencrypted(starttls_server: Smtp) -> None:
    """Without SMTP_STARTTLS the server offers no login on the plain connection, and the
    sender does not send the password anyway."""
    sender = MailSender(
        host="127.0.0.1",
        port=starttls_server.port,
        sender="notify@chuhai.localhost",
        username=USER,
        password=PASSWORD,
    )

    outcome = await sender.send("exporter@example.com", MAIL)

    assert not outcome.ok
    assert outcome.retryable
    assert "AUTH" in outcome.error, outcome.error
    assert starttls_server.received == []


async def test_a_server_wanting_starttls_first_is_a_configuration_problem_and_retried(
    starttls_server: Smtp,
) -> None:
    """The refusal comes as a 5xx to MAIL FROM, yet no message could ever pass: it
    waits for SMTP_STARTTLS to be set rather than failing for good."""
    sender = MailSender(host="127.0.0.1", port=starttls_server.port, sender="n@chuhai.localhost")

    outcome = await sender.send("exporter@example.com", MAIL)

    assert outcome == SendOutcome(
        ok=False, retryable=True, error="530 Must issue a STARTTLS command first"
    )


async def test_mail_over_tls_from_the_start(certificates: Certificates) -> None:
    smtp = Smtp()
    server = await _serve(smtp, ssl_context=certificates.server, auth_require_tls=False)
    try:
        sender = MailSender(
            host="127.0.0.1",
            port=smtp.port,
            sender="notify@chuhai.localhost",
            username=USER,
            password=PASSWORD,
            tls=True,
            tls_context=certificates.client,
        )
        outcome = await sender.send("exporter@example.com", MAIL)
    finally:
        server.close()
        await server.wait_closed()

    assert outcome == SendOutcome(ok=True)
    [(_, login, encrypted)] = smtp.received
    assert (login, encrypted) == (USER.encode(), True)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_a_login_on_a_plain_connection_where_the_server_allows_it() -> None:
    smtp = Smtp()
    server = await _serve(smtp, auth_require_tls=False, auth_required=True)
    try:
        sender = MailSender(
            host="127.0.0.1",
            port=smtp.port,
            sender="notify@chuhai.localhost",
            username=USER,
            password=PASSWORD,
        )
        outcome = await sender.send("exporter@example.com", MAIL)
    finally:
        server.close()
        await server.wait_closed()

    assert outcome == SendOutcome(ok=True)
    [(_, login, encrypted)] = smtp.received
    assert (login, encrypted) == (USER.encode(), False)


def _notification(language: str) -> Notification:
    return Notification(
        notification_id="n" * 32,
        reader=Reader(Role.EXPORTER, "91110000MA01ABCD2X"),
        kind=Kind.BOOTH_ALLOCATED,
        title="展位分配结果" if language == "zh" else "Booth allocated",
        body="您申请的标准展位已分配 A-12。\n请在开展前完成布展。"
        if language == "zh"
        else "Your standard booth is A-12.",
        language=language,
        facts={"booth_number": "A-12"},
        event_id="e1",
        created_at=datetime(2026, 4, 15, 9, 30, tzinfo=UTC),
    )


async def test_a_rendered_notification_reaches_the_mail_catcher(tmp_path: Path) -> None:
    async with Mailbox(tmp_path / "mail") as mailbox:
        sender = MailSender(
            host="127.0.0.1", port=mailbox.smtp_port, sender="出海 <n@chuhai.localhost>"
        )
        for language in ("zh", "en"):
            mail = render_mail(_notification(language))
            assert (await sender.send(f"{language}@example.com", mail, message_key=language)).ok

        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{mailbox.web_url}messages.json") as response,
        ):
            listed = (await response.json())["messages"]

    english, chinese = listed
    assert chinese["subject"] == "【出海】展位分配结果"
    assert chinese["from"] == "出海 <n@chuhai.localhost>"
    assert chinese["to"] == "zh@example.com"
    assert "请在开展前完成布展。" in chinese["text"]
    assert "<h1" in chinese["html"] and "展位分配结果</h1>" in chinese["html"]
    assert english["subject"] == "[Chuhai] Booth allocated"
    assert "Your standard booth is A-12." in english["text"]


@dataclass
class Receiver:
    """A webhook receiver as the docs tell integrators to write one."""

    secret: str
    url: str = ""
    verified: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not signature_valid(
            self.secret,
            request.headers[TIMESTAMP_HEADER],
            body,
            request.headers[SIGNATURE_HEADER],
            datetime.now(UTC),
        ):
            return web.Response(status=401, text="bad signature")
        document = json.loads(body)
        assert document["delivery_id"] == request.headers[DELIVERY_ID_HEADER]
        assert document["webhook_id"] == request.headers[WEBHOOK_ID_HEADER]
        self.verified.append(document)
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver(secret="dGhlIHJlY2VpdmVyJ3Mgc2VjcmV0IG9mIDMyIGJ5dGVz")
    app = web.Application()
    app.router.add_post("/hook", found.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    found.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        yield found
    finally:
        await runner.cleanup()


async def test_a_signed_webhook_is_verified_by_its_receiver(receiver: Receiver) -> None:
    now = datetime.now(UTC)
    notification = _notification("zh")
    delivery = Delivery.planned(notification, Channel.WEBHOOK, "w1", now, now)
    body = webhook_body(delivery, notification)
    timestamp = int(now.timestamp())
    sender = WebhookSender(timeout_seconds=5.0)
    try:
        signed = webhook_headers(
            "w1", delivery.delivery_id, timestamp, sign(receiver.secret, timestamp, body)
        )
        assert await sender.send(receiver.url, signed, body) == SendOutcome(ok=True)

        # The same body under another secret's signature is turned away, for good.
        forged = webhook_headers(
            "w1", delivery.delivery_id, timestamp, sign("another secret", timestamp, body)
        )
        assert await sender.send(receiver.url, forged, body) == SendOutcome(
            ok=False, error="HTTP 401"
        )
    finally:
        await sender.close()

    [document] = receiver.verified
    assert document["notification"]["title"] == "展位分配结果"
    assert document["notification"]["kind"] == "BOOTH_ALLOCATED"
