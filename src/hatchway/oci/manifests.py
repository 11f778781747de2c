"""Parse manifests and indexes enough to validate them and find what they reference.

:func:`parse` judges a push: the document must be UTF-8 JSON nested at most
:data:`MAX_DEPTH` deep, of a supported type, every descriptor typed as the image-spec
says (:mod:`hatchway.oci.descriptors`). :func:`references` reads a stored manifest for
what it points at (garbage collection, delete) and never refuses one for a detail a
push would be refused for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hatchway.oci import jsondepth
from hatchway.oci import mediatypes as mt
from hatchway.oci.descriptors import (
    Descriptor,
    annotation_map,
    invalid,
    optional_media_type,
    parse_descriptor,
    stored_descriptor,
)

__all__ = ["MAX_DEPTH", "MAX_MANIFEST_SIZE", "Descriptor", "Manifest", "parse", "references"]

MAX_MANIFEST_SIZE = 4 * 1024 * 1024
# An index entry's platform features sit five levels deep; nothing real nests near 64,
# and the parser's recursion stays far from Python's limit.
MAX_DEPTH = 64


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


def _descriptors(
    doc: dict[str, Any], key: str, *, index_entries: bool = False
) -> tuple[Descriptor, ...]:
    raw = doc.get(key)
    if raw is None and not index_entries:
        return ()  # layers may be absent (or null, as Go writes an empty slice)
    if not isinstance(raw, list):
        raise invalid(f"{key} must be a list")
    return tuple(
        parse_descriptor(item, f"{key}[{i}]", index_entry=index_entries)
        for i, item in enumerate(raw)
    )


def parse(body: bytes, content_type: str | None = None) -> Manifest:
    """Parse and validate a pushed manifest; raise ``MANIFEST_INVALID`` with the reason."""
    try:
        doc = jsondepth.loads(body, MAX_DEPTH)
    except jsondepth.TooDeepError:
        raise invalid(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError:
        raise invalid("not valid JSON (UTF-8)") from None
    if not isinstance(doc, dict):
        raise invalid("not a JSON object")
    declared = doc.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise invalid("mediaType must be a string")
    # The type must be readable from the bytes alone, so every worker (and every later
    # GET) serves the same Content-Type: Docker types require the field, as distribution
    # does; an OCI manifest or index may omit it and is then known by its shape.
    media_type = detect_media_type(doc)
    if content_type in mt.SUPPORTED_MANIFESTS and media_type != content_type:
        if not declared and content_type in (mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST):
            raise invalid(f"mediaType is required in a {content_type} manifest")
        raise invalid(f"mediaType {media_type!r} does not match Content-Type {content_type!r}")
    if media_type not in mt.SUPPORTED_MANIFESTS:
        raise invalid(f"unsupported manifest media type {media_type!r}")
    version = doc.get("schemaVersion")
    if version != 2 or not isinstance(version, int) or isinstance(version, bool):
        raise invalid("schemaVersion must be 2")
    subject = doc.get("subject")
    common: dict[str, Any] = {
        "subject": parse_descriptor(subject, "subject") if subject is not None else None,
        "artifact_type": optional_media_type(doc.get("artifactType"), "artifactType"),
        "annotations": annotation_map(doc.get("annotations"), "annotations"),
    }
    if media_type in mt.INDEXES:
        children = _descriptors(doc, "manifests", index_entries=True)
        return Manifest(media_type, manifests=children, **common)
    if "config" not in doc:
        raise invalid("config is required")
    config = parse_descriptor(doc["config"], "config")
    return Manifest(media_type, config=config, layers=_descriptors(doc, "layers"), **common)


def _stored_list(raw: Any) -> tuple[Descriptor, ...]:
    items = raw if isinstance(raw, list) else []
    return tuple(d for d in map(stored_descriptor, items) if d is not None)


def references(body: bytes) -> Manifest:
    """What stored manifest bytes reference: config, layers, children and subject.

    Lenient where :func:`parse` is strict, so that a manifest stored by an earlier
    version (or by distribution) still keeps its blobs from garbage collection.
    Raises ``MANIFEST_INVALID`` only for bytes that are not a JSON object.
    """
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise invalid("not valid JSON") from None
    if not isinstance(doc, dict):
        raise invalid("not a JSON object")
    layers = _stored_list(doc.get("layers"))
    fs_layers = doc.get("fsLayers")  # Docker schema 1, as a distribution store may hold
    if isinstance(fs_layers, list):
        blob_sums = [
            {"digest": item.get("blobSum")} for item in fs_layers if isinstance(item, dict)
        ]
        layers += _stored_list(blob_sums)
    return Manifest(
        detect_media_type(doc),
        config=stored_descriptor(doc.get("config")),
        layers=layers,
        manifests=_stored_list(doc.get("manifests")),
        subject=stored_descriptor(doc.get("subject")),
    )


def media_type_of(body: bytes) -> str:
    """The media type of stored (already validated) manifest bytes."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return mt.OCI_MANIFEST
    return detect_media_type(doc) if isinstance(doc, dict) else mt.OCI_MANIFEST
