"""The bureau's web dashboard and its JSON API (aiohttp), served beside gRPC.

Every page and endpoint is for officers, as the gRPC figures are. API clients send
``Authorization: Bearer <JWT>``. A browser opens ``/login?token=<JWT>`` once (the link
the launcher prints, or one the identity provider hands out): the token is checked,
kept in an HttpOnly, SameSite=Strict session cookie that lives no longer than the token,
and the browser is sent on to ``/`` so the token leaves the address bar and its history.
Tokens are verified by the gRPC server's own TokenVerifier, so both doors let in the
same people.

A change (a POST) made with the session cookie must come from the dashboard's own page:
its Origin names this server. The cookie is SameSite=Strict, but a page on a sibling
subdomain is "same site" and would still get it sent.

The bell asks the notify service for the bureau's notifications with the officer's own
token (never one of the bureau's), so notify's access rules decide; a notify that is
down costs the bell a 503 within a short deadline, and the figures nothing."""

from __future__ import annotations

import html
import logging
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import grpc
import jwt
from aiohttp import hdrs, web

from bureau.live import LiveStats
from bureau.messages import dashboard_json, headline_json
from bureau.reports import as_csv, as_xlsx, report_rows
from chuhai.notify.v1 import notify_service_pb2 as notify_pb
from chuhai.notify.v1 import notify_service_pb2_grpc as notify_grpc
from chuhai.notify.v1 import resources_pb2 as notify_res
from runtime.adapters.auth import TokenVerifier
from runtime.kernel import errors
from runtime.kernel.identity import Principal
from runtime.kernel.validation import Validator

log = logging.getLogger(__name__)

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SESSION_COOKIE = "chuhai_session"
LOGIN_PATH = "/login"
# The realm named in WWW-Authenticate challenges (RFC 6750).
REALM = "chuhai-bureau"
# The token a request was admitted with, for the calls made on the officer's behalf.
OFFICER_TOKEN = web.RequestKey("officer_token", str)
SAFE_METHODS = frozenset({hdrs.METH_GET, hdrs.METH_HEAD, hdrs.METH_OPTIONS})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _period(request: web.Request) -> tuple[date | None, date | None]:
    check = Validator()
    since = check.date(request.query.get("since", ""), "since", required=False)
    until = check.date(request.query.get("until", ""), "until", required=False)
    if check.violations:
        raise web.HTTPBadRequest(
            text="; ".join(f"{v.field}: {v.description}" for v in check.violations)
        )
    return since, until


# Authentication -----------------------------------------------------------------------


def _refusal(
    request: web.Request, status: int, title: str, detail: str, *, token_given: bool = True
) -> web.Response:
    """A short explanation: a page for a browser, JSON for anything else. A 401 carries
    the Bearer challenge, with RFC 6750's error only when a token was given."""
    headers = {hdrs.CACHE_CONTROL: "no-store"}
    if status == web.HTTPUnauthorized.status_code:
        challenge = f'Bearer realm="{REALM}"'
        if token_given:
            # A header value: printable ASCII only, whatever a token's header smuggled in.
            description = "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in detail)
            challenge += f', error="invalid_token", error_description="{description}"'
        headers[hdrs.WWW_AUTHENTICATE] = challenge
    if "text/html" in request.headers.get(hdrs.ACCEPT, ""):
        body = (
            f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(detail)}</p>"
            "<p>The bureau's dashboard is for commerce bureau officers: open the login link "
            "<code>/login?token=&lt;officer token&gt;</code> you were given.</p>"
        )
        response = web.Response(status=status, text=body, content_type="text/html", headers=headers)
    else:
        response = web.json_response(
            {"error": title, "detail": detail}, status=status, headers=headers
        )
    return response


def _bearer(request: web.Request) -> str | None:
    """The token an API client sends, or the one the session cookie keeps; None."""
    header = request.headers.get(hdrs.AUTHORIZATION)
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise errors.Unauthenticated("authorization must be 'Bearer <token>'")
        return token.strip()
    return request.cookies.get(SESSION_COOKIE) or None


async def _officer(
    verifier: TokenVerifier, request: web.Request, token: str | None
) -> Principal | web.Response:
    """The officer ``token`` names, or the refusal to send instead."""
    if token is None:
        return _refusal(
            request,
            401,
            "Sign-in required",
            "missing bearer token: send 'Authorization: Bearer <token>' or open /login?token=...",
            token_given=False,
        )
    try:
        principal = await verifier.verify(token)
    except errors.Unauthenticated as error:
        return _refusal(request, 401, "Sign-in required", error.message)
    except errors.PermissionDenied as error:
        return _refusal(request, 403, "Not for this role", error.message)
    except errors.Unavailable as error:
        return _refusal(request, 503, "Sign-in unavailable", error.message)
    if not principal.is_officer:
        return _refusal(
            request,
            403,
            "Not for this role",
            f"the bureau's figures are for officers, not the {principal.role.value} role",
        )
    return principal


