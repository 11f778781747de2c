"""One upstream download of a blob, shared by every client that asks for it meanwhile,
in this worker and in the other workers (and replicas) of the same store.

The download runs as its own task (a client that goes away does not stop it for the
others), under the storage lock of a directory of its own in the repository's
``_uploads``. It writes into ``data`` there while hashing, and publishes the blob only
when the bytes match the digest. Beside ``data`` it keeps a progress marker,
``progress``: ``{"state": "downloading", "size": N}`` once the upstream has answered
(``size`` from its Content-Length, or null), then ``verified`` (every byte is in and
matches the digest; being made durable and published) or ``failed``.

- Clients in the downloading worker follow ``data`` as it grows.
- Another worker (or a replica on the same filesystem) finds the lock held and the
  marker ``downloading``: it opens ``data`` and follows it too, watching its size and the
  marker, so its clients also get the bytes as they land.
- Every follower holds back the last byte until the download's digest is checked:
  when the digest does not match, followers are cut short (their clients see a short
  body), never completed with bytes that are not the blob.
- With a store without local files (S3), the other workers and replicas wait for the
  blob to be published instead, and serve it from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import BinaryIO

from hatchway.oci.digest import Digest, new_hasher
from hatchway.registry import layout
from hatchway.registry.blobs import BlobStore
from hatchway.registry.mirror.upstream import UpstreamClient, UpstreamDown, UpstreamMissing
from hatchway.storage.driver import (
    FileWriter,
    LockTimeoutError,
    PathNotFoundError,
    StorageDriver,
)

log = logging.getLogger("hatchway.mirror")
_READ = 1024 * 1024
# How long a worker waits for another worker's (or replica's) download of the same blob.
_LOCK_WAIT = 600.0
# Polling another process's download: its file's size, then (when it did not grow) its marker.
_POLL_MIN, _POLL_MAX = 0.01, 0.1
# A download in another process whose file has not grown for this long: check its holder
# is still alive (the lock is free when it died).
_STALL_CHECK = 1.0


class FetchFailed(Exception):
    """The shared download ended without a verified blob."""


class BlobFetch:
    def __init__(self, local: str, remote: str, d: Digest) -> None:
        self.local, self.remote, self.digest = local, remote, d
        self.size: int | None = None
        self.written = 0
        self.local_path: str | None = None
        self.error: BaseException | None = None
        self.finishing = False  # bytes all in: being verified and published
        self.verified = False  # published under its digest: every byte may be sent
        self.announced = False  # this worker downloads, and its marker says so
        self.started = asyncio.Event()  # the upstream answered (or failed)
        self.finished = asyncio.Event()
        self._grew = asyncio.Condition()
        self.task: asyncio.Task[None] | None = None

    @property
    def directory(self) -> str:
        return layout.upload_dir(self.local, f"mirror-{self.digest.hex}")

    async def _notify(self) -> None:
        async with self._grew:
            self._grew.notify_all()

    async def run(self, client: UpstreamClient, driver: StorageDriver, blobs: BlobStore) -> None:
        """Download (or follow another process's download), verify and publish the blob;
        never raises (but for cancellation): the outcome is :attr:`error`."""
        try:
            await self._shared_download(client, driver, blobs)
        except BaseException as exc:
            self.error = exc
            if not isinstance(exc, UpstreamDown | UpstreamMissing | asyncio.CancelledError):
                log.warning("mirror fetch of %s failed: %s", self.digest, exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self.started.set()
            self.finished.set()
            await self._notify()

    async def _published(self, blobs: BlobStore) -> bool:
        if await blobs.is_linked(self.local, self.digest) and await blobs.exists(self.digest):
            self.size = (await blobs.stat(self.local, self.digest)).size
            self.written = self.size
            self.verified = True
            return True
        return False

    async def _shared_download(
        self, client: UpstreamClient, driver: StorageDriver, blobs: BlobStore
    ) -> None:
        """Who takes the directory's lock downloads; who finds it taken follows that
        download (or, without local files, waits for it and finds the blob published)."""
        directory = self.directory
        deadline = time.monotonic() + _LOCK_WAIT
        delay = _POLL_MIN
        while True:
            if await self._published(blobs):
                return
            if await self._follow_other(driver, blobs):
                return
            try:
                try:
                    await driver.stat(directory)
                except PathNotFoundError:
                    started = datetime.now(UTC).isoformat().replace("+00:00", "Z")
                    await driver.put_content(f"{directory}/startedat", started.encode())
                async with driver.lock(directory, 0):
                    try:
                        if not await self._published(blobs):
                            await self._download(client, driver, blobs, directory)
                    finally:
                        # Removed while held: no one else is writing in it now, and a
                        # waiter finds it gone and looks at the store again.
                        with contextlib.suppress(PathNotFoundError):
                            await driver.delete(directory)
            except PathNotFoundError as exc:
                if exc.path != directory:
                    raise
                continue  # its holder finished and removed it meanwhile: look again
            except LockTimeoutError:
                pass  # another worker or replica holds it
            else:
                return
            if time.monotonic() >= deadline:
                raise UpstreamDown("another download of this blob is taking too long")
            await asyncio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)

    async def _marker(self, driver: StorageDriver) -> dict[str, object] | None:
        try:
            doc = json.loads(await driver.get_content(f"{self.directory}/progress"))
        except (PathNotFoundError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    async def _set_marker(self, driver: StorageDriver, state: str) -> None:
        doc = {"state": state, "size": self.size}
        await driver.put_content(f"{self.directory}/progress", json.dumps(doc).encode())

    async def _download(
        self, client: UpstreamClient, driver: StorageDriver, blobs: BlobStore, directory: str
    ) -> None:
        """:meth:`_transfer`; followers elsewhere learn from the marker when it fails."""
        try:
            await self._transfer(client, driver, blobs, f"{directory}/data")
        except BaseException:
            if self.announced:  # the marker said "downloading" (or "verified")
                with contextlib.suppress(Exception):
                    await self._set_marker(driver, "failed")
            raise

    async def _transfer(
        self, client: UpstreamClient, driver: StorageDriver, blobs: BlobStore, temp: str
    ) -> None:
        import httpx  # loaded with the client

        writer: FileWriter | None = None
        try:
            response = await client.send(
                "GET", f"/v2/{self.remote}/blobs/{self.digest}", f"repository:{self.remote}:pull"
            )
            try:
                length = response.headers.get("Content-Length")
                self.size = int(length) if length and length.isdigit() else None
                writer = await driver.writer(temp)
                self.local_path = driver.local_path(temp)
                await self._set_marker(driver, "downloading")
                self.announced = True
                self.started.set()
                hasher = new_hasher(self.digest.algorithm)
                async for chunk in response.aiter_bytes():
                    hasher.update(chunk)
                    await writer.write(chunk)
                    self.written += len(chunk)
                    await self._notify()
            except httpx.HTTPError as exc:
                client.failed()
                raise UpstreamDown(f"upstream broke off: {type(exc).__name__}") from None
            finally:
                await response.aclose()
            self.finishing = True
            await self._notify()
            if hasher.hexdigest() != self.digest.hex or (
                self.size is not None and self.size != self.written
            ):
                raise FetchFailed(f"upstream sent bytes that are not {self.digest}")
            # The bytes are the blob: followers may finish now, while it is made durable
            # and published (fsync of a large blob takes a while).
            self.size = self.written
            self.verified = True
            await self._notify()
            if self.announced:
                await self._set_marker(driver, "verified")
            await writer.commit()
            writer = None
            await blobs.ingest(temp, self.digest, self.written)
            if not await blobs.link(self.local, self.digest):
                raise FetchFailed("blob removed by garbage collection meanwhile")
        finally:
            if writer is not None:
                with contextlib.suppress(Exception):
                    await writer.cancel()

    # --- following another process's download ------------------------------------

    async def _follow_other(self, driver: StorageDriver, blobs: BlobStore) -> bool:
        """Follow the download another worker or replica is making, if its marker says
        so and its file is local: True when it ended verified, FetchFailed when it did
        not; False when there is nothing to follow (yet)."""
        marker = await self._marker(driver)
        if marker is None or marker.get("state") != "downloading":
            return False
        path = driver.local_path(f"{self.directory}/data")
        if path is None:
            return False
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False  # published (moved) or removed meanwhile: look again
        # The follower keeps its own descriptor: the file may be moved into the store
        # (or removed) by its writer while read.
        size = marker.get("size")
        self.size = size if isinstance(size, int) else None
        self.local_path = f"/proc/self/fd/{fd}" if os.path.isdir("/proc/self/fd") else path
        self.started.set()
        try:
            await self._watch(fd, driver, blobs)
        finally:
            self.finishing = True
            # Followers of this worker opened the file themselves: this one can go.
            os.close(fd)
        return True

    async def _watch(self, fd: int, driver: StorageDriver, blobs: BlobStore) -> None:
        delay = _POLL_MIN
        still_since = time.monotonic()
        while True:
            size = os.fstat(fd).st_size
            if size > self.written:
                self.written = size
                delay = _POLL_MIN
                still_since = time.monotonic()
                await self._notify()
                await asyncio.sleep(delay)
                continue
            marker = await self._marker(driver)
            state = None if marker is None else marker.get("state")
            if state == "failed":
                raise FetchFailed("the download in another worker failed")
            if state == "verified":
                # Every byte is in the file and is the blob (published meanwhile, or soon).
                self.written = os.fstat(fd).st_size
                self.size = self.written
                self.verified = True
                return
            if state is None:
                # Done (the directory goes once the blob is published): published here?
                if await self._published(blobs):
                    return
                raise FetchFailed("the download in another worker failed")
            if time.monotonic() - still_since >= _STALL_CHECK:
                still_since = time.monotonic()
                if await self._holder_gone(driver):
                    if await self._published(blobs):
                        return
                    raise FetchFailed("the download in another worker stopped")
            await asyncio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)

    async def _holder_gone(self, driver: StorageDriver) -> bool:
        """The download's lock is free: its holder died (a lock dies with its process).
        What it left is removed, so that the next pull downloads afresh rather than
        follow a file no one writes."""
        try:
            async with driver.lock(self.directory, 0):
                with contextlib.suppress(PathNotFoundError):
                    await driver.delete(self.directory)
                return True
        except LockTimeoutError:
            return False
        except PathNotFoundError:
            return True

    # --- this worker's clients ---------------------------------------------------

    def open_follower(self) -> BinaryIO | None:
        """The download file, opened to follow it as it grows; None when it cannot be
        followed (a store without local files, or its digest being checked, or it was
        moved into the store already: wait for :attr:`finished` and serve the stored
        blob then). A verified download is followed while it is made durable."""
        if self.local_path is None or self.finished.is_set():
            return None
        if self.finishing and not self.verified:
            return None  # being checked: a moment

        try:
            return open(self.local_path, "rb")
        except OSError:
            return None

    def _sendable(self) -> int:
        """Bytes a follower may send now: all once verified, else all but the last, so
        that a download that fails its digest check never completes a response."""
        return self.written if self.verified else max(0, self.written - 1)

    async def follow(self, file: BinaryIO) -> AsyncGenerator[bytes, None]:
        """The blob's bytes as they arrive; raises FetchFailed if the download breaks off
        or its bytes are not the blob."""
        with file:
            offset = 0
            while True:
                sendable = self._sendable()
                if offset < sendable:
                    data = await asyncio.to_thread(
                        os.pread, file.fileno(), min(sendable - offset, _READ), offset
                    )
                    if not data:
                        raise FetchFailed("download file shrank")
                    offset += len(data)
                    yield data
                    continue
                if self.verified and offset >= self.written:
                    return  # all sent, and it is the blob (publishing it may still fail)
                if self.error is not None:
                    raise FetchFailed(str(self.error))
                if self.finished.is_set():
                    if not self.verified:
                        raise FetchFailed("download ended unverified")
                    return
                async with self._grew:
                    if offset >= self._sendable() and not self.finished.is_set():
                        await self._grew.wait()
