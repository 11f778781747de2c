"""The repository catalog: every directory under ``repositories/`` that holds manifests."""

from __future__ import annotations

import time
import uuid

from hatchway.registry import layout
from hatchway.registry.pagination import Page, paginate
from hatchway.storage.driver import PathNotFoundError, StorageDriver

_MAX_AGE = 5.0


class Catalog:
    def __init__(self, driver: StorageDriver) -> None:
        self._driver = driver
        self._cached: tuple[bytes, float, list[str]] | None = None

    async def _version(self) -> bytes:
        try:
            return await self._driver.get_content(layout.CATALOG_VERSION)
        except PathNotFoundError:
            return b""

    async def changed(self) -> None:
        """A repository got its first manifest: every worker's cached catalog is stale."""
        await self._driver.put_content(layout.CATALOG_VERSION, uuid.uuid4().hex.encode())

    async def cached_names(self) -> list[str]:
        """The catalog, walked again only when the version marker changed.

        Walking costs a directory listing per repository; the marker costs one small
        read. The marker is read before the walk, so a repository that appears during
        the walk bumps it again and the next request walks anew. A tree written by
        another program (distribution itself) never bumps it: a short expiry bounds
        how stale the catalog can be then.
        """
        version = await self._version()
        now = time.monotonic()
        cached = self._cached
        if cached is not None and cached[0] == version and now - cached[1] < _MAX_AGE:
            return cached[2]
        names = await self.names()
        self._cached = (version, now, names)
        return names

    async def names(self, *, with_uploads: bool = False) -> list[str]:
        """Repository names; ``with_uploads`` adds those with only layers or uploads."""
        markers = {"_manifests", "_layers", "_uploads"} if with_uploads else {"_manifests"}
        found: list[str] = []
        prefix_len = len(layout.REPOSITORIES) + 1
        pending = [layout.REPOSITORIES]
        while pending:
            directory = pending.pop()
            try:
                children = await self._driver.list(directory)
            except PathNotFoundError:
                continue
            bases = [child.rsplit("/", 1)[1] for child in children]
            if directory != layout.REPOSITORIES and markers.intersection(bases):
                found.append(directory[prefix_len:])
            for child, base in zip(children, bases, strict=True):
                if not base.startswith("_"):
                    # Name components never start with "_", so "_x" dirs are internal.
                    pending.append(child)
        found.sort()
        return found

    async def list(self, n: int | None, last: str | None) -> Page:
        return paginate(await self.cached_names(), n, last)
