"""The webhook sender against a real HTTP receiver on a free port: what arrives, and how
each kind of answer (or no answer) is classified for the retry rules."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import trustme
from aiohttp import web

from notify.webhooks import SendOutcome, WebhookSender, outcome_of_status, webhook_headers


@dataclass
class Receiver:
    url: str
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    redirect_followed: bool = False
    # Set at the end of a test so a slow handler finishes instead of being cut off.
    release: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver(url="")

    async def record(request: web.Request) -> web.Response:
        found.requests.append((dict(request.headers), await request.read()))
        return web.Response(status=int(request.match_info["status"]), text="answer")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/landing")

    async def landing(request: web.Request) -> web.Response:
        found.redirect_followed = True
        return web.Response(text="followed")

    async def slow(request: web.Request) -> web.Response:
        await found.release.wait()
        return web.Response(text="too late")

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        chunk = b"x" * 65536
        # Far more than the sender may read, until it hangs up.
        while not found.release.is_set():
            await response.write(chunk)
        return response

    app = web.Application()
    app.router.add_post("/status/{status}", record)
    app.router.add_post("/redirect", redirect)
    app.router.add_route("*", "/landing", landing)
    app.router.add_post("/slow", slow)
    app.router.add_post("/endless", endless)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    found.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield found
    finally:
        found.release.set()
        await runner.cleanup()


@pytest.fixture
async def sender() -> AsyncIterator[WebhookSender]:
    sending = WebhookSender(timeout_seconds=5.0)
    try:
        yield sending
    finally:
        await sending.close()


HEADERS = webhook_headers("w1", "d1", 1_700_000_000, "v1=abc")
BODY = '{"delivery_id":"d1","notification":{"title":"展位分配结果"},"webhook_id":"w1"}'.encode()


def test_headers_have_the_documented_names() -> None:
    assert webhook_headers("hook", "delivery", 1_700_000_000, "v1=00ff") == {
        "Content-Type": "application/json",
        "User-Agent": "chuhai-notify",
        "Chuhai-Webhook-Id": "hook",
        "Chuhai-Delivery-Id": "delivery",
        "Chuhai-Timestamp": "1700000000",
        "Chuhai-Signature": "v1=00ff",
    }


async def test_a_2xx_answer_is_a_success_and_the_request_arrives_as_signed(
    receiver: Receiver, sender: WebhookSender
) -> None:
    outcome = await sender.send(f"{receiver.url}/status/204", HEADERS, BODY)

    assert outcome == SendOutcome(ok=True, retryable=False, error="")
    [(headers, body)] = receiver.requests
    assert body == BODY
    for name, value in HEADERS.items():
        assert headers[name] == value


async def test_one_session_serves_many_sends_and_close_ends_it(
    receiver: Receiver, sender: WebhookSender
) -> None:
    for _ in range(3):
        assert (await sender.send(f"{receiver.url}/status/200", HEADERS, BODY)).ok
    await sender.close()
    # A sender used after close opens a new session rather than failing.
    assert (await sender.send(f"{receiver.url}/status/200", HEADERS, BODY)).ok
    assert len(receiver.requests) == 4


@pytest.mark.parametrize("status", [503, 500, 502, 408, 429])
async def test_server_errors_timeouts_and_throttling_are_retried(
    receiver: Receiver, sender: WebhookSender, status: int
) -> None:
    outcome = await sender.send(f"{receiver.url}/status/{status}", HEADERS, BODY)

    assert outcome == SendOutcome(ok=False, retryable=True, error=f"HTTP {status}")


@pytest.mark.parametrize("status", [404, 400, 401, 410])
async def test_other_client_errors_are_permanent(
    receiver: Receiver, sender: WebhookSender, status: int
) -> None:
    outcome = await sender.send(f"{receiver.url}/status/{status}", HEADERS, BODY)

    assert outcome == SendOutcome(ok=False, retryable=False, error=f"HTTP {status}")


async def test_a_redirect_is_not_followed_and_fails_for_good(
    receiver: Receiver, sender: WebhookSender
) -> None:
    outcome = await sender.send(f"{receiver.url}/redirect", HEADERS, BODY)

    assert outcome == SendOutcome(
        ok=False, retryable=False, error="HTTP 302 (redirects are not followed)"
    )
    assert not receiver.redirect_followed


async def test_a_receiver_slower_than_the_timeout_is_retried(receiver: Receiver) -> None:
    impatient = WebhookSender(timeout_seconds=0.2)
    try:
        outcome = await impatient.send(f"{receiver.url}/slow", HEADERS, BODY)
    finally:
        await impatient.close()

    assert outcome == SendOutcome(ok=False, retryable=True, error="timed out after 0.2 s")


async def test_only_the_start_of_an_endless_answer_is_read(
    receiver: Receiver, sender: WebhookSender
) -> None:
    # Reading it all would run into the 5 s timeout and fail.
    outcome = await sender.send(f"{receiver.url}/endless", HEADERS, BODY)

    assert outcome.ok, outcome


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_closed_port_is_a_refused_connection_and_retried(sender: WebhookSender) -> None:
    outcome = await sender.send(f"http://127.0.0.1:{_closed_port()}/hook", HEADERS, BODY)

    assert outcome == SendOutcome(ok=False, retryable=True, error="connection refused")


async def test_localhost_refusing_on_every_address_is_a_refused_connection(
    sender: WebhookSender,
) -> None:
    outcome = await sender.send(f"http://localhost:{_closed_port()}/hook", HEADERS, BODY)

    assert outcome == SendOutcome(ok=False, retryable=True, error="connection refused")


async def test_a_url_that_is_no_http_url_fails_for_good(sender: WebhookSender) -> None:
    outcome = await sender.send("ftp://127.0.0.1/hook", HEADERS, BODY)

    assert not outcome.ok
    assert not outcome.retryable


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, SendOutcome(ok=True)),
        (299, SendOutcome(ok=True)),
        (301, SendOutcome(ok=False, error="HTTP 301 (redirects are not followed)")),
        (307, SendOutcome(ok=False, error="HTTP 307 (redirects are not followed)")),
        (408, SendOutcome(ok=False, retryable=True, error="HTTP 408")),
        (429, SendOutcome(ok=False, retryable=True, error="HTTP 429")),
        (422, SendOutcome(ok=False, error="HTTP 422")),
        (599, SendOutcome(ok=False, retryable=True, error="HTTP 599")),
    ],
)
def test_status_classification(status: int, expected: SendOutcome) -> None:
    assert outcome_of_status(status) == expected


@pytest.fixture
async def https_receiver() -> AsyncIterator[tuple[str, ssl.SSLContext]]:
    """An https receiver with a certificate from a test CA, and a context trusting it."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    async def accept(request: web.Request) -> web.Response:
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", accept)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context).start()
    try:
        yield f"https://127.0.0.1:{runner.addresses[0][1]}/hook", client_context
    finally:
        await runner.cleanup()


async def test_https_to_a_trusted_certificate(
    https_receiver: tuple[str, ssl.SSLContext],
) -> None:
    url, trusting = https_receiver
    sender = WebhookSender(timeout_seconds=5.0, ssl_context=trusting)
    try:
        assert await sender.send(url, HEADERS, BODY) == SendOutcome(ok=True)
    finally:
        await sender.close()


async def test_https_to_an_untrusted_certificate_is_retried(
    https_receiver: tuple[str, ssl.SSLContext], sender: WebhookSender
) -> None:
    url, _ = https_receiver
    # The system's CAs do not know the test CA: nothing is sent, the receiver may fix it.
    outcome = await sender.send(url, HEADERS, BODY)

    assert not outcome.ok
    assert outcome.retryable
    assert outcome.error.startswith("TLS certificate not accepted"), outcome.error
