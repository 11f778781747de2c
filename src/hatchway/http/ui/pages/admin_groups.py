"""Admin: groups and their members."""

from __future__ import annotations

from aiohttp import web

from hatchway.http.ui.pages.admin import call, change, field, notice, require_admin
from hatchway.http.ui.render import render
from hatchway.http.ui.services import ADMIN

NOTICES = {
    "created": "The group is created.",
    "deleted": "The group is deleted; its members' accounts stay.",
    "added": "The member is added.",
    "removed": "The member is removed.",
}


async def groups_page(
    request: web.Request, *, status: int = 200, error: str | None = None
) -> web.Response:
    _, actor = await require_admin(request)
    service = request.app[ADMIN]
    found = await call(lambda: service.groups(actor))
    names = await call(lambda: [a.name for a in service.accounts(actor)])
    return render(
        request,
        "admin_groups.html",
        status=status,
        title="Groups",
        groups=found,
        accounts=names,
        error=error,
        notice=notice(request, NOTICES),
    )


async def groups(request: web.Request) -> web.StreamResponse:
    return await groups_page(request)


async def create_group(request: web.Request) -> web.StreamResponse:
    _, actor = await require_admin(request)
    name = field(request, "name", 255)
    service = request.app[ADMIN]
    return await change(
        request, groups_page, lambda: service.create_group(actor, name), done="created", to=_TO
    )


async def delete_group(request: web.Request) -> web.StreamResponse:
    _, actor = await require_admin(request)
    name = request.match_info["name"]
    service = request.app[ADMIN]
    return await change(
        request, groups_page, lambda: service.delete_group(actor, name), done="deleted", to=_TO
    )


async def add_member(request: web.Request) -> web.StreamResponse:
    _, actor = await require_admin(request)
    group = request.match_info["name"]
    account = field(request, "account", 255)
    service = request.app[ADMIN]
    return await change(
        request,
        groups_page,
        lambda: service.add_member(actor, group, account),
        done="added",
        to=_TO,
    )


async def remove_member(request: web.Request) -> web.StreamResponse:
    _, actor = await require_admin(request)
    group = request.match_info["name"]
    account = request.match_info["account"]
    service = request.app[ADMIN]
    return await change(
        request,
        groups_page,
        lambda: service.remove_member(actor, group, account),
        done="removed",
        to=_TO,
    )


_TO = "/ui/admin/groups"
ROUTES = (
    ("GET", "/ui/admin/groups", groups),
    ("POST", "/ui/admin/groups", create_group),
    ("POST", "/ui/admin/groups/{name}/delete", delete_group),
    ("POST", "/ui/admin/groups/{name}/members", add_member),
    ("POST", "/ui/admin/groups/{name}/members/{account}/remove", remove_member),
)
