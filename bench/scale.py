"""`python -m bench.scale`: the Xuchang case at ten times its size on the embedded stack,
each phase for a bounded time, to back docs/scaling.md.

The demo's own phases (demo.scenario) play through the public gRPC APIs against every
service as a real process (bench.platform), with the figures scaled by ten: 1,270
exporters applying for 430 booths, 120 warehouses and 360 bookings, 680,000 buyers from
228 countries and regions (the national fair's count: ten times 143 is more countries
than there are), 74,420 intents. A phase stops starting calls when its time is up, so
the whole run stays within about fifteen minutes; its rate, measured over what it did,
says how long the whole phase would take. Every few seconds a sampler records each
process's memory (VmRSS) and CPU, the outbox backlog each relay reports, the events
the services committed against the events the bureau applied (its lag), and at the end
the size of every collection and of the bureau's snapshot.

The machine is shared and small: absolute rates vary with whatever else runs; which
process saturates first, and the shape of the curves, much less."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import bson
import grpc
from pymongo import AsyncMongoClient

import demo.scenario as scenario
from bench.measures import say
from bench.platform import SERVICES, BenchPlatform, rss_mb
from chuhai.bureau.v1 import bureau_service_pb2 as bureau_pb
from chuhai.bureau.v1 import bureau_service_pb2_grpc as bureau_grpc
from demo.principals import Credentials
from demo.scenario import CONCURRENCY, XUCHANG, Demo, Scale
from runtime.adapters.grpc_client import service_channel
from runtime.adapters.outbox import OUTBOX_COLLECTION

T = TypeVar("T")

FACTOR = 10
NATIONAL_COUNTRIES = 228
TEN_X = Scale(
    exporters=XUCHANG.exporters * FACTOR,
    booth_quota=XUCHANG.booth_quota * FACTOR,
    buyers=XUCHANG.buyers * FACTOR,
    countries=NATIONAL_COUNTRIES,
    intents=XUCHANG.intents * FACTOR,
    warehouses=XUCHANG.warehouses * FACTOR,
)
# Xuchang's answers (831 of 7,442 intents, issue 12), in proportion.
ANSWER_SHARE = 831 / 7_442
# Seconds each phase may start calls for, by the start of the demo's label. About 11
# minutes in all, plus the platform's start and stop.
BUDGETS = {
    "exporters registered": 45.0,
    "booth applications": 45.0,
    "overseas warehouses": 20.0,
    "warehouse bookings": 25.0,
    "exhibitors and showrooms": 60.0,
    "buyers registered": 120.0,
    "buyer visits": 60.0,
    "purchase intents": 120.0,
    "exhibitor answers": 45.0,
}
DRAIN_SECONDS = 90.0
SAMPLE_SECONDS = 5.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Phase:
    label: str
    target: int  # units at ten times Xuchang
    done: int = 0
    seconds: float = 0.0
    # Seconds since the previous phase ended: the demo's single calls between phases
    # (RunAllocation over every application, creating and opening the edition).
    gap_before_s: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def per_s(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0

    @property
    def whole_phase_s(self) -> float | None:
        """How long the whole phase at ten times would take at the rate measured."""
        return self.target / self.per_s if self.per_s else None


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time a process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class TenTimesDemo(Demo):
    """The demo's phases with each one bounded in time, its calls' failures counted
    rather than raised, and its rate recorded."""

    def __init__(self, *args: Any, clients: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clients = clients
        self.phases: list[Phase] = []
        self.current = "set-up"
        self.last_end: float | None = None
        # label -> the items whose call succeeded
        self.succeeded: dict[str, list[Any]] = {}

    def _target(self, label: str, items: int, units: int | None) -> int:
        scale = self.scale
        targets = {
            "exporters registered": scale.exporters,
            "booth applications": scale.exporters,
            "overseas warehouses": scale.warehouses,
            "warehouse bookings": 3 * scale.warehouses,
            "exhibitors and showrooms": scale.exporters,
            "buyers registered": scale.buyers,
            "buyer visits": scale.buyers,
            "purchase intents": TEN_X.intents,
            "exhibitor answers": round(TEN_X.intents * ANSWER_SHARE),
        }
        for prefix, target in targets.items():
            if label.startswith(prefix):
                return target
        return units if units is not None else items

    async def _each(
        self,
        label: str,
        items: Sequence[T],
        call: Callable[[T], Awaitable[Any]],
        concurrency: int = CONCURRENCY,
        units: int | None = None,
    ) -> list[Any]:
        budget = next((s for p, s in BUDGETS.items() if label.startswith(p)), 60.0)
        # Single calls run at the bench's client count; batches keep the demo's few at a
        # time (batches of 500 conflict when many run at once).
        workers = self.clients if concurrency == CONCURRENCY else concurrency
        per_item = (units / len(items)) if units is not None and items else 1.0
        phase = Phase(label, self._target(label, len(items), units))
        self.phases.append(phase)
        self.current = label
        say(f"{label}: {len(items)} calls ready, {workers} at a time, {budget:.0f} s at most")
        pending = iter(enumerate(items))
        results: dict[int, Any] = {}
        errors: Counter[str] = Counter()
        started = time.perf_counter()
        if self.last_end is not None:
            phase.gap_before_s = round(started - self.last_end, 1)
        stop_at = started + budget

        async def worker() -> None:
            for index, item in pending:
                if time.perf_counter() > stop_at:
                    return
                try:
                    results[index] = await call(item)
                except grpc.aio.AioRpcError as error:
                    errors[error.code().name] += 1

        await asyncio.gather(*(worker() for _ in range(workers)))
        self.last_end = time.perf_counter()
        phase.seconds = self.last_end - started
        phase.done = round(len(results) * per_item)
        phase.errors = dict(errors)
        self.succeeded[label] = [items[i] for i in sorted(results)]
        whole = phase.whole_phase_s
        say(
            f"  {phase.done} of {phase.target} in {phase.seconds:.1f} s ({phase.per_s:.1f}/s)"
            f"; the whole phase: {whole / 60 if whole else float('nan'):.1f} min"
            + (f"; errors {phase.errors}" if errors else "")
        )
        return [results[i] for i in sorted(results)]

    async def warehouses(self) -> None:
        # The demo knows twelve sites; ten times as many are the same cities, numbered.
        base = scenario.WAREHOUSE_SITES
        sites = tuple(
            (f"{base[i % len(base)][0][:-2]}{i // len(base) + 1:02d}", *base[i % len(base)][1:])
            for i in range(self.scale.warehouses)
        )
        known = scenario.WAREHOUSE_SITES
        scenario.WAREHOUSE_SITES = sites
        try:
            await super().warehouses()
        finally:
            scenario.WAREHOUSE_SITES = known

    async def expo_opens(self) -> None:
        await super().expo_opens()
        # Intents go only to the exporters that became exhibitors within the budget.
        joined = {code for code, _ in self.succeeded.get("exhibitors and showrooms", [])}
        self.exporters = [e for e in self.exporters if e[0] in joined]

    async def intents(self) -> None:
        # As many senders as were registered in time (the demo samples without
        # repetition); the phase stops on its budget long before that matters.
        self.scale = replace(self.scale, intents=min(self.scale.intents, len(self.buyers)))
        await super().intents()


@dataclass
class Sampler:
    """Every few seconds: memory and CPU of every process, the relays' backlogs, the
    events committed and applied."""

    bench_platform: BenchPlatform
    demo: TenTimesDemo
    bureau: bureau_grpc.BureauServiceStub
    credentials: Credentials
    mongo: AsyncMongoClient
    samples: list[dict[str, Any]] = field(default_factory=list)
    _cpu: dict[str, tuple[float, float]] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def pids(self) -> dict[str, int]:
        found = {
            name: p.process.pid
            for name, p in self.bench_platform.processes.items()
            if name in SERVICES and p.process is not None
        }
        # The embedded Kafka and MongoDB, to report their memory and CPU too.
        found.update(self.bench_platform.infra.pids)
        return found

    def metrics(self, service: str) -> dict[str, float]:
        port = self.bench_platform.settings.metrics_port(service)
        wanted = (
            "chuhai_outbox_backlog_events",
            "chuhai_outbox_lag_seconds",
            "chuhai_bureau_consumer_lag_records",
        )
        values: dict[str, float] = {}
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
                text = reply.read().decode()
        except OSError:
            return values
        for line in text.splitlines():
            name = line.split("{", 1)[0].split(" ", 1)[0]
            if name in wanted:
                values[name] = values.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
        return values

    async def committed(self) -> dict[str, int]:
        """Events in each service's outbox: every event it committed."""
        settings = self.bench_platform.settings
        counts = {}
        for service in ("booth", "expo", "warehouse"):
            db = self.mongo[settings.database_name(service)]
            counts[service] = await db[OUTBOX_COLLECTION].estimated_document_count()
        return counts

    async def sample(self) -> dict[str, Any]:
        now = time.perf_counter()
        row: dict[str, Any] = {"t": round(now - self.started, 1), "phase": self.demo.current}
        for name, pid in self.pids().items():
            row[f"rss_mb_{name}"] = round(rss_mb(pid) or 0.0, 1)
            used = cpu_seconds(pid)
            if used is not None:
                before = self._cpu.get(name)
                if before is not None:
                    row[f"cpu_{name}"] = round((used - before[0]) / (now - before[1]), 2)
                self._cpu[name] = (used, now)
        for service in SERVICES:
            for key, value in (await asyncio.to_thread(self.metrics, service)).items():
                short = key.removeprefix("chuhai_").removeprefix("bureau_")
                row[f"{short}_{service}"] = value
        committed = await self.committed()
        row["committed"] = sum(committed.values())
        try:
            reply = await self.bureau.GetStats(
                bureau_pb.GetStatsRequest(), timeout=10, metadata=self.credentials.officer()
            )
            row["applied"] = reply.headline.events_applied
            row["bureau_behind"] = row["committed"] - row["applied"]
        except grpc.aio.AioRpcError as error:
            row["bureau_error"] = error.code().name
        self.samples.append(row)
        return row

    async def run(self) -> None:
        while True:
            row = await self.sample()
            say(
                f"    [{row['t']:6.0f} s] committed {row['committed']:>7} applied "
                f"{row.get('applied', '?'):>7} behind {row.get('bureau_behind', '?'):>7}; "
                f"cpu secantus {row.get('cpu_secantus', 0):.2f} expo {row.get('cpu_expo', 0):.2f}"
                f" bureau {row.get('cpu_bureau', 0):.2f}; rss bureau {row['rss_mb_bureau']} MiB"
            )
            await asyncio.sleep(SAMPLE_SECONDS)


