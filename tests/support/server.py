"""Run a real ``hatchway serve`` subprocess on 127.0.0.1 for tests."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HATCHWAY = str(Path(sys.executable).with_name("hatchway"))


OPEN_CONFIG = "version: 0.1\nstorage:\n  delete:\n    enabled: true\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    data: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, timeout=30, verify=False)

    @property
    def addr(self) -> str:
        return self.url.split("://", 1)[1]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                return self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def start_server(
    tmp: Path,
    *,
    workers: int = 1,
    config: str | None = None,
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
    scheme: str = "http",
    data: Path | None = None,
    embedded_defaults: bool = False,
) -> Server:
    """Start ``hatchway serve``. With no ``config`` it runs with a config file that has no
    ``auth`` section (open, as the registry tests need); ``embedded_defaults`` runs it
    with no ``--config`` at all (secure by default: token auth, admin account)."""
    port = free_port()
    if config is None and not embedded_defaults:
        config = OPEN_CONFIG
    data = data or tmp / "data"
    cmd = [
        HATCHWAY,
        "serve",
        "--addr",
        f"127.0.0.1:{port}",
        "--data",
        str(data),
        "--workers",
        str(workers),
    ]
    if config is not None:
        config_path = tmp / f"config-{port}.yml"
        config_path.write_text(config)
        cmd += ["--config", str(config_path)]
    cmd += args or []
    log_path = tmp / f"server-{port}.log"
    full_env = {**os.environ, **(env or {})}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env, start_new_session=True
        )
    url = f"{scheme}://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"hatchway serve exited: {log_path.read_text()}")
        try:
            if httpx.get(url + "/v2/", timeout=1, verify=False).status_code in (200, 401):
                return Server(url, data, process, log_path)
        except httpx.HTTPError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"hatchway serve did not start: {log_path.read_text()}")


def worker_pids(server: Server) -> list[int]:
    """The pre-forked worker processes of ``server`` (its children, from Linux ``/proc``)."""
    parent = server.process.pid
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid ...": comm may hold spaces or parentheses.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent:
            pids.append(int(stat.parent.name))
    return sorted(pids)


def _socket_inode(server_port: int, client_port: int) -> str | None:
    """Inode of the server end of the local TCP connection ``client_port`` -> ``server_port``."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if local_port == server_port and remote_port == client_port:
                return fields[9]
    return None


def serving_worker(server: Server, client_port: int) -> int | None:
    """The worker pid holding the server end of the open connection from ``client_port``.

    Call it while the client's connection is still open (e.g. inside ``with httpx.Client``).
    """
    inode = _socket_inode(int(server.addr.rsplit(":", 1)[1]), client_port)
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in worker_pids(server):
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            for fd in fd_dir.iterdir():
                try:
                    if os.readlink(fd) == target:
                        return pid
                except OSError:
                    continue
        except OSError:
            continue
    return None


def raw_request(
    server: Server,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> httpx.Response:
    """Send ``path`` byte for byte (no dot-segment or percent normalisation, unlike httpx)."""
    host, port = server.addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return httpx.Response(
            response.status, headers=response.getheaders(), content=response.read()
        )
    finally:
        conn.close()
