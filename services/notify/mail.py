"""E-mail deliveries over SMTP (aiosmtplib), one connection per message.

The server's answer decides what a failure is. Answers about this message (RCPT TO,
DATA) follow their code: 4xx is worth another attempt, 5xx is permanent (an address the
server refuses will keep being refused). Everything else is the server's or the
configuration's problem, the same for every message: no connection, a timeout, the
greeting, STARTTLS, a refused login, a refused sender (MAIL FROM carries NOTIFY_MAIL_FROM,
and a server that wants a login or STARTTLS first says so there). Those are retried, so
the messages wait while an operator fixes the server or the settings."""

from __future__ import annotations

import asyncio
import errno
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid, parseaddr

import aiosmtplib

from notify.templates import Mail
from notify.webhooks import SendOutcome
from runtime.adapters.settings import Settings

_DEFAULT_MAIL_DOMAIN = "chuhai.localhost"


class MailSender:
    """Sends rendered notifications to one address each through the configured server."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        username: str = "",
        password: str = "",
        starttls: bool = False,
        tls: bool = False,
        timeout_seconds: float = 10.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        if starttls and tls:
            raise ValueError(
                "SMTP_STARTTLS and SMTP_TLS exclude each other: STARTTLS upgrades a plain "
                "connection (port 587), SMTP_TLS speaks TLS from the start (port 465)"
            )
        self.host = host
        self.port = port
        self.sender = sender
        self._username = username
        self._password = password
        self._starttls = starttls
        self._tls = tls
        self._timeout_seconds = timeout_seconds
        # None: the system's trusted CAs.
        self._tls_context = tls_context

    @classmethod
    def from_settings(
        cls, settings: Settings, *, tls_context: ssl.SSLContext | None = None
    ) -> MailSender:
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.notify_mail_from,
            username=settings.smtp_username,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
            tls=settings.smtp_tls,
            timeout_seconds=settings.smtp_timeout_seconds,
            tls_context=tls_context,
        )

    @property
    def configured(self) -> bool:
        """False without SMTP_HOST: then no e-mail delivery is planned at all."""
        return bool(self.host)

    def message(self, to: str, mail: Mail, *, message_key: str = "") -> EmailMessage:
        """The e-mail: the text, the HTML as its alternative, headers encoded as RFC 2047
        wants for Chinese subjects and names. A ``message_key`` (the delivery id) makes
        the Message-ID stable, so a message sent again after a lost answer is recognised
        as the same one by mail clients."""
        # One address, or the envelope and the To header could name other people.
        if len(getaddresses([to])) != 1 or not parseaddr(to)[1]:
            raise ValueError("not one e-mail address")
        domain = parseaddr(self.sender)[1].rpartition("@")[2] or _DEFAULT_MAIL_DOMAIN
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = mail.subject
        message["Date"] = format_datetime(datetime.now(UTC))
        message["Message-ID"] = (
            f"<{message_key}@{domain}>" if message_key else make_msgid(domain=domain)
        )
        # RFC 3834: vacation responders and the like do not answer automatic mail.
        message["Auto-Submitted"] = "auto-generated"
        # base64 keeps the message 7-bit clean: no server needs 8BITMIME for Chinese.
        message.set_content(mail.text, cte="base64")
        if mail.html:
            message.add_alternative(mail.html, subtype="html", cte="base64")
        return message

    async def send(self, to: str, mail: Mail, *, message_key: str = "") -> SendOutcome:
        """One attempt to hand the message for ``to`` to the server; never raises for
        what the server or the network does."""
        try:
            message = self.message(to, mail, message_key=message_key)
            # aiosmtplib's timeout bounds each step; this one the whole conversation.
            async with asyncio.timeout(self._timeout_seconds):
                await aiosmtplib.send(
                    message,
                    recipients=[to],
                    hostname=self.host,
                    port=self.port,
                    username=self._username or None,
                    password=self._password or None,
                    start_tls=self._starttls,
                    use_tls=self._tls,
                    timeout=self._timeout_seconds,
                    tls_context=self._tls_context,
                )
        except TimeoutError:
            return SendOutcome.retry(f"timed out after {self._timeout_seconds:g} s")
        except aiosmtplib.SMTPRecipientsRefused as error:
            # One recipient per message: its refusal is the answer.
            return _answer(error.recipients[0])
        except aiosmtplib.SMTPDataError as error:
            return _answer(error)
        except aiosmtplib.SMTPAuthenticationError as error:
            return SendOutcome.retry(f"login refused: {_reply(error)}")
        except aiosmtplib.SMTPResponseException as error:
            # The greeting, EHLO, STARTTLS or MAIL FROM: not about this message.
            return SendOutcome.retry(_reply(error))
        except aiosmtplib.SMTPConnectError as error:
            return SendOutcome.retry(_connect_failure(error))
        except aiosmtplib.SMTPException as error:
            return SendOutcome.retry(error.message)
        except OSError as error:
            # Before ValueError: a certificate that fails verification is both.
            return SendOutcome.retry(str(error))
        except ValueError as error:
            # An address no header or envelope can carry, found before anything is sent.
            return SendOutcome.permanent(f"cannot send to {to!r}: {error}")
        return SendOutcome.delivered()


def _reply(error: aiosmtplib.SMTPResponseException) -> str:
    # Multi-line replies arrive joined by newlines; the delivery log keeps one line.
    return f"{error.code} {' '.join(error.message.split())}"


def _answer(error: aiosmtplib.SMTPResponseException) -> SendOutcome:
    if 400 <= error.code < 500:
        return SendOutcome.retry(_reply(error))
    return SendOutcome.permanent(_reply(error))


def _connect_failure(error: aiosmtplib.SMTPConnectError) -> str:
    cause = error.__cause__
    if isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED:
        return "connection refused"
    return error.message
