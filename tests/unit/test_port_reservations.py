"""The launcher holds the services' ports so no outgoing connection takes one."""

from __future__ import annotations

import socket
from pathlib import Path

from launcher.cli import PortReservations, launcher_ports, mail_catcher
from launcher.embedded import free_port, port_is_free
from runtime.adapters.settings import Settings


def test_a_held_port_is_taken_until_released() -> None:
    port = free_port()
    reservations = PortReservations("127.0.0.1")
    reservations.hold((port,))
    assert not port_is_free(port)
    reservations.release((port,))
    assert port_is_free(port)


def test_a_port_in_use_elsewhere_is_left_alone_and_others_are_held() -> None:
    busy, free = free_port(), free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind(("127.0.0.1", busy))
        reservations = PortReservations("127.0.0.1")
        reservations.hold((busy, free))
        assert not port_is_free(free)
        reservations.release_all()
        assert port_is_free(free)
        # Releasing never closed the socket it did not own.
        assert other.getsockname()[1] == busy
        assert not port_is_free(busy)


def test_the_development_identity_port_is_held_with_the_services_ports() -> None:
    settings = Settings(dev_identity_port=19470, booth_grpc_port=15051, bureau_web_port=18080)
    held = launcher_ports(settings, identity=True)
    assert {19470, 15051, 18080} <= set(held)
    # With the operator's identity provider there is no development one to listen.
    assert 19470 not in launcher_ports(settings, identity=False)


def test_notify_and_the_mail_catcher_ports_are_held_too(tmp_path: Path) -> None:
    smtp, web = free_port(), free_port()
    settings = Settings(notify_grpc_port=15055, dev_mail_smtp_port=smtp, dev_mail_web_port=web)
    catcher = mail_catcher(tmp_path, settings, environ={})
    assert catcher is not None
    assert (catcher.smtp_port, catcher.web_port) == (smtp, web)
    assert catcher.directory == tmp_path / "mail"
    held = launcher_ports(settings, identity=False, catcher=catcher)
    assert {15055, smtp, web} <= set(held)
    assert smtp not in launcher_ports(settings, identity=False)


def test_the_catcher_takes_free_ports_when_its_own_are_busy_and_is_not_started_for_a_server(
    tmp_path: Path,
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind(("127.0.0.1", 0))
        busy = other.getsockname()[1]
        settings = Settings(dev_mail_smtp_port=busy, dev_mail_web_port=0)
        catcher = mail_catcher(tmp_path, settings, environ={})
        assert catcher is not None
        assert busy not in catcher.ports and 0 not in catcher.ports
        assert all(port_is_free(port) for port in catcher.ports)
    # An SMTP server of the operator's: notify sends there, nothing is caught.
    assert mail_catcher(tmp_path, settings, environ={"SMTP_HOST": "smtp.example.com"}) is None
