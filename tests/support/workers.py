"""Steer requests to chosen worker processes of a multi-worker ``hatchway serve``.

The kernel spreads connections over the workers' SO_REUSEPORT sockets by a hash of the
client's address and port, so a test that needs two requests in two different
workers opens connections until one lands where it wants (Linux ``/proc`` tells which).
"""

from __future__ import annotations

import http.client
import os
import time
from pathlib import Path

from tests.support.server import Server, serving_worker, worker_pids

_ATTEMPTS = 200


def connect(server: Server) -> http.client.HTTPConnection:
    host, port = server.addr.rsplit(":", 1)
    return http.client.HTTPConnection(host, int(port), timeout=60)


def worker_of(server: Server, conn: http.client.HTTPConnection) -> int | None:
    """The worker serving ``conn`` (after one request on it, so it has been accepted)."""
    conn.request("GET", "/v2/")
    conn.getresponse().read()
    assert conn.sock is not None
    return serving_worker(server, conn.sock.getsockname()[1])


def connection_to_other_worker(server: Server, busy: int) -> http.client.HTTPConnection:
    """A kept-alive connection served by a worker other than ``busy``."""
    for _ in range(_ATTEMPTS):
        conn = connect(server)
        pid = worker_of(server, conn)
        if pid is not None and pid != busy:
            return conn
        conn.close()
    raise AssertionError(f"no connection reached a worker other than {busy}")


def worker_with_open_file(server: Server, path: Path, bound: float = 30) -> int:
    """The worker that has ``path`` open (waits until one has, up to ``bound`` seconds)."""
    target = os.path.realpath(path)
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        for pid in worker_pids(server):
            try:
                fds = list(Path(f"/proc/{pid}/fd").iterdir())
            except OSError:
                continue
            for fd in fds:
                try:
                    if os.readlink(fd) == target:
                        return pid
                except OSError:
                    continue
        time.sleep(0.01)
    raise AssertionError(f"no worker opened {path}")


def spread_connections(
    servers: tuple[Server, ...], count: int
) -> list[tuple[http.client.HTTPConnection, int]]:
    """``count`` kept-alive connections, each with the process serving it, spread evenly
    over every worker of ``servers`` (a one-worker server serves in its own process).
    The kernel's hash alone can leave a worker without any."""
    processes: dict[int, Server] = {}
    for server in servers:
        for pid in worker_pids(server) or [server.process.pid]:
            processes[pid] = server
    share = -(-count // len(processes))  # ceil: at most this many per process
    taken: dict[int, list[http.client.HTTPConnection]] = {pid: [] for pid in processes}
    spread: list[tuple[http.client.HTTPConnection, int]] = []
    for attempt in range(_ATTEMPTS * count):
        if len(spread) == count:
            return spread
        server = servers[attempt % len(servers)]
        conn = connect(server)
        pid = worker_of(server, conn) or server.process.pid
        if pid in taken and len(taken[pid]) < share:
            taken[pid].append(conn)
            spread.append((conn, pid))
        else:
            conn.close()
    for conn, _ in spread:
        conn.close()
    raise AssertionError(f"could not spread {count} connections over {sorted(processes)}")
