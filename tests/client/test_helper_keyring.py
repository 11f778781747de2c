"""The OS keyring backend against a real Secret Service: gnome-keyring on a private D-Bus
session bus, reached by ``keyring``'s SecretService backend (through jeepney)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.credhelper import HELPER, NOT_FOUND, Helper, files_containing

pytestmark = pytest.mark.skipif(
    shutil.which("dbus-daemon") is None
    or shutil.which("gnome-keyring-daemon") is None
    or importlib.util.find_spec("keyring") is None,
    reason="needs dbus-daemon, gnome-keyring-daemon and the keyring library",
)

UNLOCK = b"keyring-unlock-pw"
KEYRING = {"HATCHWAY_CREDENTIALS_BACKEND": "keyring"}


@pytest.fixture
def helper(tmp_path: Path) -> Iterator[Helper]:
    """A helper whose environment has its own session bus with an unlocked gnome-keyring."""
    home = tmp_path / "home"
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    helper = Helper(
        home, XDG_RUNTIME_DIR=str(runtime), XDG_DATA_HOME=str(home / ".local" / "share")
    )
    bus = subprocess.Popen(
        ["dbus-daemon", "--session", "--nofork", "--print-address=1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=helper.env,
    )
    assert bus.stdout is not None
    helper.env["DBUS_SESSION_BUS_ADDRESS"] = bus.stdout.readline().decode().strip()
    daemon = subprocess.Popen(
        ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=helper.env,
    )
    assert daemon.stdin is not None
    daemon.stdin.write(UNLOCK)
    daemon.stdin.close()
    try:
        deadline = time.monotonic() + 20
        while helper.run("list", **KEYRING).returncode != 0:
            assert time.monotonic() < deadline, helper.run("list", **KEYRING).stdout
            time.sleep(0.1)
        yield helper
    finally:
        for process in (daemon, bus):
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        bus.stdout.close()


def test_round_trip_through_the_secret_service(helper: Helper) -> None:
    secret = "kr-secret-" + os.urandom(8).hex()
    helper.store("127.0.0.1:5000", "alice", secret, **KEYRING)
    helper.store("other.example", "<token>", "refresh-token-value", **KEYRING)
    assert helper.ok("get", stdin="127.0.0.1:5000", **KEYRING) == (
        f'{{"ServerURL":"127.0.0.1:5000","Username":"alice","Secret":"{secret}"}}\n'.encode()
    )
    assert helper.ok("list", **KEYRING) == (
        b'{"127.0.0.1:5000":"alice","other.example":"\\u003ctoken\\u003e"}\n'
    )
    assert helper.ok("erase", stdin="127.0.0.1:5000", **KEYRING) == b""
    assert helper.fail("get", stdin="127.0.0.1:5000", **KEYRING) + b"\n" == NOT_FOUND
    assert helper.fail("erase", stdin="127.0.0.1:5000", **KEYRING) + b"\n" == NOT_FOUND
    assert helper.list(**KEYRING) == {"other.example": "<token>"}

    assert not helper.credentials_file.exists()
    assert not helper.keyfile.exists()
    helper.store("127.0.0.1:5000", "alice", secret, **KEYRING)
    assert files_containing(helper.home, secret.encode()) == []


def test_auto_uses_the_keyring_unless_a_file_exists(helper: Helper, tmp_path: Path) -> None:
    auto = {"HATCHWAY_CREDENTIALS_BACKEND": ""}
    helper.store("a.example", "u", "in-keyring", **auto)
    assert not helper.credentials_file.exists()
    assert helper.get("a.example", **KEYRING)["Secret"] == "in-keyring"
    assert helper.get("a.example", **auto)["Secret"] == "in-keyring"

    # An existing credentials file keeps being used, so nothing seems to vanish.
    file_env = {"HATCHWAY_CREDENTIALS_FILE": str(tmp_path / "creds.enc")}
    helper.store("b.example", "u", "in-file", HATCHWAY_CREDENTIALS_BACKEND="file", **file_env)
    assert helper.list(**auto, **file_env) == {"b.example": "u"}
    assert helper.list(**KEYRING, **file_env) == {"a.example": "u"}


def test_concurrent_stores_keep_the_index(helper: Helper) -> None:
    env = {**helper.env, **KEYRING}
    procs = [
        subprocess.Popen(
            [HELPER, "store"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for _ in range(8)
    ]
    for i, proc in enumerate(procs):
        assert proc.stdin is not None
        proc.stdin.write(f'{{"ServerURL":"s{i}","Username":"u{i}","Secret":"x{i}"}}'.encode())
        proc.stdin.close()
    for proc in procs:
        assert proc.wait(timeout=60) == 0
        for stream in (proc.stdout, proc.stderr):
            assert stream is not None
            assert stream.read() == b""
            stream.close()
    assert helper.list(**KEYRING) == {f"s{i}": f"u{i}" for i in range(8)}
