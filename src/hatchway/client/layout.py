"""OCI image layouts (``oci-layout``, ``index.json``, ``blobs/<alg>/<hex>``), read wherever
their files are (a directory, or members of a ``docker save`` tar) and written to a directory.

Images are chosen as skopeo's ``oci:DIR:REF`` does: ``REF`` matches an index entry's
``org.opencontainers.image.ref.name``; we also accept the ``io.containerd.image.name``
docker 25+ writes, so ``image.tar:app:1.0`` finds what ``docker save app:1.0`` named.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hatchway.client.blobs import FileRegion, check_digest, hasher_for, write_atomic
from hatchway.client.manifest import (
    CONTAINERD_NAME,
    REF_NAME,
    Descriptor,
    ManifestError,
    Node,
    checked_digest,
    parse,
    references,
    select_platform,
)

Locate = Callable[[str], FileRegion | None]
LAYOUT_FILE = b'{"imageLayoutVersion": "1.0.0"}'


def blob_name(digest: str) -> str:
    """``blobs/<algorithm>/<hex>``: only of a well-formed digest, so never a path elsewhere."""
    algorithm, hex_ = checked_digest(digest).split(":", 1)
    return f"blobs/{algorithm}/{hex_}"


def _names(desc: Descriptor) -> list[str]:
    names = [
        n for n in (desc.annotations.get(REF_NAME), desc.annotations.get(CONTAINERD_NAME)) if n
    ]
    full = desc.annotations.get(CONTAINERD_NAME)
    if full and ":" in full.rsplit("/", 1)[-1]:
        names.append(full.rsplit(":", 1)[1])  # "docker.io/library/app:1.0" -> "1.0"
        names.append(full.removeprefix("docker.io/").removeprefix("library/"))
    return names


def select(entries: list[Descriptor], selector: str | None, where: str) -> Descriptor:
    """The entry ``selector`` names; without one, the only (or first) entry."""
    if not entries:
        raise ManifestError(f"{where} holds no images")
    if selector is None:
        return entries[0]
    for entry in entries:
        if selector in _names(entry):
            return entry
    known = sorted({n for e in entries for n in _names(e)})
    raise ManifestError(f"{where} has no image {selector!r} (it has: {', '.join(known) or '-'})")


class LayoutReader:
    """An OCI layout whose blobs ``locate`` finds (a file, or a tar member)."""

    def __init__(self, index_json: bytes, locate: Locate, where: str) -> None:
        self.where = where
        self._locate = locate
        try:
            doc = json.loads(index_json)
            self.entries = [Descriptor.from_json(d) for d in doc.get("manifests") or []]
        except (ValueError, AttributeError) as exc:
            raise ManifestError(f"{where}: invalid index.json") from exc

    def region(self, digest: str) -> FileRegion:
        found = self._locate(digest)
        if found is None:
            raise ManifestError(f"{self.where} lacks blob {digest}")
        return found

    def image(self, selector: str | None, platform: str | None = None) -> Node:
        """The selected image as a tree; ``platform`` picks one child of an index."""
        root = self.load(select(self.entries, selector, self.where))
        if platform and root.is_index:
            return self.load(select_platform([c.descriptor for c in root.children], platform))
        return root

    def load(self, desc: Descriptor) -> Node:
        region = self.region(desc.digest)
        if region.size != desc.size:
            raise ManifestError(f"{desc.digest} is {region.size} bytes, not {desc.size}")
        data = region.read()
        hasher = hasher_for(desc.digest)
        hasher.update(data)
        check_digest(hasher, desc.digest, f"{self.where}: manifest")
        media_type, doc = parse(data, desc.media_type or None)
        blobs, children = references(media_type, doc)
        node = Node(_with_type(desc, media_type), data, blobs)
        node.children = [self.load(child) for child in children]
        return node


def _with_type(desc: Descriptor, media_type: str) -> Descriptor:
    return Descriptor(media_type, desc.digest, desc.size, desc.platform, desc.annotations)


def read_layout_dir(path: Path) -> LayoutReader:
    if not (path / "oci-layout").is_file() or not (path / "index.json").is_file():
        raise ManifestError(f"{path} is not an OCI image layout (no oci-layout, index.json)")

    def locate(digest: str) -> FileRegion | None:
        blob = path / blob_name(digest)
        return FileRegion.whole(blob) if blob.is_file() else None

    return LayoutReader((path / "index.json").read_bytes(), locate, str(path))


class LayoutWriter:
    """Adds blobs and manifests to a layout directory (created if absent) and names the
    image in ``index.json``, replacing an entry of the same name as skopeo does."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        if not (path / "oci-layout").exists():
            write_atomic(path / "oci-layout", LAYOUT_FILE)

    def blob_path(self, digest: str) -> Path:
        blob = self.path / blob_name(digest)
        blob.parent.mkdir(parents=True, exist_ok=True)
        return blob

    def has_blob(self, desc: Descriptor) -> bool:
        """The layout holds this blob: a file of its size whose content hashes to its digest
        (a file of the right size may be a download cut short and padded, or tampered with)."""
        blob = self.path / blob_name(desc.digest)
        if not blob.is_file() or blob.stat().st_size != desc.size:
            return False
        hasher = hasher_for(desc.digest)
        for piece in FileRegion.whole(blob).pieces():
            hasher.update(piece)
        return f"{desc.digest.split(':', 1)[0]}:{hasher.hexdigest()}" == desc.digest

    def put_manifest(self, node: Node) -> None:
        if not self.has_blob(node.descriptor):
            write_atomic(self.blob_path(node.descriptor.digest), node.data)

    def name(self, desc: Descriptor, ref_name: str | None) -> None:
        index_path = self.path / "index.json"
        doc: dict[str, Any] = {"schemaVersion": 2, "manifests": []}
        if index_path.exists():
            try:
                doc = json.loads(index_path.read_bytes())
            except ValueError:
                raise ManifestError(f"{index_path} is not valid JSON") from None
        entry = Descriptor(desc.media_type, desc.digest, desc.size, desc.platform)
        if ref_name:
            entry = Descriptor(
                entry.media_type, entry.digest, entry.size, None, {REF_NAME: ref_name}
            )

        def replaced(m: dict[str, Any]) -> bool:
            named = (m.get("annotations") or {}).get(REF_NAME)
            return named == ref_name if ref_name else not named and m.get("digest") == desc.digest

        kept = [m for m in doc.get("manifests") or [] if not replaced(m)]
        doc["manifests"] = [*kept, entry.to_json()]
        write_atomic(index_path, json.dumps(doc, indent=2).encode())
