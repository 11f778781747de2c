"""The first start on embedded defaults: the admin password reaches the operator and no
one else (never a log that journald or ``docker logs`` keeps), and the data directory is
private."""

from __future__ import annotations

import os
import re
import select
import signal
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.authkit import SERVICE
from tests.support.server import HATCHWAY, free_port, start_server


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def logs_in(url: str, password: str) -> bool:
    r = httpx.get(
        url + "/auth/token", params={"service": SERVICE}, auth=("admin", password), timeout=30
    )
    return r.status_code == 200


def test_without_a_terminal_the_password_goes_to_a_private_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HATCHWAY_ADMIN_PASSWORD", raising=False)
    server = start_server(tmp_path, embedded_defaults=True)  # output to a file, as a service
    try:
        secret_file = server.data / "initial-admin-password"
        password = secret_file.read_text().strip()
        assert len(password) >= 20
        assert mode(secret_file) == 0o600
        assert password not in server.log()
        assert str(secret_file) in server.log()
        assert logs_in(server.url, password)
        assert mode(server.data) == 0o700
        assert mode(server.data / "hatchway.db") == 0o600
        assert mode(server.data / "keys") == 0o700
    finally:
        server.stop()


def read_until(fd: int, marker: bytes, seen: bytearray, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0, bytes(seen)
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                chunk = b""
            assert chunk, bytes(seen)
            seen += chunk


def test_on_a_terminal_the_password_is_shown_and_a_loose_root_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HATCHWAY_ADMIN_PASSWORD", raising=False)
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o755)
    port = free_port()
    master, slave = os.openpty()
    process = subprocess.Popen(
        [HATCHWAY, "serve", "--addr", f"127.0.0.1:{port}", "--data", str(data), "--workers", "2"],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    seen = bytearray()
    try:
        read_until(master, b"Log in", seen)
        text = seen.decode(errors="replace")
        found = re.search(r"shown once, store it now\):\r?\n  (\S+)", text)
        assert found is not None, text
        assert not (data / "initial-admin-password").exists()
        assert text.count("has mode 0755") == 1, text  # once, by the supervisor
        deadline = time.monotonic() + 30
        while True:
            try:
                assert logs_in(f"http://127.0.0.1:{port}", found.group(1))
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        os.close(master)
