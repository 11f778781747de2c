"""What the mirror's workers and replicas share through the database (see
:mod:`hatchway.metadata.mirrorstate`), with a small cache in each worker in front of it.

- Tag checks: a tag checked upstream by any worker within ``freshness`` is fresh for all.
  A worker asks the database only when its own memory does not say so already.
- Last pulls: each pull of a cached manifest or blob is recorded at most once per
  :func:`pull_window` per worker (the hit path does no database write in between, and
  never waits for one); a fetch from upstream is always recorded.

The database is a help here, not a requirement for serving: when it fails, the worker
goes on with what it knows (a tag is checked upstream again; a pull is not recorded) and
says so in the log.
"""

from __future__ import annotations

import asyncio
import logging
import time

from hatchway.config.proxy import Upstream
from hatchway.metadata.mirrorstate import Kind, MirrorStateStore, Pulled
from hatchway.oci.digest import Digest

log = logging.getLogger("hatchway.mirror")
# The per-worker caches start over past this many entries (the database keeps the truth).
_CACHE_MAX = 100_000


def pull_window(ttl: float) -> float:
    """How stale a recorded last pull may be: a tenth of ``ttl``, at most an hour."""
    return min(ttl / 10, 3600.0)


class SharedState:
    def __init__(self, store: MirrorStateStore) -> None:
        self.store = store
        self._checked: dict[tuple[str, str], tuple[float, str]] = {}  # -> (at, digest)
        self._pulled: dict[tuple[str, str], float] = {}
        self._writes: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        if self._writes:
            await asyncio.wait(self._writes, timeout=5)

    # --- tag freshness -------------------------------------------------------------

    async def fresh(self, upstream: Upstream, local: str, tag: str, digest: Digest) -> bool:
        """Whether ``tag`` (stored here as ``digest``) was checked upstream, by any worker
        or replica, less than ``freshness`` ago."""
        now = time.time()
        key = (local, tag)
        mine = self._checked.get(key)
        if mine is not None and mine[1] == str(digest) and now - mine[0] < upstream.freshness:
            return True
        try:
            check = await asyncio.to_thread(self.store.tag_check, local, tag)
        except Exception as exc:
            log.warning("mirror: tag checks unavailable (%s)", type(exc).__name__)
            return False
        if check is None or check.digest != str(digest):
            return False
        self._remember_check(key, check.checked_at, check.digest)
        return now - check.checked_at < upstream.freshness

    def _remember_check(self, key: tuple[str, str], at: float, digest: str) -> None:
        if len(self._checked) >= _CACHE_MAX:
            self._checked.clear()
        self._checked[key] = (at, digest)

    async def checked(self, local: str, tag: str, digest: Digest) -> None:
        """``tag`` was checked upstream just now and is ``digest``."""
        now = time.time()
        self._remember_check((local, tag), now, str(digest))
        try:
            await asyncio.to_thread(self.store.record_tag_check, local, tag, str(digest), now)
        except Exception as exc:
            log.warning("mirror: could not record a tag check (%s)", type(exc).__name__)

    # --- last pulls ----------------------------------------------------------------

    def pulled(
        self, upstream: Upstream, local: str, digest: Digest, kind: Kind, fetched: bool = False
    ) -> None:
        """Record (in the background) that ``digest`` was pulled through ``local``."""
        if upstream.ttl <= 0:
            return
        now = time.time()
        key = (local, str(digest))
        last = self._pulled.get(key)
        if not fetched and last is not None and now - last < pull_window(upstream.ttl):
            return
        if len(self._pulled) >= _CACHE_MAX:
            self._pulled.clear()
        self._pulled[key] = now
        item = Pulled(local, str(digest), kind, now)
        task = asyncio.ensure_future(self._record(item))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _record(self, item: Pulled) -> None:
        try:
            await asyncio.to_thread(self.store.record_pulls, [item])
        except Exception as exc:
            self._pulled.pop((item.repository, item.digest), None)
            log.warning("mirror: could not record a pull (%s)", type(exc).__name__)

    def forget_pulled(self, local: str, digest: str) -> None:
        self._pulled.pop((local, digest), None)
