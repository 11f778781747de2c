"""The mirror: which repositories are mirrored, and fetching what a pull needs.

- A tag is checked upstream with ``HEAD`` (free against Docker Hub's pull limit) at most
  once per ``freshness`` interval by all workers and replicas together (the last check is
  in the database, :mod:`.shared`); the manifest is fetched only when the digest changed.
  A manifest by digest and a blob are served from the store once there.
- When the upstream is down, slow or refusing, a stored tag is served marked stale; what
  is not stored is :class:`UpstreamDown` (the HTTP layer answers 503 at once).
- Concurrent pulls of one blob not stored yet share one download (:mod:`.fetch`).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from dataclasses import dataclass

from hatchway.config.proxy import Upstream
from hatchway.errors import BLOB_UNKNOWN, MANIFEST_UNKNOWN, HatchwayError
from hatchway.metadata.mirrorstate import Kind
from hatchway.observability import metrics
from hatchway.oci.digest import Digest, digest_bytes
from hatchway.oci.manifests import MAX_MANIFEST_SIZE
from hatchway.registry.blobs import BlobInfo
from hatchway.registry.manifests import StoredManifest
from hatchway.registry.mirror.fetch import BlobFetch
from hatchway.registry.mirror.shared import SharedState
from hatchway.registry.mirror.upstream import (
    MANIFEST_ACCEPT,
    UpstreamClient,
    UpstreamDown,
    UpstreamMissing,
)
from hatchway.registry.service import Registry

# containerd names Docker Hub "docker.io"; its registry API is registry-1.docker.io.
_ROUTES_KEPT = 10_000
_HOST_ALIASES = {"docker.io": "registry-1.docker.io", "index.docker.io": "registry-1.docker.io"}


def _next_last(link: str | None) -> str | None:
    """``last`` from an upstream's ``Link: </v2/x/tags/list?n=2&last=b>; rel="next"``."""
    if not link or 'rel="next"' not in link:
        return None
    target = link.split(";", 1)[0].strip().strip("<>")
    values = urllib.parse.parse_qs(urllib.parse.urlsplit(target).query).get("last")
    return values[0] if values else None


def _remote_name(upstream: Upstream, name: str) -> str:
    """Docker Hub's official images live under ``library/`` (``alpine`` = ``library/alpine``)."""
    if upstream.host == "registry-1.docker.io" and "/" not in name:
        return f"library/{name}"
    return name


def _client(upstream: Upstream) -> UpstreamClient:
    label = upstream.label
    return UpstreamClient(
        upstream,
        on_error=lambda: metrics.mirror_upstream_error(label),
        on_ratelimit=lambda remaining: metrics.mirror_ratelimit(label, remaining),
    )


@dataclass(frozen=True, slots=True)
class MirrorRoute:
    upstream: Upstream
    local: str  # the repository name here (access rules, storage)
    remote: str  # the repository name upstream

    @property
    def scope(self) -> str:
        return f"repository:{self.remote}:pull"


@dataclass(frozen=True, slots=True)
class MirroredManifest:
    manifest: StoredManifest
    result: metrics.MirrorResult  # hit, miss or stale


