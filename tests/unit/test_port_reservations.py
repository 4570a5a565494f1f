"""The launcher holds the services' ports so no outgoing connection takes one."""

from __future__ import annotations

import socket

from launcher.cli import PortReservations
from launcher.embedded import free_port, port_is_free


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
