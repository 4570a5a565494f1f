"""`chuhai-platform run` (what `make run` starts), tried as a new user would: every
service SERVING, reflection answering, calls authenticated against the development
identity provider it serves, notify's mail catcher showing its page, and Ctrl-C leaving
no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from chuhai.bureau.v1 import bureau_service_pb2 as bureau_pb
from chuhai.bureau.v1 import bureau_service_pb2_grpc as bureau_grpc
from chuhai.notify.v1 import notify_service_pb2 as notify_pb
from chuhai.notify.v1 import notify_service_pb2_grpc as notify_grpc
from launcher.embedded import free_port
from launcher.identity import development_keys
from runtime.kernel.identity import Principal, Role

pytestmark = pytest.mark.integration

SERVICES = {
    "booth": "chuhai.booth.v1.BoothService",
    "expo": "chuhai.expo.v1.ExpoService",
    "warehouse": "chuhai.warehouse.v1.WarehouseService",
    "bureau": "chuhai.bureau.v1.BureauService",
    "notify": "chuhai.notify.v1.NotifyService",
}


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The parent pid is the second field after the parenthesised command name.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def get_stats(port: int, token: str | None) -> grpc.StatusCode:
    """The bureau's officers-only GetStats as the holder of ``token``."""
    metadata = [("authorization", f"Bearer {token}")] if token else None
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            bureau_grpc.BureauServiceStub(channel).GetStats(
                bureau_pb.GetStatsRequest(), metadata=metadata, timeout=10
            )
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


def test_platform_serves_every_service_and_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    ports = {name: free_port() for name in SERVICES}
    identity_port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI")
        # The platform brings its own identity provider.
        and not key.startswith("AUTH_")
    }
    env.update({f"{name.upper()}_GRPC_PORT": str(port) for name, port in ports.items()})
    env.update({f"{name.upper()}_METRICS_PORT": str(free_port()) for name in SERVICES})
    env["BUREAU_WEB_PORT"] = str(free_port())
    env["DEV_IDENTITY_PORT"] = str(identity_port)
    smtp_port, mail_port = free_port(), free_port()
    env["DEV_MAIL_SMTP_PORT"], env["DEV_MAIL_WEB_PORT"] = str(smtp_port), str(mail_port)
    env.pop("SMTP_HOST", None)
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "launcher.cli",
            "run",
            "--no-demo",
            "--var-dir",
            str(tmp_path / "var"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        banner = []
        deadline = time.monotonic() + 120
        assert launcher.stdout is not None
        while time.monotonic() < deadline:
            line = launcher.stdout.readline()
            if not line:
                break
            banner.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        text = "".join(banner)
        assert "NOT READY" not in text, text
        for name, port in ports.items():
            assert f"{name:<10} grpc://127.0.0.1:{port}" in text, text
        for name, full_name in SERVICES.items():
            with grpc.insecure_channel(f"127.0.0.1:{ports[name]}") as channel:
                assert full_name in ProtoReflectionDescriptorDatabase(channel).get_services()

        jwks_url = f"http://127.0.0.1:{identity_port}/.well-known/jwks.json"
        assert f"identity   {jwks_url}" in text, text
        assert "/login?token=" in text and "chuhai-platform token officer" in text, text
        # The launcher's key pair (var/identity) is the one the provider serves and the
        # services trust: tokens it signs are accepted, with their role checked.
        keys = development_keys(tmp_path / "var")
        with urllib.request.urlopen(jwks_url, timeout=5) as response:
            served = json.load(response)
        assert [key["kid"] for key in served["keys"]] == [keys.key_id]
        # The settings' defaults: the launcher's environment has no AUTH_* of its own.
        tokens = keys.issuer(issuer="chuhai-development", audience="chuhai")
        officer = tokens.issue(Principal("officer-1", Role.OFFICER))
        exporter = tokens.issue(Principal("e-1", Role.EXPORTER, "91410000MA44XKRN1X"))
        stranger = development_keys(tmp_path / "elsewhere").issuer(
            issuer="chuhai-development", audience="chuhai"
        )
        forged = stranger.issue(Principal("officer-1", Role.OFFICER))
        bureau = ports["bureau"]
        assert get_stats(bureau, officer) == grpc.StatusCode.OK
        assert get_stats(bureau, exporter) == grpc.StatusCode.PERMISSION_DENIED
        assert get_stats(bureau, forged) == grpc.StatusCode.UNAUTHENTICATED
        assert get_stats(bureau, None) == grpc.StatusCode.UNAUTHENTICATED
        # Notify answers its readers (an exporter's own, empty so far).
        with grpc.insecure_channel(f"127.0.0.1:{ports['notify']}") as channel:
            unread = notify_grpc.NotifyServiceStub(channel).CountUnread(
                notify_pb.CountUnreadRequest(),
                metadata=[("authorization", f"Bearer {exporter}")],
                timeout=10,
            )
        assert unread.unread_count == 0
        # The mail catcher notify sends to, its page and its directory under var/.
        mail_url = f"http://127.0.0.1:{mail_port}/"
        assert f"mail       {mail_url:<29} SMTP 127.0.0.1:{smtp_port}" in text, text
        with urllib.request.urlopen(mail_url + "messages.json", timeout=5) as response:
            assert json.load(response) == {"messages": []}
        assert (tmp_path / "var" / "mail").is_dir()
        started = descendants(launcher.pid)
        # Five services, the mail catcher, the broker and the database.
        assert len(started) >= 8

        stopping_since = time.monotonic()
        launcher.send_signal(signal.SIGINT)
        launcher.wait(timeout=30)
        assert time.monotonic() - stopping_since < 20
        assert launcher.returncode == 0
        assert [pid for pid in started if alive(pid)] == []
    finally:
        if launcher.poll() is None:
            for pid in descendants(launcher.pid):
                os.kill(pid, signal.SIGKILL)
            launcher.kill()
            launcher.wait()