def _from_elsewhere(request: web.Request) -> bool:
    """Whether a change made with the session cookie was sent by a page other than the
    dashboard's own: its Origin (which browsers send with every POST) is missing or
    names another host. A bearer token in a header is never sent by a browser on its
    own, so those requests are not asked."""
    if request.method in SAFE_METHODS or hdrs.AUTHORIZATION in request.headers:
        return False
    origin = request.headers.get(hdrs.ORIGIN, "")
    return not origin or urlsplit(origin).netloc.lower() != request.host.lower()


def _officers_only(verifier: TokenVerifier) -> Callable[[web.Request, Handler], Awaitable]:
    @web.middleware
    async def officers_only(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == LOGIN_PATH:
            return await handler(request)
        try:
            token = _bearer(request)
        except errors.Unauthenticated as error:
            return _refusal(request, 401, "Sign-in required", error.message)
        admitted = await _officer(verifier, request, token)
        if isinstance(admitted, web.Response):
            if token is not None and SESSION_COOKIE in request.cookies:
                # An expired or revoked session: the browser may forget it.
                admitted.del_cookie(SESSION_COOKIE, path="/")
            return admitted
        if _from_elsewhere(request):
            return _refusal(
                request,
                403,
                "Not from the dashboard",
                "a change with the session cookie must come from the dashboard's own page",
            )
        assert token is not None  # admitted: it named an officer
        request[OFFICER_TOKEN] = token
        return await handler(request)

    return officers_only


def _login(verifier: TokenVerifier, *, secure_cookies: bool) -> Handler:
    async def login(request: web.Request) -> web.StreamResponse:
        token = request.query.get("token", "").strip()
        admitted = await _officer(verifier, request, token or None)
        if isinstance(admitted, web.Response):
            return admitted
        # Verified above; only its expiry is read here.
        expires = jwt.decode(token, options={"verify_signature": False})["exp"]
        remaining = int(expires - time.time())
        if remaining <= 0:
            return _refusal(request, 401, "Sign-in required", "token expired")
        response = web.Response(
            status=web.HTTPSeeOther.status_code,
            headers={
                hdrs.LOCATION: "/",
                hdrs.CACHE_CONTROL: "no-store",
                # The token is in this page's address: never send it on to another site.
                "Referrer-Policy": "no-referrer",
            },
        )
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=remaining,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=secure_cookies,
        )
        log.info("officer signed in to the dashboard", extra={"officer": admitted.audit_name})
        return response

    return login


# The bell ------------------------------------------------------------------------------

BELL_SIZE = 10
# Short: the bell polls, and a notify that is down must not hold the page's requests.
BELL_DEADLINE_SECONDS = 2.0
KIND_PREFIX = "NOTIFICATION_KIND_"
# What notify's answers mean to the bell's callers. notify refusing a token the dashboard
# has just admitted is the two services disagreeing (their issuers or keys), not the
# caller's sign-in: any answer not listed is a bad gateway (502).
_BELL_STATUSES = {
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 503,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
}


class Bell:
    """The bureau's notifications, from the notify service over ``channel``; every call
    is made with the token of the officer asking."""

    def __init__(
        self, channel: grpc.aio.Channel, *, deadline_seconds: float = BELL_DEADLINE_SECONDS
    ) -> None:
        self._stub = notify_grpc.NotifyServiceStub(channel)
        self._deadline_seconds = deadline_seconds

    def _options(self, token: str) -> dict[str, Any]:
        return {
            "timeout": self._deadline_seconds,
            "metadata": (("authorization", f"Bearer {token}"),),
        }

    async def latest(self, token: str) -> dict[str, Any]:
        """The unread count and the newest notifications."""
        reply = await self._stub.ListNotifications(
            notify_pb.ListNotificationsRequest(page_size=BELL_SIZE), **self._options(token)
        )
        return {
            "unread_count": reply.unread_count,
            "notifications": [_notification_json(n) for n in reply.notifications],
        }

    async def mark_all_read(self, token: str) -> dict[str, Any]:
        # A new request id each time: marking all read twice is harmless anyway.
        request = notify_pb.MarkReadRequest(request_id=str(uuid.uuid4()), all=True)
        reply = await self._stub.MarkRead(request, **self._options(token))
        return {"marked": reply.marked, "unread_count": reply.unread_count}


