"""Many clients at once: the same blob pushed in parallel, parallel upload sessions."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import httpx

from tests.support.images import make_image
from tests.support.oci import OCI_MANIFEST, push_image, sha256
from tests.support.server import Server
from tests.support.store import start_upload

T = TypeVar("T")
MiB = 1024 * 1024
N = 16


def all_at_once(n: int, fn: Callable[[int, httpx.Client], T], server: Server) -> list[T]:
    """Run ``fn(i, client)`` in ``n`` threads released together, each with its own client."""
    barrier = threading.Barrier(n)

    def run(i: int) -> T:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            client.get("/v2/")  # connect before the barrier, so the requests overlap
            barrier.wait(timeout=30)
            return fn(i, client)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def monolithic(client: httpx.Client, repo: str, data: bytes) -> httpx.Response:
    return client.post(
        f"/v2/{repo}/blobs/uploads/",
        params={"digest": sha256(data)},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )


def chunked(client: httpx.Client, repo: str, data: bytes, chunk: int) -> httpx.Response:
    location, _ = start_upload(client, repo)
    for start in range(0, len(data), chunk):
        piece = data[start : start + chunk]
        r = client.patch(
            location,
            content=piece,
            headers={
                "Content-Range": f"{start}-{start + len(piece) - 1}",
                "Content-Type": "application/octet-stream",
            },
        )
        assert r.status_code == 202, r.text
        assert r.headers["Range"] == f"0-{start + len(piece) - 1}"
        location = r.headers["Location"]
    return client.put(location, params={"digest": sha256(data)})


def assert_blob(client: httpx.Client, repo: str, data: bytes) -> None:
    r = client.get(f"/v2/{repo}/blobs/{sha256(data)}")
    assert r.status_code == 200, (repo, r.text)
    assert r.content == data
    r = client.head(f"/v2/{repo}/blobs/{sha256(data)}")
    assert r.headers["Content-Length"] == str(len(data))


def test_same_blob_same_repo(server: Server, repo: str) -> None:
    data = os.urandom(4 * MiB)
    responses = all_at_once(N, lambda i, c: monolithic(c, repo, data), server)
    assert [r.status_code for r in responses] == [201] * N, [r.text for r in responses]
    assert {r.headers["Docker-Content-Digest"] for r in responses} == {sha256(data)}
    assert_blob(server.client, repo, data)


def test_same_blob_different_repos(server: Server, repo: str) -> None:
    data = os.urandom(4 * MiB)
    responses = all_at_once(N, lambda i, c: monolithic(c, f"{repo}/r{i}", data), server)
    assert [r.status_code for r in responses] == [201] * N, [r.text for r in responses]
    for i in range(N):
        assert_blob(server.client, f"{repo}/r{i}", data)


def test_same_blob_chunked_sessions(server: Server, repo: str) -> None:
    data = os.urandom(3 * MiB + 5)
    responses = all_at_once(
        N, lambda i, c: chunked(c, repo if i % 2 else f"{repo}/r{i}", data, 256 * 1024), server
    )
    assert [r.status_code for r in responses] == [201] * N, [r.text for r in responses]
    assert_blob(server.client, repo, data)
    for i in range(0, N, 2):
        assert_blob(server.client, f"{repo}/r{i}", data)


def test_concurrent_sessions_different_blobs(server: Server, repo: str) -> None:
    blobs = [os.urandom(MiB + i * 1000) for i in range(N)]
    responses = all_at_once(N, lambda i, c: chunked(c, repo, blobs[i], 128 * 1024), server)
    assert [r.status_code for r in responses] == [201] * N, [r.text for r in responses]
    for data in blobs:
        assert_blob(server.client, repo, data)


def test_same_image_same_tag(server: Server, repo: str) -> None:
    image = make_image("concurrent", layer_sizes=(512 * 1024, 2048))
    digests = all_at_once(N, lambda i, c: push_image(c, repo, image, "latest"), server)
    assert set(digests) == {image.manifest.digest}
    r = server.client.get(f"/v2/{repo}/manifests/latest", headers={"Accept": OCI_MANIFEST})
    assert r.status_code == 200
    assert r.content == image.manifest.data
    assert server.client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["latest"]
    for b in (image.config, *image.layers):
        assert_blob(server.client, repo, b.data)
