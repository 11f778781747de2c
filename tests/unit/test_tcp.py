"""Loopback downloads leave pacing congestion control (bbr) for reno; real loopback sockets."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from hatchway.http.tcp import unpaced_on_loopback


def _congestion(sock: socket.socket) -> str:
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16)
    return raw.rstrip(b"\0").decode()


@pytest.fixture
def accepted() -> Iterator[socket.socket]:
    """The server end of a TCP connection over 127.0.0.1."""
    with (
        socket.create_server(("127.0.0.1", 0)) as listener,
        socket.create_connection(listener.getsockname()),
    ):
        conn, _ = listener.accept()
        with conn:
            yield conn


def test_bbr_on_a_loopback_connection_becomes_reno(accepted: socket.socket) -> None:
    accepted.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"bbr")
    unpaced_on_loopback(accepted)
    assert _congestion(accepted) == "reno"


def test_a_non_pacing_congestion_control_is_left_alone(accepted: socket.socket) -> None:
    accepted.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"reno")
    unpaced_on_loopback(accepted)
    assert _congestion(accepted) == "reno"


def test_sockets_that_are_not_tcp_connections_are_ignored() -> None:
    unpaced_on_loopback(None)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        unpaced_on_loopback(udp)
    with socket.socket() as unconnected:
        before = _congestion(unconnected)
        unpaced_on_loopback(unconnected)
        assert _congestion(unconnected) == before
