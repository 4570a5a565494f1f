"""Webhook deliveries: one signed POST per attempt, its answer classified for the retry
rules of the delivery log.

A 2xx answer is a success. 408, 429, 5xx, a timeout or a connection that fails are worth
another attempt; any other answer is a permanent failure of that delivery. Redirects are
never followed: the URL was checked when the hook was registered (https, or http to a
loopback host), and following a ``Location`` would send the signed body wherever the
receiver points, e.g. a plain-http or internal address. Only the first few KB of an
answer are read, so a receiver cannot make the sender buffer or wait for a large body."""

from __future__ import annotations

import errno
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import aiohttp

WEBHOOK_ID_HEADER: Final = "Chuhai-Webhook-Id"
DELIVERY_ID_HEADER: Final = "Chuhai-Delivery-Id"
TIMESTAMP_HEADER: Final = "Chuhai-Timestamp"
SIGNATURE_HEADER: Final = "Chuhai-Signature"
USER_AGENT: Final = "chuhai-notify"

# Enough for any acknowledgement a receiver sends; the rest is never read.
_ANSWER_LIMIT_BYTES = 4096
_RETRYABLE_STATUSES = frozenset({408, 429})


@dataclass(frozen=True)
class SendOutcome:
    """What one attempt of a delivery (webhook or e-mail) came to. ``error`` is what the
    delivery log shows: empty on success."""

    ok: bool
    retryable: bool = False
    error: str = ""

    @classmethod
    def delivered(cls) -> SendOutcome:
        return cls(ok=True)

    @classmethod
    def retry(cls, error: str) -> SendOutcome:
        return cls(ok=False, retryable=True, error=error)

    @classmethod
    def permanent(cls, error: str) -> SendOutcome:
        return cls(ok=False, retryable=False, error=error)


def webhook_headers(
    webhook_id: str, delivery_id: str, timestamp: int, signature: str
) -> dict[str, str]:
    """The headers of a webhook request. ``timestamp`` is the unix seconds that were
    signed; ``signature`` the whole header value (``v1=<hex HMAC-SHA256>``)."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        WEBHOOK_ID_HEADER: webhook_id,
        DELIVERY_ID_HEADER: delivery_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature,
    }


def outcome_of_status(status: int) -> SendOutcome:
    """The outcome of an HTTP answer's status code."""
    if 200 <= status < 300:
        return SendOutcome.delivered()
    if 300 <= status < 400:
        return SendOutcome.permanent(f"HTTP {status} (redirects are not followed)")
    if status in _RETRYABLE_STATUSES or status >= 500:
        return SendOutcome.retry(f"HTTP {status}")
    return SendOutcome.permanent(f"HTTP {status}")


class WebhookSender:
    """POSTs webhook requests over one aiohttp session, opened on first use on the
    running loop and closed by ``close()`` when the service stops."""

    def __init__(self, timeout_seconds: float, *, ssl_context: ssl.SSLContext | None = None):
        self._timeout_seconds = timeout_seconds
        # None: the system's trusted CAs (a test's receiver may bring its own CA).
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._session: aiohttp.ClientSession | None = None

    async def send(self, url: str, headers: Mapping[str, str], body: bytes) -> SendOutcome:
        """One attempt: POST ``body`` to ``url``; never raises for what the network or
        the receiver does."""
        try:
            async with self._opened().post(
                url, data=body, headers=dict(headers), allow_redirects=False, ssl=self._ssl
            ) as response:
                await _read_some(response)
                return outcome_of_status(response.status)
        except TimeoutError:
            return SendOutcome.retry(f"timed out after {self._timeout_seconds:g} s")
        except aiohttp.InvalidURL as error:
            return SendOutcome.permanent(f"invalid URL: {error}")
        except aiohttp.NonHttpUrlClientError as error:
            return SendOutcome.permanent(f"not an http(s) URL: {error}")
        except aiohttp.ClientConnectorDNSError as error:
            return SendOutcome.retry(f"cannot resolve {error.host}")
        except aiohttp.ClientConnectorCertificateError as error:
            return SendOutcome.retry(f"TLS certificate not accepted: {error.certificate_error}")
        except aiohttp.ClientSSLError as error:
            return SendOutcome.retry(f"TLS handshake failed: {error.os_error}")
        except aiohttp.ClientConnectorError as error:
            return SendOutcome.retry(_connect_failure(error.os_error))
        except aiohttp.ServerDisconnectedError:
            return SendOutcome.retry("disconnected before answering")
        except aiohttp.ClientError as error:
            return SendOutcome.retry(f"{type(error).__name__}: {error}")

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _opened(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout_seconds),
                # Receivers' cookies are never sent back to anyone.
                cookie_jar=aiohttp.DummyCookieJar(),
                # No proxy from the environment: deliveries go where the URL says.
                trust_env=False,
            )
        return self._session


async def _read_some(response: aiohttp.ClientResponse) -> None:
    """Read at most _ANSWER_LIMIT_BYTES of the answer. A short answer read to its end
    lets the connection be reused; a longer one is cut off by closing it."""
    remaining = _ANSWER_LIMIT_BYTES
    while remaining > 0:
        chunk = await response.content.read(remaining)
        if not chunk:
            return
        remaining -= len(chunk)


def _connect_failure(error: OSError) -> str:
    # By errno: a host with several addresses (localhost: ::1 and 127.0.0.1) that all
    # refused is one OSError carrying their common errno.
    if error.errno == errno.ECONNREFUSED:
        return "connection refused"
    if error.errno == errno.ETIMEDOUT or isinstance(error, TimeoutError):
        return "connection timed out"
    return f"cannot connect: {error.strerror or error}"
