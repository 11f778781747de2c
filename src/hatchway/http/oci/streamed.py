"""Blob GETs from a store that is not a local file (S3): streamed, with ``Range``, or
redirected to a presigned URL of the store (``storage.redirect``)."""

from __future__ import annotations

import re

from aiohttp import web

from hatchway.http.oci.common import registry
from hatchway.http.state import CONFIG
from hatchway.http.tcp import unpaced_on_loopback
from hatchway.registry.blobs import BlobInfo

_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


def byte_range(header: str | None, size: int) -> tuple[int, int] | bool | None:
    """The (first, last) inclusive range a single ``bytes`` Range asks of ``size``
    bytes; None to send it all (no Range, or one to ignore as RFC 9110 says: another
    unit, several ranges, bad syntax); False when unsatisfiable (416)."""
    if header is None:
        return None
    match = _RANGE_RE.fullmatch(header)
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text:
        if not last_text:
            return None
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            return False
        return max(size - suffix, 0), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if last_text and last < first:
        return None
    if first >= size:
        return False
    return first, min(last, size - 1)


async def serve(
    request: web.Request, info: BlobInfo, headers: dict[str, str]
) -> web.StreamResponse:
    config = request.app[CONFIG]
    if request.method == "GET" and config.storage.redirects and config.storage.redirect:
        url = registry(request).blobs.redirect_url(info.digest, config.storage.redirect.expiry)
        if url is not None:
            return web.Response(status=307, headers={"Location": url, "Content-Length": "0"})
    wanted = byte_range(request.headers.get("Range"), info.size)
    if wanted is False:
        return web.Response(
            status=416, headers={**headers, "Content-Range": f"bytes */{info.size}"}
        )
    first, last = wanted if isinstance(wanted, tuple) else (0, info.size - 1)
    length = last - first + 1 if info.size else 0
    headers["Content-Length"] = str(length)
    status = 200
    if isinstance(wanted, tuple):
        status = 206
        headers["Content-Range"] = f"bytes {first}-{last}/{info.size}"
    if request.method != "HEAD" and request.transport is not None:
        unpaced_on_loopback(request.transport.get_extra_info("socket"))
    response = web.StreamResponse(status=status, headers=headers)
    await response.prepare(request)
    if request.method == "HEAD" or not length:
        await response.write_eof()
        return response
    stream = registry(request).blobs.read(info.digest, first)
    left = length
    try:
        async for chunk in stream:
            piece = chunk[:left]
            await response.write(piece)
            left -= len(piece)
            if not left:
                break
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    await response.write_eof()
    return response
