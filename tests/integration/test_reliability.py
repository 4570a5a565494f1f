"""kill -9 under load: nothing a client saw acknowledged is lost or counted twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import grpc
import pytest

from chuhai.booth.v1 import booth_service_pb2 as pb
from chuhai.booth.v1 import booth_service_pb2_grpc as pb_grpc
from launcher.cli import wait_serving
from launcher.embedded import free_port
from runtime.adapters.events import decode_envelope
from runtime.adapters.settings import Settings
from runtime.adapters.topics import BOOTH_EXPORTERS
from tests.credit_codes import random_credit_code
from tests.identity import Identities
from tests.kafka_reading import read_records

pytestmark = pytest.mark.integration

REQUESTS = 300


def start_booth(settings: Settings, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers,
        MONGODB_URI=settings.mongodb_uri,
        MONGODB_DATABASE_PREFIX=settings.mongodb_database_prefix,
        BOOTH_GRPC_PORT=str(port),
        BOOTH_METRICS_PORT="0",
        # The test key pair's tokens, as the settings fixture trusts them.
        AUTH_ISSUER=settings.auth_issuer,
        AUTH_AUDIENCE=settings.auth_audience,
        AUTH_JWKS_FILE=settings.auth_jwks_file,
    )
    with log_path.open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "booth"], env=env, stdout=log, stderr=log)


async def test_booth_killed_mid_load_loses_no_acknowledged_event(
    settings: Settings, tmp_path: Path, identities: Identities
) -> None:
    port = free_port()
    target = f"127.0.0.1:{port}"
    service = start_booth(settings, port, tmp_path / "booth.log")
    try:
        assert await wait_serving(target, 60)
        codes = [random_credit_code() for _ in range(REQUESTS)]
        acknowledged: list[str] = []
        killed = asyncio.Event()

        async with grpc.aio.insecure_channel(target) as channel:
            stub = pb_grpc.BoothServiceStub(channel)

            async def register(code: str) -> None:
                request = pb.RegisterExporterRequest(
                    request_id=code, credit_code=code, profile=pb.ExporterProfile(name=code)
                )
                try:
                    await stub.RegisterExporter(
                        request, metadata=identities.exporter(code), timeout=20
                    )
                except grpc.aio.AioRpcError:
                    return
                acknowledged.append(code)
                if len(acknowledged) == REQUESTS // 3 and not killed.is_set():
                    # No graceful stop, no drain: the relay dies wherever it is.
                    service.send_signal(signal.SIGKILL)
                    killed.set()

            limit = asyncio.Semaphore(16)

            async def limited(code: str) -> None:
                async with limit:
                    await register(code)

            await asyncio.gather(*(limited(code) for code in codes))
        service.wait(timeout=10)
        assert killed.is_set() and service.returncode == -signal.SIGKILL
        assert REQUESTS // 3 <= len(acknowledged) < REQUESTS

        # The restarted service's relay publishes what the dead one had not.
        service = start_booth(settings, port, tmp_path / "booth.log")
        assert await wait_serving(target, 60)
        wanted = {code.encode() for code in acknowledged}
        records = await asyncio.to_thread(
            read_records,
            settings.kafka_bootstrap_servers,
            BOOTH_EXPORTERS.name,
            expected=len(wanted),
            keys=wanted,
            within_seconds=60,
            settle_seconds=1.0,
        )
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=30)

    events_per_code = Counter()
    event_ids_per_code: dict[bytes, set[str]] = {}
    for record in records:
        envelope = decode_envelope(record.value)
        events_per_code[record.key] += 1
        event_ids_per_code.setdefault(record.key, set()).add(envelope.event_id)
    # Lost: none. Published twice (crash between publish and mark) is allowed, but it is
    # the same event, so a consumer deduplicating on event_id counts each firm once.
    assert set(events_per_code) == wanted
    assert all(len(ids) == 1 for ids in event_ids_per_code.values())
