"""In-memory driver for tests and throwaway registries (``storage: inmemory``)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from hatchway.storage.driver import FileInfo, PathNotFoundError, check_path

_CHUNK = 1024 * 1024


class MemoryWriter:
    def __init__(self, driver: MemoryDriver, path: str, initial: bytes) -> None:
        self._driver = driver
        self._path = path
        self._buf = bytearray(initial)
        driver._files[path] = (bytes(self._buf), time.time())

    @property
    def size(self) -> int:
        return len(self._buf)

    async def write(self, data: bytes | memoryview) -> None:
        self._buf += data
        self._driver._files[self._path] = (bytes(self._buf), time.time())

    async def commit(self) -> None:
        await self.close()

    async def close(self) -> None:
        self._driver._files[self._path] = (bytes(self._buf), time.time())

    async def cancel(self) -> None:
        self._driver._files.pop(self._path, None)


class MemoryDriver:
    name = "inmemory"

    def __init__(self) -> None:
        self._files: dict[str, tuple[bytes, float]] = {}

    def _get(self, path: str) -> tuple[bytes, float]:
        try:
            return self._files[check_path(path)]
        except KeyError:
            raise PathNotFoundError(path) from None

    def _is_dir(self, path: str) -> bool:
        prefix = check_path(path) + "/"
        return any(p.startswith(prefix) for p in self._files)

    def local_path(self, path: str) -> str | None:
        return None

    async def get_content(self, path: str) -> bytes:
        return self._get(path)[0]

    async def put_content(self, path: str, data: bytes) -> None:
        self._files[check_path(path)] = (bytes(data), time.time())

    async def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        data = self._get(path)[0]
        for start in range(offset, len(data), _CHUNK):
            yield data[start : start + _CHUNK]

    async def writer(self, path: str, append: bool = False) -> MemoryWriter:
        check_path(path)
        initial = self._files.get(path, (b"", 0.0))[0] if append else b""
        return MemoryWriter(self, path, initial)

    async def stat(self, path: str) -> FileInfo:
        if check_path(path) in self._files:
            data, modified = self._files[path]
            return FileInfo(path, len(data), modified, False)
        if self._is_dir(path):
            prefix = path + "/"
            newest = max(m for p, (_, m) in self._files.items() if p.startswith(prefix))
            return FileInfo(path, 0, newest, True)
        raise PathNotFoundError(path)

    async def list(self, path: str) -> list[str]:
        prefix = "/" if path == "/" else check_path(path) + "/"
        children = {
            prefix + p[len(prefix) :].split("/", 1)[0] for p in self._files if p.startswith(prefix)
        }
        if not children:
            raise PathNotFoundError(path)
        return sorted(children)

    async def move(self, source: str, dest: str) -> None:
        entry = self._get(source)
        self._files[check_path(dest)] = entry
        del self._files[source]

    async def delete(self, path: str) -> None:
        prefix = check_path(path) + "/"
        doomed = [p for p in self._files if p == path or p.startswith(prefix)]
        if not doomed:
            raise PathNotFoundError(path)
        for p in doomed:
            del self._files[p]

    async def touch(self, path: str) -> None:
        data, _ = self._get(path)
        self._files[path] = (data, time.time())
