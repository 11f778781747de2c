"""Garbage collection: mark every blob a manifest of any repository references, sweep the rest.

Safe while the registry serves: a blob touched (uploaded, linked or referenced by a
manifest push) within the grace period is never swept, so a push in flight keeps
the layers it has uploaded but not yet referenced.
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
from hatchway.storage.driver import PathNotFoundError, StorageDriver


@dataclass
class GCReport:
    repositories: int = 0
    manifests: int = 0
    marked: int = 0
    blobs_deleted: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    links_deleted: int = 0
    uploads_deleted: list[str] = field(default_factory=list)


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
            if now - await registry.uploads.started_at(name, upload_id) > max_age:
                report.uploads_deleted.append(f"{name}/{upload_id}")
                if not dry_run:
                    with contextlib.suppress(PathNotFoundError):
                        await registry.driver.delete(upload)


async def collect(
    registry: Registry,
    *,
    dry_run: bool = False,
    upload_age: float = 168 * 3600,
    grace: float = 3600,
) -> GCReport:
    driver = registry.driver
    report = GCReport()
    names = await registry.catalog.names(with_uploads=True)
    report.repositories = len(names)
    marked: set[Digest] = set()
    for name in names:
        for d in await _digests_under(driver, layout.revisions(name)):
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
    cutoff = time.time() - grace
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
                try:
                    info = await driver.stat(layout.blob_data(d))
                except PathNotFoundError:
                    continue
                if info.modified > cutoff:
                    continue
                swept.add(d)
                report.blobs_deleted.append(str(d))
                report.bytes_freed += info.size
                if not dry_run:
                    await driver.delete(blob_dir)
    # Layer links to swept blobs would only answer BLOB_UNKNOWN; remove them too.
    for name in names:
        for d in await _digests_under(driver, layout.layers(name)):
            if d in swept:
                report.links_deleted += 1
                if not dry_run:
                    with contextlib.suppress(PathNotFoundError):
                        await driver.delete(layout.layer_link(name, d).rsplit("/", 1)[0])
    await purge_uploads(registry, names, upload_age, dry_run, report)
    return report
