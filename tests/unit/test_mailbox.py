"""The embedded rung's mail catcher: what it is sent stays under its directory and shows
on its page and in its JSON list, Chinese included; as its own process it answers and
stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from launcher.embedded import free_port
from launcher.mailbox import Mailbox
from notify.mail import MailSender
from notify.templates import Mail
from tests.waiting import eventually

FIRST = Mail(
    subject="新询盘 HS 8516",
    text="买家来自德国 需求 500 台。\n",
    html='<p>买家来自德国 需求 <b>500</b> 台。</p><script>alert("x")</script>',
)
SECOND = Mail(subject="Booth allocated", text="Booth A-12.\n", html="<p>Booth A-12.</p>")


@pytest.fixture
async def mailbox(tmp_path: Path) -> AsyncIterator[Mailbox]:
    async with Mailbox(tmp_path / "mail") as started:
        yield started


def _sender(port: int) -> MailSender:
    return MailSender(host="127.0.0.1", port=port, sender="出海 <notify@chuhai.localhost>")


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def _json(url: str) -> dict[str, list[dict[str, object]]]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        return await response.json()


async def test_a_sent_message_is_kept_and_listed_newest_first(mailbox: Mailbox) -> None:
    sender = _sender(mailbox.smtp_port)
    assert (await sender.send("exporter@example.com", FIRST)).ok
    assert (await sender.send("buyer@example.com", SECOND)).ok

    kept = sorted(p.name for p in mailbox.directory.iterdir())
    assert len(kept) == 2
    assert all(name.endswith(".eml") for name in kept)

    listed = (await _json(f"{mailbox.web_url}messages.json"))["messages"]
    assert [m["subject"] for m in listed] == ["Booth allocated", "新询盘 HS 8516"]
    newest, oldest = listed
    assert [newest["name"], oldest["name"]] == kept[::-1]
    assert oldest["from"] == "出海 <notify@chuhai.localhost>"
    assert oldest["to"] == "exporter@example.com"
    assert oldest["envelope_to"] == ["exporter@example.com"]
    assert oldest["text"] == FIRST.text
    assert "需求 <b>500</b> 台" in str(oldest["html"])

    status, page = await _get(mailbox.web_url)
    assert status == 200
    assert page.index("Booth allocated") < page.index("新询盘 HS 8516")
    assert "出海 &lt;notify@chuhai.localhost&gt;" in page
    assert "exporter@example.com" in page
    assert f'href="/messages/{oldest["name"]}"' in page


async def test_one_message_shows_its_text_and_its_html_in_a_sandbox(mailbox: Mailbox) -> None:
    assert (await _sender(mailbox.smtp_port).send("exporter@example.com", FIRST)).ok
    [listed] = (await _json(f"{mailbox.web_url}messages.json"))["messages"]

    status, page = await _get(f"{mailbox.web_url}messages/{listed['name']}")

    assert status == 200
    assert "<h1>新询盘 HS 8516</h1>" in page
    assert "买家来自德国 需求 500 台。" in page
    # The mail's HTML only inside the sandboxed frame, escaped into its srcdoc.
    assert "<iframe sandbox srcdoc=" in page
    assert "<script>" not in page
    assert "&lt;script&gt;" in page

    status, raw = await _get(f"{mailbox.web_url}messages/{listed['name']}/raw")
    assert status == 200
    assert "Delivered-To: exporter@example.com" in raw
    assert "Subject: =?utf-8?" in raw


async def test_only_kept_messages_can_be_opened(mailbox: Mailbox, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("not for the page")
    for name in ("..%2Fsecret.txt", "secret.txt", "20260101T000000000000Z-deadbeef.eml"):
        status, _ = await _get(f"{mailbox.web_url}messages/{name}")
        assert status == 404, name


async def test_stopping_ends_conversations_still_open(tmp_path: Path) -> None:
    mailbox = Mailbox(tmp_path / "mail")
    await mailbox.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", mailbox.smtp_port)
    try:
        assert (await reader.readline()).startswith(b"220 chuhai-mailbox")
        await mailbox.stop()
        # The server hung up rather than waiting for this client's next command.
        assert await asyncio.wait_for(reader.read(), timeout=20) == b""
    finally:
        writer.close()


async def test_the_process_answers_keeps_mail_and_stops_on_sigterm(tmp_path: Path) -> None:
    smtp_port, web_port = free_port(), free_port()
    directory = tmp_path / "var" / "mail"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "launcher.mailbox",
        "--dir",
        str(directory),
        "--smtp-port",
        str(smtp_port),
        "--web-port",
        str(web_port),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:

        async def answers() -> bool:
            try:
                return (await _get(f"http://127.0.0.1:{web_port}/messages.json"))[0] == 200
            except aiohttp.ClientConnectionError:
                return False

        await eventually(answers, equals=True, within_seconds=30)
        assert (await _sender(smtp_port).send("exporter@example.com", FIRST)).ok
        assert len(list(directory.glob("*.eml"))) == 1
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)

    assert process.returncode == 0, stderr.decode()
    assert b"mailbox ready" in stderr
    assert b"mailbox stopped" in stderr
