"""Route /v2/ requests by the spec's URL grammar.

Repository names contain slashes, so one catch-all route hands the path to ordered
patterns here; the name is validated against the spec's grammar before any handler runs.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from aiohttp import web

from hatchway.auth.access import Access, Resource
from hatchway.errors import UNSUPPORTED, HatchwayError
from hatchway.http.access import CHANGES, audit_success, authorize
from hatchway.http.actor import actor_of
from hatchway.http.errors import NOT_FOUND
from hatchway.http.oci import blobs, listing, manifests, mirror, referrers, uploads
from hatchway.oci.names import is_valid_name, validate_name

Handler = Callable[..., Awaitable[web.StreamResponse]]
PULL, PUSH, DELETE = frozenset({"pull"}), frozenset({"pull", "push"}), frozenset({"delete"})


class Route(NamedTuple):
    handler: Handler
    actions: frozenset[str]  # needed on the repository
    audit: str | None = None  # the audit event a success records (one per image pulled)


# (pattern, {method: route}); first match wins.
_ROUTES: list[tuple[re.Pattern[str], dict[str, Route]]] = [
    (
        re.compile(r"(?P<name>.+)/blobs/uploads/?"),
        {"POST": Route(uploads.start, PUSH)},
    ),
    (
        re.compile(r"(?P<name>.+)/blobs/uploads/(?P<upload_id>[^/]+)"),
        {
            "GET": Route(uploads.status, PUSH),
            "PATCH": Route(uploads.patch, PUSH),
            "PUT": Route(uploads.finish, PUSH),
            "DELETE": Route(uploads.cancel, PUSH),
        },
    ),
    (
        re.compile(r"(?P<name>.+)/blobs/(?P<digest>[^/]+)"),
        {
            "GET": Route(blobs.get, PULL),
            "HEAD": Route(blobs.get, PULL),
            "DELETE": Route(blobs.delete, DELETE, "delete"),
        },
    ),
    (
        re.compile(r"(?P<name>.+)/manifests/(?P<reference>[^/]+)"),
        {
            "GET": Route(manifests.get, PULL, "pull"),
            "HEAD": Route(manifests.get, PULL),
            "PUT": Route(manifests.put, PUSH, "push"),
            "DELETE": Route(manifests.delete, DELETE, "delete"),
        },
    ),
    (re.compile(r"(?P<name>.+)/tags/list"), {"GET": Route(listing.tags, PULL)}),
    (re.compile(r"(?P<name>.+)/referrers/(?P<digest>[^/]+)"), {"GET": Route(referrers.get, PULL)}),
]
CATALOG = Access(Resource("registry", "catalog"), frozenset({"*"}))


def _mount_source(request: web.Request, name: str) -> list[Access]:
    """Pull on the ``from`` of a cross-repository mount: asked for, not required.

    distribution's challenge names it too, so the client's token carries it; a token
    or account without it gets a plain upload session instead of the mount (202).
    """
    source = request.query.get("from")
    if request.method != "POST" or "mount" not in request.query or not source:
        return []
    if source == name or not is_valid_name(source):
        return []
    return [Access(Resource("repository", source), PULL)]


async def base(request: web.Request) -> web.StreamResponse:
    await authorize(request, [])
    return web.json_response({})


async def dispatch(request: web.Request) -> web.StreamResponse:
    tail = request.match_info["tail"]
    if tail == "_catalog":
        if request.method not in ("GET", "HEAD"):
            raise HatchwayError(UNSUPPORTED, "method not allowed")
        await authorize(request, [CATALOG])
        return await listing.catalog(request)
    for pattern, methods in _ROUTES:
        match = pattern.fullmatch(tail)
        if match is None:
            continue
        route = methods.get(request.method)
        if route is None:
            raise HatchwayError(UNSUPPORTED, "method not allowed", {"allowed": sorted(methods)})
        params = match.groupdict()
        name = params["name"]
        validate_name(name)
        name, mirrored = mirror.route_for(request, name)  # proxy: only
        params["name"] = name
        needed = [Access(Resource("repository", name), route.actions)]
        await authorize(request, needed, _mount_source(request, name))
        if mirrored is not None and route.handler is manifests.get:
            response = await mirror.manifest(request, mirrored, params["reference"])
        elif mirrored is not None and route.handler is blobs.get:
            response = await mirror.blob(request, mirrored, params["digest"])
        elif mirrored is not None and route.handler is listing.tags:
            response = await mirror.tags(request, mirrored)
        else:
            response = await route.handler(request, **params)
        if route.audit is not None:
            reference = params.get("reference") or params["digest"]
            digest = response.headers.get("Docker-Content-Digest")
            credential = (await actor_of(request)).credential if route.audit in CHANGES else None
            await audit_success(
                request, route.audit, name, reference, digest, credential=credential
            )
        return response
    raise HatchwayError(NOT_FOUND, detail={"path": request.path[:200]})


def setup(app: web.Application) -> None:
    app.router.add_route("GET", "/v2/", base)
    app.router.add_route("HEAD", "/v2/", base)
    app.router.add_route("GET", "/v2", base)
    app.router.add_route("*", "/v2/{tail:.+}", dispatch)
