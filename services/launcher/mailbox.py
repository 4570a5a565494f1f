"""The embedded rung's mail catcher: an SMTP server that keeps every message it is given
as a ``.eml`` file, and a page that shows them.

``chuhai-platform run`` starts it as its own process (``python -m launcher.mailbox
--dir var/mail --smtp-port 2525 --web-port 8025``) and points notify's SMTP_HOST and
SMTP_PORT at it; tests use ``Mailbox`` in-process. Nothing is ever relayed: every
recipient is accepted and the message stays in the directory, one file per message,
named by the moment it arrived (newest last in name order).

Pages (``/`` the list, newest first; ``/messages/<name>`` one message, its HTML part in a
sandboxed frame; ``/messages/<name>/raw`` the file; ``/messages.json`` the list for tools
and tests) need no login. That is deliberate: this is a developer's catcher for mail
addressed to made-up people on one machine, so both servers listen on 127.0.0.1 only and
there is no option to listen anywhere else. Compose and cluster rungs use a real SMTP
server (SMTP_HOST) and have no catcher."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email
import email.policy
import functools
import html
import json
import logging
import os
import re
import secrets
import signal
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session

from runtime.adapters.logging import configure_logging
from runtime.adapters.settings import Settings

log = logging.getLogger("chuhai.mailbox")

LOOPBACK = "127.0.0.1"
# The newest this many messages are listed; the files beyond stay on disk.
LIST_LIMIT = 500
_STAMP = "%Y%m%dT%H%M%S%fZ"
_NAME = re.compile(r"^(\d{8}T\d{12}Z)-[0-9a-f]{8}\.eml$")
# Mail HTML is shown as it is, in a sandboxed frame: no script, no form, no remote image
# (a frame made from srcdoc inherits this policy).
_PAGE_POLICY = (
    "script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "img-src data:; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class CaughtMessage:
    """One kept message, its headers decoded (RFC 2047 words, e.g. Chinese subjects)."""

    name: str
    received_at: datetime
    sender: str
    to: str
    envelope_to: tuple[str, ...]
    subject: str
    date: str
    text: str
    html: str

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "received_at": self.received_at.isoformat(),
            "from": self.sender,
            "to": self.to,
            "envelope_to": list(self.envelope_to),
            "subject": self.subject,
            "date": self.date,
            "text": self.text,
            "html": self.html,
            "url": f"/messages/{self.name}",
        }


def read_message(path: Path) -> CaughtMessage:
    """Parse one kept message."""
    parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    match = _NAME.match(path.name)
    received_at = (
        datetime.strptime(match.group(1), _STAMP).replace(tzinfo=UTC)
        if match
        else datetime.fromtimestamp(path.stat().st_mtime, UTC)
    )
    return CaughtMessage(
        name=path.name,
        received_at=received_at,
        sender=str(parsed.get("From", "")),
        to=str(parsed.get("To", "")),
        envelope_to=tuple(str(value) for value in parsed.get_all("Delivered-To", [])),
        subject=str(parsed.get("Subject", "")),
        date=str(parsed.get("Date", "")),
        text=_part(parsed, "plain"),
        html=_part(parsed, "html"),
    )


def _part(message: EmailMessage, subtype: str) -> str:
    body = message.get_body(preferencelist=(subtype,))
    if body is None:
        return ""
    try:
        return str(body.get_content())
    except (LookupError, ValueError):
        # An unknown charset or a broken encoding: show what can be read.
        payload = body.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""


def list_messages(directory: Path, limit: int = LIST_LIMIT) -> list[CaughtMessage]:
    """The kept messages, newest first."""
    if not directory.is_dir():
        return []
    names = sorted((p.name for p in directory.iterdir() if _NAME.match(p.name)), reverse=True)
    return [read_message(directory / name) for name in names[:limit]]


class _Keeper:
    """The aiosmtpd handler: every message becomes a file, whoever it is for."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        # Trace headers a final delivery adds (RFC 5321 4.4): who the envelope named, which
        # a Bcc or a forwarder makes differ from the To header.
        trace = f"Return-Path: <{envelope.mail_from or ''}>\r\n" + "".join(
            f"Delivered-To: {rcpt}\r\n" for rcpt in envelope.rcpt_tos
        )
        name = f"{datetime.now(UTC).strftime(_STAMP)}-{secrets.token_hex(4)}.eml"
        await asyncio.to_thread(self._keep, name, trace.encode() + content)
        log.info("kept a message", extra={"file": name, "to": envelope.rcpt_tos})
        return f"250 2.0.0 kept as {name}"

    def _keep(self, name: str, data: bytes) -> None:
        self._directory.mkdir(parents=True, exist_ok=True)
        # Written aside, then renamed: the page never lists half a message.
        partial = self._directory / f".{name}.partial"
        partial.write_bytes(data)
        os.replace(partial, self._directory / name)


