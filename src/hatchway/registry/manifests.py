"""Manifests: validated on push, stored as blobs, linked as revisions, served as pushed."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import OrderedDict
from collections.abc import Awaitable
from dataclasses import dataclass

from hatchway.errors import (
    DIGEST_INVALID,
    MANIFEST_BLOB_UNKNOWN,
    MANIFEST_UNKNOWN,
    PAYLOAD_TOO_LARGE,
    HatchwayError,
)
from hatchway.oci import manifests as oci_manifests
from hatchway.oci.digest import Digest, digest_bytes
from hatchway.oci.manifests import MAX_MANIFEST_SIZE, Manifest
from hatchway.registry import layout
from hatchway.registry.blobs import BlobStore
from hatchway.registry.catalog import Catalog
from hatchway.registry.index import Actor, IndexEvents
from hatchway.registry.references import ReferenceCache
from hatchway.registry.tags import Tags
from hatchway.storage.driver import PathNotFoundError, Staged, StorageDriver

_CACHE_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class StoredManifest:
    digest: Digest
    media_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class PutResult:
    digest: Digest
    subject: Digest | None


class _ContentCache:
    """Manifest bytes by digest. Content-addressed, so entries never go stale."""

    def __init__(self, max_bytes: int) -> None:
        self._items: OrderedDict[Digest, StoredManifest] = OrderedDict()
        self._bytes = 0
        self._max = max_bytes

    def get(self, d: Digest) -> StoredManifest | None:
        item = self._items.get(d)
        if item is not None:
            self._items.move_to_end(d)
        return item

    def put(self, item: StoredManifest) -> None:
        if item.digest in self._items or len(item.body) > self._max // 8:
            return
        self._items[item.digest] = item
        self._bytes += len(item.body)
        while self._bytes > self._max:
            _, old = self._items.popitem(last=False)
            self._bytes -= len(old.body)


_discards: set[asyncio.Task[None]] = set()


async def _discard(staged: asyncio.Future[Staged]) -> None:
    """Drop a staged write unless it was published (a failed or cancelled push): now
    if staging is done, else once it is (the push stopped waiting for it)."""

    def drop(done: asyncio.Future[Staged]) -> None:
        if done.cancelled() or done.exception() is not None:
            return
        task = asyncio.ensure_future(done.result().discard())
        _discards.add(task)
        task.add_done_callback(_discards.discard)

    if not staged.done():
        staged.add_done_callback(drop)
    elif not staged.cancelled() and staged.exception() is None:
        await staged.result().discard()


class Manifests:
    def __init__(
        self, driver: StorageDriver, blobs: BlobStore, tags: Tags, catalog: Catalog
    ) -> None:
        self._driver = driver
        self._blobs = blobs
        self._tags = tags
        self._catalog = catalog
        self._cache = _ContentCache(_CACHE_BYTES)
        # Told of every push and delete once storage has it (the repository index).
        self.index: IndexEvents | None = None
        # Tag resolutions kept per process (object storage with a shared database).
        self.references: ReferenceCache | None = None

    def _changing(self, name: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Around every change of ``name``'s tags, for the other processes' caches."""
        if self.references is None:
            return contextlib.nullcontext()
        return self.references.changing(name)

    async def has_revision(self, name: str, d: Digest) -> bool:
        try:
            link = await self._driver.get_content(layout.revision_link(name, d))
        except PathNotFoundError:
            return False
        return link.decode(errors="replace") == str(d)

    async def resolve(self, name: str, reference: str) -> Digest:
        """Tag or digest -> digest of a manifest present in ``name``."""
        if ":" not in reference and self.references is not None:
            return await self.references.resolve(
                name, reference, lambda: self._resolve(name, reference)
            )
        return await self._resolve(name, reference)

    async def _resolve(self, name: str, reference: str) -> Digest:
        if ":" in reference:
            d = Digest.parse(reference)
        else:
            d = await self._tags.get(name, reference)
        if not await self.has_revision(name, d):
            raise HatchwayError(MANIFEST_UNKNOWN, detail={"reference": reference})
        return d

    async def get(self, name: str, reference: str) -> StoredManifest:
        d = await self.resolve(name, reference)
        cached = self._cache.get(d)
        if cached is not None:
            return cached
        try:
            body = await self._blobs.get_small(d)
        except PathNotFoundError:
            raise HatchwayError(MANIFEST_UNKNOWN, detail={"reference": reference}) from None
        item = StoredManifest(d, oci_manifests.media_type_of(body), body)
        self._cache.put(item)
        return item

    async def _check_references(self, name: str, manifest: Manifest) -> None:
        missing = [
            str(desc.digest)
            for desc in manifest.blobs()
            if not await self._blobs.is_linked(name, desc.digest)
        ]
        missing += [
            str(desc.digest)
            for desc in manifest.manifests
            if not await self.has_revision(name, desc.digest)
        ]
        if missing:
            raise HatchwayError(MANIFEST_BLOB_UNKNOWN, detail={"digests": missing})

    async def put(
        self,
        name: str,
        reference: str,
        body: bytes,
        content_type: str | None,
        actor: Actor | None = None,
    ) -> PutResult:
        if len(body) > MAX_MANIFEST_SIZE:
            raise HatchwayError(PAYLOAD_TOO_LARGE, detail={"limit": MAX_MANIFEST_SIZE})
        manifest = oci_manifests.parse(body, content_type)
        d = digest_bytes(body)
        if ":" in reference:
            wanted = Digest.parse(reference)
            if wanted.algorithm != "sha256":
                d = digest_bytes(body, wanted.algorithm)
            if d != wanted:
                raise HatchwayError(
                    DIGEST_INVALID, detail={"expected": str(wanted), "actual": str(d)}
                )
            tag = None
        else:
            tag = self._tags.validate(reference)
        await self._check_references(name, manifest)
        # Content, revision link and referrer entry are independent, so their fsyncs
        # run at once. A revision link that lands before its content only answers
        # MANIFEST_UNKNOWN for a moment; the tag, the name clients use, comes last:
        # its link is written and synced beside them but renamed into place only
        # once they are durable and the blobs refreshed (one sync wait, not two).
        linked = asyncio.ensure_future(self._link_revision(name, d))
        steps: list[Awaitable[object]] = [self._blobs.put_small(d, body), linked]
        if manifest.subject is not None:
            steps.append(self._add_referrer(name, d, body, manifest))
        staged = asyncio.ensure_future(self._tags.stage(name, tag, d)) if tag else None
        try:
            await asyncio.gather(*steps, *([staged] if staged else []))
            try:
                await self._refresh_references(name, d, manifest)
            except HatchwayError:
                # Refused (gc took a blob meanwhile): a revision link this PUT made
                # would leave the manifest listed in the repository without its blobs.
                if linked.result():
                    with contextlib.suppress(PathNotFoundError):
                        await self._driver.delete(layout.revision_dir(name, d))
                raise
            if staged is not None:
                async with self._changing(name):
                    await staged.result().publish()
        finally:
            if staged is not None:
                await _discard(staged)
        self._cache.put(StoredManifest(d, manifest.media_type, body))
        if self.index is not None:
            await self.index.manifest_pushed(name, d, tag, actor)
        return PutResult(d, manifest.subject.digest if manifest.subject else None)

    async def adopt(self, name: str, tag: str | None, body: bytes) -> StoredManifest:
        """Store a manifest fetched by the pull-through mirror (its digest checked by the
        caller) without requiring its blobs: the mirror fetches those when pulled."""
        d = digest_bytes(body)
        await self._blobs.put_small(d, body)
        await self._link_revision(name, d)
        if tag is not None:
            async with self._changing(name):
                await self._tags.set(name, tag, d)
        item = StoredManifest(d, oci_manifests.media_type_of(body), body)
        self._cache.put(item)
        if self.index is not None:
            await self.index.manifest_pushed(name, d, tag, None)
        return item

    async def _refresh_references(self, name: str, d: Digest, manifest: Manifest) -> None:
        """Touch what the manifest needs, after its revision link is written.

        A gc whose mark missed the new revision began before this touch, so it sees
        these blobs as fresh; if it removed one first, the push is refused here. A
        blob already touched since the latest gc began needs no touch (and no lock):
        see ``BlobStore.keep``.
        """
        fence = await self._blobs.gc_fence()  # read after the revision link is durable
        gone = [
            str(desc.digest)
            for desc in manifest.blobs()
            if not await self._blobs.keep_linked(name, desc.digest, fence)
        ]
        gone += [
            str(m)
            for m in (d, *(desc.digest for desc in manifest.manifests))
            if not await self._blobs.keep(m, fence)
        ]
        if gone:
            raise HatchwayError(MANIFEST_BLOB_UNKNOWN, detail={"digests": gone})

    async def _link_revision(self, name: str, d: Digest) -> bool:
        """Link revision ``d`` into ``name``; whether it was not linked before."""
        if await self.has_revision(name, d):
            return False
        try:
            await self._driver.stat(layout.manifests(name))
            first = False
        except PathNotFoundError:
            first = True
        await self._driver.put_content(layout.revision_link(name, d), str(d).encode())
        if first:
            await self._catalog.changed()
        return True

    async def _add_referrer(self, name: str, d: Digest, body: bytes, m: Manifest) -> None:
        assert m.subject is not None
        descriptor: dict[str, object] = {
            "mediaType": m.media_type,
            "digest": str(d),
            "size": len(body),
        }
        artifact_type = m.effective_artifact_type()
        if artifact_type:
            descriptor["artifactType"] = artifact_type
        if m.annotations:
            descriptor["annotations"] = m.annotations
        path = layout.referrer_entry(name, m.subject.digest, d)
        await self._driver.put_content(path, json.dumps(descriptor).encode())

    async def delete(self, name: str, reference: str) -> None:
        """Delete a tag, or a manifest with every tag and referrer entry naming it."""
        if ":" not in reference:
            async with self._changing(name):
                await self._tags.delete(name, reference)
            if self.index is not None:
                await self.index.tag_deleted(name, reference)
            return
        d = Digest.parse(reference)
        if not await self.has_revision(name, d):
            raise HatchwayError(MANIFEST_UNKNOWN, detail={"reference": reference})
        body = await self._blobs.get_small(d)
        async with self._changing(name):
            await self._tags.untag_digest(name, d)
            try:
                subject = oci_manifests.references(body).subject
            except HatchwayError:
                subject = None
            if subject is not None:
                with contextlib.suppress(PathNotFoundError):
                    await self._driver.delete(layout.referrer_entry(name, subject.digest, d))
            await self._driver.delete(layout.revision_dir(name, d))
        if self.index is not None:
            await self.index.manifest_deleted(name, d)
