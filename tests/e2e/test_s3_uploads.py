"""Blob uploads on S3 (SeaweedFS on loopback) seen from outside a real ``hatchway serve``:

- a blob whose digest comes with its bytes (monolithic ``POST ?digest=``, or ``PUT`` with
  the whole body) is streamed straight to its own key and never copied (the server's
  storage metrics count no ``move``); a chunked upload is still copied once on commit;
- a wrong digest publishes nothing and leaves a stored blob of that digest intact;
- the server's memory stays flat while it streams a blob many times its part size;
- multipart uploads a killed server left open (in a session, or at a blob's key) are
  aborted by upload purging (``hatchway gc --upload-age``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.observability.scrape import scrape
from tests.support import seaweedfs
from tests.support.oci import sha256
from tests.support.server import HATCHWAY, Server, free_port, start_server, worker_pids

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024
OCTETS = {"Content-Type": "application/octet-stream"}


def s3_doc(bucket: str, **s3: Any) -> dict[str, Any]:
    return {
        "version": "0.1",
        "storage": {
            "s3": seaweedfs.server().options(bucket, **s3),
            "delete": {"enabled": True},
        },
    }


@pytest.fixture
def bucket() -> str:
    return seaweedfs.server().new_bucket()


@pytest.fixture
def metered(tmp_path: Path, bucket: str) -> Iterator[tuple[Server, str]]:
    """One worker on S3 (5 MiB parts) with metrics on a debug address."""
    debug = f"127.0.0.1:{free_port()}"
    doc = s3_doc(bucket, chunksize=5 * MiB)
    doc["http"] = {"debug": {"addr": debug, "prometheus": {"enabled": True}}}
    server = start_server(tmp_path, workers=1, config=json.dumps(doc))
    yield server, f"http://{debug}/metrics"
    server.stop()


def moves(metrics: str) -> float:
    return scrape(metrics).value(
        "hatchway_storage_operation_duration_seconds_count", driver="s3", operation="move"
    )


def settled_moves(metrics: str, want: float) -> float:
    """The worker writes its counts once a second: scrape until they are in."""
    deadline = time.monotonic() + 15
    while (got := moves(metrics)) != want and time.monotonic() < deadline:
        time.sleep(0.25)
    return got


def keys(bucket: str) -> list[str]:
    listed = seaweedfs.server().admin().list_objects_v2(Bucket=bucket)
    return [o["Key"] for o in listed.get("Contents", [])]


def open_multipart(bucket: str) -> list[str]:
    listed = seaweedfs.server().admin().list_multipart_uploads(Bucket=bucket)
    return [u["Key"] for u in listed.get("Uploads", [])]


def test_a_blob_with_its_digest_up_front_is_written_once(metered: tuple[Server, str]) -> None:
    server, metrics = metered
    client = server.client
    big, small = os.urandom(12 * MiB + 5), os.urandom(70_000)  # three parts; one PutObject
    for data in (big, small):
        r = client.post(
            "/v2/s3/direct/blobs/uploads/", params={"digest": sha256(data)}, content=data
        )
        assert r.status_code == 201, r.text
    # POST, then the whole blob in the PUT (as containerd does).
    put = os.urandom(6 * MiB)
    r = client.post("/v2/s3/direct/blobs/uploads/", headers={"Content-Length": "0"})
    assert r.status_code == 202, r.text
    r = client.put(
        r.headers["Location"], params={"digest": sha256(put)}, content=put, headers=OCTETS
    )
    assert r.status_code == 201, r.text
    for data in (big, small, put):
        got = client.get(f"/v2/s3/direct/blobs/{sha256(data)}")
        assert got.status_code == 200
        assert hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()
    assert settled_moves(metrics, 0) == 0  # no server-side copy at all

    # A chunked upload (POST, PATCH, PUT) cannot know its key before the end: one copy.
    chunked = os.urandom(7 * MiB)
    r = client.post("/v2/s3/direct/blobs/uploads/", headers={"Content-Length": "0"})
    r = client.patch(r.headers["Location"], content=chunked, headers=OCTETS)
    assert r.status_code == 202, r.text
    r = client.put(r.headers["Location"], params={"digest": sha256(chunked)})
    assert r.status_code == 201, r.text
    assert settled_moves(metrics, 1) == 1


def test_a_wrong_digest_publishes_nothing(metered: tuple[Server, str], bucket: str) -> None:
    server, _ = metered
    client = server.client
    good = os.urandom(6 * MiB)
    r = client.post("/v2/s3/wrong/blobs/uploads/", params={"digest": sha256(good)}, content=good)
    assert r.status_code == 201, r.text
    # Other bytes under a digest that is stored: refused, the stored blob untouched.
    bad = os.urandom(6 * MiB)
    for repo in ("s3/wrong", "s3/other"):
        r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(good)}, content=bad)
        assert r.status_code == 400, r.text
        assert r.json()["errors"][0]["code"] == "DIGEST_INVALID"
    got = client.get(f"/v2/s3/wrong/blobs/{sha256(good)}")
    assert got.status_code == 200
    assert got.content == good
    assert client.head(f"/v2/s3/other/blobs/{sha256(good)}").status_code == 404
    # Under a digest that is not stored: nothing at its key, no upload left open.
    missing = sha256(b"never sent")
    r = client.post("/v2/s3/wrong/blobs/uploads/", params={"digest": missing}, content=bad)
    assert r.status_code == 400, r.text
    hexdigest = missing.split(":", 1)[1]
    assert not [k for k in keys(bucket) if hexdigest in k]
    assert not [k for k in keys(bucket) if "/_uploads/" in k]
    assert open_multipart(bucket) == []


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_server_memory_stays_flat_while_streaming_a_large_blob(tmp_path: Path, bucket: str) -> None:
    """A blob 51 times the part size: the worker's resident memory grows by a few parts
    (the one filling, those in flight, botocore's buffers), never by the blob."""
    size, block = 256 * MiB, os.urandom(MiB)
    server = start_server(tmp_path, workers=1, config=json.dumps(s3_doc(bucket, chunksize=5 * MiB)))
    try:
        # One worker: the server process serves itself (no pre-forked children).
        (worker,) = worker_pids(server) or [server.process.pid]
        warm = os.urandom(11 * MiB)  # every code path once, so imports and pools are counted
        r = server.client.post(
            "/v2/s3/mem/blobs/uploads/", params={"digest": sha256(warm)}, content=warm
        )
        assert r.status_code == 201, r.text
        before = rss(worker)
        peak = before
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss(worker))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        digest = hashlib.sha256()

        def body() -> Iterator[bytes]:
            for n in range(size // MiB):
                chunk = block[:-8] + n.to_bytes(8, "big")
                digest.update(chunk)
                yield chunk

        with httpx.Client(base_url=server.url, timeout=600) as client:
            r = client.post("/v2/s3/mem/blobs/uploads/", headers={"Content-Length": "0"})
            r = client.patch(r.headers["Location"], content=body(), headers=OCTETS)
            assert r.status_code == 202, r.text
            r = client.put(r.headers["Location"], params={"digest": "sha256:" + digest.hexdigest()})
            assert r.status_code == 201, r.text
        done.set()
        sampler.join()
        growth = peak - before
        print(f"worker RSS {before / MiB:.0f} MiB, peak {peak / MiB:.0f} MiB for {size // MiB} MiB")
        assert growth < size * 3 // 8, f"RSS grew {growth / MiB:.0f} MiB"
    finally:
        server.stop()


def stalled_upload(
    url: str, method: str, path: str, sent: threading.Event, stop: threading.Event
) -> None:
    """Send 11 MiB of a body, then hang until ``stop`` (the server is killed under it).
    The cut-short body then fails in the client (h11 raises its own error, not httpx's):
    swallowed, so the thread ends quietly inside the test that started it."""

    def body() -> Iterator[bytes]:
        for _ in range(11):
            yield os.urandom(MiB)
        sent.set()
        stop.wait(600)

    headers = {**OCTETS, "Content-Length": str(64 * MiB)}
    with contextlib.suppress(Exception):
        httpx.request(method, url + path, content=body(), headers=headers, timeout=900)


def test_upload_purging_aborts_multipart_uploads_a_killed_server_left(
    tmp_path: Path, bucket: str
) -> None:
    doc = s3_doc(bucket, chunksize=5 * MiB)
    config = tmp_path / "config.yml"
    config.write_text(json.dumps(doc))
    server = start_server(tmp_path, workers=1, config=json.dumps(doc))
    r = server.client.post("/v2/s3/purge/blobs/uploads/", headers={"Content-Length": "0"})
    session = r.headers["Location"]
    digest = sha256(b"the whole blob would have hashed to this")
    stalls = [
        ("PATCH", session),  # into the session's data
        ("POST", f"/v2/s3/purge/blobs/uploads/?digest={digest}"),  # to the blob's own key
    ]
    stop = threading.Event()
    stalled: list[threading.Thread] = []
    for method, path in stalls:
        sent = threading.Event()
        thread = threading.Thread(
            target=stalled_upload, args=(server.url, method, path, sent, stop), daemon=True
        )
        thread.start()
        stalled.append(thread)
        assert sent.wait(120)
    deadline = time.monotonic() + 60
    while len(open_multipart(bucket)) < 2:
        assert time.monotonic() < deadline, open_multipart(bucket)
        time.sleep(0.1)
    os.killpg(server.process.pid, signal.SIGKILL)  # no chance to abort them
    server.process.wait()
    server.client.close()
    stop.set()
    for thread in stalled:
        thread.join(60)
    left = open_multipart(bucket)
    assert any("/_uploads/" in k for k in left), left
    assert any(digest.split(":", 1)[1] in k for k in left), left

    gc = [HATCHWAY, "gc", "--config", str(config), "--data", str(tmp_path / "data")]
    result = subprocess.run(
        [*gc, "--upload-age", "0s"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert open_multipart(bucket) == []
    assert not [k for k in keys(bucket) if "/_uploads/" in k]
