"""The bureau's web dashboard and its JSON API (aiohttp), served beside gRPC."""

from __future__ import annotations

import logging
from datetime import date
from importlib import resources

from aiohttp import web

from bureau.live import LiveStats
from bureau.messages import dashboard_json, headline_json
from bureau.reports import as_csv, as_xlsx, report_rows
from runtime.kernel.validation import Validator

log = logging.getLogger(__name__)

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _period(request: web.Request) -> tuple[date | None, date | None]:
    check = Validator()
    since = check.date(request.query.get("since", ""), "since", required=False)
    until = check.date(request.query.get("until", ""), "until", required=False)
    if check.violations:
        raise web.HTTPBadRequest(
            text="; ".join(f"{v.field}: {v.description}" for v in check.violations)
        )
    return since, until


def build_web_app(live: LiveStats) -> web.Application:
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

    app = web.Application()
    app.router.add_get("/", dashboard)
    app.router.add_get("/api/stats", stats)
    app.router.add_get("/api/dashboard", figures)
    app.router.add_get(r"/api/report.{format:csv|xlsx}", report)
    return app


class WebServer:
    def __init__(self, live: LiveStats, host: str, port: int) -> None:
        self._runner = web.AppRunner(build_web_app(live), access_log=None)
        self._host = host
        self._port = port
        self.port: int | None = None

    async def start(self) -> int:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        log.info("dashboard listening", extra={"url": f"http://{self._host}:{self.port}/"})
        return self.port

    async def stop(self) -> None:
        await self._runner.cleanup()
