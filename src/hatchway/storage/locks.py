"""Where a driver that is not a local filesystem takes its locks.

An object store has no locks of its own, so :class:`~hatchway.storage.s3.S3Driver`
delegates :meth:`StorageDriver.lock` to a :class:`LockService`. :class:`FileLocks`
excludes every process on one machine (workers and ``hatchway gc``) with flock(2) on a
file per locked path under the local data directory. Replicas on several machines
sharing one bucket need a service they all reach instead (a PostgreSQL advisory lock
on a hash of the key, or a Redis lock with a lease): another LockService, passed to the
driver in its place; nothing else changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from hatchway.storage.driver import LockTimeoutError

# A busy lock is polled (a blocking flock in a thread could not be cancelled).
_POLL_FIRST = 0.002
_POLL_MAX = 0.05


class LockService(Protocol):
    def hold(self, path: str, wait: float) -> AbstractAsyncContextManager[None]:
        """Hold ``path`` exclusively against every other holder of the same service
        (same namespace) while in the block; LockTimeoutError(path) after ``wait``
        seconds. Knows nothing of whether ``path`` exists: the driver checks that."""


class FileLocks:
    """flock(2) on ``<directory>/<sha256(namespace, path)>``, removed on release.

    The file is unlinked by its holder before it lets go; a waiter that then gets the
    lock on the unlinked file sees that the name now points elsewhere (or nowhere) and
    tries again, so two holders never hold two different files of one name.
    """

    def __init__(self, directory: str, namespace: str) -> None:
        self.directory = os.path.abspath(directory)
        os.makedirs(self.directory, 0o700, exist_ok=True)
        self._namespace = namespace

    def file_for(self, path: str) -> str:
        digest = hashlib.sha256(f"{self._namespace}\0{path}".encode()).hexdigest()
        return os.path.join(self.directory, digest)

    @staticmethod
    def _try(name: str) -> int | None:
        fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            current = os.stat(name)
        except FileNotFoundError:
            os.close(fd)  # unlinked by the holder we waited for: take the new one
            return None
        held = os.fstat(fd)
        if (current.st_dev, current.st_ino) != (held.st_dev, held.st_ino):
            os.close(fd)
            return None
        return fd

    @contextlib.asynccontextmanager
    async def hold(self, path: str, wait: float) -> AsyncIterator[None]:
        name = self.file_for(path)
        deadline = time.monotonic() + wait
        delay = _POLL_FIRST
        while (fd := self._try(name)) is None:
            if time.monotonic() >= deadline:
                raise LockTimeoutError(path)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)
        try:
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
            os.close(fd)
