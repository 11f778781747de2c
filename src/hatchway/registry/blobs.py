"""Content-addressed blobs and the per-repository links that make them visible.

gc and pushes meet here. gc removes a blob, or the link to a removed blob, only while
it holds that blob's (or link's) storage lock, and only if the blob was last touched
before gc began. A push that relies on a blob touches it under the same lock
(:meth:`BlobStore.refresh`): either gc removed it first, and the push learns so and is
not acknowledged, or gc sees it as fresh and keeps it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from hatchway.errors import BLOB_UNKNOWN, BLOB_UPLOAD_INVALID, UNAVAILABLE, HatchwayError
from hatchway.oci.digest import Digest, new_hasher
from hatchway.registry import layout
from hatchway.storage.driver import (
    FileWriter,
    LockTimeoutError,
    PathNotFoundError,
    StorageDriver,
)

log = logging.getLogger("hatchway.registry")

# gc holds a blob's lock only to check and delete that one blob.
LOCK_WAIT = 30.0
# A stored blob up to this size is hashed again when a push brings the same digest;
# a larger one is checked by size (wrong bytes that once slipped in had extra bytes).
_REHASH_UP_TO = 1024 * 1024


class StagedWriter(FileWriter, Protocol):
    """A writer (an object store's) whose bytes nobody sees before ``commit()``."""

    async def discard(self) -> None:
        """Close, dropping what was written; the path keeps what it held before."""


@dataclass(frozen=True, slots=True)
class BlobInfo:
    digest: Digest
    size: int
    local_path: str | None


class BlobStore:
    def __init__(self, driver: StorageDriver) -> None:
        self._driver = driver

    async def _linked(self, link: str, d: Digest) -> bool:
        try:
            return (await self._driver.get_content(link)).decode(errors="replace") == str(d)
        except PathNotFoundError:
            return False

    async def exists(self, d: Digest) -> bool:
        try:
            await self._driver.stat(layout.blob_data(d))
        except PathNotFoundError:
            return False
        return True

    async def is_linked(self, name: str, d: Digest) -> bool:
        return await self._linked(layout.layer_link(name, d), d)

    async def stat(self, name: str, d: Digest) -> BlobInfo:
        """The blob as seen through repository ``name``; BLOB_UNKNOWN if not linked there."""
        if not await self.is_linked(name, d):
            raise HatchwayError(BLOB_UNKNOWN, detail={"digest": str(d)})
        path = layout.blob_data(d)
        try:
            info = await self._driver.stat(path)
        except PathNotFoundError:
            # Linked but swept by gc or lost: the repository no longer has it.
            raise HatchwayError(BLOB_UNKNOWN, detail={"digest": str(d)}) from None
        return BlobInfo(d, info.size, self._driver.local_path(path))

    def read(self, d: Digest, offset: int = 0) -> AsyncIterator[bytes]:
        return self._driver.reader(layout.blob_data(d), offset)

    def redirect_url(self, d: Digest, expires: int) -> str | None:
        """A URL of the store that serves the blob itself (presigned), if it has one."""
        presign = getattr(self._driver, "presigned_url", None)
        return None if presign is None else str(presign(layout.blob_data(d), expires))

    @contextlib.asynccontextmanager
    async def _locked(self, path: str) -> AsyncIterator[None]:
        try:
            async with self._driver.lock(path, LOCK_WAIT):
                yield
        except LockTimeoutError as exc:
            if exc.path != path:
                raise
            busy = "storage is busy (garbage collection); retry"
            raise HatchwayError(UNAVAILABLE, busy) from None

    async def link(self, name: str, d: Digest) -> bool:
        """Make an existing blob visible in ``name``; False if gc has just taken it."""
        if not await self.is_linked(name, d):
            await self._driver.put_content(layout.layer_link(name, d), str(d).encode())
        return await self.refresh(d)

    async def refresh(self, d: Digest) -> bool:
        """Touch the blob under its lock, so that a gc running now keeps it.

        False if the blob is gone: a push must then not be acknowledged.
        """
        try:
            async with self._locked(layout.blob_dir(d)):
                await self._driver.touch(layout.blob_data(d))
        except PathNotFoundError:
            return False
        return True

    async def refresh_linked(self, name: str, d: Digest) -> bool:
        """:meth:`refresh`, and the blob still linked in ``name`` (gc may unlink it)."""
        try:
            async with self._locked(layout.layer_dir(name, d)):
                return await self.is_linked(name, d) and await self.refresh(d)
        except PathNotFoundError:
            return False

    async def gc_fence(self) -> float | None:
        """When the latest gc began (the fence file's mtime: registry/gc.py); None if
        no gc ever ran on this store."""
        try:
            return (await self._driver.stat(layout.GC_FENCE)).modified
        except PathNotFoundError:
            return None

    async def _kept_anyway(self, d: Digest, fence: float | None) -> bool:
        """Whether blob ``d`` is stored and was touched since the latest gc began.

        Then no gc can take it from under a reference made before this call: the gc
        of that fence keeps every blob touched at or after its fence (its cutoff is
        the fence minus the grace), and a gc that begins later marks from a fence
        written after this call, so its mark sees the reference. Two stats instead of
        a lock and a touch: 32 pushes of one image otherwise all queue for the same
        blobs' locks, across the workers."""
        try:
            info = await self._driver.stat(layout.blob_data(d))
        except PathNotFoundError:
            return False
        return fence is None or info.modified >= fence

    async def keep(self, d: Digest, fence: float | None) -> bool:
        """:meth:`refresh` where needed: False if the blob is gone. ``fence`` is
        :meth:`gc_fence`, read after the reference was made durable and visible."""
        return await self._kept_anyway(d, fence) or await self.refresh(d)

    async def keep_linked(self, name: str, d: Digest, fence: float | None) -> bool:
        """:meth:`refresh_linked` where needed (see :meth:`keep`). A kept blob's layer
        link stays: gc removes a link only while its blob is gone."""
        if await self._kept_anyway(d, fence) and await self.is_linked(name, d):
            return True
        return await self.refresh_linked(name, d)

    async def unlink(self, name: str, d: Digest) -> None:
        if not await self.is_linked(name, d):
            raise HatchwayError(BLOB_UNKNOWN, detail={"digest": str(d)})
        await self._driver.delete(layout.layer_dir(name, d))

    async def holds(self, d: Digest, size: int) -> bool:
        """Whether the store holds blob ``d`` whole (``size`` bytes)."""
        return await self._intact(d, size)

    async def _intact(self, d: Digest, size: int) -> bool:
        """Whether the stored blob ``d`` holds ``size`` bytes (and, if small, hashes to ``d``)."""
        try:
            info = await self._driver.stat(layout.blob_data(d))
        except PathNotFoundError:
            return False
        if info.size != size:
            log.warning("stored blob %s has %d bytes, not %d: replacing it", d, info.size, size)
            return False
        if size > _REHASH_UP_TO:
            return True
        hasher = new_hasher(d.algorithm)
        async for chunk in self._driver.reader(layout.blob_data(d)):
            hasher.update(chunk)
        if hasher.hexdigest() != d.hex:
            log.warning("stored blob %s does not match its digest: replacing it", d)
            return False
        return True

    async def ingest(self, source: str, d: Digest, size: int) -> None:
        """Move verified, durable content of ``size`` bytes at ``source`` into the store.

        If the digest is already stored and intact, keep that copy (replacing it would
        race readers for no gain); if the stored copy is wrong, replace it atomically.
        """
        if (await self._driver.stat(source)).size != size:
            # Bytes beyond what was hashed: never publish them under this digest.
            raise HatchwayError(BLOB_UPLOAD_INVALID, "upload data changed while it was stored")
        try:
            async with self._locked(layout.blob_dir(d)):
                if await self._intact(d, size):
                    await self._driver.delete(source)
                else:
                    await self._driver.move(source, layout.blob_data(d))
                return
        except PathNotFoundError as exc:
            if exc.path != layout.blob_dir(d):
                raise
        await self._driver.move(source, layout.blob_data(d))

    async def publish_staged(self, d: Digest, writer: StagedWriter, size: int) -> None:
        """Publish verified content of ``size`` bytes that ``writer`` staged at the blob's
        own key (see :meth:`ingest`: an intact stored copy is kept, ours dropped)."""
        try:
            async with self._locked(layout.blob_dir(d)):
                if await self._intact(d, size):
                    await writer.discard()
                else:
                    await writer.commit()
                return
        except PathNotFoundError as exc:
            if exc.path != layout.blob_dir(d):
                raise
        await writer.commit()

    async def put_small(self, d: Digest, data: bytes) -> None:
        """Store small content (a manifest) whose digest the caller computed.

        An existing copy is compared byte for byte and rewritten if it differs.
        """
        path = layout.blob_data(d)
        try:
            async with self._locked(layout.blob_dir(d)):
                try:
                    same = (await self._driver.stat(path)).size == len(data) and (
                        await self._driver.get_content(path) == data
                    )
                except PathNotFoundError:
                    same = False
                if not same:
                    await self._driver.put_content(path, data)
                return
        except PathNotFoundError as exc:
            if exc.path != layout.blob_dir(d):
                raise
        await self._driver.put_content(path, data)

    async def get_small(self, d: Digest) -> bytes:
        return await self._driver.get_content(layout.blob_data(d))
