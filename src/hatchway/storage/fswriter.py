"""The filesystem driver's blob writer, and the threads its durable writes run in.

``FilesystemWriter`` appends to one file: ``write`` through the page cache, with disk
writeback started every few MiB; ``write_blocking`` (a streamed blob, from the upload
sink's thread) around it with ``O_DIRECT`` where the file system takes it
(storage/direct.py). ``commit`` fsyncs in :func:`in_sync_thread`'s pool, which the
driver's small durable writes share.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from hatchway.storage.direct import DirectWriter, start_writeback

_THREAD_WRITE = 256 * 1024
# Start disk writeback every few MiB while a blob streams in, so the fsync that makes
# it durable at the end has little left to flush (one long stall otherwise).
_WRITEBACK_EVERY = 16 * 1024 * 1024
_start_writeback = start_writeback  # sync_file_range(2), storage/direct.py

# Durable writes wait for journal commits, and concurrent fsyncs share them (the kernel
# commits once for all that are waiting), so they get threads of their own rather than
# asyncio's default pool (cpu count + 4), which queued 32 concurrent manifest pushes
# behind the blob streams' work. Not many more: each thread wakes and takes the GIL
# again after every system call of a durable write, and at c=32 32 threads made 100
# context switches per manifest PUT against 45-50 with 8, for as many PUTs per second
# and a fifth less server CPU per PUT on this shared machine (bench/README.md).
_SYNC_THREADS = 8
_pools: dict[int, ThreadPoolExecutor] = {}
_T = TypeVar("_T")


def _sync_pool() -> ThreadPoolExecutor:
    """This process's threads for fsyncs (a forked worker makes its own)."""
    pool = _pools.get(os.getpid())
    if pool is None:
        _pools.clear()  # the parent's, whose threads did not survive the fork
        pool = _pools[os.getpid()] = ThreadPoolExecutor(_SYNC_THREADS, "hatchway-fsync")
    return pool


async def in_sync_thread(func: Callable[..., _T], *args: object) -> _T:
    return await asyncio.get_running_loop().run_in_executor(
        _sync_pool(), functools.partial(func, *args)
    )


class FilesystemWriter:
    """Appends to one file. ``write`` goes through the page cache; ``write_blocking``
    (a streamed blob: the sink's batches, from a worker thread) bypasses it with
    ``O_DIRECT`` when the file system allows (storage/direct.py): the copy into the
    page cache was half of a blob push's CPU here, and what it left dirty was what
    the final fsync waited for."""

    def __init__(
        self, fd: int, full_path: str, size: int, direct: DirectWriter | None = None
    ) -> None:
        self._fd = fd
        self._path = full_path
        self._size = size
        self._flushed = size
        self._closed = False
        self._direct = direct

    @property
    def size(self) -> int:
        return self._size

    def _write_all(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
            self._size += written
        self._writeback()

    def write_blocking(self, parts: Sequence[bytes]) -> None:
        if self._direct is not None:
            try:
                self._size = self._direct.append(self._fd, parts, self._size)
            except BaseException:
                self._drop_direct(write=False)
                raise
            return
        # One writev(2) per batch: no join, no copy but the kernel's into the page cache.
        total = sum(len(p) for p in parts)
        written = os.writev(self._fd, parts) if parts else 0
        self._size += written
        if written < total:  # a short write: finish part by part
            for part in parts:
                if written >= len(part):
                    written -= len(part)
                    continue
                self._write_all(memoryview(part)[written:])
                written = 0
        self._writeback()

    def _writeback(self) -> None:
        if _start_writeback is not None and self._size - self._flushed >= _WRITEBACK_EVERY:
            _start_writeback(self._fd, self._flushed, self._size - self._flushed)
            self._flushed = self._size

    def _drop_direct(self, write: bool = True) -> None:
        """Write out what the direct writer staged and stop using it (after a failure:
        without writing; the file's own size is then the truth)."""
        direct, self._direct = self._direct, None
        if direct is None:
            return
        try:
            direct.detach(self._fd, self._size, write=write)
        except BaseException:
            write = False
            raise
        finally:
            if not write:
                self._size = os.fstat(self._fd).st_size
            self._flushed = self._size
            os.lseek(self._fd, self._size, os.SEEK_SET)  # where os.write goes on from

    async def write(self, data: bytes | memoryview) -> None:
        if self._direct is not None:
            await asyncio.to_thread(self._drop_direct)
        # Large writes go to a thread so hashing and receiving can run meanwhile.
        if len(data) >= _THREAD_WRITE:
            await asyncio.to_thread(self._write_all, data)
        else:
            self._write_all(data)

    def _sync(self) -> None:
        self._drop_direct()
        os.fsync(self._fd)  # the direct writes' blocks and size too: one file

    async def commit(self) -> None:
        if self._closed:
            return
        await in_sync_thread(self._sync)
        await self.close()

    async def close(self) -> None:
        if not self._closed:
            if self._direct is not None:
                await asyncio.to_thread(self._drop_direct)
            self._closed = True
            os.close(self._fd)

    async def cancel(self) -> None:
        await self.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path)
