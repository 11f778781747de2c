"""Streamed blob data written around the page cache (``O_DIRECT``), and writeback hints.

Why: on this project's machine (bench/README.md) the copy of a pushed blob into the page
cache (``copy_folio_from_iter_atomic``) was half of the server's CPU per GB pushed, and
``dd`` of 512 MiB cost 0.46-0.83 s of system time through the page cache against
0.06-0.12 s with ``oflag=direct``. A blob being pushed is read again only when pulled,
and the fsync before the 201 had to write it all out anyway.

How: the batches the upload sink hands over (a worker thread, one batch at a time) are
copied into page-aligned staging buffers (one user-space ``memcpy``, into memory that
stays in the CPU cache); each full buffer goes to the file with one ``pwrite(2)`` on a
second descriptor opened ``O_DIRECT``, from another thread while the next one fills.
The bytes that do not fill a buffer at the end, and an unaligned start (an upload
resumed at an odd offset), go through the ordinary descriptor. Durability is unchanged:
both descriptors are one file, and the writer's ``commit`` fsyncs it (data written
either way, its size and blocks, the device's cache). A file system that refuses
``O_DIRECT`` (tmpfs: ``EINVAL`` at open or at a write) is written through the page
cache as before.

``start_writeback``: ``sync_file_range(2)`` with ``SYNC_FILE_RANGE_WRITE`` from libc
through ctypes (Python's ``os`` has no binding): while a blob streams through the page
cache, disk writeback starts every few MiB, so the fsync at the end has little left.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

ALIGN = 4096  # O_DIRECT: buffer address, file offset and length in multiples of this
# Buffer sizes: 1 MiB while an upload is small, so many concurrent pushes of small
# layers cost little memory; 8 MiB once it has passed GROW_AFTER, as a big layer's
# pushes ran 30-40 % faster with 8 MiB writes than with 1 MiB ones (bench/README.md).
STAGE = 1024 * 1024
BIG_STAGE = 8 * 1024 * 1024
GROW_AFTER = 32 * 1024 * 1024
_POOL_MAX = {STAGE: 16, BIG_STAGE: 4}  # buffers kept per process for the next uploads
_WRITER_THREADS = 8  # direct writes in flight per process (one per upload at most)
_SYNC_FILE_RANGE_WRITE = 2


class _Pool:
    """Staging buffers kept for the next uploads of this process, and its threads."""

    def __init__(self) -> None:
        self.free: dict[int, list[mmap.mmap]] = {}
        self.lock = threading.Lock()
        self.writers: ThreadPoolExecutor | None = None

    def forked(self) -> None:
        self.free = {}
        self.lock = threading.Lock()
        self.writers = None  # the parent's threads did not survive the fork


_pool = _Pool()
os.register_at_fork(after_in_child=_pool.forked)


def _load_sync_file_range() -> Callable[[int, int, int], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        func = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    func.restype = ctypes.c_int

    def start_writeback(fd: int, offset: int, length: int) -> None:
        func(fd, offset, length, _SYNC_FILE_RANGE_WRITE)  # advisory; errors are harmless

    return start_writeback


start_writeback = _load_sync_file_range()


def _take_stage(size: int) -> mmap.mmap:
    with _pool.lock:
        free = _pool.free.get(size)
        if free:
            return free.pop()
    # Private: a shared anonymous mapping would be shared with forked workers.
    return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)


def _give_back(stage: mmap.mmap) -> None:
    with _pool.lock:
        free = _pool.free.setdefault(len(stage), [])
        if len(free) < _POOL_MAX.get(len(stage), 0):
            free.append(stage)
            return
    stage.close()


def open_direct(full: str) -> DirectWriter | None:
    """A direct writer for the file ``full`` (already open for writing), or None where
    the system or file system has no ``O_DIRECT``."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return None
    try:
        fd = os.open(full, os.O_WRONLY | flag | os.O_CLOEXEC)
    except OSError:
        return None
    return DirectWriter(fd)


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        written = os.pwrite(fd, data, offset)
        data, offset = data[written:], offset + written


def _writers() -> ThreadPoolExecutor:
    """This process's threads for direct writes (a forked worker makes its own)."""
    with _pool.lock:
        if _pool.writers is None:
            _pool.writers = ThreadPoolExecutor(_WRITER_THREADS, "hatchway-direct")
        return _pool.writers