class Mailbox:
    """Both servers on 127.0.0.1; port 0 picks free ports (``smtp_port`` and ``web_port``
    tell which after ``start``)."""

    def __init__(self, directory: Path, *, smtp_port: int = 0, web_port: int = 0) -> None:
        self.directory = directory
        self.smtp_port = smtp_port
        self.web_port = web_port
        self._smtp: asyncio.Server | None = None
        self._sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()
        self._web: web.AppRunner | None = None

    @property
    def web_url(self) -> str:
        return f"http://{LOOPBACK}:{self.web_port}/"

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        keeper = _Keeper(self.directory)

        def session() -> SMTP:
            # A fixed greeting name: the default looks up this host's FQDN, which can
            # wait on DNS.
            smtp = SMTP(keeper, hostname="chuhai-mailbox", enable_SMTPUTF8=True, loop=loop)
            self._sessions.add(smtp)
            return smtp

        try:
            self._smtp = await loop.create_server(session, LOOPBACK, self.smtp_port)
            self.smtp_port = int(self._smtp.sockets[0].getsockname()[1])
            # The page last: once it answers, the SMTP port is open too.
            self._web = web.AppRunner(self._application(), access_log=None)
            await self._web.setup()
            await web.TCPSite(self._web, LOOPBACK, self.web_port).start()
            self.web_port = int(self._web.addresses[0][1])
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        if self._web is not None:
            await self._web.cleanup()
            self._web = None
        if self._smtp is not None:
            self._smtp.close()
            # Open conversations end too: closing the server only stops new ones.
            for smtp in list(self._sessions):
                if smtp.transport is not None:
                    smtp.transport.close()
            await self._smtp.wait_closed()
            self._smtp = None

    async def __aenter__(self) -> Mailbox:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def messages(self) -> list[CaughtMessage]:
        """The kept messages, newest first (reads the files: call off the loop when
        that matters)."""
        return list_messages(self.directory)

    # The page ---------------------------------------------------------------------------

    def _application(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/messages.json", self._json)
        app.router.add_get("/messages/{name}", self._message)
        app.router.add_get("/messages/{name}/raw", self._raw)
        return app

    async def _index(self, request: web.Request) -> web.Response:
        messages = await asyncio.to_thread(self.messages)
        rows = "".join(
            "<tr>"
            f"<td>{_local(m.received_at)}</td><td>{html.escape(m.sender)}</td>"
            f"<td>{html.escape(m.to)}</td>"
            f'<td><a href="/messages/{m.name}">{html.escape(m.subject or "(no subject)")}</a>'
            "</td></tr>"
            for m in messages
        )
        body = (
            f"<h1>Mailbox</h1><p>{len(messages)} message(s) caught on "
            f"<code>smtp://{LOOPBACK}:{self.smtp_port}</code>, kept in "
            f"<code>{html.escape(str(self.directory))}</code>. This page refreshes itself.</p>"
            "<table><thead><tr><th>received</th><th>from</th><th>to</th><th>subject</th>"
            f"</tr></thead><tbody>{rows}</tbody></table>"
        )
        return _page("Mailbox", body, refresh=True)

    async def _json(self, request: web.Request) -> web.Response:
        messages = await asyncio.to_thread(self.messages)
        return web.json_response(
            {"messages": [m.as_json() for m in messages]},
            # Chinese subjects readable as they are.
            dumps=functools.partial(json.dumps, ensure_ascii=False),
            headers={"Cache-Control": "no-store"},
        )

    async def _message(self, request: web.Request) -> web.Response:
        message = await asyncio.to_thread(read_message, self._path(request))
        frame = (
            f'<iframe sandbox srcdoc="{html.escape(message.html, quote=True)}"></iframe>'
            if message.html
            else "<p>(no HTML part)</p>"
        )
        headers = "".join(
            f"<tr><th>{label}</th><td>{html.escape(value)}</td></tr>"
            for label, value in (
                ("From", message.sender),
                ("To", message.to),
                ("Envelope to", ", ".join(message.envelope_to)),
                ("Subject", message.subject),
                ("Date", message.date),
                ("Received", _local(message.received_at)),
            )
        )
        body = (
            f'<p><a href="/">all messages</a> · <a href="/messages/{message.name}/raw">raw</a>'
            f"</p><h1>{html.escape(message.subject or '(no subject)')}</h1>"
            f"<table>{headers}</table><h2>Text</h2><pre>{html.escape(message.text)}</pre>"
            f"<h2>HTML</h2>{frame}"
        )
        return _page(message.subject or message.name, body)

    async def _raw(self, request: web.Request) -> web.Response:
        data = await asyncio.to_thread(self._path(request).read_bytes)
        return web.Response(body=data, content_type="text/plain", charset="utf-8")

    def _path(self, request: web.Request) -> Path:
        name = request.match_info["name"]
        # The pattern keeps the name a plain file name inside the directory.
        path = self.directory / name
        if not _NAME.match(name) or not path.is_file():
            raise web.HTTPNotFound(text=f"no message {name}")
        return path


def _local(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %z")


def _page(title: str, body: str, *, refresh: bool = False) -> web.Response:
    document = (
        "<!doctype html><html><head><meta charset=utf-8>"
        + ('<meta http-equiv="refresh" content="5">' if refresh else "")
        + f"<title>{html.escape(title)}</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2em}"
        "table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:.3em .6em;"
        "text-align:left;vertical-align:top}pre{white-space:pre-wrap;background:#f6f6f6;"
        "padding:1em}iframe{width:100%;height:30em;border:1px solid #ccc}"
        f"</style></head><body>{body}</body></html>"
    )
    return web.Response(
        text=document,
        content_type="text/html",
        charset="utf-8",
        headers={
            "Content-Security-Policy": _PAGE_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


# The process -------------------------------------------------------------------------


async def serve(directory: Path, smtp_port: int, web_port: int) -> None:
    """Run until SIGTERM or SIGINT, then stop both servers."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    async with Mailbox(directory, smtp_port=smtp_port, web_port=web_port) as mailbox:
        log.info(
            "mailbox ready",
            extra={
                "smtp": f"{LOOPBACK}:{mailbox.smtp_port}",
                "web": mailbox.web_url,
                "directory": str(directory),
            },
        )
        await stopping.wait()
    log.info("mailbox stopped")


def main(argv: list[str] | None = None) -> int:
    settings = Settings()
    parser = argparse.ArgumentParser(
        prog="python -m launcher.mailbox",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dir", type=Path, required=True, help="where messages are kept")
    parser.add_argument("--smtp-port", type=int, default=settings.dev_mail_smtp_port)
    parser.add_argument("--web-port", type=int, default=settings.dev_mail_web_port)
    args = parser.parse_args(argv)
    configure_logging("mailbox", settings.log_level)
    # aiosmtpd logs every command of every conversation at INFO.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.dir, args.smtp_port, args.web_port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
