"""Manifest and tag requests: fetch a manifest tree (verified), put one, list tags, delete.

Manifests are fetched by exact bytes and checked: against the digest the reference or the
parent index names, else against the registry's ``Docker-Content-Digest``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import httpx

from hatchway.client.blobs import DigestMismatch, digest_of, hasher_for, short
from hatchway.client.manifest import (
    ACCEPT,
    Descriptor,
    Node,
    checked_digest,
    parse,
    references,
    select_platform,
)
from hatchway.client.reference import Reference
from hatchway.client.session import RegistryError, RetryPolicy, expect, json_of, retrying
from hatchway.client.upload import Transfer


@dataclass(frozen=True)
class Fetched:
    digest: str
    media_type: str
    data: bytes


def get_manifest(
    client: httpx.Client,
    repo: str,
    reference: str,
    retry: RetryPolicy,
    expected: Descriptor | None = None,
) -> Fetched:
    """The manifest's exact bytes, its media type and its verified digest."""
    r = retrying(
        retry,
        lambda: client.get(f"/v2/{repo}/manifests/{reference}", headers={"Accept": ACCEPT}),
    )
    expect(r, f"manifest {repo}:{reference}", 200)
    data = r.content
    media_type = r.headers.get("Content-Type", "").split(";", 1)[0].strip()
    claimed = (
        expected.digest
        if expected is not None
        else reference
        if ":" in reference
        else r.headers.get("Docker-Content-Digest")
    )
    if claimed:
        hasher = hasher_for(checked_digest(claimed, f"manifest {repo}:{reference}: "))
        hasher.update(data)
        actual = f"{claimed.split(':', 1)[0]}:{hasher.hexdigest()}"
        if actual != claimed:
            raise DigestMismatch(f"manifest {repo}:{reference} is {actual}, expected {claimed}")
    else:
        claimed = digest_of(data)
    if expected is not None and expected.size != len(data):
        raise DigestMismatch(f"manifest {short(claimed)} is {len(data)} bytes, not {expected.size}")
    return Fetched(claimed, media_type, data)


def fetch_image(client: httpx.Client, ref: Reference, platform: str | None, t: Transfer) -> Node:
    """The tree under ``ref``: an index with all its children (or just the ``platform``
    child), or one image manifest."""
    return _fetch(client, ref.repository, ref.reference, None, platform, t)


def _fetch(
    client: httpx.Client,
    repo: str,
    reference: str,
    expected: Descriptor | None,
    platform: str | None,
    t: Transfer,
) -> Node:
    got = get_manifest(client, repo, reference, t.retry, expected)
    media_type, doc = parse(got.data, got.media_type or None)
    blobs, children = references(media_type, doc)
    if children and platform:
        child = select_platform(children, platform)
        return _fetch(client, repo, child.digest, child, None, t)
    desc = Descriptor(media_type, got.digest, len(got.data))
    if expected is not None:
        desc = Descriptor(media_type, got.digest, len(got.data), expected.platform)
    node = Node(desc, got.data, blobs)
    node.children = [_fetch(client, repo, c.digest, c, None, t) for c in children]
    return node


def put_manifest(client: httpx.Client, repo: str, node: Node, reference: str, t: Transfer) -> None:
    t.check()
    r = retrying(
        t.retry,
        lambda: client.put(
            f"/v2/{repo}/manifests/{reference}",
            content=node.data,
            headers={"Content-Type": node.descriptor.media_type},
        ),
    )
    expect(r, f"put manifest {repo}:{reference}", 201, 200, 202)
    stored = r.headers.get("Docker-Content-Digest")
    if stored and stored != node.descriptor.digest:
        raise DigestMismatch(f"registry stored {stored}, we sent {node.descriptor.digest}")


def list_tags(client: httpx.Client, repo: str, retry: RetryPolicy) -> list[str]:
    """Every tag, following the ``Link`` header page by page."""
    tags: list[str] = []
    request = client.build_request("GET", f"/v2/{repo}/tags/list", params={"n": "1000"})
    while True:
        r = retrying(retry, functools.partial(client.send, request))
        expect(r, f"tags of {repo}", 200)
        tags += json_of(r).get("tags") or []
        link = r.links.get("next", {}).get("url")
        if not link:
            return tags
        request = client.build_request("GET", r.request.url.join(link))


def delete_manifest(client: httpx.Client, ref: Reference, retry: RetryPolicy) -> str:
    """Delete the manifest ``ref`` names (and so every tag on it), as skopeo delete does;
    returns its digest."""
    digest = ref.digest
    if digest is None:
        r = retrying(
            retry,
            lambda: client.head(
                f"/v2/{ref.repository}/manifests/{ref.reference}", headers={"Accept": ACCEPT}
            ),
        )
        expect(r, f"manifest {ref}", 200)
        digest = r.headers.get("Docker-Content-Digest")
        if not digest:
            digest = get_manifest(client, ref.repository, ref.reference, retry).digest
    r = retrying(retry, lambda: client.delete(f"/v2/{ref.repository}/manifests/{digest}"))
    if r.status_code not in (200, 202):
        raise RegistryError(r, f"delete {ref.repository}@{digest}")
    return digest