class _Stage:
    """One page-aligned buffer (from the pool) and a view of it."""

    def __init__(self, size: int = STAGE) -> None:
        self.buffer = _take_stage(size)
        self.view = memoryview(self.buffer)
        self.size = size

    def release(self) -> None:
        self.view.release()
        _give_back(self.buffer)


class DirectWriter:
    """Appends through two staging buffers and ``O_DIRECT``; called from one thread at a
    time. While one full buffer is written (a thread of its own: the device's time), the
    next batch is hashed and copied into the other, so the disk and the CPU overlap."""

    def __init__(self, direct_fd: int) -> None:
        self._direct_fd: int | None = direct_fd
        self._stages: list[_Stage] = []
        self._filling = 0  # index of the buffer being filled
        self._staged = 0  # bytes in it, which belong at ``end - staged``
        self._sent = 0  # bytes handed to direct writes so far
        self._pending: Future[None] | None = None  # the other buffer's write
        self._refused = False  # set by a write the device refused (EINVAL)

    def _settle(self) -> None:
        """Wait for the write in flight; its error is raised here."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()
        if self._refused and self._direct_fd is not None:
            os.close(self._direct_fd)
            self._direct_fd = None

    def append(self, fd: int, parts: Sequence[bytes], end: int) -> int:
        """Append ``parts`` to the file whose accepted bytes end at ``end`` (staged ones
        included); ``fd`` is its ordinary descriptor. Returns the new end."""
        for part in parts:
            data = memoryview(part)
            while data:
                if self._direct_fd is None or (not self._staged and end % ALIGN):
                    # Refused earlier, or an unaligned start (up to the next boundary):
                    # through the page cache, once nothing else is being written.
                    self._settle()
                    head = data if self._direct_fd is None else data[: ALIGN - end % ALIGN]
                    _pwrite_all(fd, head, end)
                    data, end = data[len(head) :], end + len(head)
                    continue
                if not self._stages:
                    self._stages = [_Stage(), _Stage()]
                stage = self._stages[self._filling]
                n = min(len(data), stage.size - self._staged)
                stage.view[self._staged : self._staged + n] = data[:n]
                self._staged += n
                data, end = data[n:], end + n
                if self._staged == stage.size:
                    self._submit(fd, end)
        return end

    def _submit(self, fd: int, end: int) -> None:
        self._settle()  # the other buffer is free once its write is done
        if self._direct_fd is None:  # that write was refused: this one goes the same way
            _pwrite_all(fd, self._stages[self._filling].view[: self._staged], end - self._staged)
        else:
            chunk = self._stages[self._filling].view[: self._staged]
            self._pending = _writers().submit(
                self._write, self._direct_fd, fd, chunk, end - self._staged
            )
            self._sent += self._staged
            self._filling ^= 1
            self._grow()
        self._staged = 0

    def _grow(self) -> None:
        """Past GROW_AFTER, trade the buffer about to be filled (not in flight) for a
        big one; the other follows when its turn comes."""
        stage = self._stages[self._filling]
        if self._sent >= GROW_AFTER and stage.size != BIG_STAGE:
            stage.release()
            self._stages[self._filling] = _Stage(BIG_STAGE)

    def _write(self, direct_fd: int, fd: int, chunk: memoryview, offset: int) -> None:
        try:
            _pwrite_all(direct_fd, chunk, offset)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            # Refused (an alignment this device does not take): this buffer, and the
            # rest, through the page cache (nothing else is written meanwhile).
            self._refused = True
            _pwrite_all(fd, chunk, offset)

    def detach(self, fd: int, end: int, *, write: bool = True) -> None:
        """Wait for the write in flight, write what is staged (through ``fd``: less than
        one buffer; not if ``write`` is False: after a failure) and let go of the
        buffers and the direct descriptor. The file then ends at ``end``."""
        try:
            try:
                self._settle()
            except OSError:
                if write:
                    raise
            if write and self._staged:
                _pwrite_all(
                    fd, self._stages[self._filling].view[: self._staged], end - self._staged
                )
            self._staged = 0
        finally:
            for stage in self._stages:
                stage.release()
            self._stages = []
            if self._direct_fd is not None:
                os.close(self._direct_fd)
                self._direct_fd = None
