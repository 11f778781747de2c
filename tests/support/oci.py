"""Tiny raw-HTTP helpers for pushing test content with the spec's own requests."""

from __future__ import annotations

import hashlib
import json

import httpx

from tests.support.images import Blob, Image, blob

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_blob(client: httpx.Client, repo: str, data: bytes) -> str:
    digest = sha256(data)
    r = client.post(
        f"/v2/{repo}/blobs/uploads/",
        params={"digest": digest},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 201, r.text
    return digest


def push_manifest(
    client: httpx.Client, repo: str, ref: str, body: bytes, media_type: str = OCI_MANIFEST
) -> httpx.Response:
    return client.put(
        f"/v2/{repo}/manifests/{ref}", content=body, headers={"Content-Type": media_type}
    )


def push_image(client: httpx.Client, repo: str, image: Image, tag: str | None = "latest") -> str:
    for b in (image.config, *image.layers):
        push_blob(client, repo, b.data)
    r = push_manifest(client, repo, tag or image.manifest.digest, image.manifest.data)
    assert r.status_code == 201, r.text
    return image.manifest.digest


def manifest_for(config: Blob, layers: list[Blob], **extra: object) -> Blob:
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }
    doc.update(extra)
    return blob(json.dumps(doc).encode(), OCI_MANIFEST)


def errors(response: httpx.Response) -> list[str]:
    return [e["code"] for e in response.json()["errors"]]


def start_upload(client: httpx.Client, repo: str) -> str:
    """Open an upload session (POST, ``Content-Length: 0``) and return its Location."""
    r = client.post(f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
    assert r.status_code == 202, r.text
    return r.headers["Location"]


def range_end(response: httpx.Response) -> int:
    """``<end>`` of the spec's ``Range: 0-<end>`` header on an upload response."""
    start, _, end = response.headers["Range"].partition("-")
    assert start == "0", response.headers["Range"]
    return int(end)
