"""A storage driver that times every operation of the driver it wraps, for
``hatchway_storage_operation_duration_seconds{driver, operation}``: one wrapper, so no
driver carries metrics code and a new driver is measured as soon as it exists."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from hatchway.observability import metrics
from hatchway.storage.driver import FileInfo, FileWriter, PathNotFoundError, StorageDriver

T = TypeVar("T")


def _error(exc: BaseException) -> str:
    return "not_found" if isinstance(exc, PathNotFoundError) else type(exc).__name__[:40]


class _TimedWriter:
    """Also counts itself in ``hatchway_http_uploads_in_flight`` until it is closed:
    blob data is written only through writers (uploads)."""

    def __init__(self, writer: FileWriter, driver: str) -> None:
        self._writer = writer
        self._driver = driver
        self._open = True
        metrics.upload_started()

    def _closed(self) -> None:
        if self._open:
            self._open = False
            metrics.upload_ended()

    @property
    def size(self) -> int:
        return self._writer.size

    async def write(self, data: bytes | memoryview) -> None:
        await self._writer.write(data)

    async def _timed(self, operation: str, call: Awaitable[None]) -> None:
        started = time.perf_counter()
        error = None
        try:
            await call
        except BaseException as exc:
            error = _error(exc)
            raise
        finally:
            metrics.storage_operation(self._driver, operation, time.perf_counter() - started, error)

    async def commit(self) -> None:
        try:
            await self._timed("writer_commit", self._writer.commit())
        finally:
            self._closed()

    async def close(self) -> None:
        try:
            await self._writer.close()
        finally:
            self._closed()

    async def cancel(self) -> None:
        try:
            await self._timed("writer_cancel", self._writer.cancel())
        finally:
            self._closed()


class InstrumentedDriver:
    """Delegates to ``inner``, timing each call (a reader until its first chunk)."""

    def __init__(self, inner: StorageDriver) -> None:
        self.inner = inner
        self.name = inner.name

    async def _timed(self, operation: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        error = None
        try:
            return await call
        except BaseException as exc:
            error = _error(exc)
            raise
        finally:
            metrics.storage_operation(self.name, operation, time.perf_counter() - started, error)

    async def get_content(self, path: str) -> bytes:
        return await self._timed("get_content", self.inner.get_content(path))

    async def put_content(self, path: str, data: bytes) -> None:
        await self._timed("put_content", self.inner.put_content(path, data))

    async def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        started = time.perf_counter()
        chunks = self.inner.reader(path, offset)
        try:
            first = await anext(chunks)
        except StopAsyncIteration:
            metrics.storage_operation(self.name, "reader", time.perf_counter() - started, None)
            return
        except BaseException as exc:
            elapsed = time.perf_counter() - started
            metrics.storage_operation(self.name, "reader", elapsed, _error(exc))
            raise
        metrics.storage_operation(self.name, "reader", time.perf_counter() - started, None)
        try:
            yield first
            async for chunk in chunks:
                yield chunk
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        inner = await self._timed("writer", self.inner.writer(path, append))
        return _TimedWriter(inner, self.name)

    async def stat(self, path: str) -> FileInfo:
        return await self._timed("stat", self.inner.stat(path))

    async def list(self, path: str) -> list[str]:
        return await self._timed("list", self.inner.list(path))

    async def list_version(self, path: str) -> str | None:
        return await self._timed("list_version", self.inner.list_version(path))

    async def move(self, source: str, dest: str) -> None:
        await self._timed("move", self.inner.move(source, dest))

    async def delete(self, path: str) -> None:
        await self._timed("delete", self.inner.delete(path))

    async def touch(self, path: str) -> None:
        await self._timed("touch", self.inner.touch(path))

    def local_path(self, path: str) -> str | None:
        return self.inner.local_path(path)

    def lock(self, path: str, wait: float) -> AbstractAsyncContextManager[None]:
        return self.inner.lock(path, wait)

    def __getattr__(self, name: str) -> Any:
        """What only some drivers have (presigned_url, abort_incomplete, staged_writer)."""
        return getattr(self.inner, name)
