"""GET /v2/<name>/tags/list and GET /v2/_catalog, with n/last pagination and Link."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from hatchway.http.oci.common import page_size, registry
from hatchway.registry.pagination import Page

CATALOG_DEFAULT = 100
CATALOG_MAX = 1000
TAGS_MAX = 10000


def _link(path: str, n: int | None, page: Page) -> dict[str, str]:
    if page.next_last is None or n is None:
        return {}
    query = urlencode({"n": n, "last": page.next_last})
    return {"Link": f'<{path}?{query}>; rel="next"'}


async def tags(request: web.Request, name: str) -> web.StreamResponse:
    n = page_size(request, None, TAGS_MAX)
    page = await registry(request).tags.list(name, n, request.query.get("last"))
    return web.json_response(
        {"name": name, "tags": page.items}, headers=_link(f"/v2/{name}/tags/list", n, page)
    )


async def catalog(request: web.Request) -> web.StreamResponse:
    n = page_size(request, CATALOG_DEFAULT, CATALOG_MAX)
    page = await registry(request).catalog.list(n, request.query.get("last"))
    return web.json_response({"repositories": page.items}, headers=_link("/v2/_catalog", n, page))
