"""The pull-through mirror's side of /v2/ (only with ``proxy:`` configured).

Under a mirrored prefix, manifest and blob GET/HEAD go through the mirror; every write
is refused with UNSUPPORTED (405), as distribution's proxy refuses pushes. Responses say
how they were served in ``X-Hatchway-Mirror`` (hit, miss, stale); a stale one also
carries ``Warning: 110 - "Response is stale"`` (RFC 7234). Access rules apply to the
local name (``dockerhub/library/alpine``), as to any repository.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from collections.abc import AsyncIterator

from aiohttp import web

from hatchway.config.model import Config
from hatchway.errors import BLOB_UNKNOWN, NAME_UNKNOWN, UNAVAILABLE, UNSUPPORTED, HatchwayError
from hatchway.http.oci import blobs, listing
from hatchway.http.oci import manifests as manifest_routes
from hatchway.http.oci.common import page_size
from hatchway.http.oci.listing import TAGS_MAX
from hatchway.http.state import REGISTRY
from hatchway.metadata.engine import Database, database_dsn
from hatchway.metadata.mirrorstate import MirrorStateStore
from hatchway.oci.digest import Digest
from hatchway.oci.names import validate_name
from hatchway.registry.mirror import Mirror, MirrorRoute, UpstreamDown, UpstreamMissing
from hatchway.registry.mirror.expiry import purging
from hatchway.registry.mirror.fetch import FetchFailed
from hatchway.registry.mirror.shared import SharedState

MIRROR = web.AppKey("mirror", Mirror)
HEADER = "X-Hatchway-Mirror"
STALE_WARNING = '110 - "Response is stale"'
_READS = frozenset({"GET", "HEAD"})


def setup(app: web.Application, config: Config, worker: int = -1) -> None:
    """Attach the mirror when ``proxy:`` is configured; nothing otherwise. Its tag checks
    and last pulls live in the database; worker 0 (or the only one) runs the ttl purge."""
    if config.proxy is None:
        return
    upstreams = config.proxy.all()
    dsn = database_dsn(config)

    async def mirror_ctx(app: web.Application) -> AsyncIterator[None]:
        db = Database(dsn)
        await asyncio.to_thread(db.create_schema)
        mirror = app[MIRROR] = Mirror(upstreams, app[REGISTRY], SharedState(MirrorStateStore(db)))
        try:
            if worker <= 0:
                async with purging(mirror):
                    yield
            else:
                yield
        finally:
            await mirror.close()
            db.dispose()

    app.cleanup_ctx.append(mirror_ctx)


def route_for(request: web.Request, name: str) -> tuple[str, MirrorRoute | None]:
    """The local repository name a request means (containerd's ``?ns=`` adds the
    upstream's prefix) and its mirror route; writes to a mirrored name are refused."""
    mirror = request.app.get(MIRROR)
    if mirror is None:
        return name, None
    local = mirror.local_name(name, request.query.get("ns"))
    if local != name:
        validate_name(local)
    route = mirror.route(local)
    if route is not None and request.method not in _READS:
        raise HatchwayError(
            UNSUPPORTED,
            f"{local} is a read-only mirror of {route.upstream.host}: push elsewhere",
            {"repository": local},
        )
    return local, route


def _unavailable(route: MirrorRoute, exc: Exception) -> HatchwayError:
    return HatchwayError(
        UNAVAILABLE,
        f"upstream registry {route.upstream.host} unavailable and nothing cached: {exc}",
    )


async def manifest(request: web.Request, route: MirrorRoute, reference: str) -> web.StreamResponse:
    mirror = request.app[MIRROR]
    try:
        result = await mirror.manifest(route, reference)
    except UpstreamDown as exc:
        raise _unavailable(route, exc) from None
    response = manifest_routes.respond(request, result.manifest)
    response.headers[HEADER] = result.result
    if result.result == "stale":
        response.headers["Warning"] = STALE_WARNING
    return response


async def blob(request: web.Request, route: MirrorRoute, digest: str) -> web.StreamResponse:
    mirror = request.app[MIRROR]
    d = Digest.parse(digest)
    info = await mirror.blob_stored(route, d)
    if info is not None:
        response = await blobs.respond(request, info)
        response.headers[HEADER] = "hit"
        return response
    if await mirror.link_stored(route, d):
        response = await blobs.get(request, route.local, digest)
        response.headers[HEADER] = "hit"
        return response
    headers = {
        "Docker-Content-Digest": str(d),
        "Content-Type": "application/octet-stream",
        "ETag": f'"{d}"',
        HEADER: "miss",
    }
    if request.method == "HEAD":
        try:
            size = await mirror.blob_size(route, d)
        except UpstreamMissing:
            raise HatchwayError(BLOB_UNKNOWN, detail={"digest": digest}) from None
        except UpstreamDown as exc:
            raise _unavailable(route, exc) from None
        if size is not None:
            headers["Content-Length"] = str(size)
        return web.Response(headers=headers)
    fetch = mirror.blob_fetch(route, d)
    result = "hit" if fetch.verified else "miss"
    await fetch.started.wait()
    file = fetch.open_follower()
    if file is None:
        await fetch.finished.wait()
        if isinstance(fetch.error, UpstreamMissing):
            raise HatchwayError(BLOB_UNKNOWN, detail={"digest": digest})
        if fetch.error is not None:
            raise _unavailable(route, Exception(str(fetch.error)))
        response = await blobs.get(request, route.local, digest)
        response.headers[HEADER] = result
        return response
    if fetch.size is not None:
        headers["Content-Length"] = str(fetch.size)
    response = web.StreamResponse(headers=headers)
    try:
        await response.prepare(request)
        async with contextlib.aclosing(fetch.follow(file)) as chunks:
            async for chunk in chunks:
                await response.write(chunk)
    except FetchFailed:
        # The status is sent: cut the connection so the client sees a short body.
        if request.transport is not None:
            request.transport.close()
        return response
    finally:
        file.close()
    await response.write_eof()
    return response


async def tags(request: web.Request, route: MirrorRoute) -> web.StreamResponse:
    """The upstream's tags (as distribution's proxy lists them); when the upstream is
    down, the tags pulled through here, marked stale."""
    n = page_size(request, None, TAGS_MAX)
    try:
        names, last = await request.app[MIRROR].tags(route, n, request.query.get("last"))
    except UpstreamMissing:
        raise HatchwayError(NAME_UNKNOWN, detail={"name": route.local}) from None
    except UpstreamDown as exc:
        try:
            response = await listing.tags(request, route.local)
        except HatchwayError as error:
            if error.code is not NAME_UNKNOWN:
                raise
            raise _unavailable(route, exc) from None
        response.headers[HEADER] = "stale"
        response.headers["Warning"] = STALE_WARNING
        return response
    headers = {HEADER: "miss"}
    if last is not None:
        query = urllib.parse.urlencode({"n": n, "last": last} if n else {"last": last})
        headers["Link"] = f'</v2/{route.local}/tags/list?{query}>; rel="next"'
    return web.json_response({"name": route.local, "tags": names}, headers=headers)
