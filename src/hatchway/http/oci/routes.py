"""Route /v2/ requests by the spec's URL grammar.

Repository names contain slashes, so one catch-all route hands the path to ordered
patterns here; the name is validated against the spec's grammar before any handler runs.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from hatchway.errors import UNSUPPORTED, HatchwayError
from hatchway.http.errors import NOT_FOUND
from hatchway.http.oci import blobs, listing, manifests, referrers, uploads
from hatchway.oci.names import validate_name

Handler = Callable[..., Awaitable[web.StreamResponse]]

# (pattern, {method: handler}); the first pattern that matches the path wins.
_ROUTES: list[tuple[re.Pattern[str], dict[str, Handler]]] = [
    (
        re.compile(r"^(?P<name>.+)/blobs/uploads/?$"),
        {"POST": uploads.start},
    ),
    (
        re.compile(r"^(?P<name>.+)/blobs/uploads/(?P<upload_id>[^/]+)$"),
        {
            "GET": uploads.status,
            "PATCH": uploads.patch,
            "PUT": uploads.finish,
            "DELETE": uploads.cancel,
        },
    ),
    (
        re.compile(r"^(?P<name>.+)/blobs/(?P<digest>[^/]+)$"),
        {"GET": blobs.get, "HEAD": blobs.get, "DELETE": blobs.delete},
    ),
    (
        re.compile(r"^(?P<name>.+)/manifests/(?P<reference>[^/]+)$"),
        {
            "GET": manifests.get,
            "HEAD": manifests.get,
            "PUT": manifests.put,
            "DELETE": manifests.delete,
        },
    ),
    (re.compile(r"^(?P<name>.+)/tags/list$"), {"GET": listing.tags}),
    (re.compile(r"^(?P<name>.+)/referrers/(?P<digest>[^/]+)$"), {"GET": referrers.get}),
]


async def base(request: web.Request) -> web.StreamResponse:
    return web.json_response({})


async def dispatch(request: web.Request) -> web.StreamResponse:
    tail = request.match_info["tail"]
    if tail == "_catalog":
        if request.method not in ("GET", "HEAD"):
            raise HatchwayError(UNSUPPORTED, "method not allowed")
        return await listing.catalog(request)
    for pattern, methods in _ROUTES:
        match = pattern.fullmatch(tail)
        if match is None:
            continue
        handler = methods.get(request.method)
        if handler is None:
            raise HatchwayError(UNSUPPORTED, "method not allowed", {"allowed": sorted(methods)})
        params = match.groupdict()
        validate_name(params["name"])
        return await handler(request, **params)
    raise HatchwayError(NOT_FOUND, detail={"path": request.path[:200]})


def setup(app: web.Application) -> None:
    app.router.add_route("GET", "/v2/", base)
    app.router.add_route("HEAD", "/v2/", base)
    app.router.add_route("GET", "/v2", base)
    app.router.add_route("*", "/v2/{tail:.+}", dispatch)
