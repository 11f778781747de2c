"""The repository catalog: every directory under ``repositories/`` that holds manifests."""

from __future__ import annotations

from hatchway.registry import layout
from hatchway.registry.pagination import Page, paginate
from hatchway.storage.driver import PathNotFoundError, StorageDriver


class Catalog:
    def __init__(self, driver: StorageDriver) -> None:
        self._driver = driver

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
        return paginate(await self.names(), n, last)
