"""One upstream download of a blob, shared by every client that asks for it meanwhile.

The download runs as its own task (a client that goes away does not stop it for the
others), writes into an upload file of the store while hashing, and publishes the blob
only when the bytes match the digest. Clients follow the file as it grows when the store
is a local filesystem; with another store they wait for the blob to be published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
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
        self.started = asyncio.Event()  # the upstream answered (or failed)
        self.finished = asyncio.Event()
        self._grew = asyncio.Condition()
        self.task: asyncio.Task[None] | None = None

    async def _notify(self) -> None:
        async with self._grew:
            self._grew.notify_all()

    async def run(self, client: UpstreamClient, driver: StorageDriver, blobs: BlobStore) -> None:
        """Download, verify and publish the blob; never raises (but for cancellation):
        the outcome is :attr:`error`."""
        try:
            await self._locked_download(client, driver, blobs)
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

    async def _locked_download(
        self, client: UpstreamClient, driver: StorageDriver, blobs: BlobStore
    ) -> None:
        """Other workers and replicas share the download through the storage lock of a
        directory of its own: who gets it second finds the blob published, and links it."""
        directory = layout.upload_dir(self.local, f"mirror-{self.digest.hex}")
        started = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        for _ in range(3):
            await driver.put_content(f"{directory}/startedat", started.encode())
            try:
                async with driver.lock(directory, _LOCK_WAIT):
                    try:
                        await self._once(client, driver, blobs, f"{directory}/data")
                    finally:
                        # Removed while held: no one else is writing in it now, and a
                        # waiter finds it gone and looks at the store again.
                        with contextlib.suppress(PathNotFoundError):
                            await driver.delete(directory)
            except PathNotFoundError as exc:
                if exc.path != directory:
                    raise
                continue  # its holder finished and removed it while we waited: again
            except LockTimeoutError:
                raise UpstreamDown("another download of this blob is taking too long") from None
            return
        raise UpstreamDown("could not take the download lock")

    async def _once(
        self, client: UpstreamClient, driver: StorageDriver, blobs: BlobStore, temp: str
    ) -> None:
        """Download, unless another worker or replica has published it meanwhile."""
        if await blobs.is_linked(self.local, self.digest) and await blobs.exists(self.digest):
            self.size = (await blobs.stat(self.local, self.digest)).size
            return
        await self._download(client, driver, blobs, temp)

    async def _download(
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
            await writer.commit()
            writer = None
            await blobs.ingest(temp, self.digest, self.written)
            self.size = self.written
            if not await blobs.link(self.local, self.digest):
                raise FetchFailed("blob removed by garbage collection meanwhile")
        finally:
            if writer is not None:
                with contextlib.suppress(Exception):
                    await writer.cancel()

    def open_follower(self) -> BinaryIO | None:
        """The download file, opened to follow it as it grows; None when it cannot be
        followed (a store without local files, or already being published: wait for
        :attr:`finished` and serve the stored blob then)."""
        if self.local_path is None or self.finishing or self.finished.is_set():
            return None
        try:
            return open(self.local_path, "rb")
        except OSError:
            return None

    async def follow(self, file: BinaryIO) -> AsyncGenerator[bytes, None]:
        """The blob's bytes as they arrive; raises FetchFailed if the download breaks off."""
        with file:
            offset = 0
            while True:
                if offset < self.written:
                    data = await asyncio.to_thread(
                        os.pread, file.fileno(), min(self.written - offset, _READ), offset
                    )
                    if not data:
                        raise FetchFailed("download file shrank")
                    offset += len(data)
                    yield data
                    continue
                if self.error is not None:
                    raise FetchFailed(str(self.error))
                if self.finished.is_set():
                    return
                if self.finishing:
                    await self.finished.wait()
                    continue
                async with self._grew:
                    if offset >= self.written and not (self.finishing or self.finished.is_set()):
                        await self._grew.wait()