async def collection_sizes(mongo: AsyncMongoClient, settings: Any) -> dict[str, dict[str, int]]:
    sizes: dict[str, dict[str, int]] = {}
    for service in SERVICES:
        db = mongo[settings.database_name(service)]
        for name in sorted(await db.list_collection_names()):
            entry: dict[str, int] = {"count": await db[name].estimated_document_count()}
            with contextlib.suppress(Exception):
                stats = await db.command("collStats", name)
                for key in ("size", "storageSize", "totalIndexSize", "avgObjSize"):
                    if key in stats:
                        entry[key] = int(stats[key])
            sizes[f"{service}.{name}"] = entry
    return sizes


async def snapshot_size(mongo: AsyncMongoClient, settings: Any) -> dict[str, int]:
    """Bytes of the bureau's snapshot document, in all and by section."""
    doc = await mongo[settings.database_name("bureau")]["snapshots"].find_one({"_id": "live"})
    if doc is None:
        return {}
    sizes = {"total": len(bson.encode(doc))}
    state = doc.get("state", {})
    if isinstance(state, dict):
        for key, value in state.items():
            sizes[key] = len(bson.encode({"v": value}))
    return sizes


async def simulate(root: Path, clients: int) -> dict[str, Any]:
    bench_platform = BenchPlatform(root)
    result: dict[str, Any] = {"scale": asdict(TEN_X), "clients": clients, "budgets": BUDGETS}
    channels: dict[str, grpc.aio.Channel] = {}
    mongo: AsyncMongoClient | None = None
    sampler_task: asyncio.Task[None] | None = None
    started = time.perf_counter()
    try:
        await asyncio.to_thread(bench_platform.start_infrastructure)
        await bench_platform.start_services()
        settings = bench_platform.settings
        say(f"platform up in {time.perf_counter() - started:.0f} s")
        channels = {name: service_channel(settings.grpc_target(name)) for name in SERVICES}
        mongo = AsyncMongoClient(settings.mongodb_uri, tz_aware=True)
        credentials = Credentials(bench_platform.tokens)
        demo = TenTimesDemo(channels, TEN_X, 0.0, credentials, clients=clients)
        bureau = bureau_grpc.BureauServiceStub(channels["bureau"])
        sampler = Sampler(bench_platform, demo, bureau, credentials, mongo)
        await sampler.sample()
        sampler_task = asyncio.create_task(sampler.run())
        demo.started = await demo.first_played()
        await demo.exporters_apply()
        await demo.warehouses()
        await demo.expo_opens()
        await demo.buyers_visit()
        await demo.intents()
        # What the bureau still has to apply once the calls stop, and how fast it does.
        demo.current = "drain"
        say(f"drain: the bureau catches up (at most {DRAIN_SECONDS:.0f} s)")
        drain_from = await sampler.sample()
        deadline = time.perf_counter() + DRAIN_SECONDS
        last = drain_from
        while time.perf_counter() < deadline:
            await asyncio.sleep(SAMPLE_SECONDS)
            last = sampler.samples[-1]
            if last.get("bureau_behind", 1) <= 0 and last.get("t", 0) > drain_from["t"]:
                break
        result["drain"] = {
            "behind_at_start": drain_from.get("bureau_behind"),
            "behind_at_end": last.get("bureau_behind"),
            "seconds": round(last["t"] - drain_from["t"], 1),
            "applied_per_s": round(
                (last.get("applied", 0) - drain_from.get("applied", 0))
                / max(last["t"] - drain_from["t"], 1e-9),
                1,
            ),
        }
        sampler_task.cancel()
        await asyncio.gather(sampler_task, return_exceptions=True)
        sampler_task = None
        result["final"] = await sampler.sample()
        result["phases"] = [
            {**asdict(p), "per_s": round(p.per_s, 1), "whole_phase_s": p.whole_phase_s}
            for p in demo.phases
        ]
        result["samples"] = sampler.samples
        result["collections"] = await collection_sizes(mongo, settings)
        # A graceful stop writes the bureau's snapshot: its size is the one to plan for.
        await bench_platform.stop_process("bureau")
        result["snapshot_bytes"] = await snapshot_size(mongo, settings)
    finally:
        if sampler_task is not None:
            sampler_task.cancel()
            await asyncio.gather(sampler_task, return_exceptions=True)
        for channel in channels.values():
            await channel.close()
        if mongo is not None:
            await mongo.close()
        await bench_platform.stop()
    result["run_seconds"] = round(time.perf_counter() - started)
    return result


