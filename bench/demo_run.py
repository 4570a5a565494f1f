"""`chuhai-platform run --full-speed` in a temporary var directory on free ports, timed
from "Chuhai is running" (every service SERVING) to the demo's final figures, then
stopped with SIGINT as a person would with Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from demo.scenario import XUCHANG, expected_figures
from launcher.cli import DEFAULT_KAFKA_PORT, DEFAULT_MONGO_PORT, SERVICES
from launcher.embedded import free_port

STOP_SECONDS = 120.0
_FIGURE = re.compile(r"^\s+(\w+)\s+([\d,]+)\s*$")
# What the demo prints at the end of each phase (demo.scenario._each).
_PHASE = re.compile(
    r"^(?P<label>.+?): (?P<count>\d+) in (?P<seconds>[\d.]+) s \((?P<rate>[\d.]+)/s\)"
)


@dataclass
class DemoRun:
    seconds: float | None = None
    figures: dict[str, int] = field(default_factory=dict)
    # (label, count, seconds, rate) of each phase, as the demo printed them.
    phases: list[tuple[str, int, float, float]] = field(default_factory=list)
    failure: str = ""

    @property
    def exact(self) -> bool:
        return self.figures == expected_figures(XUCHANG)


def parse_output(lines: list[str]) -> tuple[dict[str, int], list[tuple[str, int, float, float]]]:
    """The final figures and the phases' rates from the launcher's output."""
    figures: dict[str, int] = {}
    phases: list[tuple[str, int, float, float]] = []
    in_figures = False
    for line in lines:
        # tqdm redraws its bars with carriage returns: the last state counts.
        line = line.rsplit("\r", 1)[-1].rstrip("\n")
        if line.startswith("The bureau's figures:"):
            in_figures = True
            continue
        if in_figures:
            found = _FIGURE.match(line)
            if found:
                figures[found[1]] = int(found[2].replace(",", ""))
                continue
            in_figures = False
        phase = _PHASE.match(line)
        if phase:
            phases.append(
                (
                    phase["label"],
                    int(phase["count"]),
                    float(phase["seconds"]),
                    float(phase["rate"]),
                )
            )
    return figures, phases


def _environment() -> dict[str, str]:
    """The caller's environment on free ports; no external Kafka, MongoDB or identity
    provider, so the launcher starts its own."""
    drop = ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI", "AUTH_JWKS_URL", "AUTH_JWKS_FILE")
    env = {k: v for k, v in os.environ.items() if k.upper() not in drop}
    for service in SERVICES:
        env[f"{service.upper()}_GRPC_PORT"] = str(free_port())
        env[f"{service.upper()}_METRICS_PORT"] = str(free_port())
    env["BUREAU_WEB_PORT"] = str(free_port())
    env["DEV_IDENTITY_PORT"] = str(free_port())
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextlib.contextmanager
def _usual_ports_taken() -> Iterator[None]:
    """Holds Kafka's and MongoDB's usual ports while the launcher starts, so it picks
    free ones and never takes a `make run` of someone else's place."""
    held = []
    for port in (DEFAULT_KAFKA_PORT, DEFAULT_MONGO_PORT):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", port))
            held.append(sock)
        except OSError:
            sock.close()
    try:
        yield
    finally:
        for sock in held:
            sock.close()


def run_full_speed(var_dir: Path, within_seconds: float, log_path: Path) -> DemoRun:
    result = DemoRun()
    lines: list[str] = []
    finished = threading.Event()
    launcher = str(Path(sys.executable).with_name("chuhai-platform"))
    with _usual_ports_taken(), open(log_path, "w") as log:
        process = subprocess.Popen(
            [launcher, "run", "--full-speed", "--var-dir", str(var_dir)],
            env=_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        started: list[float] = []
        ended: list[float] = []

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                log.write(line)
                lines.append(line)
                if line.startswith("Chuhai is running:") and not started:
                    started.append(time.perf_counter())
                elif line.startswith("The bureau's figures:") and not ended:
                    ended.append(time.perf_counter())
                elif ended and "Press Ctrl-C" in line:
                    finished.set()
                if "The demo stopped" in line:
                    result.failure = line.strip()
                    finished.set()
            # The launcher's output ended: it exited, with or without figures.
            finished.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            if not finished.wait(within_seconds) or process.poll() is not None:
                result.failure = result.failure or (
                    f"no final figures within {within_seconds:.0f} s"
                    if process.poll() is None
                    else f"the launcher exited with {process.returncode}"
                )
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(STOP_SECONDS)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            reader.join(10)
    result.figures, result.phases = parse_output(lines)
    if started and ended:
        result.seconds = ended[0] - started[0]
    return result
