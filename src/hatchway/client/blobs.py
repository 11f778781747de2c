"""Blob bytes on disk: regions of files (a layout's blob, a member of a tar), digests, and
verified writes. Everything streams in pieces so memory stays flat whatever the blob size."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hatchway.client.manifest import checked_digest

PIECE = 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

Hasher = Any  # hashlib's hash objects have no public class


class DigestMismatch(Exception):
    """Content that does not hash to the digest that names it."""


def hasher_for(digest: str) -> Hasher:
    """A fresh hash for ``digest``'s algorithm (sha256, sha512)."""
    algorithm = digest.split(":", 1)[0]
    if algorithm not in ("sha256", "sha384", "sha512"):
        raise DigestMismatch(f"unsupported digest algorithm {algorithm!r}")
    return hashlib.new(algorithm)


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def hex_of(digest: str) -> str:
    """The hex part, for file and tar member names: only of a well-formed digest."""
    return checked_digest(digest).split(":", 1)[1]


def short(digest: str) -> str:
    """``sha256:0123456789ab``: enough to tell blobs apart in progress lines."""
    return digest[: digest.index(":") + 13]


def check_digest(hasher: Hasher, digest: str, what: str) -> None:
    actual = f"{digest.split(':', 1)[0]}:{hasher.hexdigest()}"
    if actual != digest:
        raise DigestMismatch(f"{what}: content is {actual}, expected {digest}")


@dataclass(frozen=True)
class FileRegion:
    """``size`` bytes at ``offset`` of ``path``: a whole file or a tar member, read in place."""

    path: Path
    offset: int
    size: int

    @classmethod
    def whole(cls, path: Path) -> FileRegion:
        return cls(path, 0, path.stat().st_size)

    def pieces(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes ``[start, end)`` of the region, ``PIECE`` at a time."""
        stop = self.size if end is None else end
        with self.path.open("rb") as f:
            f.seek(self.offset + start)
            left = stop - start
            while left > 0:
                piece = f.read(min(PIECE, left))
                if not piece:
                    raise OSError(f"{self.path} is shorter than expected")
                left -= len(piece)
                yield piece

    def read(self) -> bytes:
        """All of it: for manifests and configs only, which are small."""
        return b"".join(self.pieces())

    def head(self, n: int) -> bytes:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            return f.read(min(n, self.size))

    def digest(self, algorithm: str = "sha256") -> str:
        h = hashlib.new(algorithm)
        for piece in self.pieces():
            h.update(piece)
        return f"{algorithm}:{h.hexdigest()}"


def compression_of(head: bytes) -> str | None:
    """``gzip``, ``zstd`` or None, from a blob's first bytes."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return None


def write_atomic(path: Path, data: bytes) -> None:
    """Small files (manifests, index.json): temp file, fsync, rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class PartialFile:
    """A download in progress: bytes are hashed as they are written, and the file takes its
    final name only once size and digest match (``commit``)."""

    def __init__(self, final: Path, digest: str) -> None:
        self.final = final
        self.digest = digest
        self.path = final.with_name(f".{final.name}.{os.getpid()}.partial")
        self._file = self.path.open("wb")
        self._hasher = hasher_for(digest)
        self.size = 0

    def restart(self) -> None:
        """The server ignored our Range: start over."""
        self._file.seek(0)
        self._file.truncate()
        self._hasher = hasher_for(self.digest)
        self.size = 0

    def write(self, piece: bytes) -> None:
        self._file.write(piece)
        self._hasher.update(piece)
        self.size += len(piece)

    def commit(self, size: int) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        if self.size != size:
            raise DigestMismatch(f"{self.digest}: got {self.size} bytes, expected {size}")
        check_digest(self._hasher, self.digest, self.digest)
        os.replace(self.path, self.final)

    def discard(self) -> None:
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
