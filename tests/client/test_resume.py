"""A push survives the registry being killed (-9) and restarted mid-upload: the client asks
the restarted registry where the upload stands and continues that same upload. A push that
is itself killed continues its upload when run again, from the user's cache: records that
hold no credential, are private, and are dropped quietly when stale. Mount sources are
remembered across runs too."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from hatchway.client.cache import cache_dir
from tests.support import server as server_support
from tests.support.authkit import ADMIN, ADMIN_PASSWORD, access_log, start_token_server
from tests.support.imagefiles import MiB, big_layer_layout, hatchway
from tests.support.images import make_image, write_oci_layout
from tests.support.server import HATCHWAY, Server, start_server
from tests.support.store import blob_dir, upload_bytes, upload_dirs

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


def records() -> list[Path]:
    """The upload records in the test's cache (a kill may also leave a temp file there)."""
    return sorted((cache_dir() / "uploads").glob("*.json"))


def record_of(digest: str) -> Path:
    """The record of the upload of ``digest`` (the config's may be there too, if the kill
    came before it was done)."""
    [found] = [r for r in records() if json.loads(r.read_text())["digest"] == digest]
    return found


def start_killable_push(
    layout: Path, ref: str, *extra: str, password: str | None = None
) -> subprocess.Popen[str]:
    """``hatchway push`` throttled to 16 MB/s in 1 MiB chunks, so it can be killed midway."""
    args = ["push", f"{layout}:big", ref, "--chunk-size", "1M", "--limit-rate", "16M", *extra]
    proc = subprocess.Popen(
        [HATCHWAY, *args],
        stdin=subprocess.DEVNULL if password is None else subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    if proc.stdin is not None and password is not None:
        proc.stdin.write(password + "\n")
        proc.stdin.close()
    return proc


def test_a_killed_push_resumes_its_upload_when_run_again(tmp_path: Path) -> None:
    layout = tmp_path / "big"
    digest = big_layer_layout(layout, 32 * MiB)
    server = start_server(tmp_path, workers=1)
    repo = "t/rerun"
    ref = f"{server.addr}/{repo}:big"
    try:
        proc = start_killable_push(layout, ref)
        held = wait_for_upload(server, repo, 8 * MiB, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        [session] = upload_dirs(server.data, repo)
        seen_before = len(access_log(server))

        out = hatchway("push", f"{layout}:big", ref)
        assert "layer: pushed" in out.stderr
        resumed = [int(n) for n in re.findall(r"resuming upload at byte (\d+)", out.stderr)]
        assert resumed, out.stderr
        assert resumed[0] >= held
        # The registry saw the same session go on: asked where it stood, no new upload.
        later = access_log(server)[seen_before:]
        uploads = [e for e in later if "/blobs/uploads/" in e.path]
        assert [e for e in uploads if e.method == "POST"] == []
        status = next(i for i, e in enumerate(uploads) if e.method == "GET")
        assert uploads[status].status == 204
        assert all(session.name in e.path for e in uploads)
        patches = [e for e in uploads[status:] if e.method == "PATCH"]
        assert patches
        assert all(e.status == 202 for e in patches)
        assert stored_digest(server, digest) == digest
        assert server.client.head(f"/v2/{repo}/manifests/big").status_code == 200
        assert records() == []  # done: nothing to resume
    finally:
        server.stop()


def test_the_upload_record_holds_no_credential_and_is_private(tmp_path: Path) -> None:
    layout = tmp_path / "big"
    digest = big_layer_layout(layout, 24 * MiB)
    server = start_token_server(tmp_path)
    repo = "team/rerun"
    try:
        ref = f"{server.addr}/{repo}:big"
        proc = start_killable_push(
            layout, ref, "-u", ADMIN, "--password-stdin", password=ADMIN_PASSWORD
        )
        wait_for_upload(server, repo, 4 * MiB, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        server.stop()
    root = cache_dir()
    record = record_of(digest)
    for directory in (root, root / "uploads"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    doc = json.loads(record.read_text())
    assert set(doc) == {"registry", "repository", "digest", "location", "offset", "saved"}
    assert doc["registry"] == server.addr
    assert doc["location"].startswith(f"{server.url}/v2/{repo}/blobs/uploads/")
    assert doc["offset"] > 0
    text = record.read_text()
    assert ADMIN_PASSWORD not in text
    assert "Bearer" not in text
    assert "eyJ" not in text  # no JWT


@pytest.mark.parametrize("damage", ["unreadable", "purged by the registry"])
def test_a_stale_upload_record_is_dropped_quietly(tmp_path: Path, damage: str) -> None:
    layout = tmp_path / "big"
    digest = big_layer_layout(layout, 16 * MiB)
    server = start_server(tmp_path, workers=1)
    repo = "t/stale"
    ref = f"{server.addr}/{repo}:big"
    try:
        proc = start_killable_push(layout, ref)
        wait_for_upload(server, repo, 2 * MiB, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        record = record_of(digest)
        if damage == "unreadable":
            record.write_text("{not json")
        else:  # as the registry's upload purging does
            time.sleep(1.1)
            gc = hatchway("gc", "--data", str(server.data), "--upload-age", "1s")
            assert upload_dirs(server.data, repo) == [], gc.stdout

        out = hatchway("push", f"{layout}:big", ref)
        # (The config may have been cut short too, and resumes: only the layer's record was hurt.)
        assert f"{digest[:19]}: resuming" not in out.stderr
        assert "layer: pushed" in out.stderr
        assert stored_digest(server, digest) == digest
        assert records() == []
    finally:
        server.stop()


def test_mount_sources_are_remembered_across_runs(tmp_path: Path) -> None:
    image = make_image("mount-memory", layer_sizes=(40_000, 100))
    src = tmp_path / "src"
    write_oci_layout(src, image, tag="1")
    server = start_server(tmp_path, workers=1)
    try:
        hatchway("push", f"{src}:1", f"{server.addr}/t/first:1")
        out = hatchway("push", f"{src}:1", f"{server.addr}/t/second:1")  # another process
        for layer in image.layers:
            assert f"{layer.digest[:19]} layer: mounted from t/first" in out.stderr
        posts = [e for e in access_log(server, "/v2/t/second/blobs/uploads/") if e.method == "POST"]
        assert all(e.status == 201 for e in posts), posts
        assert [e for e in access_log(server, "/v2/t/second/") if e.method == "PATCH"] == []
    finally:
        server.stop()
