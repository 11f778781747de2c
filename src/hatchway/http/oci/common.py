"""Small request helpers shared by the /v2/ handlers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from aiohttp import web

from hatchway.errors import PAGINATION_NUMBER_INVALID, UNSUPPORTED, HatchwayError
from hatchway.http.state import REGISTRY
from hatchway.registry.service import Registry
from hatchway.registry.uploads import invalid_upload

# At most 19 digits: every offset fits in 63 bits, and int() never meets a huge string.
_CONTENT_RANGE_RE = re.compile(r"(?:bytes[ =])?([0-9]{1,19})-([0-9]{1,19})(?:/(?:[0-9]{1,19}|\*))?")
# Bytes asked of each recv(2) while a body streams in (asyncio's default: 256 KiB).
RECEIVE_SIZE = 1024 * 1024


def registry(request: web.Request) -> Registry:
    return request.app[REGISTRY]


def require_delete(request: web.Request) -> Registry:
    reg = registry(request)
    if not reg.delete_enabled:
        raise HatchwayError(UNSUPPORTED, "deletion is disabled (storage.delete.enabled)")
    return reg


def parse_content_range(raw: str) -> tuple[int, int]:
    """``start-end`` (with an optional ``bytes`` unit and ``/total``) -> (start, end)."""
    match = _CONTENT_RANGE_RE.fullmatch(raw.strip())
    if match is None:
        raise invalid_upload("malformed Content-Range")
    start, end = int(match.group(1)), int(match.group(2))
    if end < start:
        raise invalid_upload("Content-Range end precedes start")
    return start, end


def content_range(request: web.Request) -> tuple[int, int] | None:
    raw = request.headers.get("Content-Range")
    return None if raw is None else parse_content_range(raw)


def checked_range(request: web.Request) -> tuple[int, int] | None:
    """The Content-Range of a PATCH or PUT, checked against Content-Length."""
    rng = content_range(request)
    length = request.content_length
    if rng is not None and length is not None and rng[1] - rng[0] + 1 != length:
        raise invalid_upload("Content-Range does not match Content-Length")
    return rng


async def body(request: web.Request) -> AsyncIterator[bytes]:
    """The request body as the buffers the server received, each passed on as is.

    Not ``iter_any()``: that joins whatever is buffered into one new bytes (a copy of
    every byte of a blob push, about a tenth of a push's CPU); ``readchunk()`` hands
    over each received buffer without copying it."""
    transport = request.transport
    before = getattr(transport, "max_size", None)
    if isinstance(before, int) and before < RECEIVE_SIZE:
        transport.max_size = RECEIVE_SIZE  # type: ignore[union-attr]
    try:
        content = request.content
        while True:
            data, end_of_chunk = await content.readchunk()
            if data:
                yield data
            # Not iter_chunks(): an empty body's reader is one shared object whose
            # readchunk() says "end of the body" only once per process, after which
            # iter_chunks() loops for ever on the next empty body.
            elif not end_of_chunk or content.at_eof():
                return
    finally:
        if isinstance(before, int) and transport is not None:
            transport.max_size = before  # type: ignore[attr-defined]


def page_size(request: web.Request, default: int | None, limit: int) -> int | None:
    raw = request.query.get("n")
    if raw is None or raw == "":
        return default
    try:
        n = int(raw)
    except ValueError:
        raise HatchwayError(PAGINATION_NUMBER_INVALID, detail={"n": raw[:50]}) from None
    if n < 0:
        raise HatchwayError(PAGINATION_NUMBER_INVALID, detail={"n": n})
    return min(n, limit)


def upload_location(name: str, upload_id: str) -> str:
    return f"/v2/{name}/blobs/uploads/{upload_id}"


def upload_headers(name: str, upload_id: str, size: int) -> dict[str, str]:
    # distribution reports "0-0" for an empty upload; clients rely on the shape only.
    return {
        "Location": upload_location(name, upload_id),
        "Range": f"0-{max(size - 1, 0)}",
        "Docker-Upload-UUID": upload_id,
    }
