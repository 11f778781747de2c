"""Route /v2/ requests by the spec's URL grammar.

Repository names contain slashes, so one catch-all route hands the path to ordered
patterns here; the name is validated against the spec's grammar before any handler runs.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from hatchway.auth.access import Access, Resource
from hatchway.errors import UNSUPPORTED, HatchwayError
from hatchway.http.access import authorize
from hatchway.http.errors import NOT_FOUND
from hatchway.http.oci import blobs, listing, manifests, referrers, uploads
from hatchway.oci.names import validate_name

Handler = Callable[..., Awaitable[web.StreamResponse]]
PULL, PUSH, DELETE = frozenset({"pull"}), frozenset({"pull", "push"}), frozenset({"delete"})

# (pattern, {method: (handler, actions needed on the repository)}); first match wins.
_ROUTES: list[tuple[re.Pattern[str], dict[str, tuple[Handler, frozenset[str]]]]] = [
    (
        re.compile(r"(?P<name>.+)/blobs/uploads/?"),
        {"POST": (uploads.start, PUSH)},
    ),
    (
        re.compile(r"(?P<name>.+)/blobs/uploads/(?P<upload_id>[^/]+)"),
        {
            "GET": (uploads.status, PUSH),
            "PATCH": (uploads.patch, PUSH),
            "PUT": (uploads.finish, PUSH),
            "DELETE": (uploads.cancel, PUSH),
        },
    ),
    (
        re.compile(r"(?P<name>.+)/blobs/(?P<digest>[^/]+)"),
        {"GET": (blobs.get, PULL), "HEAD": (blobs.get, PULL), "DELETE": (blobs.delete, DELETE)},
    ),
    (
        re.compile(r"(?P<name>.+)/manifests/(?P<reference>[^/]+)"),
        {
            "GET": (manifests.get, PULL),
            "HEAD": (manifests.get, PULL),
            "PUT": (manifests.put, PUSH),
            "DELETE": (manifests.delete, DELETE),
        },
    ),
    (re.compile(r"(?P<name>.+)/tags/list"), {"GET": (listing.tags, PULL)}),
    (re.compile(r"(?P<name>.+)/referrers/(?P<digest>[^/]+)"), {"GET": (referrers.get, PULL)}),
]
CATALOG = Access(Resource("registry", "catalog"), frozenset({"*"}))


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
        handler, actions = route
        params = match.groupdict()
        validate_name(params["name"])
        await authorize(request, [Access(Resource("repository", params["name"]), actions)])
        return await handler(request, **params)
    raise HatchwayError(NOT_FOUND, detail={"path": request.path[:200]})


def setup(app: web.Application) -> None:
    app.router.add_route("GET", "/v2/", base)
    app.router.add_route("HEAD", "/v2/", base)
    app.router.add_route("GET", "/v2", base)
    app.router.add_route("*", "/v2/{tail:.+}", dispatch)
