"""What a stored manifest is, read for people: sizes, platforms, created time, layers.

Content-addressed, so a summary never goes stale and is cached by digest. Lenient as
:func:`hatchway.oci.manifests.references` is: a manifest stored by an earlier version or by
distribution still summarizes (unknown fields are ignored, odd ones left out).
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hatchway.errors import HatchwayError
from hatchway.oci import manifests as oci_manifests
from hatchway.oci import mediatypes as mt
from hatchway.oci.digest import Digest
from hatchway.registry.blobs import BlobStore
from hatchway.storage.driver import PathNotFoundError

IMAGE_CONFIGS = frozenset(
    {"application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"}
)
_MAX_CONFIG = 1024 * 1024  # a config read for its created time; larger ones are skipped
_MAX_DEPTH = 2  # an index of indexes is summarized one level down, no further
_CACHE_ENTRIES = 20_000
_PLATFORM_KEYS = ("os", "architecture", "variant", "os.version")
_FRACTION_RE = re.compile(r"(\.\d{6})\d+")


@dataclass(frozen=True, slots=True)
class Layer:
    digest: str
    media_type: str
    size: int
    annotations: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Platform:
    """One entry of an index: the manifest for one platform (or an attestation)."""

    digest: str
    media_type: str
    platform: dict[str, str] | None
    size: int | None  # that manifest's total size; None when it is not stored here
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "media_type": self.media_type,
            "platform": self.platform,
            "size": self.size,
            "artifact_type": self.artifact_type,
            "annotations": self.annotations,
        }


@dataclass(frozen=True, slots=True)
class ManifestSummary:
    digest: str
    media_type: str
    size: int  # config + layers; an index: the sum of its platforms' sizes
    manifest_size: int  # the manifest document itself
    artifact_type: str | None
    subject: str | None
    created: datetime | None
    annotations: dict[str, str] | None
    config: Layer | None
    layers: tuple[Layer, ...]
    platforms: tuple[Platform, ...] | None  # set for an index

    @property
    def is_index(self) -> bool:
        return self.platforms is not None

    def blobs(self) -> tuple[tuple[str, int], ...]:
        """(digest, size) of what this manifest keeps in storage, itself included."""
        found = [(self.digest, self.manifest_size)]
        if self.config is not None:
            found.append((self.config.digest, self.config.size))
        found.extend((layer.digest, layer.size) for layer in self.layers)
        return tuple(found)


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time as Go writes it (nanoseconds, ``Z``), aware UTC; else None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(_FRACTION_RE.sub(r"\1", value.strip()))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def _strings(value: Any) -> dict[str, str] | None:
    if not isinstance(value, dict) or not value:
        return None
    return {str(k): v for k, v in value.items() if isinstance(v, str)} or None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _size(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _layer(raw: Any) -> Layer | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("digest"), str):
        return None
    return Layer(
        raw["digest"],
        _text(raw.get("mediaType")) or "",
        _size(raw.get("size")),
        _strings(raw.get("annotations")),
    )


def _platform(raw: Any) -> dict[str, str] | None:
    if not isinstance(raw, dict):
        return None
    return {k: raw[k] for k in _PLATFORM_KEYS if isinstance(raw.get(k), str)} or None


class Summaries:
    """Summaries of stored manifests by digest, cached (content never changes)."""

    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs
        self._cache: OrderedDict[str, ManifestSummary] = OrderedDict()

    async def get(self, digest: Digest | str, depth: int = 0) -> ManifestSummary | None:
        """The summary of stored manifest ``digest``, or None if it is not stored (or
        not a JSON object)."""
        key = str(digest)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        try:
            d = digest if isinstance(digest, Digest) else Digest.parse(digest)
            body = await self._blobs.get_small(d)
        except (HatchwayError, PathNotFoundError):
            return None
        found = await self._summarize(key, body, depth)
        if found is not None:
            self._cache[key] = found
            while len(self._cache) > _CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return found

    async def _summarize(self, digest: str, body: bytes, depth: int) -> ManifestSummary | None:
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            return None
        if not isinstance(doc, dict):
            return None
        media_type = oci_manifests.detect_media_type(doc) or mt.OCI_MANIFEST
        subject = _layer(doc.get("subject"))
        common: dict[str, Any] = {
            "digest": digest,
            "media_type": media_type,
            "manifest_size": len(body),
            "subject": subject.digest if subject is not None else None,
            "annotations": _strings(doc.get("annotations")),
        }
        if media_type in mt.INDEXES or "manifests" in doc:
            platforms = await self._platforms(doc.get("manifests"), depth)
            return ManifestSummary(
                size=sum(p.size or 0 for p in platforms),
                artifact_type=_text(doc.get("artifactType")),
                created=None,
                config=None,
                layers=(),
                platforms=platforms,
                **common,
            )
        config = _layer(doc.get("config"))
        raw_layers = doc.get("layers")
        layers = tuple(
            found
            for found in map(_layer, raw_layers if isinstance(raw_layers, list) else [])
            if found is not None
        )
        artifact_type = _text(doc.get("artifactType"))
        if (
            artifact_type is None
            and config is not None
            and media_type == mt.OCI_MANIFEST
            and config.media_type not in (*IMAGE_CONFIGS, mt.OCI_EMPTY)
        ):
            artifact_type = config.media_type  # as the referrers API reports it
        return ManifestSummary(
            size=(config.size if config else 0) + sum(layer.size for layer in layers),
            artifact_type=artifact_type,
            created=await self._created(config),
            config=config,
            layers=layers,
            platforms=None,
            **common,
        )

    async def _platforms(self, raw: Any, depth: int) -> tuple[Platform, ...]:
        found = []
        for entry in raw if isinstance(raw, list) else []:
            described = _layer(entry)
            if described is None:
                continue
            assert isinstance(entry, dict)
            child = await self.get(described.digest, depth + 1) if depth < _MAX_DEPTH else None
            found.append(
                Platform(
                    described.digest,
                    described.media_type,
                    _platform(entry.get("platform")),
                    child.size if child is not None else None,
                    _text(entry.get("artifactType")),
                    described.annotations,
                )
            )
        return tuple(found)

    async def _created(self, config: Layer | None) -> datetime | None:
        if config is None or config.media_type not in IMAGE_CONFIGS or config.size > _MAX_CONFIG:
            return None
        try:
            raw = await self._blobs.get_small(Digest.parse(config.digest))
            doc = json.loads(raw)
        except (HatchwayError, PathNotFoundError, ValueError, RecursionError):
            return None
        return parse_time(doc.get("created")) if isinstance(doc, dict) else None
