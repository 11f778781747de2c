"""A push survives the registry being killed (-9) and restarted mid-upload: the client asks
the restarted registry where the upload stands and continues that same upload. A push that
is itself killed completes when run again."""

from __future__ import annotations

import hashlib
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support import server as server_support
from tests.support.authkit import access_log
from tests.support.imagefiles import MiB, big_layer_layout, hatchway
from tests.support.server import HATCHWAY, Server, start_server
from tests.support.store import blob_dir, upload_bytes

pytestmark = pytest.mark.e2e


def wait_for_upload(server: Server, repo: str, at_least: int, proc: subprocess.Popen[str]) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = upload_bytes(server.data, repo)
        if got >= at_least:
            return got
        assert proc.poll() is None, "push ended before the registry had the bytes"
        time.sleep(0.01)
    raise AssertionError(f"upload never reached {at_least} bytes")


def stored_digest(server: Server, digest: str) -> str:
    h = hashlib.sha256()
    with (blob_dir(server.data, digest) / "data").open("rb") as f:
        while piece := f.read(MiB):
            h.update(piece)
    return "sha256:" + h.hexdigest()


def restart_on_same_port(tmp: Path, old: Server, monkeypatch: pytest.MonkeyPatch) -> Server:
    port = int(old.addr.rsplit(":", 1)[1])
    monkeypatch.setattr(server_support, "free_port", lambda: port)
    return start_server(tmp, workers=1, data=old.data)


def test_push_continues_the_same_upload_across_a_registry_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = tmp_path / "big"
    digest = big_layer_layout(layout, 64 * MiB)
    first = start_server(tmp_path, workers=1)
    repo = "t/restart"
    log_path = tmp_path / "push.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [
            HATCHWAY,
            "push",
            f"{layout}:big",
            f"{first.addr}/{repo}:big",
            "--chunk-size",
            "1M",
            "--limit-rate",
            "24M",
            "--retries",
            "30",
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    second: Server | None = None
    try:
        held = wait_for_upload(first, repo, 16 * MiB, proc)
        first.stop(signal.SIGKILL)
        second = restart_on_same_port(tmp_path, first, monkeypatch)
        out, _ = proc.communicate(timeout=90)
        progress = log_path.read_text()
        assert proc.returncode == 0, progress
        assert out.strip().startswith("sha256:")

        resumed = [int(n) for n in re.findall(r"resuming upload at byte (\d+)", progress)]
        assert resumed, progress
        assert resumed[0] >= held, progress
        # The restarted registry saw the same session continue: no new upload began.
        later = access_log(second, f"/v2/{repo}/blobs/uploads/")
        assert [e for e in later if e.method == "POST"] == []
        assert any(e.method == "GET" and e.status == 204 for e in later)
        first_patch = next(e for e in later if e.method == "PATCH")
        assert first_patch.status == 202
        assert stored_digest(second, digest) == digest
    finally:
        log.close()
        if proc.poll() is None:
            proc.kill()
        (second or first).stop()


def test_a_killed_push_completes_when_run_again(tmp_path: Path) -> None:
    layout = tmp_path / "big"
    digest = big_layer_layout(layout, 32 * MiB)
    server = start_server(tmp_path, workers=1)
    repo = "t/rerun"
    ref = f"{server.addr}/{repo}:big"
    try:
        proc = subprocess.Popen(
            [HATCHWAY, "push", f"{layout}:big", ref, "--chunk-size", "1M", "--limit-rate", "16M"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        wait_for_upload(server, repo, 8 * MiB, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

        out = hatchway("push", f"{layout}:big", ref)
        assert "layer: pushed" in out.stderr
        assert stored_digest(server, digest) == digest
        assert server.client.head(f"/v2/{repo}/manifests/big").status_code == 200
    finally:
        server.stop()
