"""What a tag resolves to, cached per process where reading storage is a round trip.

On object storage a manifest GET by tag reads two objects (the tag's link and the
revision's link) before the manifest bytes, which the content cache already holds:
most of a GET's cost, and shared by every replica on one bucket. With a
:class:`VersionSource` (the repositories' versions in the shared database) a process
keeps each resolution under the version it read *before* reading storage, and reuses it
while the version is unchanged. Every change of a repository's tags is bracketed by
``writing`` and ``written``, so a push acknowledged by any replica is seen by the next
GET anywhere, as without the cache. If the version source cannot be read, storage is.
"""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from hatchway.errors import UNAVAILABLE, HatchwayError
from hatchway.oci.digest import Digest

log = logging.getLogger("hatchway.registry")

_ENTRIES = 10_000


class VersionSource(Protocol):
    async def current(self, name: str) -> int | None:
        """The repository's version; None while a change may be in flight."""
        ...

    async def writing(self, name: str) -> None: ...

    async def written(self, name: str) -> None: ...


class ReferenceCache:
    def __init__(self, source: VersionSource, entries: int = _ENTRIES) -> None:
        self._source = source
        self._entries: OrderedDict[tuple[str, str], tuple[Digest, int]] = OrderedDict()
        self._max = entries

    async def resolve(self, name: str, tag: str, read: Callable[[], Awaitable[Digest]]) -> Digest:
        """``tag`` in ``name``: from the cache while the version holds, else ``read()``."""
        try:
            version = await self._source.current(name)
        except Exception as exc:  # the database is away: storage answers alone
            log.debug("repository version unavailable, reading storage: %s", exc)
            return await read()
        key = (name, tag)
        if version is not None:
            hit = self._entries.get(key)
            if hit is not None and hit[1] == version:
                self._entries.move_to_end(key)
                return hit[0]
        d = await read()
        if version is not None:
            self._entries[key] = (d, version)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return d

    @contextlib.asynccontextmanager
    async def changing(self, name: str) -> AsyncIterator[None]:
        """Around a change of ``name``'s tags. Refused (503) when the change could not
        be announced: other processes would go on answering from their caches."""
        try:
            await self._source.writing(name)
        except Exception as exc:
            log.warning("cannot announce a change of %s: %s", name, exc)
            raise HatchwayError(
                UNAVAILABLE, "the database is unavailable; try again", {"repository": name}
            ) from None
        try:
            yield
        finally:
            try:
                await self._source.written(name)
            except Exception as exc:  # caching stays off for it until the lease ends
                log.warning("cannot announce the end of a change of %s: %s", name, exc)
