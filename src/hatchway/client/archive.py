"""``docker save`` archives: read both forms in place, write the classic one.

Reading never extracts: every blob is a region of the tar file. The newer form (docker 25+)
is an OCI layout inside the tar and is pushed as it is, byte for byte. The classic form
(``manifest.json``, ``<config>.json``, ``<id>/layer.tar``) has no registry manifest, so one is
made: a Docker schema2 manifest whose layers are the archive's tars *as they are*,
uncompressed (``…rootfs.diff.tar``). We do not gzip on push: the layer digest is then the
config's ``diff_id`` (known without reading the layer), the bytes need no CPU-bound
recompression, and every registry and runtime accepts uncompressed layers.

Written archives are classic (``docker load`` of any version reads them); compressed
layers are decompressed so each ``layer.tar`` matches its ``diff_id``, which is checked.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import posixpath
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from hatchway.client.blobs import (
    PIECE,
    FileRegion,
    check_digest,
    compression_of,
    digest_of,
    hasher_for,
    hex_of,
)
from hatchway.client.layout import LayoutReader, blob_name
from hatchway.client.manifest import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    Descriptor,
    ManifestError,
    Node,
    checked_digest,
)


class ArchiveSource:
    """A ``docker save`` tar, read in place."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with path.open("rb") as f:
            if f.read(2) == b"\x1f\x8b":
                raise ManifestError(f"{path} is gzip-compressed: decompress it first")
        try:
            with tarfile.open(path, "r:") as tar:
                members = {_clean(m.name): m for m in tar.getmembers()}
        except tarfile.TarError as exc:
            raise ManifestError(f"{path} is not a tar archive: {exc}") from None
        self._regions: dict[str, FileRegion] = {}
        for name in members:
            found = _resolve(members, name)
            if found is not None:
                self._regions[name] = FileRegion(path, found.offset_data, found.size)
        self._by_digest: dict[str, FileRegion] = {}

    def member(self, name: str) -> FileRegion:
        found = self._regions.get(_clean(name))
        if found is None:
            raise ManifestError(f"{self.path} lacks {name}")
        return found

    def region(self, digest: str) -> FileRegion:
        found = self._by_digest.get(digest) or self._regions.get(blob_name(digest))
        if found is None:
            raise ManifestError(f"{self.path} lacks blob {digest}")
        return found

    def image(self, selector: str | None, platform: str | None = None) -> Node:
        if "index.json" in self._regions and "oci-layout" in self._regions:
            index = self.member("index.json").read()
            reader = LayoutReader(index, lambda d: self._regions.get(blob_name(d)), str(self.path))
            return reader.image(selector, platform)
        return self._classic(selector)

    def _classic(self, selector: str | None) -> Node:
        try:
            entries = json.loads(self.member("manifest.json").read())
            entry = _select(entries, selector, str(self.path))
            config = self.member(entry["Config"])
            layer_paths = list(entry["Layers"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ManifestError(f"{self.path}: invalid manifest.json ({exc})") from None
        config_data = config.read()
        config_desc = Descriptor(DOCKER_CONFIG, digest_of(config_data), len(config_data))
        diff_ids = _diff_ids(config_data)
        layers = [config_desc]
        self._by_digest[config_desc.digest] = config
        for i, name in enumerate(layer_paths):
            region = self.member(name)
            compression = compression_of(region.head(4))
            if compression is None:
                digest = diff_ids[i] if i < len(diff_ids) else region.digest()
                media_type = DOCKER_LAYER
            elif compression == "gzip":
                digest, media_type = region.digest(), DOCKER_LAYER_GZIP
            else:
                raise ManifestError(f"{name}: {compression} layers have no Docker media type")
            self._by_digest[digest] = region
            layers.append(Descriptor(media_type, digest, region.size))
        doc = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": layers[0].to_json(),
            "layers": [d.to_json() for d in layers[1:]],
        }
        data = json.dumps(doc, indent=3).encode()
        desc = Descriptor(DOCKER_MANIFEST, digest_of(data), len(data))
        return Node(desc, data, layers)


def _clean(name: str) -> str:
    return posixpath.normpath(name.removeprefix("./")).lstrip("/")


def _resolve(members: dict[str, tarfile.TarInfo], name: str) -> tarfile.TarInfo | None:
    """The regular file ``name`` is, following the symlinks docker save uses for repeats."""
    for _ in range(16):
        member = members.get(name)
        if member is None or member.isfile():
            return member
        if member.issym():
            name = _clean(posixpath.join(posixpath.dirname(name), member.linkname))
        elif member.islnk():
            name = _clean(member.linkname)
        else:
            return None
    return None


def _select(entries: list[dict[str, Any]], selector: str | None, where: str) -> dict[str, Any]:
    if not entries:
        raise ManifestError(f"{where} holds no images")
    if selector is None:
        return entries[0]
    if selector.startswith("@") and selector[1:].isdigit() and int(selector[1:]) < len(entries):
        return entries[int(selector[1:])]
    for entry in entries:
        for tag in entry.get("RepoTags") or []:
            short_name = tag.removeprefix("docker.io/").removeprefix("library/")
            if selector in (tag, short_name, tag.rsplit(":", 1)[-1]):
                return entry
    tags = sorted(t for e in entries for t in e.get("RepoTags") or [])
    raise ManifestError(f"{where} has no image {selector!r} (it has: {', '.join(tags) or '-'})")


def write_archive(dest: Path, stage: Path, image: Node, repo_tag: str | None) -> None:
    """Write ``image`` (its blobs staged in the OCI layout ``stage``) as a classic
    ``docker save`` tar at ``dest``, atomically."""
    config = image.config()
    config_data = (stage / blob_name(config.digest)).read_bytes()
    diff_ids = _diff_ids(config_data)
    config_name = f"{hex_of(config.digest)}.json"
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            _add(tar, config_name, stage / blob_name(config.digest))
            layer_names = []
            for i, layer in enumerate(image.blobs[1:]):
                source = stage / blob_name(layer.digest)
                diff_id = diff_ids[i] if i < len(diff_ids) else None
                plain = _decompressed(source, diff_id, stage)
                name = f"{hex_of(diff_id or layer.digest)}/layer.tar"
                _add(tar, name, plain)
                if plain != source:
                    plain.unlink()
                layer_names.append(name)
            entry = {"Config": config_name, "RepoTags": [repo_tag] if repo_tag else []}
            entry["Layers"] = layer_names
            _add_bytes(tar, "manifest.json", json.dumps([entry]).encode())
            if repo_tag and layer_names:
                repo, tag = repo_tag.rsplit(":", 1)
                top = layer_names[-1].split("/", 1)[0]
                _add_bytes(tar, "repositories", json.dumps({repo: {tag: top}}).encode())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _diff_ids(config_data: bytes) -> list[str]:
    """The config's ``rootfs.diff_ids``, each checked: they name the archive's members."""
    try:
        listed = (json.loads(config_data).get("rootfs") or {}).get("diff_ids") or []
    except (ValueError, AttributeError):
        raise ManifestError("the image config is not a JSON object") from None
    if not isinstance(listed, list):
        raise ManifestError("the image config's rootfs.diff_ids is not a list")
    return [checked_digest(d, "image config rootfs.diff_ids: ") for d in listed]


def _decompressed(source: Path, diff_id: str | None, stage: Path) -> Path:
    """``source`` itself if it is a plain tar, else a decompressed copy checked against
    ``diff_id``. zstd is left as it is (docker load reads it; the stdlib cannot)."""
    with source.open("rb") as f:
        if compression_of(f.read(4)) != "gzip":
            return source
    out = stage / f".{source.name}.tar"
    hasher = hasher_for(diff_id or "sha256:")
    with gzip.open(source, "rb") as src, out.open("wb") as dst:
        while piece := src.read(PIECE):
            hasher.update(piece)
            dst.write(piece)
    if diff_id:
        check_digest(hasher, diff_id, f"layer {source.name} uncompressed")
    return out


def _add(tar: tarfile.TarFile, name: str, path: Path) -> None:
    info = tarfile.TarInfo(name)
    info.size = path.stat().st_size
    info.mode = 0o644
    with path.open("rb") as f:
        tar.addfile(info, f)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))
