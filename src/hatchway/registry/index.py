"""Keep the repository index (``metadata/repoindex.py``) in step with storage.

The registry reports changes through :class:`IndexEvents` (``Manifests`` calls it after a
push or delete is durable in storage); :class:`Indexer` implements it. Each event makes
the index agree with *storage as it is now*, not with what the event says: under the
repository's storage lock (the ``_manifests`` directory, held across worker processes and
``hatchway index rebuild``) it reads the tag links and revision links concerned and
writes what it found. Two pushes of one tag racing in two workers therefore end with the
index showing what storage holds, whichever finished last: the last of the two syncs to
take the lock read storage after both writes.

Indexing never fails a push: the change is already in storage, and an index that missed
it (database down) is mended by the next change of those rows or by a rebuild.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from hatchway.errors import HatchwayError
from hatchway.metadata.records import utcnow
from hatchway.metadata.repoindex import ManifestEntry, Pushed, RepositoryIndex, TagEntry
from hatchway.oci.digest import Digest
from hatchway.registry import layout
from hatchway.registry.blobs import BlobStore
from hatchway.registry.catalog import Catalog
from hatchway.registry.summary import ManifestSummary, Summaries
from hatchway.storage.driver import LockTimeoutError, PathNotFoundError, StorageDriver

log = logging.getLogger("hatchway.index")

LOCK_WAIT = 30.0


@dataclass(frozen=True, slots=True)
class Actor:
    """Who pushed: the account and the access token's name (None: the password)."""

    account: str | None
    credential: str | None = None


class IndexEvents(Protocol):
    """What the registry tells the index (after storage has the change)."""

    async def manifest_pushed(
        self, name: str, digest: Digest, tag: str | None, actor: Actor | None
    ) -> None: ...

    async def tag_deleted(self, name: str, tag: str) -> None: ...

    async def manifest_deleted(self, name: str, digest: Digest) -> None: ...


@dataclass
class RebuildReport:
    repositories: int = 0
    manifests: int = 0
    tags: int = 0
    dropped: list[str] = field(default_factory=list)


def entry_of(summary: ManifestSummary, pushed: Pushed) -> ManifestEntry:
    return ManifestEntry(
        digest=summary.digest,
        media_type=summary.media_type,
        size=summary.size,
        artifact_type=summary.artifact_type,
        subject=summary.subject,
        created=summary.created,
        platforms=[p.as_dict() for p in summary.platforms]
        if summary.platforms is not None
        else None,
        annotations=summary.annotations,
        pushed=pushed,
        blobs=summary.blobs(),
    )


class _Batch:
    """Events of one repository waiting for the next sync."""

    def __init__(self) -> None:
        self.digests: list[Digest] = []
        self.tags: list[str] = []
        self.pushed: dict[str, Pushed] = {}
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def add(
        self,
        digests: list[Digest],
        tags: list[str],
        pushed_digest: Digest | None,
        pushed: Pushed | None,
    ) -> None:
        self.digests += digests
        self.tags += tags
        if pushed_digest is not None and pushed is not None:
            self.pushed[str(pushed_digest)] = pushed


