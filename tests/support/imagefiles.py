"""Images as files for the client's tests: ``docker save`` archives in both forms, big
single-layer layouts written without holding the layer in memory, and the CLI runner."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from tests.support.images import Image, blob
from tests.support.server import HATCHWAY

MiB = 1024 * 1024


def hatchway(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the ``hatchway`` CLI (not a TTY: progress comes as plain lines on stderr)."""
    result = subprocess.run(
        [HATCHWAY, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check:
        assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def plain_tar(files: dict[str, bytes]) -> bytes:
    """An uncompressed layer tar, deterministic (mtime 0)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return raw.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@dataclass
class SavedImage:
    config: bytes
    layers: list[bytes]

    @property
    def diff_ids(self) -> list[str]:
        return [sha256(layer) for layer in self.layers]


def classic_docker_tar(
    path: Path, layers: list[bytes], repo_tag: str, *, repeat_first: bool = False
) -> SavedImage:
    """What ``docker save`` wrote before docker 25: ``<id>/layer.tar`` (a repeated layer as
    a symlink to the first, as docker does), ``<config hex>.json``, ``manifest.json``,
    ``repositories``."""
    all_layers = [*layers, layers[0]] if repeat_first else list(layers)
    config_doc = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(x) for x in all_layers]},
    }
    config = json.dumps(config_doc).encode()
    config_name = sha256(config).split(":")[1] + ".json"
    ids = [hashlib.sha256(f"v1-{i}".encode()).hexdigest() for i in range(len(all_layers))]
    with tarfile.open(path, "w") as tar:
        for i, layer in enumerate(layers):
            _add(tar, f"{ids[i]}/VERSION", b"1.0")
            _add(tar, f"{ids[i]}/json", json.dumps({"id": ids[i]}).encode())
            _add(tar, f"{ids[i]}/layer.tar", layer)
        if repeat_first:
            link = tarfile.TarInfo(f"{ids[-1]}/layer.tar")
            link.type = tarfile.SYMTYPE
            link.linkname = f"../{ids[0]}/layer.tar"
            tar.addfile(link)
        _add(tar, config_name, config)
        entry = {
            "Config": config_name,
            "RepoTags": [repo_tag],
            "Layers": [f"{i}/layer.tar" for i in ids],
        }
        _add(tar, "manifest.json", json.dumps([entry]).encode())
        repo, tag = repo_tag.rsplit(":", 1)
        _add(tar, "repositories", json.dumps({repo: {tag: ids[-1]}}).encode())
    return SavedImage(config, all_layers)


def oci_docker_tar(path: Path, image: Image, name: str) -> None:
    """What ``docker save`` writes since docker 25: an OCI layout plus ``manifest.json``."""
    with tarfile.open(path, "w") as tar:
        _add(tar, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        for b in (image.config, *image.layers, image.manifest):
            _add(tar, f"blobs/sha256/{b.digest.split(':')[1]}", b.data)
        desc = image.manifest.descriptor()
        desc["annotations"] = {
            "io.containerd.image.name": f"docker.io/library/{name}",
            "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1],
        }
        _add(tar, "index.json", json.dumps({"schemaVersion": 2, "manifests": [desc]}).encode())
        entry = {
            "Config": f"blobs/sha256/{image.config.digest.split(':')[1]}",
            "RepoTags": [name],
            "Layers": [f"blobs/sha256/{x.digest.split(':')[1]}" for x in image.layers],
        }
        _add(tar, "manifest.json", json.dumps([entry]).encode())


def big_layer_layout(path: Path, size: int, *, tag: str = "big", sparse: bool = False) -> str:
    """An OCI layout with one ``size``-byte layer, written (and hashed) 1 MiB at a time:
    zeros in a sparse file, or random bytes. Returns the layer's digest."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    tmp = blobs / "layer.tmp"
    hasher = hashlib.sha256()
    with tmp.open("wb") as f:
        if sparse:
            f.truncate(size)
            zeros = bytes(MiB)
            for _ in range(size // MiB):
                hasher.update(zeros)
            hasher.update(bytes(size % MiB))
        else:
            left = size
            while left:
                piece = os.urandom(min(MiB, left))
                f.write(piece)
                hasher.update(piece)
                left -= len(piece)
    digest = "sha256:" + hasher.hexdigest()
    tmp.rename(blobs / digest.split(":")[1])
    config = blob(
        json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode(),
        "application/vnd.oci.image.config.v1+json",
    )
    (blobs / config.digest.split(":")[1]).write_bytes(config.data)
    layer_desc = {
        "mediaType": "application/vnd.oci.image.layer.v1.tar",
        "digest": digest,
        "size": size,
    }
    manifest = blob(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config.descriptor(),
                "layers": [layer_desc],
            }
        ).encode(),
        "application/vnd.oci.image.manifest.v1+json",
    )
    (blobs / manifest.digest.split(":")[1]).write_bytes(manifest.data)
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    desc = manifest.descriptor()
    desc["annotations"] = {"org.opencontainers.image.ref.name": tag}
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))
    return digest
