"""Content-addressed blobs and the per-repository links that make them visible."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from hatchway.errors import BLOB_UNKNOWN, HatchwayError
from hatchway.oci.digest import Digest
from hatchway.registry import layout
from hatchway.storage.driver import PathNotFoundError, StorageDriver


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

    async def link(self, name: str, d: Digest) -> None:
        """Make an existing blob visible in ``name`` (idempotent)."""
        if not await self.is_linked(name, d):
            await self._driver.put_content(layout.layer_link(name, d), str(d).encode())
        # A fresh mtime keeps gc from sweeping a blob a push is about to reference.
        await self._driver.touch(layout.blob_data(d))

    async def unlink(self, name: str, d: Digest) -> None:
        if not await self.is_linked(name, d):
            raise HatchwayError(BLOB_UNKNOWN, detail={"digest": str(d)})
        await self._driver.delete(layout.layer_link(name, d).rsplit("/", 1)[0])

    async def ingest(self, source: str, d: Digest) -> None:
        """Move verified, durable content at ``source`` into the content store.

        If another push already stored the same digest, keep that one: the bytes are
        identical by definition, and replacing it would race readers for no gain.
        """
        if await self.exists(d):
            await self._driver.delete(source)
            return
        await self._driver.move(source, layout.blob_data(d))

    async def put_small(self, d: Digest, data: bytes) -> None:
        """Store small content (a manifest) whose digest the caller computed."""
        if not await self.exists(d):
            await self._driver.put_content(layout.blob_data(d), data)

    async def get_small(self, d: Digest) -> bytes:
        return await self._driver.get_content(layout.blob_data(d))
