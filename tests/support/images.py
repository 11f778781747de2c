"""Build small, real OCI images on disk (OCI image layout) for tests."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Blob:
    digest: str
    data: bytes
    media_type: str

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


def blob(data: bytes, media_type: str = "application/octet-stream") -> Blob:
    return Blob("sha256:" + hashlib.sha256(data).hexdigest(), data, media_type)


def layer_tar_gz(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


@dataclass
class Image:
    config: Blob
    layers: list[Blob]
    manifest: Blob


def make_image(seed: str = "x", layer_sizes: tuple[int, ...] = (1024, 4096)) -> Image:
    layers = []
    for i, size in enumerate(layer_sizes):
        content = hashlib.sha256(f"{seed}-{i}".encode()).digest() * (size // 32 + 1)
        layers.append(
            blob(
                layer_tar_gz({f"file-{seed}-{i}": content[:size] + os.urandom(16)}),
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
        )
    config = blob(
        json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Env": [f"SEED={seed}"]},
                "rootfs": {
                    "type": "layers",
                    "diff_ids": [
                        "sha256:" + hashlib.sha256(gzip.decompress(layer.data)).hexdigest()
                        for layer in layers
                    ],
                },
            }
        ).encode(),
        "application/vnd.oci.image.config.v1+json",
    )
    manifest = blob(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config.descriptor(),
                "layers": [layer.descriptor() for layer in layers],
            }
        ).encode(),
        "application/vnd.oci.image.manifest.v1+json",
    )
    return Image(config, layers, manifest)


def write_oci_layout(path: Path, image: Image, tag: str = "latest") -> None:
    """Write ``image`` as an OCI image layout directory, as skopeo's ``oci:`` reads."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for b in (image.config, *image.layers, image.manifest):
        (blobs / b.digest.split(":", 1)[1]).write_bytes(b.data)
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    desc = image.manifest.descriptor()
    desc["annotations"] = {"org.opencontainers.image.ref.name": tag}
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))
