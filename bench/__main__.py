"""`make bench` (`python -m bench`): every figure of issue 12 on a private embedded
platform, notify's throughput on infrastructure of its own (bench.notify_bench), then
the full-speed demo (skipped with --quick). Prints a table, writes bench/results.json,
and ends with one `bench: key=value ...` line.

The machine is shared and small: absolute rates vary from run to run, ratios against the
baselines measured beside them less so. Compare before and after on the same machine."""

from __future__ import annotations

import argparse
import asyncio
import logging
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.demo_run import run_full_speed
from bench.measures import QUICK, Bench, Sizes, say
from bench.notify_bench import measure_notify
from bench.platform import BenchPlatform
from bench.report import Report

RESULTS = Path(__file__).with_name("results.json")


async def measure(root: Path, sizes: Sizes, report: Report) -> None:
    bench_platform = BenchPlatform(root)
    bench: Bench | None = None
    try:
        await asyncio.to_thread(bench_platform.start_infrastructure)
        await bench_platform.start_services()
        bench = Bench(bench_platform, sizes, report)
        await bench.open()
        bench.memory("idle")
        await bench.set_up_expo()
        await bench.ingest()
        await bench.freshness()
        await bench.answers()
        await bench.booth_contention()
        bench.memory("loaded")
        await bench.aggregate()
        await bench.replay()
    finally:
        if bench is not None:
            await bench.close()
        await bench_platform.stop()


def demo(root: Path, within_seconds: float, report: Report) -> None:
    say(f"demo: chuhai-platform run --full-speed (at most {within_seconds:.0f} s)")
    root.mkdir(parents=True, exist_ok=True)
    log = root / "demo.log"
    run = run_full_speed(root / "var", within_seconds, log)
    for label, count, seconds, rate in run.phases:
        say(f"  {label:<30} {count:>7} in {seconds:7.1f} s  {rate:8.1f}/s")
    note = "exact figures" if run.exact else f"figures {run.figures or 'none'}"
    if run.failure:
        note += f"; {run.failure}"
    report.add("demo_full_speed_s", run.seconds if run.exact else None, "s", note)
    report.meta["demo_phases"] = [
        {"phase": label, "count": count, "seconds": seconds, "per_s": rate}
        for label, count, seconds, rate in run.phases
    ]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, no demo run")
    parser.add_argument(
        "--demo-within", type=float, default=3600.0, help="seconds the demo may take"
    )
    parser.add_argument("--only-demo", action="store_true", help="run the demo only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    sizes = QUICK if args.quick else Sizes()
    report = Report(
        meta={
            "mode": "quick" if args.quick else "full",
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {platform.python_version()}",
            "sizes": vars(sizes),
        }
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="chuhai-bench-") as tmp:
        root = Path(tmp)
        if not args.only_demo:
            asyncio.run(measure(root / "platform", sizes, report))
            asyncio.run(measure_notify(root / "notify", sizes.notify_intents, report))
        if args.quick:
            report.add("demo_full_speed_s", None, "s", "skipped (--quick)")
        else:
            demo(root / "demo", args.demo_within, report)
    report.meta["bench_seconds"] = round(time.perf_counter() - started)
    report.write_json(RESULTS)
    say("")
    say(report.table())
    say(f"written to {RESULTS}")
    say(report.summary_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
