"""Build every kind of manifest the registry serves, as exact bytes, for the API tests.

Bodies are serialised with deliberately odd whitespace, key order and non-ASCII text, so a
test comparing what the registry serves with what was pushed compares bytes, not JSON.
"""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.images import Blob, Image, blob, make_image
from tests.support.oci import OCI_INDEX, OCI_MANIFEST, push_blob
from tests.support.server import Server, serving_worker, worker_pids

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)

# The image-spec's well-known empty descriptor: the two bytes "{}".
EMPTY = blob(b"{}", OCI_EMPTY)
assert EMPTY.digest == OCI_EMPTY_DIGEST


def empty_descriptor() -> dict[str, object]:
    return {**EMPTY.descriptor(), "data": base64.b64encode(EMPTY.data).decode()}


def odd_json(doc: dict[str, Any]) -> bytes:
    """Valid JSON no canonical serialiser would produce: the registry must keep it as is."""
    text = json.dumps(doc, indent=3, separators=(" ,", " :  "), ensure_ascii=False)
    return b" \r\n" + text.replace("\n", "\r\n\t").encode() + b"\n\n"


def descriptor(b: Blob, **extra: object) -> dict[str, object]:
    return {**b.descriptor(), **extra}


def push_blobs(client: httpx.Client, repo: str, *blobs: Blob) -> None:
    for b in blobs:
        push_blob(client, repo, b.data)


def oci_image(seed: str, **extra: object) -> Image:
    """A small OCI image whose manifest has its keys in an unusual order (layers first)."""
    image = make_image(seed, layer_sizes=(256,))
    doc: dict[str, object] = {
        "layers": [layer.descriptor() for layer in image.layers],
        "config": image.config.descriptor(),
        "annotations": {"org.example.seed": f"{seed} \u2013 ünïcödé"},
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        **extra,
    }
    return Image(image.config, image.layers, blob(odd_json(doc), OCI_MANIFEST))


def docker_image(seed: str) -> Image:
    """A Docker image manifest (schema 2) with its config and one layer."""
    image = make_image(seed, layer_sizes=(256,))
    config = Blob(image.config.digest, image.config.data, DOCKER_CONFIG)
    layers = [Blob(layer.digest, layer.data, DOCKER_LAYER) for layer in image.layers]
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }
    return Image(config, layers, blob(odd_json(doc), DOCKER_MANIFEST))


def index_of(children: list[Blob], media_type: str = OCI_INDEX, **extra: object) -> Blob:
    """An OCI index or Docker manifest list of ``children`` (one platform each)."""
    archs = ["amd64", "arm64", "s390x", "ppc64le", "riscv64"]
    doc: dict[str, object] = {
        "mediaType": media_type,
        "schemaVersion": 2,
        "manifests": [
            descriptor(child, platform={"os": "linux", "architecture": archs[i % len(archs)]})
            for i, child in enumerate(children)
        ],
        **extra,
    }
    return blob(odd_json(doc), media_type)


def artifact(
    artifact_type: str,
    *,
    subject: Blob | None = None,
    layers: list[Blob] | None = None,
    annotations: dict[str, str] | None = None,
) -> Blob:
    """An artifact: an OCI manifest with ``artifactType`` and the empty config."""
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": empty_descriptor(),
        "layers": [layer.descriptor() for layer in layers] if layers else [empty_descriptor()],
    }
    if subject is not None:
        doc["subject"] = subject.descriptor()
    if annotations is not None:
        doc["annotations"] = annotations
    return blob(odd_json(doc), OCI_MANIFEST)


def put(
    client: httpx.Client, repo: str, ref: str, manifest: Blob, content_type: str | None = None
) -> httpx.Response:
    """PUT ``manifest`` with its own media type as Content-Type (or ``content_type``)."""
    return client.put(
        f"/v2/{repo}/manifests/{ref}",
        content=manifest.data,
        headers={"Content-Type": content_type or manifest.media_type},
    )


def put_ok(client: httpx.Client, repo: str, ref: str, manifest: Blob) -> httpx.Response:
    r = put(client, repo, ref, manifest)
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == manifest.digest
    return r


def get_without_accept(client: httpx.Client, method: str, url: str) -> httpx.Response:
    """A request with no Accept header at all (httpx sends ``*/*`` by default)."""
    request = client.build_request(method, url)
    del request.headers["Accept"]
    return client.send(request)


@contextmanager
def fresh_client(base_url: str) -> Iterator[httpx.Client]:
    """A client on a new connection, which the kernel may hand to any server worker."""
    with httpx.Client(base_url=base_url, timeout=30, headers={"Connection": "close"}) as c:
        yield c


def send(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> httpx.Response:
    """One request on a kept-alive ``http.client`` connection, answered as an httpx.Response."""
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return httpx.Response(response.status, headers=response.getheaders(), content=response.read())


@contextmanager
def connection_per_worker(server: Server, tries: int = 200) -> Iterator[list[WorkerConnection]]:
    """One open connection to each worker process of ``server`` (found through /proc)."""
    host, port = server.addr.rsplit(":", 1)
    workers = worker_pids(server)
    found: dict[int, WorkerConnection] = {}
    spare: list[http.client.HTTPConnection] = []
    try:
        for _ in range(tries):
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            assert send(conn, "GET", "/v2/").status_code == 200
            pid = serving_worker(server, conn.sock.getsockname()[1])
            if pid is None or pid in found:
                spare.append(conn)
                continue
            found[pid] = WorkerConnection(pid, conn)
            if len(found) == len(workers):
                break
        assert len(found) == len(workers) >= 2, f"reached workers {sorted(found)} of {workers}"
        yield list(found.values())
    finally:
        for conn in [*spare, *(w.conn for w in found.values())]:
            conn.close()


@dataclass
class WorkerConnection:
    pid: int
    conn: http.client.HTTPConnection

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> httpx.Response:
        return send(self.conn, method, path, headers, body)
