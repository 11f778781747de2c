"""Manifests as the client moves them: descriptors, media types, and the tree of an index
and its children, always carried as the exact bytes so digests never change in transit."""

from __future__ import annotations

import json
import platform as host_platform
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
ACCEPT = ", ".join([OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST])
MAX_MANIFEST = 4 * 1024 * 1024
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"


# The digests this client can verify: the OCI grammar's registered algorithms, lower-case
# hex of their exact length. Nothing else may name a file or a tar member.
HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_DIGEST_FORM = re.compile(r"([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)")
_LOWER_HEX = re.compile(r"[0-9a-f]+")


class ManifestError(Exception):
    """A manifest the client cannot use (not JSON, unknown shape, missing parts)."""


class InvalidDigest(ManifestError):
    """A digest that is not ``<algorithm>:<hex>`` of an algorithm the client can verify."""


def checked_digest(value: object, where: str = "") -> str:
    """``value`` if it is a well-formed digest of sha256, sha384 or sha512, else raise.

    Digests from a registry or an image file become file names (``blobs/sha256/<hex>``),
    tar member names and URL paths, so every one is checked before any such use.
    """
    if isinstance(value, str):
        form = _DIGEST_FORM.fullmatch(value)
        length = HEX_LENGTHS.get(form.group(1)) if form else None
        if form and length is None:
            raise InvalidDigest(f"{where}unsupported digest algorithm {form.group(1)!r}")
        if form and len(form.group(2)) == length and _LOWER_HEX.fullmatch(form.group(2)):
            return value
    shown = repr(value) if len(repr(value)) <= 90 else repr(value)[:87] + "..."
    raise InvalidDigest(f"{where}invalid digest {shown}")


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: dict[str, Any] | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, doc: Any) -> Descriptor:
        try:
            digest = checked_digest(doc["digest"], "descriptor: ")
            return cls(
                str(doc.get("mediaType", "")),
                digest,
                int(doc["size"]),
                doc.get("platform"),
                dict(doc.get("annotations") or {}),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ManifestError(f"invalid descriptor {doc!r}") from exc

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest}
        doc["size"] = self.size
        if self.platform:
            doc["platform"] = self.platform
        if self.annotations:
            doc["annotations"] = self.annotations
        return doc


@dataclass
class Node:
    """One manifest (its exact bytes) and what it references: blobs, or child manifests."""

    descriptor: Descriptor
    data: bytes
    blobs: list[Descriptor] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)

    @property
    def is_index(self) -> bool:
        return self.descriptor.media_type in INDEX_TYPES

    def walk(self) -> Iterator[Node]:
        """Children before parents: the order a registry accepts them in."""
        for child in self.children:
            yield from child.walk()
        yield self

    def all_blobs(self) -> list[Descriptor]:
        seen: dict[str, Descriptor] = {}
        for node in self.walk():
            for blob in node.blobs:
                seen.setdefault(blob.digest, blob)
        return list(seen.values())

    def config(self) -> Descriptor:
        if self.is_index or not self.blobs:
            raise ManifestError(f"{self.descriptor.digest} is not an image manifest")
        return self.blobs[0]


def parse(data: bytes, media_type: str | None = None) -> tuple[str, Any]:
    """The manifest's media type (the stated one, else its ``mediaType``, else guessed from
    its shape) and its JSON document."""
    if len(data) > MAX_MANIFEST:
        raise ManifestError(f"manifest is {len(data)} bytes, over the 4 MiB limit")
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ManifestError(f"manifest is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ManifestError("manifest is not a JSON object")
    media_type = media_type or doc.get("mediaType")
    if not media_type:
        media_type = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    return str(media_type), doc


def _distributable(desc: Descriptor) -> bool:
    """Foreign (Windows base) layers live elsewhere and are never pushed or pulled."""
    return "foreign" not in desc.media_type and "nondistributable" not in desc.media_type


def references(media_type: str, doc: Any) -> tuple[list[Descriptor], list[Descriptor]]:
    """``(blobs, child manifests)`` named by a manifest document."""
    if media_type in INDEX_TYPES:
        return [], [Descriptor.from_json(d) for d in doc.get("manifests") or []]
    blobs = []
    if "config" in doc:
        blobs.append(Descriptor.from_json(doc["config"]))
    blobs += [Descriptor.from_json(d) for d in doc.get("layers") or []]
    blobs += [Descriptor.from_json(d) for d in doc.get("blobs") or []]
    return [b for b in blobs if _distributable(b)], []


def host_platform_string() -> str:
    machine = host_platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)
    return f"linux/{arch}"


def matches_platform(desc: Descriptor, wanted: str) -> bool:
    """``os/arch[/variant]`` against an index entry's platform."""
    parts = wanted.split("/")
    got = desc.platform or {}
    have = [got.get("os"), got.get("architecture"), got.get("variant")]
    return all(want == have[i] for i, want in enumerate(parts[:3]))


def platform_string(desc: Descriptor) -> str:
    got = desc.platform or {}
    parts = [got.get("os"), got.get("architecture"), got.get("variant")]
    return "/".join(str(p) for p in parts if p) or "unknown"


def select_platform(descs: list[Descriptor], wanted: str) -> Descriptor:
    for desc in descs:
        if matches_platform(desc, wanted):
            return desc
    found = sorted({platform_string(d) for d in descs})
    raise ManifestError(f"no manifest for platform {wanted} (index has: {', '.join(found)})")
