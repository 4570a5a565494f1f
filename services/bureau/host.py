"""The bureau process: restores its aggregates, serves gRPC and the dashboard at once
(stale but available while the stream joins its group), and runs the Faust stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import faust
from pymongo import AsyncMongoClient

from bureau.grpc_api import binding
from bureau.live import LiveStats
from bureau.messages import headline_json, headline_message
from bureau.store import BureauStore
from bureau.stream import build_stream_app
from bureau.web import WebServer
from chuhai.bureau.v1 import bureau_service_pb2 as pb
from runtime.adapters.grpc_server import GrpcServer
from runtime.adapters.mongo import connect_mongo
from runtime.adapters.settings import Settings

log = logging.getLogger(__name__)

HISTORY_EVERY_SECONDS = 60.0


class BureauHost:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._mongo: AsyncMongoClient | None = None
        self._stream: faust.App | None = None
        self._store: BureauStore | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.live: LiveStats | None = None
        self.server: GrpcServer | None = None
        self.web: WebServer | None = None

    async def start(self) -> None:
        settings = self._settings
        self._mongo = await connect_mongo(settings.mongodb_uri, app_name="chuhai-bureau")
        self._store = store = BureauStore(
            self._mongo, self._mongo.get_database(settings.database_name("bureau"))
        )
        self.live = live = LiveStats(await store.load())
        log.info(
            "aggregates restored",
            extra={"events_applied": live.aggregates.headline().events_applied},
        )
        self.server = GrpcServer(
            [binding(live)], host=settings.grpc_host, port=settings.grpc_port("bureau")
        )
        await self.server.start()
        self.web = WebServer(live, settings.bureau_web_host, settings.bureau_web_port)
        await self.web.start()

        def encode_headline() -> bytes:
            headline = headline_message(live.aggregates.headline())
            return pb.GetStatsResponse(headline=headline).SerializeToString()

        self._stream = build_stream_app(settings, live, store, encode_headline)
        self._tasks = [
            asyncio.create_task(self._stream.start(), name="bureau-stream"),
            asyncio.create_task(self._record_history(store), name="bureau-history"),
        ]

    async def _record_history(self, store: BureauStore) -> None:
        assert self.live is not None
        while True:
            await asyncio.sleep(HISTORY_EVERY_SECONDS)
            try:
                await store.record_headline(headline_json(self.live.aggregates.headline()))
            except Exception:
                log.exception("could not record the headline history")

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(self._settings.grpc_shutdown_grace_seconds)
        if self._stream is not None:
            with contextlib.suppress(Exception):
                await self._stream.stop()
        if self._store is not None and self.live is not None:
            # A fresh snapshot makes the next start quick; the journal alone is enough.
            with contextlib.suppress(Exception):
                await self._store.snapshot(self.live.aggregates, force=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.web is not None:
            await self.web.stop()
        if self._mongo is not None:
            await self._mongo.close()
        log.info("bureau stopped")
