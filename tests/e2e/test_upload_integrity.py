"""A digest always names exactly its bytes: uploads across workers, and repairing a bad blob."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.images import make_image
from tests.support.oci import OCI_MANIFEST, push_blob, push_manifest, sha256
from tests.support.server import Server, start_server
from tests.support.store import blob_dir, start_upload, upload_dir
from tests.support.workers import connect, connection_to_other_worker, worker_with_open_file

REPO = "integrity/app"


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path, workers=2)
    yield srv
    srv.stop()


def codes(body: bytes) -> list[str]:
    return [e["code"] for e in json.loads(body)["errors"]]


def assert_serves(client: httpx.Client, repo: str, data: bytes) -> None:
    r = client.get(f"/v2/{repo}/blobs/{sha256(data)}")
    assert r.status_code == 200, r.text
    assert r.content == data
    r = client.head(f"/v2/{repo}/blobs/{sha256(data)}")
    assert r.headers["Content-Length"] == str(len(data))


def test_put_while_a_patch_is_held_open_in_another_worker(two_workers: Server) -> None:
    server, client = two_workers, two_workers.client
    data = os.urandom(256 * 1024)
    digest = sha256(data)
    location, upload_id = start_upload(client, REPO)
    r = client.patch(
        location,
        content=data,
        headers={"Content-Range": f"0-{len(data) - 1}", "Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 202, r.text

    # A second PATCH sends its headers and holds its body back: its worker has the
    # session's data file open for appending.
    junk = b"bytes that are not part of the blob " * 2000
    patch = connect(server)
    patch.putrequest("PATCH", location)
    patch.putheader("Content-Type", "application/octet-stream")
    patch.putheader("Content-Length", str(len(junk)))
    patch.putheader("Content-Range", f"{len(data)}-{len(data) + len(junk) - 1}")
    patch.endheaders()
    patching = worker_with_open_file(server, upload_dir(server.data, REPO, upload_id) / "data")

    # PUT ?digest= of the bytes so far, in the other worker: it must not publish while
    # the PATCH can still append (it waits, then says the session is busy).
    put = connection_to_other_worker(server, patching)
    put.request("PUT", f"{location}?digest={digest}", headers={"Content-Length": "0"})
    answer = put.getresponse()
    body = answer.read()
    assert answer.status == 416, body
    assert codes(body) == ["BLOB_UPLOAD_INVALID"]
    assert client.head(f"/v2/{REPO}/blobs/{digest}").status_code == 404

    patch.send(junk)
    appended = patch.getresponse()
    appended.read()
    assert appended.status == 202
    assert appended.getheader("Range") == f"0-{len(data) + len(junk) - 1}"
    patch.close()

    # The session now holds more than the blob: finishing it with that digest fails.
    put.request("PUT", f"{location}?digest={digest}", headers={"Content-Length": "0"})
    answer = put.getresponse()
    body = answer.read()
    put.close()
    assert answer.status == 400, body
    assert codes(body) == ["DIGEST_INVALID"]
    assert client.head(f"/v2/{REPO}/blobs/{digest}").status_code == 404

    push_blob(client, REPO, data)
    for _ in range(4):  # new connections, so both workers answer
        with httpx.Client(base_url=server.url, timeout=30) as fresh:
            assert_serves(fresh, REPO, data)
    assert (blob_dir(server.data, digest) / "data").read_bytes() == data


def test_push_repairs_a_stored_blob_with_extra_bytes(server: Server, repo: str) -> None:
    # What the upload race used to leave: the digest's bytes and then some.
    client = server.client
    big = os.urandom(3 * 1024 * 1024 + 1)
    small = os.urandom(5000)
    for data in (big, small):
        push_blob(client, repo, data)
        stored = blob_dir(server.data, sha256(data)) / "data"
        with stored.open("ab") as f:
            f.write(b"poison")
        r = client.head(f"/v2/{repo}/blobs/{sha256(data)}")
        assert r.headers["Content-Length"] == str(len(data) + 6)
    # A genuine push of the same digest, monolithic or chunked, puts it right.
    push_blob(client, f"{repo}/other", big)
    location, _ = start_upload(client, repo)
    r = client.put(location, params={"digest": sha256(small)}, content=small)
    assert r.status_code == 201, r.text
    for data in (big, small):
        assert (blob_dir(server.data, sha256(data)) / "data").read_bytes() == data
        assert_serves(client, repo, data)


def test_push_repairs_a_small_blob_with_wrong_bytes_of_the_right_size(
    server: Server, repo: str
) -> None:
    client = server.client
    data = os.urandom(4096)
    push_blob(client, repo, data)
    stored = blob_dir(server.data, sha256(data)) / "data"
    stored.write_bytes(bytes(len(data)))
    push_blob(client, repo, data)
    assert stored.read_bytes() == data
    assert_serves(client, repo, data)


def test_manifest_push_repairs_stored_manifest_bytes(server: Server, repo: str) -> None:
    client = server.client
    image = make_image("repair", layer_sizes=(1000,))
    for b in (image.config, *image.layers):
        push_blob(client, repo, b.data)
    assert push_manifest(client, repo, "v1", image.manifest.data).status_code == 201
    stored = blob_dir(server.data, image.manifest.digest) / "data"
    stored.write_bytes(image.manifest.data + b"\n")
    assert push_manifest(client, repo, "v1", image.manifest.data).status_code == 201
    assert stored.read_bytes() == image.manifest.data
    r = client.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert r.content == image.manifest.data