def report(result: dict[str, Any]) -> None:
    say("")
    say(f"{'phase':<32}{'done':>9}{'of 10x':>9}{'s':>8}{'/s':>9}{'whole 10x':>11}  errors")
    total = 0.0
    for p in result["phases"]:
        whole = p["whole_phase_s"]
        total += whole or 0.0
        whole_text = f"{whole / 60:.1f} min" if whole else "-"
        say(
            f"{p['label']:<32}{p['done']:>9}{p['target']:>9}{p['seconds']:>8.1f}"
            f"{p['per_s']:>9.1f}{whole_text:>11}  {p['errors'] or ''}"
        )
    say(f"the whole 10x case at these rates: {total / 3600:.1f} h of calls")
    say(f"bureau drain: {result['drain']}")
    peak: dict[str, float] = {}
    for row in result["samples"]:
        for key, value in row.items():
            if isinstance(value, int | float) and key not in ("t",):
                peak[key] = max(peak.get(key, value), value)
    say("peaks: " + ", ".join(f"{k}={v:g}" for k, v in sorted(peak.items())))
    say("collections (count, bytes):")
    for name, entry in result["collections"].items():
        say(f"  {name:<32}{entry['count']:>9} {entry.get('size', '')}")
    say(f"bureau snapshot bytes: {result['snapshot_bytes']}")
    say(f"run: {result['run_seconds']} s")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--clients", type=int, default=32, help="concurrent single calls")
    parser.add_argument("--json", type=Path, help="also write every sample here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="chuhai-scale-") as tmp:
        result = asyncio.run(simulate(Path(tmp), args.clients))
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str))
        say(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
