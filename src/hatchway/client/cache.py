"""What the client remembers between runs, in the user's cache directory
(``$XDG_CACHE_HOME/hatchway``, else ``~/.cache/hatchway``):

- ``uploads/``: one record per blob upload in progress, per (registry, repository,
  digest): the session's location and the offset last confirmed. A push killed mid-layer
  resumes that session the next time it runs, from the offset the registry reports.
  Removed once the blob is in; dropped quietly when stale, unreadable or unknown to the
  registry.
- ``mounts/``: per (registry, digest), the repositories the blob was last pushed to or
  pulled from, so a later push to another repository mounts it instead of uploading.

Records hold no credentials, only URLs and offsets, but an upload location may carry
the registry's state tokens: directories are 0700, files 0600 and written whole (temp
file, rename). The cache only saves work: any failure to read or write it is ignored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["MountSources", "UploadRecord", "UploadSessions", "cache_dir"]

UPLOAD_RECORD_LIFETIME = 7 * 24 * 3600.0  # registries purge idle uploads after a week
MOUNT_SOURCES_KEPT = 5


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "hatchway"


def _file_name(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest() + ".json"


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for directory in (path, path.parent):  # hatchway/ and its subdirectory
        if directory.stat().st_mode & 0o077:
            directory.chmod(0o700)


def _write(path: Path, doc: dict[str, Any]) -> None:
    _private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _read(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        doc = None
    if not isinstance(doc, dict):
        _remove(path)
        return None
    return doc


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


@dataclass(frozen=True)
class UploadRecord:
    location: str
    offset: int


class UploadSessions:
    """Upload sessions in progress at one registry, across runs."""

    def __init__(self, registry: str, root: Path | None = None) -> None:
        self.registry = registry
        self._root = root

    def _path(self, repository: str, digest: str) -> Path:
        root = self._root or cache_dir()
        return root / "uploads" / _file_name(self.registry, repository, digest)

    def get(self, repository: str, digest: str) -> UploadRecord | None:
        path = self._path(repository, digest)
        doc = _read(path)
        if doc is None:
            return None
        location, offset, saved = doc.get("location"), doc.get("offset"), doc.get("saved")
        ours = [doc.get("registry"), doc.get("repository"), doc.get("digest")] == [
            self.registry,
            repository,
            digest,
        ]
        if (
            ours
            and isinstance(location, str)
            and location.startswith(("https://", "http://"))
            and isinstance(offset, int)
            and offset >= 0
            and isinstance(saved, int | float)
            and time.time() - saved < UPLOAD_RECORD_LIFETIME
        ):
            return UploadRecord(location, offset)
        _remove(path)  # another key's, unreadable, or too old for the registry to have kept
        return None

    def put(self, repository: str, digest: str, location: str, offset: int) -> None:
        doc = {
            "registry": self.registry,
            "repository": repository,
            "digest": digest,
            "location": location,
            "offset": offset,
            "saved": time.time(),
        }
        with contextlib.suppress(OSError):
            _write(self._path(repository, digest), doc)

    def drop(self, repository: str, digest: str) -> None:
        _remove(self._path(repository, digest))


class MountSources:
    """Repositories of a registry a blob was last seen in, across runs."""

    def __init__(self, root: Path | None = None) -> None:
        self._root = root

    def _path(self, registry: str, digest: str) -> Path:
        return (self._root or cache_dir()) / "mounts" / _file_name(registry, digest)

    def repositories(self, registry: str, digest: str) -> list[str]:
        doc = _read(self._path(registry, digest)) or {}
        found = doc.get("repositories")
        if doc.get("registry") != registry or not isinstance(found, list):
            return []
        return [r for r in found if isinstance(r, str)]

    def record(self, registry: str, repository: str, digests: Sequence[str]) -> None:
        for digest in digests:
            known = [r for r in self.repositories(registry, digest) if r != repository]
            doc = {
                "registry": registry,
                "digest": digest,
                "repositories": [repository, *known][:MOUNT_SOURCES_KEPT],
            }
            try:
                _write(self._path(registry, digest), doc)
            except OSError:
                return  # no cache here: nothing to remember
