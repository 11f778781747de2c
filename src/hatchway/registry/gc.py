"""Garbage collection: mark every blob a manifest of any repository references, sweep the rest.

Safe while the registry serves. gc first writes a fence file and takes its storage
mtime as the fence: the moment mark began, on the clock blob mtimes use. A blob is
removed only if it is unmarked and was last touched before the fence minus the grace
period, checked and removed under the blob's storage lock. Every push touches what it
relies on under that lock *after* making it reachable (a blob upload after its layer
link, a manifest push after its revision link: see ``BlobStore.refresh``). So a push
that mark missed began touching after the fence and its blobs are kept, or gc removed
one first and the push is refused, never acknowledged. A layer link is removed, under
its own lock, only while its blob is still absent. A manifest push skips the touch of
a blob already touched at or after the current fence (``BlobStore.keep``): this gc
keeps it, and a later one's mark sees the push.

The grace period keeps layers a push has uploaded but not yet referenced.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

from hatchway.errors import HatchwayError
from hatchway.oci import manifests as oci_manifests
from hatchway.oci.digest import Digest
from hatchway.registry import layout
from hatchway.registry.service import Registry
from hatchway.storage.driver import LockTimeoutError, PathNotFoundError, StorageDriver

# A lock gc cannot get soon belongs to a request using that blob or session right now:
# skip it this time rather than stall the sweep.
_LOCK_WAIT = 1.0


@dataclass
class GCReport:
    repositories: int = 0
    manifests: int = 0
    marked: int = 0
    blobs_deleted: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    links_deleted: int = 0
    uploads_deleted: list[str] = field(default_factory=list)
    writes_aborted: int = 0  # open multipart uploads of an object store


async def _children(driver: StorageDriver, path: str) -> list[str]:
    try:
        return await driver.list(path)
    except PathNotFoundError:
        return []


async def _digests_under(driver: StorageDriver, path: str) -> list[Digest]:
    """``<path>/<alg>/<hex>`` directories -> digests."""
    found = []
    for alg_dir in await _children(driver, path):
        algorithm = alg_dir.rsplit("/", 1)[1]
        for entry in await _children(driver, alg_dir):
            try:
                found.append(Digest.parse(f"{algorithm}:{entry.rsplit('/', 1)[1]}"))
            except HatchwayError:
                continue
    return found


async def purge_uploads(
    registry: Registry, names: list[str], max_age: float, dry_run: bool, report: GCReport
) -> None:
    now = time.time()
    for name in names:
        for upload in await _children(registry.driver, layout.uploads(name)):
            upload_id = upload.rsplit("/", 1)[1]
            if now - await registry.uploads.started_at(name, upload_id) <= max_age:
                continue
            if dry_run:
                report.uploads_deleted.append(f"{name}/{upload_id}")
                continue
            # Under the session's lock: a request still writing to it keeps it.
            with contextlib.suppress(PathNotFoundError, LockTimeoutError):
                async with registry.driver.lock(upload, 0):
                    await registry.driver.delete(upload)
                    report.uploads_deleted.append(f"{name}/{upload_id}")
    # An object store's multipart uploads that a killed writer left open (invisible,
    # but stored and billed) are aborted once as old as a stale session.
    abort = getattr(registry.driver, "abort_incomplete", None)
    if abort is not None and not dry_run:
        with contextlib.suppress(PathNotFoundError):
            report.writes_aborted += len(await abort(layout.REPOSITORIES, now - max_age))
        # Blobs whose digest came with the upload are streamed to their own key.
        with contextlib.suppress(PathNotFoundError):
            report.writes_aborted += len(await abort(layout.BLOBS, now - max_age))


async def _fence(driver: StorageDriver, dry_run: bool) -> float:
    """The time mark begins, as the storage clock that stamps blob mtimes reads it."""
    if dry_run:
        return time.time()
    await driver.put_content(layout.GC_FENCE, str(time.time()).encode())
    return (await driver.stat(layout.GC_FENCE)).modified


async def _mark(registry: Registry, names: list[str], report: GCReport) -> set[Digest]:
    marked: set[Digest] = set()
    for name in names:
        for d in await _digests_under(registry.driver, layout.revisions(name)):
            report.manifests += 1
            marked.add(d)
            try:
                body = await registry.blobs.get_small(d)
                manifest = oci_manifests.references(body)
            except (PathNotFoundError, HatchwayError):
                continue
            marked.update(desc.digest for desc in manifest.blobs())
            marked.update(desc.digest for desc in manifest.manifests)
    report.marked = len(marked)
    return marked


async def _sweep_blob(driver: StorageDriver, d: Digest, cutoff: float, dry_run: bool) -> int:
    """Remove blob ``d`` if it was last touched before ``cutoff``: its size, or -1 if kept."""
    if dry_run:
        try:
            info = await driver.stat(layout.blob_data(d))
        except PathNotFoundError:
            return -1
        return info.size if info.modified < cutoff else -1
    try:
        async with driver.lock(layout.blob_dir(d), _LOCK_WAIT):
            info = await driver.stat(layout.blob_data(d))
            if info.modified >= cutoff:
                return -1
            await driver.delete(layout.blob_dir(d))
            return info.size
    except (PathNotFoundError, LockTimeoutError):
        return -1


async def _unlink_swept(registry: Registry, name: str, d: Digest, dry_run: bool) -> bool:
    """Remove ``name``'s link to swept blob ``d``, unless the blob came back meanwhile."""
    if dry_run:
        return True
    driver = registry.driver
    try:
        async with driver.lock(layout.layer_dir(name, d), _LOCK_WAIT):
            if await registry.blobs.exists(d):
                return False
            await driver.delete(layout.layer_dir(name, d))
            return True
    except (PathNotFoundError, LockTimeoutError):
        return False


async def collect(
    registry: Registry,
    *,
    dry_run: bool = False,
    upload_age: float = 168 * 3600,
    grace: float = 3600,
) -> GCReport:
    driver = registry.driver
    report = GCReport()
    cutoff = await _fence(driver, dry_run) - grace
    names = await registry.catalog.names(with_uploads=True)
    report.repositories = len(names)
    marked = await _mark(registry, names, report)
    swept: set[Digest] = set()
    for alg_dir in await _children(driver, layout.BLOBS):
        algorithm = alg_dir.rsplit("/", 1)[1]
        for prefix_dir in await _children(driver, alg_dir):
            for blob_dir in await _children(driver, prefix_dir):
                try:
                    d = Digest.parse(f"{algorithm}:{blob_dir.rsplit('/', 1)[1]}")
                except HatchwayError:
                    continue
                if d in marked:
                    continue
                size = await _sweep_blob(driver, d, cutoff, dry_run)
                if size >= 0:
                    swept.add(d)
                    report.blobs_deleted.append(str(d))
                    report.bytes_freed += size
    # Layer links to swept blobs would only answer BLOB_UNKNOWN; remove them too.
    for name in names:
        for d in await _digests_under(driver, layout.layers(name)):
            if d in swept and await _unlink_swept(registry, name, d, dry_run):
                report.links_deleted += 1
    await purge_uploads(registry, names, upload_age, dry_run, report)
    return report
