"""In-memory driver for tests and throwaway registries (``storage: inmemory``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from hatchway.storage.driver import (
    FileInfo,
    LockTimeoutError,
    PathNotFoundError,
    StorageError,
    check_path,
)

_CHUNK = 1024 * 1024


class MemoryWriter:
    def __init__(self, driver: MemoryDriver, path: str, buf: bytearray) -> None:
        self._driver = driver
        self._path = path
        self._buf = buf
        self._closed = False

    @property
    def size(self) -> int:
        return len(self._buf)

    async def write(self, data: bytes | memoryview) -> None:
        if self._closed:
            raise StorageError("write to a closed writer")
        self._buf += data  # in place: appending never copies what is already stored
        self._driver._mtimes[self._path] = time.time()

    async def commit(self) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True

    async def cancel(self) -> None:
        if not self._closed:
            self._closed = True
            self._driver._generation += 1
            self._driver._files.pop(self._path, None)
            self._driver._mtimes.pop(self._path, None)


class _HeldLock:
    """A path's lock and how many tasks hold or wait for it (gone when none do)."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class MemoryDriver:
    name = "inmemory"

    def __init__(self) -> None:
        self._files: dict[str, bytearray] = {}
        self._mtimes: dict[str, float] = {}
        # Only paths someone holds or waits for: the table never outgrows the requests.
        self._locks: dict[str, _HeldLock] = {}
        # Bumped whenever a key appears or goes: a list_version for every directory.
        self._generation = 0

    def _exists(self, path: str) -> bool:
        return path in self._files or self._is_dir(path)

    @contextlib.asynccontextmanager
    async def lock(self, path: str, wait: float) -> AsyncIterator[None]:
        # The store lives in this process, so an in-process lock excludes everyone.
        if not self._exists(check_path(path)):
            raise PathNotFoundError(path)
        held = self._locks.setdefault(path, _HeldLock())
        held.users += 1
        try:
            try:
                async with asyncio.timeout(wait):
                    await held.lock.acquire()
            except TimeoutError:
                raise LockTimeoutError(path) from None
            try:
                if not self._exists(path):
                    raise PathNotFoundError(path)  # deleted while we waited
                yield
            finally:
                held.lock.release()
        finally:
            held.users -= 1
            if not held.users:
                del self._locks[path]

    @property
    def locks_in_use(self) -> int:
        return len(self._locks)

    def _get(self, path: str) -> bytearray:
        try:
            return self._files[check_path(path)]
        except KeyError:
            raise PathNotFoundError(path) from None

    def _is_dir(self, path: str) -> bool:
        prefix = "/" if path == "/" else path + "/"
        return any(p.startswith(prefix) for p in self._files)

    def _check_file_slot(self, path: str) -> None:
        """A key is a file or a directory, never both, as on a filesystem."""
        check_path(path)
        if self._is_dir(path):
            raise StorageError(f"{path} is a directory")
        parent = path.rsplit("/", 1)[0]
        while parent:
            if parent in self._files:
                raise StorageError(f"{parent} is a file")
            parent = parent.rsplit("/", 1)[0]

    def _set(self, path: str, data: bytearray) -> None:
        self._check_file_slot(path)
        if path not in self._files:
            self._generation += 1
        self._files[path] = data
        self._mtimes[path] = time.time()

    def local_path(self, path: str) -> str | None:
        return None

    async def get_content(self, path: str) -> bytes:
        return bytes(self._get(path))

    async def put_content(self, path: str, data: bytes) -> None:
        self._set(path, bytearray(data))

    async def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        data = self._get(path)
        for start in range(offset, len(data), _CHUNK):
            yield bytes(data[start : start + _CHUNK])

    async def writer(self, path: str, append: bool = False) -> MemoryWriter:
        existing = self._files.get(check_path(path))
        buf = existing if append and existing is not None else bytearray()
        self._set(path, buf)
        return MemoryWriter(self, path, buf)

    async def stat(self, path: str) -> FileInfo:
        if check_path(path) in self._files:
            return FileInfo(path, len(self._files[path]), self._mtimes[path], False)
        if self._is_dir(path):
            prefix = path + "/"
            newest = max(m for p, m in self._mtimes.items() if p.startswith(prefix))
            return FileInfo(path, 0, newest, True)
        raise PathNotFoundError(path)

    async def list(self, path: str) -> list[str]:
        prefix = "/" if path == "/" else check_path(path) + "/"
        children = {
            prefix + p[len(prefix) :].split("/", 1)[0] for p in self._files if p.startswith(prefix)
        }
        if not children and path != "/":
            raise PathNotFoundError(path)
        return sorted(children)

    async def list_version(self, path: str) -> str | None:
        if path != "/" and not self._is_dir(check_path(path)):
            raise PathNotFoundError(path)
        return str(self._generation)

    async def move(self, source: str, dest: str) -> None:
        data = self._get(source)
        if check_path(dest) == source:
            return
        del self._files[source]
        del self._mtimes[source]
        self._generation += 1
        try:
            self._set(dest, data)
        except StorageError:
            self._set(source, data)
            raise

    async def delete(self, path: str) -> None:
        prefix = check_path(path) + "/"
        doomed = [p for p in self._files if p == path or p.startswith(prefix)]
        if not doomed:
            raise PathNotFoundError(path)
        for p in doomed:
            del self._files[p]
            del self._mtimes[p]
        self._generation += 1

    async def touch(self, path: str) -> None:
        self._get(path)
        self._mtimes[path] = time.time()
