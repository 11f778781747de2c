"""Crash safety: ``kill -9`` at any moment exposes nothing partial and loses nothing acked."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support import seaweedfs
from tests.support.images import Image, make_image
from tests.support.oci import OCI_MANIFEST, push_blob, push_image, push_manifest, sha256
from tests.support.server import Server, start_server
from tests.support.store import blob_dir, start_upload, upload_bytes

MiB = 1024 * 1024
BIG = os.urandom(64 * MiB)
BIG_DIGEST = sha256(BIG)


@dataclass
class Acked:
    """Everything the registry acknowledged, to compare after a crash."""

    tags: dict[str, dict[str, Image]] = field(default_factory=dict)
    untagged: dict[str, list[Image]] = field(default_factory=dict)
    blobs: dict[str, list[bytes]] = field(default_factory=dict)
    gone_manifests: list[tuple[str, str]] = field(default_factory=list)

    def push(self, client: httpx.Client, repo: str, image: Image, tag: str | None) -> None:
        push_image(client, repo, image, tag)
        tags = self.tags.setdefault(repo, {})
        if tag is not None and tag in tags:  # the old manifest stays, by digest
            self.untagged.setdefault(repo, []).append(tags[tag])
        if tag is None:
            self.untagged.setdefault(repo, []).append(image)
        else:
            tags[tag] = image

    def blob(self, client: httpx.Client, repo: str, data: bytes) -> None:
        push_blob(client, repo, data)
        self.blobs.setdefault(repo, []).append(data)

    def verify(self, client: httpx.Client) -> None:
        repos = sorted({*self.tags, *self.untagged})
        assert client.get("/v2/_catalog").json() == {"repositories": repos}
        for repo in repos:
            r = client.get(f"/v2/{repo}/tags/list")
            assert r.status_code == 200, r.text
            assert sorted(r.json()["tags"] or []) == sorted(self.tags.get(repo, {}))
        images: list[tuple[str, str | None, Image]] = [
            (repo, tag, image) for repo, t in self.tags.items() for tag, image in t.items()
        ]
        images += [(repo, None, image) for repo, ims in self.untagged.items() for image in ims]
        for repo, tag, image in images:
            for ref in [image.manifest.digest] + ([tag] if tag else []):
                r = client.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
                assert r.status_code == 200, (repo, ref, r.text)
                assert r.content == image.manifest.data
                assert r.headers["Docker-Content-Digest"] == image.manifest.digest
            for b in (image.config, *image.layers):
                r = client.get(f"/v2/{repo}/blobs/{b.digest}")
                assert r.status_code == 200, (repo, b.digest)
                assert r.content == b.data
        for repo, blobs in self.blobs.items():
            for data in blobs:
                r = client.get(f"/v2/{repo}/blobs/{sha256(data)}")
                assert r.status_code == 200
                assert r.content == data
        for repo, ref in self.gone_manifests:
            assert client.head(f"/v2/{repo}/manifests/{ref}").status_code == 404, (repo, ref)


def kill_9(server: Server) -> None:
    """SIGKILL the whole process group (supervisor and workers), no shutdown at all."""
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=10)
    server.client.close()


def ensure_dead(server: Server) -> None:
    if server.process.poll() is None:
        kill_9(server)


def wait_until(predicate: object, what: str, timeout: float = 20) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


class SlowBody:
    """A request body that sends ``first`` bytes quickly, then stalls until released."""

    def __init__(self, data: bytes, first: int) -> None:
        self.data = data
        self.first = first
        self.release = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        view = memoryview(self.data)
        step = 256 * 1024
        for start in range(0, len(view), step):
            if start >= self.first:
                self.release.wait(timeout=30)
            yield bytes(view[start : start + step])


def send_in_thread(
    url: str, method: str, body: SlowBody, headers: dict[str, str], **params: str
) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def run() -> None:
        try:
            with httpx.Client(timeout=60) as c:
                outcome.append(
                    c.request(method, url, content=iter(body), headers=headers, params=params)
                )
        except httpx.HTTPError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


@pytest.fixture
def acked() -> Acked:
    return Acked()


@pytest.fixture(params=["fsync", "groupcommit", "s3"])
def durability(request: pytest.FixtureRequest) -> dict[str, str]:
    """Both ways small writes are made durable: one fsync per file (the default on the
    "/" filesystem, where the tests' data is) and group commit (syncfs rounds); and S3
    storage (SeaweedFS, a bucket of its own; --data is then only the local directory)."""
    if request.param == "s3":
        weed = seaweedfs.server()
        # The smallest parts, so a stalled request has sent some of what it received.
        options = weed.options(weed.new_bucket(), chunksize=5 * MiB)
        return {
            f"HATCHWAY_STORAGE_S3_{key.upper()}": str(value).lower()
            if isinstance(value, bool)
            else str(value)
            for key, value in options.items()
        }
    on = "true" if request.param == "groupcommit" else "false"
    return {"HATCHWAY_STORAGE_FILESYSTEM_GROUPCOMMIT": on}


def stored_bytes(env: dict[str, str], data: Path, repo: str) -> int:
    """Bytes the server has stored of the repository's uploads so far: on S3, the
    larger of the session objects and the parts of multipart uploads in progress (in a
    session, or at a blob's own key: a monolithic push streams there)."""
    bucket = env.get("HATCHWAY_STORAGE_S3_BUCKET")
    if bucket is None:
        return upload_bytes(data, repo)
    admin = seaweedfs.server().admin()
    prefix = f"docker/registry/v2/repositories/{repo}/_uploads/"
    listed = admin.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    stored: int = sum(o["Size"] for o in listed if o["Key"].endswith("/data"))
    in_parts = 0
    for where in (prefix, "docker/registry/v2/blobs/"):
        uploads = admin.list_multipart_uploads(Bucket=bucket, Prefix=where).get("Uploads", [])
        for upload in uploads:
            parts = admin.list_parts(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            in_parts += sum(p["Size"] for p in parts.get("Parts", []))
    return max(stored, in_parts)


def blob_stored(env: dict[str, str], data: Path, digest: str) -> bool:
    bucket = env.get("HATCHWAY_STORAGE_S3_BUCKET")
    if bucket is None:
        return blob_dir(data, digest).exists()
    algorithm, hex_ = digest.split(":", 1)
    prefix = f"docker/registry/v2/blobs/{algorithm}/{hex_[:2]}/{hex_}/"
    listed = seaweedfs.server().admin().list_objects_v2(Bucket=bucket, Prefix=prefix)
    return bool(listed.get("Contents"))


def push_baseline(client: httpx.Client, acked: Acked) -> None:
    acked.push(client, "crash/app", make_image("app-1"), "1.0")
    acked.push(client, "crash/app", make_image("app-2"), "latest")
    acked.push(client, "crash/app", make_image("app-3"), None)
    acked.push(client, "crash/other", make_image("other"), "v1")
    acked.blob(client, "crash/app", os.urandom(3 * MiB))


def test_kill_during_monolithic_push(
    tmp_path: Path, acked: Acked, durability: dict[str, str]
) -> None:
    srv = start_server(tmp_path, workers=1, env=durability)
    try:
        push_baseline(srv.client, acked)
        body = SlowBody(BIG, first=24 * MiB)
        thread, outcome = send_in_thread(
            f"{srv.url}/v2/crash/fresh/blobs/uploads/",
            "POST",
            body,
            {"Content-Length": str(len(BIG)), "Content-Type": "application/octet-stream"},
            digest=BIG_DIGEST,
        )
        wait_until(
            lambda: stored_bytes(durability, srv.data, "crash/fresh") >= 16 * MiB, "the push"
        )
        assert srv.client.head(f"/v2/crash/fresh/blobs/{BIG_DIGEST}").status_code == 404
        kill_9(srv)
    finally:
        ensure_dead(srv)
    body.release.set()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert isinstance(outcome[0], httpx.HTTPError), outcome  # never acknowledged

    srv = start_server(tmp_path, workers=1, data=srv.data, env=durability)
    try:
        client = srv.client
        for repo in ("crash/fresh", "crash/app", "crash/other"):
            assert client.head(f"/v2/{repo}/blobs/{BIG_DIGEST}").status_code == 404
            assert client.get(f"/v2/{repo}/blobs/{BIG_DIGEST}").status_code == 404
        assert not blob_stored(durability, srv.data, BIG_DIGEST)
        r = client.post(
            "/v2/crash/app/blobs/uploads/", params={"mount": BIG_DIGEST, "from": "crash/fresh"}
        )
        assert r.status_code == 202  # nothing to mount: a plain upload session instead
        acked.verify(client)
        assert client.get("/v2/crash/fresh/tags/list").status_code == 404

        push_blob(client, "crash/fresh", BIG)
        r = client.get(f"/v2/crash/fresh/blobs/{BIG_DIGEST}")
        assert r.status_code == 200
        assert hashlib.sha256(r.content).hexdigest() == BIG_DIGEST.split(":")[1]
        acked.verify(client)
    finally:
        srv.stop()


def test_kill_during_chunked_upload_then_resume(
    tmp_path: Path, acked: Acked, durability: dict[str, str]
) -> None:
    srv = start_server(tmp_path, workers=1, env=durability)
    data = BIG[: 24 * MiB]
    digest = sha256(data)
    try:
        push_baseline(srv.client, acked)
        location, _ = start_upload(srv.client, "crash/app")
        r = srv.client.patch(
            location,
            content=data[: 8 * MiB],
            headers={
                "Content-Range": f"0-{8 * MiB - 1}",
                "Content-Type": "application/octet-stream",
            },
        )
        assert r.status_code == 202, r.text
        assert r.headers["Range"] == f"0-{8 * MiB - 1}"
        body = SlowBody(data[8 * MiB :], first=8 * MiB)
        thread, outcome = send_in_thread(
            srv.url + location,
            "PATCH",
            body,
            {
                "Content-Range": f"{8 * MiB}-{len(data) - 1}",
                "Content-Length": str(len(data) - 8 * MiB),
                "Content-Type": "application/octet-stream",
            },
        )
        wait_until(lambda: stored_bytes(durability, srv.data, "crash/app") >= 12 * MiB, "the PATCH")
        kill_9(srv)
    finally:
        ensure_dead(srv)
    body.release.set()
    thread.join(timeout=30)
    assert isinstance(outcome[0], httpx.HTTPError), outcome

    srv = start_server(tmp_path, workers=1, data=srv.data, env=durability)
    try:
        client = srv.client
        assert client.head(f"/v2/crash/app/blobs/{digest}").status_code == 404
        assert not blob_stored(durability, srv.data, digest)
        acked.verify(client)
        # The session survived the crash with at least every acknowledged byte.
        r = client.get(location)
        assert r.status_code == 204, r.text
        received = int(r.headers["Range"].split("-")[1]) + 1
        assert 8 * MiB <= received <= len(data)
        r = client.patch(
            location,
            content=data[received:],
            headers={"Content-Range": f"{received}-{len(data) - 1}"},
        )
        assert r.status_code == 202, r.text
        r = client.put(location, params={"digest": digest})
        assert r.status_code == 201, r.text
        r = client.get(f"/v2/crash/app/blobs/{digest}")
        assert r.status_code == 200
        assert r.content == data
        acked.verify(client)
    finally:
        srv.stop()


def test_kill_right_after_acknowledged_pushes(
    tmp_path: Path, acked: Acked, durability: dict[str, str]
) -> None:
    srv = start_server(tmp_path, workers=2, env=durability)
    try:
        client = srv.client
        push_baseline(client, acked)
        # A tag moved to another manifest, a tag deleted, a manifest deleted.
        moved = make_image("moved")
        acked.push(client, "crash/other", moved, "v1")
        extra = make_image("extra")
        acked.push(client, "crash/other", extra, "doomed-tag")
        assert client.delete("/v2/crash/other/manifests/doomed-tag").status_code == 202
        del acked.tags["crash/other"]["doomed-tag"]
        acked.untagged.setdefault("crash/other", []).append(extra)
        acked.gone_manifests.append(("crash/other", "doomed-tag"))
        doomed = make_image("doomed")
        push_image(client, "crash/app", doomed, "short-lived")
        r = client.delete(f"/v2/crash/app/manifests/{doomed.manifest.digest}")
        assert r.status_code == 202
        acked.gone_manifests += [
            ("crash/app", doomed.manifest.digest),
            ("crash/app", "short-lived"),
        ]
        # The last acknowledged write, then no chance to flush or shut down.
        last = make_image("last", layer_sizes=(2 * MiB,))
        for b in (last.config, *last.layers):
            push_blob(client, "crash/last", b.data)
        r = push_manifest(client, "crash/last", "final", last.manifest.data)
        assert r.status_code == 201
        acked.tags["crash/last"] = {"final": last}
        kill_9(srv)
    finally:
        ensure_dead(srv)

    srv = start_server(tmp_path, workers=2, data=srv.data, env=durability)
    try:
        acked.verify(srv.client)
        ok = srv.client.get(
            f"/v2/crash/app/manifests/{acked.tags['crash/app']['1.0'].manifest.digest}"
        )
        assert ok.status_code == 200
    finally:
        srv.stop()
