"""The launcher holds the services' ports so no outgoing connection takes one."""

from __future__ import annotations

import socket

from launcher.cli import PortReservations, launcher_ports
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