class Indexer:
    """:class:`IndexEvents` for one storage driver and one index store."""

    def __init__(
        self, driver: StorageDriver, blobs: BlobStore, store: RepositoryIndex, catalog: Catalog
    ) -> None:
        self._driver = driver
        self._store = store
        self._catalog = catalog
        self.summaries = Summaries(blobs)
        # repository -> events waiting for the next sync; its sync task while one runs
        self._queued: dict[str, _Batch] = {}
        self._running: dict[str, asyncio.Future[None]] = {}

    # -- events ---------------------------------------------------------------------

    async def manifest_pushed(
        self, name: str, digest: Digest, tag: str | None, actor: Actor | None
    ) -> None:
        pushed = None
        if actor is not None:  # cut to the columns' widths (an htpasswd name may be longer)
            account = actor.account[:128] if actor.account else None
            credential = actor.credential[:64] if actor.credential else None
            pushed = Pushed(utcnow(), account, credential)
        await self._guarded(name, [digest], [tag] if tag else [], digest, pushed)

    async def tag_deleted(self, name: str, tag: str) -> None:
        await self._guarded(name, [], [tag])

    async def manifest_deleted(self, name: str, digest: Digest) -> None:
        tagged = await asyncio.to_thread(self._store.tags_of, name, [str(digest)])
        await self._guarded(name, [digest], tagged[str(digest)])

    async def _guarded(
        self,
        name: str,
        digests: list[Digest],
        tags: list[str],
        pushed_digest: Digest | None = None,
        pushed: Pushed | None = None,
    ) -> None:
        """Sync, sharing the lock and the transaction with the repository's other
        events that arrive meanwhile (group commit): 32 concurrent pushes to one
        repository took its lock and wrote a transaction each, one after another.
        Each event still returns only once a sync that read storage after its change
        has committed."""
        batch = self._queued.get(name)
        if batch is None:
            batch = self._queued[name] = _Batch()
            if name not in self._running:
                self._running[name] = asyncio.ensure_future(self._drain(name))
        batch.add(digests, tags, pushed_digest, pushed)
        await asyncio.shield(batch.done)

    async def _drain(self, name: str) -> None:
        try:
            while (batch := self._queued.pop(name, None)) is not None:
                try:
                    await self._sync_many(name, batch.digests, batch.tags, batch.pushed)
                except Exception:
                    log.exception("repository index: could not record a change of %s", name[:255])
                finally:
                    batch.done.set_result(None)
        finally:
            del self._running[name]

    # -- syncing --------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _locked(self, name: str) -> AsyncIterator[None]:
        """The repository's index lock: its ``_manifests`` directory (absent: nothing
        there to race with)."""
        try:
            async with self._driver.lock(layout.manifests(name), LOCK_WAIT):
                yield
                return
        except PathNotFoundError:
            pass
        yield

    async def sync(
        self,
        name: str,
        digests: Iterable[Digest],
        tags: Iterable[str],
        pushed_digest: Digest | None = None,
        pushed: Pushed | None = None,
    ) -> None:
        """Make the index's rows for ``digests`` and ``tags`` of ``name`` what storage
        holds now. ``pushed`` is recorded on them where they name ``pushed_digest``."""
        known = {str(pushed_digest): pushed} if pushed_digest and pushed else {}
        await self._sync_many(name, list(digests), list(tags), known)

    async def _sync_many(
        self, name: str, digests: list[Digest], tags: list[str], pushed: dict[str, Pushed]
    ) -> None:
        """:meth:`sync` for several events: ``pushed`` by digest."""
        try:
            async with self._locked(name):
                manifests: dict[str, ManifestEntry | None] = {}
                for d in digests:
                    if str(d) not in manifests:
                        manifests[str(d)] = await self._manifest_now(name, d, pushed)
                found: dict[str, TagEntry | None] = {}
                for tag in tags:
                    if tag not in found:
                        found[tag] = await self._tag_now(name, tag, pushed)
                await asyncio.to_thread(self._store.apply, name, manifests=manifests, tags=found)
        except LockTimeoutError:
            log.warning(
                "repository index: %s stayed locked; its next change or "
                "`hatchway index rebuild` mends it",
                name[:255],
            )

    async def _link(self, path: str) -> str | None:
        try:
            return (await self._driver.get_content(path)).decode(errors="replace")
        except PathNotFoundError:
            return None

    async def _mtime(self, path: str) -> datetime | None:
        try:
            return datetime.fromtimestamp((await self._driver.stat(path)).modified, UTC)
        except PathNotFoundError:
            return None

    async def _manifest_now(
        self, name: str, d: Digest, known: dict[str, Pushed]
    ) -> ManifestEntry | None:
        path = layout.revision_link(name, d)
        if await self._link(path) != str(d):
            return None
        summary = await self.summaries.get(d)
        if summary is None:
            return None
        pushed = known.get(str(d))
        if pushed is None:
            old = await asyncio.to_thread(self._store.manifest, name, str(d))
            pushed = old.pushed if old is not None else Pushed(await self._mtime(path))
        return entry_of(summary, pushed)

    async def _tag_now(self, name: str, tag: str, known: dict[str, Pushed]) -> TagEntry | None:
        path = layout.tag_current(name, tag)
        current = await self._link(path)
        if current is None:
            return None
        pushed = known.get(current)
        if pushed is not None:
            return TagEntry(tag, current, pushed)
        old = await asyncio.to_thread(self._store.tag, name, tag)
        if old is not None and old.digest == current:
            return old
        return TagEntry(tag, current, Pushed(await self._mtime(path)))

    # -- rebuilding -----------------------------------------------------------------

    async def _revisions(self, name: str) -> list[Digest]:
        found = []
        with contextlib.suppress(PathNotFoundError):
            for alg_dir in await self._driver.list(layout.revisions(name)):
                algorithm = alg_dir.rsplit("/", 1)[1]
                for entry in await self._driver.list(alg_dir):
                    with contextlib.suppress(HatchwayError):
                        found.append(Digest.parse(f"{algorithm}:{entry.rsplit('/', 1)[1]}"))
        return found

    async def _tag_names(self, name: str) -> list[str]:
        try:
            return [p.rsplit("/", 1)[1] for p in await self._driver.list(layout.tags(name))]
        except PathNotFoundError:
            return []

    async def rebuild_repository(self, name: str) -> tuple[int, int]:
        """Index ``name`` afresh from storage (keeping who pushed what the index knew);
        returns (manifests, tags) indexed."""
        async with self._locked(name):
            known, old_tags = await asyncio.to_thread(self._store.existing, name)
            manifests = []
            for d in await self._revisions(name):
                path = layout.revision_link(name, d)
                if await self._link(path) != str(d):
                    continue
                summary = await self.summaries.get(d)
                if summary is None:
                    continue
                pushed = known.get(str(d)) or Pushed(await self._mtime(path))
                manifests.append(entry_of(summary, pushed))
            tags = []
            for tag in await self._tag_names(name):
                path = layout.tag_current(name, tag)
                current = await self._link(path)
                if current is None:
                    continue
                old = old_tags.get(tag)
                if old is not None and old.digest == current:
                    tags.append(old)
                else:
                    tags.append(TagEntry(tag, current, Pushed(await self._mtime(path))))
            await asyncio.to_thread(self._store.replace, name, manifests, tags)
        return len(manifests), len(tags)

    async def first_build(self) -> RebuildReport | None:
        """Build the index if it is empty while storage has repositories (a store from
        before the index existed, or from distribution); None when there was nothing to do."""
        if await asyncio.to_thread(self._store.names) or not await self._catalog.names():
            return None
        return await self.rebuild()

    async def rebuild(self) -> RebuildReport:
        """Index every repository in storage and drop those storage no longer has.
        Idempotent, and safe while the registry serves (each repository under its lock)."""
        report = RebuildReport()
        names = await self._catalog.names()
        for name in names:
            manifests, tags = await self.rebuild_repository(name)
            report.repositories += 1
            report.manifests += manifests
            report.tags += tags
        present = set(names)
        for gone in await asyncio.to_thread(self._store.names):
            # Looked at again under its lock: a push may have made it since the walk.
            if gone not in present and await self.rebuild_repository(gone) == (0, 0):
                report.dropped.append(gone)
        return report
