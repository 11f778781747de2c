"""GET/HEAD/PUT/DELETE /v2/<name>/manifests/<reference>."""

from __future__ import annotations

from aiohttp import web

from hatchway.errors import MANIFEST_UNKNOWN, PAYLOAD_TOO_LARGE, HatchwayError
from hatchway.http.actor import actor_of
from hatchway.http.oci.common import registry, require_delete
from hatchway.oci.manifests import MAX_MANIFEST_SIZE
from hatchway.registry.manifests import StoredManifest


def _accepts(request: web.Request, media_type: str) -> bool:
    """Content negotiation as distribution does it: serve as stored when the client
    sends no Accept, a wildcard, or the stored type; otherwise the manifest is
    "unknown" in a form the client can use."""
    accepted: set[str] = set()
    for header in request.headers.getall("Accept", []):
        for part in header.split(","):
            accepted.add(part.split(";", 1)[0].strip())
    accepted.discard("")
    return not accepted or media_type in accepted or "*/*" in accepted


async def get(request: web.Request, name: str, reference: str) -> web.StreamResponse:
    return respond(request, await registry(request).manifests.get(name, reference))


def respond(request: web.Request, stored: StoredManifest) -> web.StreamResponse:
    """The response for a manifest already looked up (the mirror has it at hand)."""
    if not _accepts(request, stored.media_type):
        raise HatchwayError(
            MANIFEST_UNKNOWN,
            "manifest media type not accepted by the client",
            {"mediaType": stored.media_type},
        )
    headers = {
        "Docker-Content-Digest": str(stored.digest),
        "ETag": f'"{stored.digest}"',
        "Content-Type": stored.media_type,
    }
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(stored.body))
        return web.Response(headers=headers)
    return web.Response(body=stored.body, headers=headers)


async def _read_limited(request: web.Request) -> bytes:
    if (request.content_length or 0) > MAX_MANIFEST_SIZE:
        raise HatchwayError(PAYLOAD_TOO_LARGE, detail={"limit": MAX_MANIFEST_SIZE})
    parts: list[bytes] = []
    total = 0
    async for chunk in request.content.iter_any():
        total += len(chunk)
        if total > MAX_MANIFEST_SIZE:
            raise HatchwayError(PAYLOAD_TOO_LARGE, detail={"limit": MAX_MANIFEST_SIZE})
        parts.append(chunk)
    return b"".join(parts)


async def put(request: web.Request, name: str, reference: str) -> web.StreamResponse:
    data = await _read_limited(request)
    content_type = request.headers.get("Content-Type", "").split(";", 1)[0].strip() or None
    actor = await actor_of(request)
    result = await registry(request).manifests.put(name, reference, data, content_type, actor)
    headers = {
        "Location": f"/v2/{name}/manifests/{result.digest}",
        "Docker-Content-Digest": str(result.digest),
        "Content-Length": "0",
    }
    if result.subject is not None:
        headers["OCI-Subject"] = str(result.subject)
    return web.Response(status=201, headers=headers)


async def delete(request: web.Request, name: str, reference: str) -> web.StreamResponse:
    await require_delete(request).manifests.delete(name, reference)
    return web.Response(status=202, headers={"Content-Length": "0"})