class Mirror:
    def __init__(
        self, upstreams: list[Upstream], registry: Registry, shared: SharedState | None = None
    ) -> None:
        self._upstreams = upstreams
        self._registry = registry
        self.shared = shared
        self._clients = {u.prefix: _client(u) for u in upstreams}
        self._checked: dict[tuple[str, str], tuple[float, Digest]] = {}
        self._fetches: dict[tuple[str, Digest], BlobFetch] = {}
        self._routes: dict[str, MirrorRoute | None] = {}  # every request asks: kept

    @property
    def registry(self) -> Registry:
        return self._registry

    @property
    def upstreams(self) -> list[Upstream]:
        return list(self._upstreams)

    async def close(self) -> None:
        for fetch in list(self._fetches.values()):
            if fetch.task is not None:
                fetch.task.cancel()
        for client in self._clients.values():
            await client.close()
        if self.shared is not None:
            await self.shared.close()

    # --- shared state (tag checks, last pulls) --------------------------------------

    async def _fresh(self, route: MirrorRoute, tag: str, d: Digest) -> bool:
        if self.shared is not None:
            return await self.shared.fresh(route.upstream, route.local, tag, d)
        checked = self._checked.get((route.local, tag))
        return (
            checked is not None
            and checked[1] == d
            and time.time() - checked[0] < route.upstream.freshness
        )

    async def _checked_now(self, route: MirrorRoute, tag: str, d: Digest) -> None:
        if self.shared is not None:
            await self.shared.checked(route.local, tag, d)
        else:
            self._checked[(route.local, tag)] = (time.time(), d)

    def pulled(self, route: MirrorRoute, d: Digest, kind: Kind, fetched: bool = False) -> None:
        """A cached manifest or blob was served (ttl: its last pull)."""
        if self.shared is not None:
            self.shared.pulled(route.upstream, route.local, d, kind, fetched)

    # --- routing --------------------------------------------------------------------

    def route(self, name: str) -> MirrorRoute | None:
        """The upstream repository behind local ``name``, or None (a local repository)."""
        try:
            return self._routes[name]
        except KeyError:
            pass
        if len(self._routes) >= _ROUTES_KEPT:
            self._routes.clear()
        route = self._routes[name] = self._find_route(name)
        return route

    def _find_route(self, name: str) -> MirrorRoute | None:
        for u in self._upstreams:
            if not u.prefix:
                return MirrorRoute(u, name, _remote_name(u, name))
            if name.startswith(u.prefix + "/"):
                return MirrorRoute(u, name, _remote_name(u, name[len(u.prefix) + 1 :]))
        return None

    def local_name(self, name: str, ns: str | None) -> str:
        """containerd's ``?ns=<host>``: ``name`` is the upstream's name on the upstream
        whose remoteurl host is ``ns``; the local name carries that upstream's prefix."""
        if not ns:
            return name
        host = ns.lower()
        host = _HOST_ALIASES.get(host, host)
        for u in self._upstreams:
            if host in (u.host, u.host.rsplit(":", 1)[0]) or _HOST_ALIASES.get(u.host) == host:
                return f"{u.prefix}/{name}" if u.prefix else name
        return name

    # --- manifests --------------------------------------------------------------------

    async def _stored(self, route: MirrorRoute, reference: str) -> StoredManifest | None:
        try:
            return await self._registry.manifests.get(route.local, reference)
        except HatchwayError as exc:
            if exc.code is not MANIFEST_UNKNOWN:
                raise
            return None

    async def manifest(self, route: MirrorRoute, reference: str) -> MirroredManifest:
        label = route.upstream.label
        by_digest = ":" in reference
        stored = await self._stored(route, reference)
        if stored is not None and by_digest:
            metrics.mirror_lookup(label, "hit")
            self.pulled(route, stored.digest, "manifest")
            return MirroredManifest(stored, "hit")
        if stored is not None and await self._fresh(route, reference, stored.digest):
            metrics.mirror_lookup(label, "hit")
            self.pulled(route, stored.digest, "manifest")
            return MirroredManifest(stored, "hit")
        client = self._clients[route.upstream.prefix]
        path = f"/v2/{route.remote}/manifests/{reference}"
        try:
            if stored is not None:
                response = await client.send("HEAD", path, route.scope, {"Accept": MANIFEST_ACCEPT})
                await response.aclose()
                upstream_digest = response.headers.get("Docker-Content-Digest")
                if upstream_digest == str(stored.digest):
                    await self._checked_now(route, reference, stored.digest)
                    metrics.mirror_lookup(label, "hit")
                    self.pulled(route, stored.digest, "manifest")
                    return MirroredManifest(stored, "hit")
            body = await self._get_manifest(client, route, path)
        except UpstreamMissing:
            raise HatchwayError(MANIFEST_UNKNOWN, detail={"reference": reference}) from None
        except UpstreamDown as exc:
            if stored is not None:
                metrics.mirror_lookup(label, "stale")
                self.pulled(route, stored.digest, "manifest")
                return MirroredManifest(stored, "stale")
            raise UpstreamDown(f"{route.upstream.host}: {exc}") from None
        d = digest_bytes(body)
        if by_digest and Digest.parse(reference) != d:
            raise UpstreamDown(f"{route.upstream.host} sent a manifest that is not {reference}")
        item = await self._registry.manifests.adopt(
            route.local, None if by_digest else reference, body
        )
        if not by_digest:
            await self._checked_now(route, reference, d)
        metrics.mirror_lookup(label, "miss")
        self.pulled(route, d, "manifest", fetched=True)
        return MirroredManifest(item, "miss")

    async def _get_manifest(self, client: UpstreamClient, route: MirrorRoute, path: str) -> bytes:
        response = await client.send("GET", path, route.scope, {"Accept": MANIFEST_ACCEPT})
        try:
            parts: list[bytes] = []
            total = 0
            async for chunk in response.aiter_bytes():
                total += len(chunk)
                if total > MAX_MANIFEST_SIZE:
                    raise UpstreamDown("upstream manifest larger than the 4 MiB limit")  # noqa: TRY301
                parts.append(chunk)
        except Exception as exc:
            if isinstance(exc, UpstreamDown):
                raise
            client.failed()
            raise UpstreamDown(f"upstream broke off: {type(exc).__name__}") from None
        finally:
            await response.aclose()
        body = b"".join(parts)
        announced = response.headers.get("Docker-Content-Digest")
        if announced and announced.startswith("sha256:") and announced != str(digest_bytes(body)):
            raise UpstreamDown("upstream manifest does not match its Docker-Content-Digest")
        return body

    # --- tags ----------------------------------------------------------------------

    async def tags(
        self, route: MirrorRoute, n: int | None, last: str | None
    ) -> tuple[list[str], str | None]:
        """The upstream's tag list (a page), and the ``last`` of its next page if any;
        UpstreamMissing / UpstreamDown."""
        query = {k: v for k, v in (("n", str(n) if n is not None else None), ("last", last)) if v}
        path = f"/v2/{route.remote}/tags/list"
        if query:
            path += "?" + urllib.parse.urlencode(query)
        client = self._clients[route.upstream.prefix]
        response = await client.send("GET", path, route.scope)
        try:
            body = await response.aread()
        except Exception as exc:
            client.failed()
            raise UpstreamDown(f"upstream broke off: {type(exc).__name__}") from None
        finally:
            await response.aclose()
        try:
            doc = json.loads(body)
            tags = [str(t) for t in (doc.get("tags") or [])]
        except (ValueError, AttributeError, TypeError):
            raise UpstreamDown("upstream sent no tag list") from None
        metrics.mirror_lookup(route.upstream.label, "miss")
        return tags, _next_last(response.headers.get("Link"))

    # --- blobs ---------------------------------------------------------------------

    async def blob_stored(self, route: MirrorRoute, d: Digest) -> BlobInfo | None:
        try:
            info = await self._registry.blobs.stat(route.local, d)
        except HatchwayError as exc:
            if exc.code is not BLOB_UNKNOWN:
                raise
            return None
        metrics.mirror_lookup(route.upstream.label, "hit")
        self.pulled(route, d, "blob")
        return info

    async def blob_size(self, route: MirrorRoute, d: Digest) -> int | None:
        """HEAD upstream: the blob's size (None if not said); UpstreamMissing/Down."""
        client = self._clients[route.upstream.prefix]
        response = await client.send("HEAD", f"/v2/{route.remote}/blobs/{d}", route.scope)
        await response.aclose()
        length = response.headers.get("Content-Length", "")
        return int(length) if length.isdigit() else None

    async def link_stored(self, route: MirrorRoute, d: Digest) -> bool:
        """A blob stored for another repository: link it into ``route.local`` once the
        upstream confirms this repository has it (no second download). False if not
        stored, or the upstream could not confirm."""
        if not await self._registry.blobs.exists(d):
            return False
        try:
            await self.blob_size(route, d)
        except (UpstreamDown, UpstreamMissing):
            return False
        if not await self._registry.blobs.link(route.local, d):
            return False
        metrics.mirror_lookup(route.upstream.label, "hit")  # no download: a hit
        self.pulled(route, d, "blob", fetched=True)
        return True

    def _done(self, route: MirrorRoute, key: tuple[str, Digest], fetch: BlobFetch) -> None:
        if self._fetches.get(key) is fetch:
            del self._fetches[key]
        if fetch.verified and fetch.error is None:
            self.pulled(route, fetch.digest, "blob", fetched=True)

    def blob_fetch(self, route: MirrorRoute, d: Digest) -> BlobFetch:
        """The download of ``d`` into ``route.local``: the running one, or a new one."""
        key = (route.local, d)
        fetch = self._fetches.get(key)
        if fetch is not None and not fetch.finished.is_set():
            if fetch.verified:  # every byte is here, being published: as good as cached
                metrics.mirror_lookup(route.upstream.label, "hit")
            return fetch
        metrics.mirror_lookup(route.upstream.label, "miss")
        fetch = BlobFetch(route.local, route.remote, d)
        client = self._clients[route.upstream.prefix]
        fetch.task = asyncio.ensure_future(
            fetch.run(client, self._registry.driver, self._registry.blobs)
        )
        fetch.task.add_done_callback(lambda _t: self._done(route, key, fetch))
        self._fetches[key] = fetch
        return fetch
