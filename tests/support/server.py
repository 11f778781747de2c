"""Run a real ``hatchway serve`` subprocess on 127.0.0.1 for tests."""

from __future__ import annotations

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
) -> Server:
    port = free_port()
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
            if httpx.get(url + "/v2/", timeout=1, verify=False).status_code == 200:
                return Server(url, data, process, log_path)
        except httpx.HTTPError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"hatchway serve did not start: {log_path.read_text()}")
