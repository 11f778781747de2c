"""The storage-driver interface every backend implements, and its errors.

Paths are ``/``-separated keys such as ``/docker/registry/v2/blobs/sha256/ab/ab…/data``;
a driver maps them to whatever it stores. Drivers know nothing of digests or manifests.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

_PATH_RE = re.compile(r"^(/[A-Za-z0-9._-]+)+$")


class StorageError(Exception):
    """A driver failure that is not the caller's fault."""


class PathNotFoundError(StorageError):
    def __init__(self, path: str) -> None:
        super().__init__(f"path not found: {path}")
        self.path = path


class InvalidPathError(StorageError):
    def __init__(self, path: str) -> None:
        super().__init__(f"invalid storage path: {path[:200]!r}")
        self.path = path


class LockTimeoutError(StorageError):
    """Another holder kept the lock for longer than the caller would wait."""

    def __init__(self, path: str) -> None:
        super().__init__(f"lock busy: {path}")
        self.path = path


def check_path(path: str) -> str:
    """Refuse anything that is not a clean absolute key (no ``.``/``..`` components)."""
    if not _PATH_RE.fullmatch(path) or any(part in (".", "..") for part in path.split("/")):
        raise InvalidPathError(path)
    return path


@dataclass(frozen=True, slots=True)
class FileInfo:
    path: str
    size: int
    modified: float
    is_dir: bool


class FileWriter(Protocol):
    """An append-only writer; nothing is durable until :meth:`commit` returns."""

    @property
    def size(self) -> int: ...

    async def write(self, data: bytes | memoryview) -> None: ...

    async def commit(self) -> None:
        """Flush and make durable (fsync), then close."""

    async def close(self) -> None:
        """Close without the durability guarantee; written data stays."""

    async def cancel(self) -> None:
        """Close and delete what was written."""


@runtime_checkable
class BlockingWriter(Protocol):
    """A :class:`FileWriter` that also writes from a worker thread, several buffers in one
    call: a streamed body's batch then needs neither joining nor a hop per buffer."""

    def write_blocking(self, parts: Sequence[bytes]) -> None:
        """Append every part, in order; call it from a worker thread, never the loop."""


class Staged(Protocol):
    """Content written and durable, not visible yet (:func:`stage_content`)."""

    async def publish(self) -> None:
        """Make it visible at its path, durably: what ``put_content`` would have done
        (nothing after :meth:`discard`)."""

    async def discard(self) -> None:
        """Drop it; nothing becomes visible. Idempotent, also after ``publish``."""


@runtime_checkable
class StagingDriver(Protocol):
    def stage_content(self, path: str, data: bytes) -> Awaitable[Staged]:
        """The first half of ``put_content``: ``data`` made durable where no reader
        looks; the second half (:meth:`Staged.publish`) only renames it into place."""


class DeferredContent:
    """A driver without staging: all of ``put_content`` happens at publish."""

    def __init__(self, driver: StorageDriver, path: str, data: bytes) -> None:
        self._driver, self._path, self._data = driver, path, data
        self._done = False

    async def publish(self) -> None:
        if not self._done:
            self._done = True
            await self._driver.put_content(self._path, self._data)

    async def discard(self) -> None:
        self._done = True


async def stage_content(driver: StorageDriver, path: str, data: bytes) -> Staged:
    """Write ``data`` for ``path`` ahead, so that publishing it later costs one step.

    A caller that must make something visible only after other writes (a tag after its
    manifest) stages it while those run: the content's sync overlaps theirs."""
    if isinstance(driver, StagingDriver):
        return await driver.stage_content(path, data)
    return DeferredContent(driver, path, data)


class StorageDriver(Protocol):
    name: str

    async def get_content(self, path: str) -> bytes:
        """Whole content of a small file."""

    async def put_content(self, path: str, data: bytes) -> None:
        """Replace a file's content atomically and durably: readers see old or new."""

    def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        """Stream a file from ``offset``; raises PathNotFoundError when iterated."""

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        """A writer that creates, truncates or (``append``) extends ``path``."""

    async def stat(self, path: str) -> FileInfo: ...

    async def list(self, path: str) -> list[str]:
        """Full paths of the direct children of a directory."""

    async def list_version(self, path: str) -> str | None:
        """A token that changes whenever a direct child of directory ``path`` is added or
        removed, so a caller may keep a listing while it stays the same; None when the
        driver cannot tell at the moment (list again). PathNotFoundError if absent."""

    async def move(self, source: str, dest: str) -> None:
        """Rename atomically, replacing ``dest``; durable when it returns."""

    async def delete(self, path: str) -> None:
        """Delete a file or a whole tree; PathNotFoundError if absent."""

    async def touch(self, path: str) -> None:
        """Mark a file as recently used (gc grace period)."""

    def local_path(self, path: str) -> str | None:
        """An OS path for zero-copy serving, or None when the driver is not local."""

    def lock(self, path: str, wait: float) -> AbstractAsyncContextManager[None]:
        """Hold ``path`` (an existing file or directory) exclusively while in the block.

        Exclusive against every other holder of this storage: other tasks, other worker
        processes and ``hatchway gc`` (a driver shared by replicas, such as an object
        store, must take the lock from a service they share, e.g. PostgreSQL advisory
        locks). Waits up to ``wait`` seconds, then raises LockTimeoutError; raises
        PathNotFoundError if ``path`` does not exist or is deleted while waiting, so a
        holder always holds something that exists. Deleting ``path`` inside the block
        is allowed. Locking creates nothing in the store.
        """
