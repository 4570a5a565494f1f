"""The bureau process on the runtime's ServiceHost, like every service: it restores its
figures, serves gRPC and the dashboard at once (stale but available while the stream
joins its group), and runs the Faust stream beside the server."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import faust
from opentelemetry.trace import TracerProvider

from bureau.grpc_api import binding
from bureau.live import LiveStats
from bureau.messages import headline_json, headline_message
from bureau.store import BureauStore
from bureau.stream import StreamMetrics, build_stream_app
from bureau.web import Bell, WebServer
from chuhai.bureau.v1 import bureau_service_pb2 as pb
from runtime.adapters.grpc_client import channel_to
from runtime.adapters.grpc_server import ServiceBinding
from runtime.adapters.service import ServiceContext, ServiceHost
from runtime.adapters.settings import Settings
from runtime.adapters.tls import web_ssl_context

log = logging.getLogger(__name__)

HISTORY_EVERY_SECONDS = 60.0


class BureauHost(ServiceHost):
    """The bureau's ServiceHost. It records no events, so no outbox relay; ``live`` and
    ``web`` are there once started.

    Stopping follows ServiceHost's order: the gRPC server stops, the stream stops (its
    background task stops the Faust app when cancelled), then a last snapshot is taken
    of figures that no longer move, and the dashboard closes."""

    def __init__(
        self, settings: Settings, *, tracer_provider: TracerProvider | None = None
    ) -> None:
        super().__init__(
            "bureau",
            self._build_bureau,
            settings,
            relays_outbox=False,
            tracer_provider=tracer_provider,
        )
        self.live: LiveStats | None = None
        self.web: WebServer | None = None

    async def _build_bureau(self, context: ServiceContext) -> list[ServiceBinding]:
        settings = context.settings
        store = BureauStore(context.mongo, context.db)
        self.live = live = LiveStats(await store.load())
        log.info(
            "figures restored",
            extra={"events_applied": live.figures.headline().events_applied},
        )
        # The dashboard admits officers only, by the same token rules as the gRPC API.
        # Its bell calls notify with each officer's own token, so the channel has none.
        notify = channel_to("notify", settings)
        self.web = WebServer(
            live,
            settings.bureau_web_host,
            settings.bureau_web_port,
            context.verifier,
            web_ssl_context(settings),
            bell=Bell(notify),
        )
        await self.web.start()

        def encode_headline() -> bytes:
            headline = headline_message(live.figures.headline())
            return pb.GetStatsResponse(headline=headline).SerializeToString()

        stream = build_stream_app(
            settings,
            live,
            store,
            encode_headline,
            metrics=StreamMetrics(context.metrics.registry),
            tracer=context.tracer,
        )
        context.run_in_background("stream", lambda: _run_stream(stream))
        context.run_in_background("history", lambda: _record_history(store, live))

        async def save_snapshot() -> None:
            # A fresh snapshot makes the next start quick; the journal alone is enough.
            with contextlib.suppress(Exception):
                await store.snapshot(live.figures, force=True)

        context.on_stop(save_snapshot)
        context.on_stop(self.web.stop)
        context.on_stop(notify.close)
        return [binding(live)]


async def _run_stream(stream: faust.App) -> None:
    """Run the Faust app until the host cancels this at stop, then stop the app."""
    try:
        await stream.start()
        await stream.wait_until_stopped()
    finally:
        with contextlib.suppress(Exception):
            await stream.stop()


async def _record_history(store: BureauStore, live: LiveStats) -> None:
    while True:
        await asyncio.sleep(HISTORY_EVERY_SECONDS)
        try:
            await store.record_headline(headline_json(live.figures.headline()))
        except Exception:
            log.exception("could not record the headline history")
