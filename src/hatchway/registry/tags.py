"""Tags: a mutable name -> manifest digest link per repository."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from hatchway.errors import MANIFEST_UNKNOWN, NAME_UNKNOWN, HatchwayError
from hatchway.oci.digest import Digest
from hatchway.oci.names import is_valid_tag, validate_tag
from hatchway.registry import layout
from hatchway.registry.pagination import Page, paginate
from hatchway.storage.driver import PathNotFoundError, Staged, StorageDriver, stage_content

_CONFIRMED_REPOSITORIES = 4096


@dataclass(frozen=True, slots=True)
class _Listing:
    version: str  # the driver's list_version of the tags directory
    tags: list[str]  # complete tags, sorted (shared: callers must not modify)
    pending: frozenset[str]  # directories without a current link when listed


class Tags:
    def __init__(self, driver: StorageDriver) -> None:
        self._driver = driver
        # repository -> tags known to be complete (insertion order = recency)
        self._confirmed: dict[str, set[str]] = {}
        # repository -> its last listing, valid while the directory's version holds
        self._listings: dict[str, _Listing] = {}

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

    async def stage(self, name: str, tag: str, d: Digest) -> Staged:
        """:meth:`set` in two steps: the link written and synced now, where no reader
        looks; visible only at ``publish()`` (one rename and one directory sync)."""
        return await stage_content(self._driver, layout.tag_current(name, tag), str(d).encode())

    async def delete(self, name: str, tag: str) -> None:
        self._unknown_unless_valid(tag)
        try:
            await self._driver.delete(layout.tag_dir(name, tag))
        except PathNotFoundError:
            raise HatchwayError(MANIFEST_UNKNOWN, detail={"tag": tag}) from None

    async def all(self, name: str) -> list[str]:
        """The repository's tags, sorted; a listing is kept while the tags directory's
        version says no tag came or went (a 1,000-tag listing costs milliseconds)."""
        try:
            version = await self._driver.list_version(layout.tags(name))
        except PathNotFoundError:
            self._listings.pop(name, None)
            return []
        cached = self._listings.get(name)
        if (
            version is not None
            and cached is not None
            and cached.version == version
            and not await self._completed(name, cached.pending)
        ):
            return cached.tags
        tags, pending = await self._walk(name)
        if version is not None:
            self._listings.pop(name, None)
            self._listings[name] = _Listing(version, tags, pending)
            while len(self._listings) > _CONFIRMED_REPOSITORIES:
                self._listings.pop(next(iter(self._listings)))
        return tags

    async def _completed(self, name: str, pending: frozenset[str]) -> bool:
        """Whether a tag that was half made (directory, no link yet) has its link now."""
        for tag in pending:
            try:
                await self._driver.stat(layout.tag_current(name, tag))
            except PathNotFoundError:
                continue
            return True
        return False

    async def _walk(self, name: str) -> tuple[list[str], frozenset[str]]:
        """List the tags directory: (complete tags, sorted; half-made tag names)."""
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
        return sorted(confirmed), frozenset(listed - confirmed)

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
