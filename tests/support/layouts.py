"""OCI image layouts holding a multi-platform index, as skopeo's ``oci:`` reads them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.images import Blob, Image, blob, make_image, write_oci_layout

OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def platform_image(seed: str, architecture: str) -> Image:
    """``make_image`` with the config's architecture set (make_image always says amd64)."""
    image = make_image(seed)
    doc = json.loads(image.config.data)
    doc["architecture"] = architecture
    config = blob(json.dumps(doc).encode(), image.config.media_type)
    manifest = json.loads(image.manifest.data)
    manifest["config"] = config.descriptor()
    return Image(
        config, image.layers, blob(json.dumps(manifest).encode(), image.manifest.media_type)
    )


def index_of(images: dict[str, Image]) -> Blob:
    """An OCI index of ``images`` keyed by architecture (all linux)."""
    manifests = [
        {**image.manifest.descriptor(), "platform": {"architecture": arch, "os": "linux"}}
        for arch, image in images.items()
    ]
    doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
    return blob(json.dumps(doc).encode(), OCI_INDEX)


def write_index_layout(path: Path, images: dict[str, Image], tag: str = "latest") -> Blob:
    """Write every image and their index; ``index.json`` names the index as ``tag``."""
    for image in images.values():
        write_oci_layout(path, image)
    index = index_of(images)
    (path / "blobs" / "sha256" / index.digest.split(":", 1)[1]).write_bytes(index.data)
    desc = index.descriptor()
    desc["annotations"] = {"org.opencontainers.image.ref.name": tag}
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))
    return index


def layout_blobs(path: Path) -> dict[str, bytes]:
    """``sha256:<hex>`` -> content of every blob in an OCI layout."""
    return {f"sha256:{f.name}": f.read_bytes() for f in (path / "blobs" / "sha256").iterdir()}
