"""``hatchway gc`` against a live server's data directory: mark, sweep, grace, uploads."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.images import Image, make_image
from tests.support.oci import OCI_MANIFEST, manifest_for, push_blob, push_manifest, sha256
from tests.support.server import HATCHWAY, Server, start_server
from tests.support.store import blob_dir, start_upload, upload_dir

REPO = "gc/app"


def run_gc(server: Server, *args: str) -> str:
    result = subprocess.run(
        [HATCHWAY, "gc", "--data", str(server.data), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"], "HOME": str(server.data.parent)},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path, workers=1)
    yield srv
    srv.stop()


def push(client: httpx.Client, image: Image, tag: str) -> None:
    for b in (image.config, *image.layers):
        push_blob(client, REPO, b.data)
    r = push_manifest(client, REPO, tag, image.manifest.data)
    assert r.status_code == 201, r.text


def pulls_fully(client: httpx.Client, image: Image, ref: str) -> None:
    r = client.get(f"/v2/{REPO}/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
    assert r.status_code == 200, r.text
    assert r.content == image.manifest.data
    for b in (image.config, *image.layers):
        r = client.get(f"/v2/{REPO}/blobs/{b.digest}")
        assert r.status_code == 200, b.digest
        assert r.content == b.data


def images_sharing_a_layer() -> tuple[Image, Image]:
    a = make_image("gc-a", layer_sizes=(4096, 8192))
    b_own = make_image("gc-b", layer_sizes=(16384,))
    layers = [a.layers[0], b_own.layers[0]]
    b = Image(b_own.config, layers, manifest_for(b_own.config, layers))
    return a, b


def test_gc_sweeps_unreferenced_blobs(server: Server) -> None:
    client = server.client
    a, b = images_sharing_a_layer()
    push(client, a, "a")
    push(client, b, "b")
    r = client.delete(f"/v2/{REPO}/manifests/{b.manifest.digest}")
    assert r.status_code == 202, r.text
    unique_to_b = [b.config.digest, b.layers[1].digest, b.manifest.digest]
    of_a = [a.config.digest, *(layer.digest for layer in a.layers), a.manifest.digest]
    assert all(blob_dir(server.data, d).is_dir() for d in unique_to_b + of_a)

    # Default grace (1h): everything was touched just now, nothing is swept.
    out = run_gc(server)
    assert "deleted 0 blobs" in out, out
    assert all(blob_dir(server.data, d).is_dir() for d in unique_to_b)

    out = run_gc(server, "--grace", "0s", "--dry-run")
    for d in unique_to_b:
        assert f"would delete blob {d}" in out, out
    assert "would delete 3 blobs" in out, out
    for d in of_a:
        assert d not in out
    assert all(blob_dir(server.data, d).is_dir() for d in unique_to_b + of_a)
    pulls_fully(client, a, "a")
    assert client.head(f"/v2/{REPO}/blobs/{b.config.digest}").status_code == 200

    out = run_gc(server, "--grace", "0s")
    for d in unique_to_b:
        assert f"deleted blob {d}" in out, out
        assert not blob_dir(server.data, d).exists()
    assert "deleted 3 blobs" in out, out
    for d in of_a:
        assert blob_dir(server.data, d).is_dir(), d
    # The live server sees the sweep: A pulls fully, B's own blobs are gone.
    pulls_fully(client, a, "a")
    pulls_fully(client, a, a.manifest.digest)
    for d in (b.config.digest, b.layers[1].digest):
        assert client.head(f"/v2/{REPO}/blobs/{d}").status_code == 404, d
        assert client.get(f"/v2/{REPO}/blobs/{d}").status_code == 404, d
    assert client.get(f"/v2/{REPO}/manifests/{b.manifest.digest}").status_code == 404
    assert client.get(f"/v2/{REPO}/tags/list").json()["tags"] == ["a"]
    assert client.get("/v2/_catalog").json() == {"repositories": [REPO]}

    # A second run finds nothing more; B can be pushed again and pulls.
    assert "deleted 0 blobs" in run_gc(server, "--grace", "0s")
    push(client, b, "b")
    pulls_fully(client, b, "b")
    pulls_fully(client, a, "a")


def test_gc_keeps_blobs_of_an_index(server: Server) -> None:
    client = server.client
    a, b = images_sharing_a_layer()
    push(client, a, a.manifest.digest)
    push(client, b, b.manifest.digest)
    index = (
        '{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", '
        f'"manifests": [{{"mediaType": "{OCI_MANIFEST}", "digest": "{a.manifest.digest}", '
        f'"size": {a.manifest.size}}}, {{"mediaType": "{OCI_MANIFEST}", '
        f'"digest": "{b.manifest.digest}", "size": {b.manifest.size}}}]}}'
    ).encode()
    r = push_manifest(client, REPO, "multi", index, "application/vnd.oci.image.index.v1+json")
    assert r.status_code == 201, r.text
    out = run_gc(server, "--grace", "0s")
    assert "deleted 0 blobs" in out, out
    pulls_fully(client, a, a.manifest.digest)
    pulls_fully(client, b, b.manifest.digest)


def test_gc_purges_stale_upload_sessions(server: Server) -> None:
    client = server.client
    a, _ = images_sharing_a_layer()
    push(client, a, "a")
    _, stale = start_upload(client, REPO)
    _, fresh = start_upload(client, "gc/uploads-only")
    _, also_stale = start_upload(client, "gc/uploads-only")
    for repo, upload_id in ((REPO, stale), ("gc/uploads-only", fresh)):
        assert client.get(f"/v2/{repo}/blobs/uploads/{upload_id}").status_code == 204
    # Nanosecond RFC 3339, as distribution writes startedat.
    started = upload_dir(server.data, REPO, stale) / "startedat"
    assert started.is_file()
    started.write_text("2020-01-02T03:04:05.123456789Z")
    (upload_dir(server.data, "gc/uploads-only", also_stale) / "startedat").write_text(
        "2024-06-01T12:00:00Z"
    )

    out = run_gc(server, "--upload-age", "1h", "--dry-run")
    assert f"would delete upload {REPO}/{stale}" in out, out
    assert f"would delete upload gc/uploads-only/{also_stale}" in out, out
    assert fresh not in out
    assert upload_dir(server.data, REPO, stale).is_dir()

    out = run_gc(server, "--upload-age", "1h")
    assert f"deleted upload {REPO}/{stale}" in out, out
    assert f"deleted upload gc/uploads-only/{also_stale}" in out, out
    assert "2 upload sessions" in out, out
    assert not upload_dir(server.data, REPO, stale).exists()
    assert not upload_dir(server.data, "gc/uploads-only", also_stale).exists()
    assert upload_dir(server.data, "gc/uploads-only", fresh).is_dir()
    assert client.get(f"/v2/{REPO}/blobs/uploads/{stale}").status_code == 404
    r = client.get(f"/v2/gc/uploads-only/blobs/uploads/{fresh}")
    assert r.status_code == 204, r.text
    # The fresh session still completes.
    data = os.urandom(1000)
    r = client.put(
        f"/v2/gc/uploads-only/blobs/uploads/{fresh}",
        params={"digest": sha256(data)},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 201, r.text
    pulls_fully(client, a, "a")
