"""Parse manifests and indexes enough to validate them and find what they reference."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hatchway.errors import MANIFEST_INVALID, HatchwayError
from hatchway.oci import mediatypes as mt
from hatchway.oci.digest import Digest

MAX_MANIFEST_SIZE = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None
    urls: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = self.annotations
        return out


@dataclass(frozen=True, slots=True)
class Manifest:
    media_type: str
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] | None = field(default=None)

    @property
    def is_index(self) -> bool:
        return self.media_type in mt.INDEXES

    def blobs(self) -> list[Descriptor]:
        """Blobs that must be in the repository for this manifest to be complete."""
        found = [self.config] if self.config is not None else []
        found.extend(layer for layer in self.layers if layer.media_type not in mt.FOREIGN_LAYERS)
        return found

    def effective_artifact_type(self) -> str | None:
        """The artifact type the referrers API reports (image-spec rules)."""
        if self.artifact_type:
            return self.artifact_type
        if self.config is not None and self.media_type == mt.OCI_MANIFEST:
            return self.config.media_type
        return None


def _invalid(reason: str) -> HatchwayError:
    return HatchwayError(MANIFEST_INVALID, "manifest invalid", {"reason": reason})


def _descriptor(raw: Any, where: str) -> Descriptor:
    if not isinstance(raw, dict):
        raise _invalid(f"{where} must be an object")
    media_type = raw.get("mediaType")
    digest = raw.get("digest")
    size = raw.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise _invalid(f"{where}.mediaType must be a non-empty string")
    if not isinstance(digest, str):
        raise _invalid(f"{where}.digest must be a string")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _invalid(f"{where}.size must be a non-negative integer")
    try:
        parsed = Digest.parse(digest)
    except HatchwayError:
        raise _invalid(f"{where}.digest is not a valid digest") from None
    artifact_type = raw.get("artifactType")
    annotations = raw.get("annotations")
    urls = raw.get("urls") or []
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise _invalid(f"{where}.urls must be a list of strings")
    return Descriptor(
        media_type,
        parsed,
        size,
        artifact_type if isinstance(artifact_type, str) else None,
        annotations if isinstance(annotations, dict) else None,
        tuple(urls),
    )


def detect_media_type(doc: dict[str, Any]) -> str:
    """The manifest's media type: its ``mediaType`` field, else known by its shape."""
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    # An OCI manifest or index may omit mediaType; tell them apart by their fields.
    if "manifests" in doc:
        return mt.OCI_INDEX
    if "config" in doc:
        return mt.OCI_MANIFEST
    if doc.get("schemaVersion") == 1:
        return mt.DOCKER_SCHEMA1_SIGNED
    return ""


def parse(body: bytes, content_type: str | None = None) -> Manifest:
    """Parse and validate a pushed manifest; raise ``MANIFEST_INVALID`` with the reason."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _invalid("not valid JSON") from None
    if not isinstance(doc, dict):
        raise _invalid("not a JSON object")
    declared = doc.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise _invalid("mediaType must be a string")
    # The type must be readable from the bytes alone, so every worker (and every later
    # GET) serves the same Content-Type: Docker types require the field, as distribution
    # does; an OCI manifest or index may omit it and is then known by its shape.
    media_type = detect_media_type(doc)
    if content_type in mt.SUPPORTED_MANIFESTS and media_type != content_type:
        if not declared and content_type in (mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST):
            raise _invalid(f"mediaType is required in a {content_type} manifest")
        raise _invalid(f"mediaType {media_type!r} does not match Content-Type {content_type!r}")
    if media_type not in mt.SUPPORTED_MANIFESTS:
        raise _invalid(f"unsupported manifest media type {media_type!r}")
    if doc.get("schemaVersion") != 2:
        raise _invalid("schemaVersion must be 2")
    subject = _descriptor(doc["subject"], "subject") if doc.get("subject") is not None else None
    artifact_type = doc.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise _invalid("artifactType must be a string")
    annotations = doc.get("annotations")
    if annotations is not None and not isinstance(annotations, dict):
        raise _invalid("annotations must be an object")
    if media_type in mt.INDEXES:
        raw = doc.get("manifests")
        if not isinstance(raw, list):
            raise _invalid("manifests must be a list")
        children = tuple(_descriptor(d, f"manifests[{i}]") for i, d in enumerate(raw))
        return Manifest(
            media_type,
            manifests=children,
            subject=subject,
            artifact_type=artifact_type,
            annotations=annotations,
        )
    if "config" not in doc:
        raise _invalid("config is required")
    config = _descriptor(doc["config"], "config")
    raw_layers = doc.get("layers", [])
    if not isinstance(raw_layers, list):
        raise _invalid("layers must be a list")
    layers = tuple(_descriptor(d, f"layers[{i}]") for i, d in enumerate(raw_layers))
    return Manifest(
        media_type,
        config=config,
        layers=layers,
        subject=subject,
        artifact_type=artifact_type,
        annotations=annotations,
    )


def media_type_of(body: bytes) -> str:
    """The media type of stored (already validated) manifest bytes."""
    try:
        doc = json.loads(body)
    except ValueError:
        return mt.OCI_MANIFEST
    return detect_media_type(doc) if isinstance(doc, dict) else mt.OCI_MANIFEST
