"""TCP tuning for bulk downloads on loopback connections.

A client on the same host (a reverse proxy in front of hatchway, a CI job, a benchmark)
reaches hatchway over the loopback device, where there is no network to congestion-control.
BBR, the default congestion control on many distributions, still paces every segment with
a timer there, and it sizes its window from delivery rates that on a loopback connection
only measure how the CPU scheduler ran the two ends: one busy moment and a 512 MiB pull
crawls at the rate BBR guessed. Reno (always allowed to unprivileged processes) sends
as fast as the receiver reads. On this project's 2-core machine that halved the server's
CPU per pulled GB and ended the pull rate's swings (see bench/README.md, "Pull").
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket

_PACING = (b"bbr",)  # congestion controls that pace: bbr, and bbr2/bbr3 where present
_UNPACED = b"reno"


def _is_loopback(sock: socket.socket) -> bool:
    try:
        peer = ipaddress.ip_address(sock.getpeername()[0])
        local = ipaddress.ip_address(sock.getsockname()[0])
    except (OSError, ValueError, IndexError, TypeError):
        return False  # not (or no longer) an IP socket
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
        peer = peer.ipv4_mapped
    # A connection to one of this host's own addresses also runs over loopback.
    return peer.is_loopback or peer == local


def unpaced_on_loopback(sock: socket.socket | None) -> None:
    """Switch a loopback TCP connection off a pacing congestion control; else no-op."""
    option = getattr(socket, "TCP_CONGESTION", None)
    if sock is None or option is None or sock.type != socket.SOCK_STREAM:
        return
    with contextlib.suppress(OSError):  # best effort: the download works either way
        current = sock.getsockopt(socket.IPPROTO_TCP, option, 16).rstrip(b"\0")
        if current.startswith(_PACING) and _is_loopback(sock):
            sock.setsockopt(socket.IPPROTO_TCP, option, _UNPACED)
