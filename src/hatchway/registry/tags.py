"""Tags: a mutable name -> manifest digest link per repository."""

from __future__ import annotations

import contextlib

from hatchway.errors import MANIFEST_UNKNOWN, NAME_UNKNOWN, HatchwayError
from hatchway.oci.digest import Digest
from hatchway.oci.names import is_valid_tag, validate_tag
from hatchway.registry import layout
from hatchway.registry.pagination import Page, paginate
from hatchway.storage.driver import PathNotFoundError, StorageDriver

_CONFIRMED_REPOSITORIES = 4096


class Tags:
    def __init__(self, driver: StorageDriver) -> None:
        self._driver = driver
        # repository -> tags known to be complete (insertion order = recency)
        self._confirmed: dict[str, set[str]] = {}

    @staticmethod
    def validate(tag: str) -> str:
        return validate_tag(tag)

    @staticmethod
    def _unknown_unless_valid(tag: str) -> None:
        """A tag that breaks the grammar cannot exist: reading or deleting it finds
        nothing (404, as the spec answers any manifest not found); only a push of it is
        TAG_INVALID."""
        if not is_valid_tag(tag):
            raise HatchwayError(MANIFEST_UNKNOWN, detail={"tag": tag[:200]})

    async def get(self, name: str, tag: str) -> Digest:
        self._unknown_unless_valid(tag)
        try:
            link = await self._driver.get_content(layout.tag_current(name, tag))
        except PathNotFoundError:
            raise HatchwayError(MANIFEST_UNKNOWN, detail={"tag": tag}) from None
        return Digest.parse(link.decode(errors="replace"))

    async def set(self, name: str, tag: str, d: Digest) -> None:
        # distribution also keeps tags/<tag>/index/ history; nothing reads it, so
        # hatchway saves the extra durable write per push.
        await self._driver.put_content(layout.tag_current(name, tag), str(d).encode())

    async def delete(self, name: str, tag: str) -> None:
        self._unknown_unless_valid(tag)
        try:
            await self._driver.delete(layout.tag_dir(name, tag))
        except PathNotFoundError:
            raise HatchwayError(MANIFEST_UNKNOWN, detail={"tag": tag}) from None

    async def all(self, name: str) -> list[str]:
        try:
            paths = await self._driver.list(layout.tags(name))
        except PathNotFoundError:
            paths = []
        # A tag's directory appears before its current link is renamed in; list only
        # tags that resolve, so "list, then pull" never meets a half-made tag. A tag
        # seen complete once stays complete until its directory goes, so only names
        # new to this process need the extra stat.
        listed = {path.rsplit("/", 1)[1] for path in paths}
        confirmed = self._confirmed.pop(name, set()) & listed
        for tag in listed - confirmed:
            try:
                await self._driver.stat(layout.tag_current(name, tag))
            except PathNotFoundError:
                continue
            confirmed.add(tag)
        self._confirmed[name] = confirmed
        while len(self._confirmed) > _CONFIRMED_REPOSITORIES:
            self._confirmed.pop(next(iter(self._confirmed)))
        return sorted(confirmed)

    async def list(self, name: str, n: int | None, last: str | None) -> Page:
        tags = await self.all(name)
        if not tags:
            try:
                await self._driver.stat(layout.manifests(name))
            except PathNotFoundError:
                raise HatchwayError(NAME_UNKNOWN, detail={"name": name}) from None
        return paginate(tags, n, last)

    async def untag_digest(self, name: str, d: Digest) -> None:
        for tag in await self.all(name):
            try:
                current = await self.get(name, tag)
            except HatchwayError:
                continue
            if current == d:
                with contextlib.suppress(PathNotFoundError):
                    await self._driver.delete(layout.tag_dir(name, tag))
