"""Admin pages: accounts (this module), robots, groups, access rules, the audit trail.

Every page checks that the signed-in account is an admin (others get a 403 page), and
every change goes through the admin services (``auth.admin`` and friends), which check it
again, keep the rails (never yourself, never the last admin) and audit it with ``via: ui``.
A refusal is shown in the page that was submitted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from hatchway.auth.access import ScopeError
from hatchway.auth.admin import Actor
from hatchway.auth.policy import PolicyError
from hatchway.auth.selfservice import NotPermitted, SelfServiceError
from hatchway.auth.websession import SignedIn
from hatchway.http.ui.middleware import forbidden, form, not_found
from hatchway.http.ui.pages.signin import require
from hatchway.http.ui.render import redirect, render
from hatchway.http.ui.services import ADMIN, actor_for
from hatchway.metadata import ConflictError, MetadataError, NotFoundError

T = TypeVar("T")
NOTICES = {
    "created": "The account is created.",
    "admin": "The admin flag is changed.",
    "disabled": "The account is disabled: its password, tokens and sessions no longer work.",
    "enabled": "The account is enabled again.",
    "reset": "The password is reset; the account's sessions have ended.",
    "deleted": "The account is deleted.",
}


class Refused(Exception):
    """A change the services refused: shown in the page, with this status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def require_admin(request: web.Request) -> tuple[SignedIn, Actor]:
    found = await require(request)
    if not found.principal.admin:
        raise forbidden("Only administrators may see the admin pages.")
    return found, actor_for(request, found)


async def call(fn: Callable[[], T]) -> T:
    """Run a service call in a thread; its refusals become pages or in-page errors."""
    try:
        return await asyncio.to_thread(fn)
    except NotPermitted as exc:
        raise forbidden(str(exc)) from None
    except NotFoundError as exc:
        raise Refused(404, str(exc)) from None
    except ConflictError as exc:
        raise Refused(409, str(exc)) from None
    except (SelfServiceError, MetadataError, ScopeError, PolicyError, ValueError) as exc:
        raise Refused(422, str(exc)) from None


def notice(request: web.Request, notices: dict[str, str]) -> str | None:
    return notices.get(request.query.get("done", ""))


def field(request: web.Request, name: str, limit: int = 1024) -> str:
    return form(request).get(name, "").strip()[:limit]


async def accounts_page(
    request: web.Request, *, status: int = 200, error: str | None = None, **extra: Any
) -> web.Response:
    _, actor = await require_admin(request)
    service = request.app[ADMIN]
    found = await call(lambda: service.accounts(actor))
    return render(
        request,
        "admin_accounts.html",
        status=status,
        title="Accounts",
        accounts=[a for a in found if not a.robot],
        error=error,
        notice=notice(request, NOTICES),
        created=extra.get("created"),
        reset=extra.get("reset"),
    )


async def change(
    request: web.Request, page: Callable[..., Any], fn: Callable[[], T], *, done: str, to: str
) -> web.StreamResponse:
    """Make a change and go back to ``to?done=``; a refusal re-renders ``page`` with it."""
    try:
        await call(fn)
    except Refused as exc:
        if exc.status == 404:
            raise not_found(exc.message) from None
        result: web.StreamResponse = await page(request, status=exc.status, error=exc.message)
        return result
    return redirect(f"{to}?done={done}")


async def accounts(request: web.Request) -> web.StreamResponse:
    return await accounts_page(request)


async def to_accounts(request: web.Request) -> web.StreamResponse:
    await require_admin(request)
    raise web.HTTPSeeOther("/ui/admin/accounts")


async def create_account(request: web.Request) -> web.StreamResponse:
    _, actor = await require_admin(request)
    name = field(request, "name", 255)
    password = form(request).get("password", "")
    admin = form(request).get("admin") == "on"
    service = request.app[ADMIN]
    try:
        _, generated = await call(
            lambda: service.create_user(actor, name, password=password or None, admin=admin)
        )
    except Refused as exc:
        return await accounts_page(request, status=exc.status, error=exc.message)
    if generated is not None:
        return await accounts_page(request, status=201, created=(name, generated))
    return redirect("/ui/admin/accounts?done=created")


async def set_admin(request: web.Request) -> web.StreamResponse:
    _, actor = await require_admin(request)
    name = request.match_info["name"]
    admin = form(request).get("admin") == "on"
    service = request.app[ADMIN]
    return await change(
        request,
        accounts_page,
        lambda: service.set_admin(actor, name, admin),
        done="admin",
        to="/ui/admin/accounts",
    )


async def set_disabled(request: web.Request) -> web.StreamResponse:
    _, actor = await require_admin(request)
    name = request.match_info["name"]
    disabled = form(request).get("disabled") == "on"
    service = request.app[ADMIN]
    back = "/ui/admin/robots" if form(request).get("back") == "robots" else "/ui/admin/accounts"
    return await change(
        request,
        accounts_page,
        lambda: service.set_disabled(actor, name, disabled),
        done="disabled" if disabled else "enabled",
        to=back,
    )


async def reset_password(request: web.Request) -> web.StreamResponse:
    _, actor = await require_admin(request)
    name = request.match_info["name"]
    password = form(request).get("password", "")
    service = request.app[ADMIN]
    try:
        generated = await call(lambda: service.reset_password(actor, name, password or None))
    except Refused as exc:
        if exc.status == 404:
            raise not_found(exc.message) from None
        return await accounts_page(request, status=exc.status, error=exc.message)
    if generated is not None:
        return await accounts_page(request, reset=(name, generated))
    return redirect("/ui/admin/accounts?done=reset")


async def confirm_delete(request: web.Request) -> web.StreamResponse:
    _, actor = await require_admin(request)
    name = request.match_info["name"]
    service = request.app[ADMIN]
    try:
        account = await call(lambda: service.account(actor, name))
        tokens = await call(lambda: service.tokens(actor, name))
    except Refused:
        raise not_found("There is no such account.") from None
    return render(
        request, "admin_account_delete.html", title=f"Delete {name}", account=account, tokens=tokens
    )


async def delete_account(request: web.Request) -> web.StreamResponse:
    _, actor = await require_admin(request)
    name = request.match_info["name"]
    service = request.app[ADMIN]
    back = "/ui/admin/robots" if form(request).get("back") == "robots" else "/ui/admin/accounts"
    return await change(
        request,
        accounts_page,
        lambda: service.delete_account(actor, name),
        done="deleted",
        to=back,
    )


ROUTES = (
    ("GET", "/ui/admin", to_accounts),
    ("GET", "/ui/admin/accounts", accounts),
    ("POST", "/ui/admin/accounts", create_account),
    ("POST", "/ui/admin/accounts/{name}/admin", set_admin),
    ("POST", "/ui/admin/accounts/{name}/disabled", set_disabled),
    ("POST", "/ui/admin/accounts/{name}/password", reset_password),
    ("GET", "/ui/admin/accounts/{name}/delete", confirm_delete),
    ("POST", "/ui/admin/accounts/{name}/delete", delete_account),
)
