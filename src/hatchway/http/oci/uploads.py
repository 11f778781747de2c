"""Blob uploads: POST (start, monolithic, mount), PATCH, PUT, GET status, DELETE."""

from __future__ import annotations

import contextlib

from aiohttp import web

from hatchway.auth.access import Resource
from hatchway.errors import DIGEST_INVALID, HatchwayError
from hatchway.http.access import allowed
from hatchway.http.oci.common import body, checked_range, registry, upload_headers
from hatchway.oci.digest import Digest
from hatchway.oci.names import is_valid_name


def _created(name: str, d: Digest) -> web.Response:
    return web.Response(
        status=201,
        headers={
            "Location": f"/v2/{name}/blobs/{d}",
            "Docker-Content-Digest": str(d),
            "Content-Length": "0",
        },
    )


def _accepted(name: str, upload_id: str, size: int, status: int = 202) -> web.Response:
    headers = upload_headers(name, upload_id, size)
    headers["Content-Length"] = "0"
    return web.Response(status=status, headers=headers)


async def start(request: web.Request, name: str) -> web.StreamResponse:
    reg = registry(request)
    mount, source = request.query.get("mount"), request.query.get("from")
    if mount is not None:
        d = Digest.parse(mount)
        # Only from a repository the blob is linked in; otherwise a normal upload.
        if (
            source
            and is_valid_name(source)
            and allowed(request).allows(Resource("repository", source), "pull")
            and await reg.blobs.is_linked(source, d)
            and await reg.blobs.exists(d)
            and await reg.blobs.link(name, d)  # False: gc took the blob meanwhile
        ):
            return _created(name, d)
    digest = request.query.get("digest")
    if digest is not None:
        d = Digest.parse(digest)
        status = await reg.uploads.start(name)
        try:
            await reg.uploads.finish(
                name, status.upload_id, d, body(request), None, request.content_length
            )
        except BaseException:
            with contextlib.suppress(HatchwayError):  # already finished or dropped
                await reg.uploads.cancel(name, status.upload_id)
            raise
        return _created(name, d)
    status = await reg.uploads.start(name)
    return _accepted(name, status.upload_id, 0)


async def status(request: web.Request, name: str, upload_id: str) -> web.StreamResponse:
    st = await registry(request).uploads.status(name, upload_id)
    return _accepted(name, st.upload_id, st.size, status=204)


async def patch(request: web.Request, name: str, upload_id: str) -> web.StreamResponse:
    rng = checked_range(request)
    length = request.content_length
    st = await registry(request).uploads.append(
        name, upload_id, body(request), rng[0] if rng else None, length
    )
    return _accepted(name, upload_id, st.size)


async def finish(request: web.Request, name: str, upload_id: str) -> web.StreamResponse:
    raw = request.query.get("digest")
    if not raw:
        raise HatchwayError(DIGEST_INVALID, "digest query parameter is required")
    d = Digest.parse(raw)
    rng = checked_range(request)
    length = request.content_length
    has_body = (length or 0) > 0 or request.headers.get("Transfer-Encoding") == "chunked"
    await registry(request).uploads.finish(
        name,
        upload_id,
        d,
        body(request) if has_body else None,
        rng[0] if rng else None,
        length if has_body else None,
    )
    return _created(name, d)


async def cancel(request: web.Request, name: str, upload_id: str) -> web.StreamResponse:
    await registry(request).uploads.cancel(name, upload_id)
    return web.Response(status=204)
