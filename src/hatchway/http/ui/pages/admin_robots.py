"""Admin: robot accounts (no password, only tokens) and their tokens."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hatchway.http.ui.middleware import form, not_found
from hatchway.http.ui.pages.account import EXPIRIES
from hatchway.http.ui.pages.admin import Refused, call, change, field, notice, require_admin
from hatchway.http.ui.render import redirect, render
from hatchway.http.ui.services import ADMIN

NOTICES = {
    "created": "The robot is created. Give it a token below.",
    "revoked": "The token is revoked.",
    "disabled": "The robot is disabled: its tokens no longer work.",
    "enabled": "The robot is enabled again.",
    "deleted": "The robot is deleted.",
}


async def robots_page(
    request: web.Request, *, status: int = 200, error: str | None = None, **extra: Any
) -> web.Response:
    _, actor = await require_admin(request)
    service = request.app[ADMIN]

    def load() -> tuple[list[Any], dict[str, list[Any]]]:
        robots = [a for a in service.accounts(actor) if a.robot]
        tokens: dict[str, list[Any]] = {r.name: [] for r in robots}
        for token in service.tokens(actor):
            if token.account in tokens:
                tokens[token.account].append(token)
        return robots, tokens

    robots, tokens = await call(load)
    return render(
        request,
        "admin_robots.html",
        status=status,
        title="Robots",
        robots=robots,
        tokens=tokens,
        expiries=EXPIRIES,
        error=error,
        notice=notice(request, NOTICES),
        created=extra.get("created"),
        draft=extra.get("draft", {}),
    )


async def robots(request: web.Request) -> web.StreamResponse:
    return await robots_page(request)


async def create_robot(request: web.Request) -> web.StreamResponse:
    _, actor = await require_admin(request)
    name = field(request, "name", 255)
    service = request.app[ADMIN]
    return await change(
        request,
        robots_page,
        lambda: service.create_robot(actor, name),
        done="created",
        to="/ui/admin/robots",
    )


async def create_token(request: web.Request) -> web.StreamResponse:
    _, actor = await require_admin(request)
    robot = request.match_info["name"]
    name = field(request, "token", 64)
    scopes = form(request).get("scopes", "").split()
    expires = field(request, "expires", 16) or "90d"
    draft = {"robot": robot, "token": name, "scopes": form(request).get("scopes", "")}
    if expires not in dict(EXPIRIES):
        return await robots_page(request, status=422, error="Pick an expiry from the list.")
    service = request.app[ADMIN]
    try:
        _, secret = await call(
            lambda: service.create_robot_token(
                actor,
                robot,
                name=name,
                scopes=scopes,
                expires=None if expires == "never" else expires,
            )
        )
    except Refused as exc:
        if exc.status == 404:
            raise not_found(exc.message) from None
        return await robots_page(request, status=exc.status, error=exc.message, draft=draft)
    return await robots_page(request, status=201, created=(robot, name, secret))


async def revoke_token(request: web.Request) -> web.StreamResponse:
    _, actor = await require_admin(request)
    robot = request.match_info["name"]
    token = request.match_info["token"]
    service = request.app[ADMIN]
    try:
        await call(lambda: service.revoke_token(actor, robot, token))
    except Refused as exc:
        raise not_found(exc.message) from None
    return redirect("/ui/admin/robots?done=revoked")


ROUTES = (
    ("GET", "/ui/admin/robots", robots),
    ("POST", "/ui/admin/robots", create_robot),
    ("POST", "/ui/admin/robots/{name}/tokens", create_token),
    ("POST", "/ui/admin/robots/{name}/tokens/{token}/revoke", revoke_token),
)
