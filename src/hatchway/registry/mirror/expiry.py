"""``ttl``: cached content not pulled for that long is removed, as distribution's proxy
expires what it cached (default 168h; ``0`` keeps everything).

A purge pass (one worker of each server runs it, every tenth of the shortest ttl, at
least every second and at most every hour) takes the manifests and blobs whose last pull
(:mod:`.shared`) is older than their upstream's ``ttl`` and removes them from the
mirrored repository: a manifest with the tags that point to it, a blob's link. The next
pull fetches them again. The bytes of a blob no repository links any more are freed by
``hatchway gc`` (online, with the servers running), as for any deleted content.

Items cached before this was recorded carry no last pull: they expire ``ttl`` after
their next pull. Replicas may purge the same item at once: removing what is gone is
not an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from hatchway.errors import HatchwayError
from hatchway.metadata.mirrorstate import Pulled
from hatchway.oci.digest import Digest
from hatchway.registry.mirror.service import Mirror
from hatchway.registry.mirror.shared import SharedState, pull_window
from hatchway.storage.driver import PathNotFoundError

log = logging.getLogger("hatchway.mirror")
_BATCH = 500


def purge_interval(ttls: list[float]) -> float | None:
    """How often the purge runs; None when no upstream has a ttl."""
    live = [t for t in ttls if t > 0]
    if not live:
        return None
    return min(max(min(live) / 10, 1.0), 3600.0)


async def _tags_of(mirror: Mirror, name: str, d: Digest) -> list[str]:
    tags = []
    with contextlib.suppress(HatchwayError, PathNotFoundError):
        for tag in await mirror.registry.tags.all(name):
            with contextlib.suppress(HatchwayError, PathNotFoundError):
                if await mirror.registry.tags.get(name, tag) == d:
                    tags.append(tag)
    return tags


async def _remove(mirror: Mirror, item: Pulled) -> list[str]:
    """Remove ``item`` from its repository; the tags that went with it."""
    d = Digest.parse(item.digest)
    if item.kind == "blob":
        with contextlib.suppress(HatchwayError, PathNotFoundError):
            await mirror.registry.blobs.unlink(item.repository, d)
        return []
    tags = await _tags_of(mirror, item.repository, d)
    with contextlib.suppress(HatchwayError, PathNotFoundError):
        await mirror.registry.manifests.delete(item.repository, item.digest)
    return tags


async def purge_expired(mirror: Mirror, shared: SharedState, now: float | None = None) -> int:
    """One pass: remove what was not pulled for its ttl; how many items went."""
    now = time.time() if now is None else now
    removed = 0
    cutoff = now  # rows newer than every ttl allows are not even read
    live = [u.ttl + pull_window(u.ttl) for u in mirror.upstreams if u.ttl > 0]
    if live:
        cutoff = now - min(live)
    while True:
        items = await asyncio.to_thread(shared.store.not_pulled_since, cutoff, _BATCH)
        progressed = False
        for item in items:
            route = mirror.route(item.repository)
            ttl = route.upstream.ttl if route is not None else 0.0
            if ttl > 0 and item.pulled_at >= now - ttl - pull_window(ttl):
                continue  # a longer ttl than the shortest: not yet
            # Not mirrored any more, or ttl 0: nothing to expire, only the row to drop.
            tags = await _remove(mirror, item) if ttl > 0 else []
            await asyncio.to_thread(shared.store.forget, item, tags)
            shared.forget_pulled(item.repository, item.digest)
            removed += ttl > 0
            progressed = True
        if len(items) < _BATCH or not progressed:
            return removed


@contextlib.asynccontextmanager
async def purging(mirror: Mirror) -> AsyncIterator[None]:
    """Run the purge pass in the background while in the block (one worker)."""
    interval = purge_interval([u.ttl for u in mirror.upstreams])
    shared = mirror.shared
    if interval is None or shared is None:
        yield
        return

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                removed = await purge_expired(mirror, shared)
            except Exception:
                log.exception("mirror: ttl purge failed")
                continue
            if removed:
                log.info("mirror: removed %d cached items not pulled within their ttl", removed)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