def _notification_json(notification: notify_res.Notification) -> dict[str, Any]:
    kind = notify_res.NotificationKind.Name(notification.kind).removeprefix(KIND_PREFIX)
    return {
        "notification_id": notification.notification_id,
        "kind": kind,
        "title": notification.title,
        "body": notification.body,
        "created_at": notification.created_at.ToDatetime(UTC).isoformat(),
        "read": notification.HasField("read_at"),
    }


def _bell_handler(
    bell: Bell | None, ask: Callable[[Bell, str], Awaitable[dict[str, Any]]]
) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        headers = {hdrs.CACHE_CONTROL: "no-store"}
        if bell is None:
            return web.json_response(
                {"error": "Notifications unavailable", "detail": "no notify service configured"},
                status=503,
                headers=headers,
            )
        try:
            return web.json_response(await ask(bell, request[OFFICER_TOKEN]), headers=headers)
        except grpc.aio.AioRpcError as error:
            status = _BELL_STATUSES.get(error.code(), 502)
            if status == 503:
                # Expected while notify is down or restarting: the bell says so.
                log.debug("notify unavailable for the bell", extra={"code": error.code().name})
                detail = "the notify service did not answer"
            else:
                log.warning(
                    "notify refused the bell",
                    extra={"code": error.code().name, "details": error.details()},
                )
                detail = error.details() or error.code().name
            return web.json_response(
                {"error": "Notifications unavailable", "detail": detail},
                status=status,
                headers=headers,
            )

    return handle


# The app ------------------------------------------------------------------------------


def build_web_app(
    live: LiveStats,
    verifier: TokenVerifier,
    *,
    secure_cookies: bool = False,
    bell: Bell | None = None,
) -> web.Application:
    """``secure_cookies``: the session cookie is only sent over TLS (set when served
    over TLS; a plain-HTTP dashboard on loopback could not keep it otherwise).
    ``bell``: where the bell's notifications come from (None: the bell says they are
    unavailable)."""
    page = resources.files("bureau").joinpath("dashboard.html").read_bytes()

    async def dashboard(_: web.Request) -> web.Response:
        return web.Response(body=page, content_type="text/html", charset="utf-8")

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(headline_json(live.figures.headline()))

    async def figures(_: web.Request) -> web.Response:
        return web.json_response(dashboard_json(live.figures))

    async def report(request: web.Request) -> web.Response:
        since, until = _period(request)
        rows = report_rows(live.figures, since, until)
        extension = request.match_info["format"]
        name = f"chuhai-report-{since or 'start'}-{until or 'now'}.{extension}"
        if extension == "xlsx":
            body, content_type = as_xlsx(rows), XLSX
        else:
            body, content_type = as_csv(rows), "text/csv"
        return web.Response(
            body=body,
            content_type=content_type,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    app = web.Application(middlewares=[_officers_only(verifier)])
    app.router.add_get(LOGIN_PATH, _login(verifier, secure_cookies=secure_cookies))
    app.router.add_get("/", dashboard)
    app.router.add_get("/api/stats", stats)
    app.router.add_get("/api/dashboard", figures)
    app.router.add_get(r"/api/report.{format:csv|xlsx}", report)
    app.router.add_get("/api/notifications", _bell_handler(bell, lambda b, token: b.latest(token)))
    app.router.add_post(
        "/api/notifications/read", _bell_handler(bell, lambda b, token: b.mark_all_read(token))
    )
    return app


class WebServer:
    """The dashboard's server: HTTPS with ``ssl_context`` (see tls.web_ssl_context),
    plain HTTP without. No access log: a login link's address carries a token."""

    def __init__(
        self,
        live: LiveStats,
        host: str,
        port: int,
        verifier: TokenVerifier,
        ssl_context: ssl.SSLContext | None = None,
        *,
        bell: Bell | None = None,
    ) -> None:
        app = build_web_app(live, verifier, secure_cookies=ssl_context is not None, bell=bell)
        self._runner = web.AppRunner(app, access_log=None)
        self._host = host
        self._port = port
        self._ssl_context = ssl_context
        self.port: int | None = None

    @property
    def scheme(self) -> str:
        return "http" if self._ssl_context is None else "https"

    async def start(self) -> int:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, ssl_context=self._ssl_context)
        await site.start()
        self.port = self._runner.addresses[0][1]
        log.info("dashboard listening", extra={"url": f"{self.scheme}://{self._host}:{self.port}/"})
        return self.port

    async def stop(self) -> None:
        await self._runner.cleanup()
