"""Helpers for the repository API tests: a token-mode server with access rules, pushes
over the registry's own HTTP API (with a JWT from /auth/token, as clients get one), and
images with a known created time and sizes."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.mgmt.conftest import API
from tests.support.authkit import ADMIN_PASSWORD, get_token, hatchway_cli
from tests.support.images import Blob, Image, blob, make_image
from tests.support.manifests import OCI_CONFIG, artifact, index_of
from tests.support.oci import OCI_INDEX, manifest_for, push_blob, push_manifest
from tests.support.server import Server, start_server

PASSWORD = "repo-Pw-0123"
ADMIN = ("admin", ADMIN_PASSWORD)
CREATED = "2025-03-04T05:06:07.123456789Z"
RULES: list[dict[str, Any]] = [
    {"repository": "${account}/*", "action": "*"},
    {"name": "viewer", "repository": "public/*", "action": "pull"},
    {"name": "viewer", "repository": "alice/shared", "action": "pull"},
    {"name": "alice", "repository": "public/*", "action": "*"},
]


def start(
    tmp: Path, *, workers: int = 1, dsn: str | None = None, data: Path | None = None
) -> Server:
    doc: dict[str, Any] = {
        "version": "0.1",
        "auth": {"token": {}},
        "storage": {"delete": {"enabled": True}},
        "access": RULES,
    }
    if dsn is not None:
        doc["database"] = {"dsn": dsn}
    return start_server(
        tmp,
        config=json.dumps(doc),
        workers=workers,
        data=data,
        env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )


def add_user(server: Server, name: str) -> None:
    """``hatchway user add`` with the server's own config (its database may be PostgreSQL)."""
    config = server.log_path.parent / f"config-{server.addr.rsplit(':', 1)[1]}.yml"
    hatchway_cli(
        server.data,
        "user",
        "add",
        name,
        "--password-stdin",
        "--config",
        str(config),
        stdin=PASSWORD + "\n",
    )


def image(seed: str, layer_sizes: tuple[int, ...] = (300,), created: str = CREATED) -> Image:
    """A small OCI image whose config says when it was created."""
    base = make_image(seed, layer_sizes=layer_sizes)
    config_doc = json.loads(base.config.data)
    config_doc["created"] = created
    config = blob(json.dumps(config_doc).encode(), OCI_CONFIG)
    return Image(config, base.layers, manifest_for(config, base.layers))


def total(img: Image) -> int:
    """What the index calls an image's size: config + layers."""
    return img.config.size + sum(layer.size for layer in img.layers)


@contextmanager
def registry(
    server: Server, auth: tuple[str, str], repo: str, actions: str = "pull,push,delete"
) -> Iterator[httpx.Client]:
    token = get_token(server, [f"repository:{repo}:{actions}"], auth=auth)
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        yield client


def push(server: Server, auth: tuple[str, str], repo: str, img: Image, *tags: str) -> str:
    """Push ``img`` (its blobs, then its manifest by digest and under each tag)."""
    with registry(server, auth, repo) as client:
        for b in (img.config, *img.layers):
            push_blob(client, repo, b.data)
        for ref in tags or (img.manifest.digest,):
            r = push_manifest(client, repo, ref, img.manifest.data)
            assert r.status_code == 201, r.text
    return img.manifest.digest


def push_manifest_blob(
    server: Server, auth: tuple[str, str], repo: str, manifest: Blob, *tags: str
) -> None:
    with registry(server, auth, repo) as client:
        for ref in tags or (manifest.digest,):
            r = push_manifest(client, repo, ref, manifest.data, manifest.media_type)
            assert r.status_code == 201, r.text


def push_index(
    server: Server, auth: tuple[str, str], repo: str, images: Sequence[Image], *tags: str
) -> Blob:
    for img in images:
        push(server, auth, repo, img)
    index = index_of([img.manifest for img in images], OCI_INDEX)
    push_manifest_blob(server, auth, repo, index, *tags)
    return index


def push_referrer(
    server: Server, auth: tuple[str, str], repo: str, subject: Blob, artifact_type: str
) -> Blob:
    """An artifact (a signature, an SBOM) that refers to ``subject``, pushed by digest."""
    payload = blob(f"{artifact_type} of {subject.digest}".encode(), "application/octet-stream")
    with registry(server, auth, repo) as client:
        push_blob(client, repo, b"{}")
        push_blob(client, repo, payload.data)
    found = artifact(
        artifact_type, subject=subject, layers=[payload], annotations={"org.example": "yes"}
    )
    push_manifest_blob(server, auth, repo, found)
    return found


def tags_of(server: Server, repo: str, auth: tuple[str, str] = ADMIN, **params: Any) -> Any:
    r = server.client.get(f"{API}/repositories/{repo}/tags", params=params, auth=auth)
    assert r.status_code == 200, r.text
    return r.json()


def names(server: Server, auth: tuple[str, str], **params: Any) -> list[str]:
    r = server.client.get(f"{API}/repositories", params={"n": 1000, **params}, auth=auth)
    assert r.status_code == 200, r.text
    return [repo["name"] for repo in r.json()["repositories"]]
