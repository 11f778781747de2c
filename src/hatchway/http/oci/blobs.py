"""GET/HEAD/DELETE /v2/<name>/blobs/<digest>."""

from __future__ import annotations

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from multidict import CIMultiDict

from hatchway.http.oci import streamed
from hatchway.http.oci.common import registry, require_delete
from hatchway.http.tcp import unpaced_on_loopback
from hatchway.oci.digest import Digest
from hatchway.registry.blobs import BlobInfo


def _ignorable_range_removed(request: web.Request) -> web.Request:
    """RFC 9110: a Range with another unit, or several ranges, is ignored (200), not 416."""
    raw = request.headers.get("Range")
    if raw is None:
        return request
    unit, _, spec = raw.partition("=")
    if unit.strip().lower() == "bytes" and "," not in spec:
        return request
    headers = CIMultiDict(request.headers)
    del headers["Range"]
    return request.clone(headers=headers)


class _BlobFileResponse(web.FileResponse):
    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if isinstance(request, web.Request):
            request = _ignorable_range_removed(request)
        return await super().prepare(request)


async def get(request: web.Request, name: str, digest: str) -> web.StreamResponse:
    return await respond(request, await registry(request).blobs.stat(name, Digest.parse(digest)))


async def respond(request: web.Request, info: BlobInfo) -> web.StreamResponse:
    """The response for a blob already looked up (the mirror has it at hand)."""
    d = info.digest
    headers = {
        "Docker-Content-Digest": str(d),
        "Content-Type": "application/octet-stream",
        "ETag": f'"{d}"',
        "Cache-Control": "max-age=31536000",
        "Accept-Ranges": "bytes",
    }
    if info.local_path is not None:
        # Zero-copy: aiohttp uses sendfile(2) and handles Range/HEAD itself. asyncio's
        # sendfile already asks for the whole remaining count per call.
        if request.method != "HEAD" and request.transport is not None:
            unpaced_on_loopback(request.transport.get_extra_info("socket"))
        return _BlobFileResponse(info.local_path, headers=headers)
    return await streamed.serve(request, info, headers)


async def delete(request: web.Request, name: str, digest: str) -> web.StreamResponse:
    d = Digest.parse(digest)
    await require_delete(request).blobs.unlink(name, d)
    return web.Response(status=202, headers={"Content-Length": "0"})
