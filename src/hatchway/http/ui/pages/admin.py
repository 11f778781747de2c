"""Admin pages: accounts (more follow as the admin service grows). Non-admins get a 403
page. Every change is audited with who made it (``via: ui``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from hatchway.auth.credentials.passwords import hash_password
from hatchway.auth.websession import SignedIn
from hatchway.http.access import client_info
from hatchway.http.state import TOKEN_SERVICE
from hatchway.http.ui.middleware import forbidden, form, not_found
from hatchway.http.ui.pages.signin import require
from hatchway.http.ui.render import redirect, render
from hatchway.metadata import AuditEvent, MetadataError, MetadataStore, NotFoundError, Outcome

T = TypeVar("T")
NOTICES = {
    "created": "The account is created.",
    "admin": "The admin flag is changed.",
    "reset": "The password is reset; the account's sessions have ended.",
    "deleted": "The account is deleted.",
}


async def require_admin(request: web.Request) -> SignedIn:
    found = await require(request)
    if not found.principal.admin:
        raise forbidden("Only administrators may see the admin pages.")
    return found


def _store(request: web.Request) -> MetadataStore:
    return request.app[TOKEN_SERVICE].store


def _audit(request: web.Request, found: SignedIn, event: str, account: str, **detail: Any) -> None:
    client = client_info(request)
    request.app[TOKEN_SERVICE].audit(
        AuditEvent(
            event,
            Outcome.SUCCESS,
            account,
            client.address,
            client.user_agent,
            detail={"by": found.principal.subject, "via": "ui", **detail},
        )
    )


async def _run(fn: Callable[[], T]) -> T:
    return await asyncio.to_thread(fn)


async def accounts_page(
    request: web.Request, *, status: int = 200, error: str | None = None
) -> web.Response:
    await require_admin(request)
    found = await _run(_store(request).accounts.list)
    return render(
        request,
        "admin_accounts.html",
        status=status,
        title="Accounts",
        accounts=found,
        error=error,
        notice=NOTICES.get(request.query.get("done", "")),
    )


async def accounts(request: web.Request) -> web.StreamResponse:
    return await accounts_page(request)


async def create_account(request: web.Request) -> web.StreamResponse:
    found = await require_admin(request)
    data = form(request)
    name = data.get("name", "").strip()
    password = data.get("password", "")
    admin = data.get("admin") == "on"
    store = _store(request)

    def work() -> None:
        store.accounts.create(name, password_hash=hash_password(password), admin=admin)
        _audit(request, found, "user.add", name, admin=admin)

    try:
        await _run(work)
    except (MetadataError, ValueError) as exc:
        return await accounts_page(request, status=422, error=str(exc))
    return redirect("/ui/admin/accounts?done=created")


async def set_admin(request: web.Request) -> web.StreamResponse:
    found = await require_admin(request)
    name = request.match_info["name"]
    admin = form(request).get("admin") == "on"
    if name == found.principal.subject and not admin:
        return await accounts_page(
            request, status=409, error="You cannot remove your own admin flag."
        )

    def work() -> None:
        _store(request).accounts.set_admin(name, admin)
        _audit(request, found, "user.admin", name, admin=admin)

    try:
        await _run(work)
    except NotFoundError:
        raise not_found("There is no such account.") from None
    return redirect("/ui/admin/accounts?done=admin")


async def reset_password(request: web.Request) -> web.StreamResponse:
    found = await require_admin(request)
    name = request.match_info["name"]
    password = form(request).get("password", "")

    def work() -> None:
        _store(request).accounts.set_password(name, hash_password(password))
        _audit(request, found, "user.passwd", name)

    try:
        await _run(work)
    except NotFoundError:
        raise not_found("There is no such account.") from None
    except (MetadataError, ValueError) as exc:
        return await accounts_page(request, status=422, error=str(exc))
    return redirect("/ui/admin/accounts?done=reset")


async def confirm_delete(request: web.Request) -> web.StreamResponse:
    await require_admin(request)
    name = request.match_info["name"]
    account = await _run(lambda: _store(request).accounts.get(name))
    if account is None:
        raise not_found("There is no such account.")
    tokens = await _run(lambda: _store(request).tokens.list(name))
    return render(
        request, "admin_account_delete.html", title=f"Delete {name}", account=account, tokens=tokens
    )


async def delete_account(request: web.Request) -> web.StreamResponse:
    found = await require_admin(request)
    name = request.match_info["name"]
    if name == found.principal.subject:
        return await accounts_page(request, status=409, error="You cannot delete your own account.")

    def work() -> None:
        _store(request).accounts.delete(name)
        _audit(request, found, "user.del", name)

    try:
        await _run(work)
    except NotFoundError:
        raise not_found("There is no such account.") from None
    return redirect("/ui/admin/accounts?done=deleted")


async def to_accounts(request: web.Request) -> web.StreamResponse:
    await require_admin(request)
    raise web.HTTPSeeOther("/ui/admin/accounts")


ROUTES = (
    ("GET", "/ui/admin", to_accounts),
    ("GET", "/ui/admin/accounts", accounts),
    ("POST", "/ui/admin/accounts", create_account),
    ("POST", "/ui/admin/accounts/{name}/admin", set_admin),
    ("POST", "/ui/admin/accounts/{name}/password", reset_password),
    ("GET", "/ui/admin/accounts/{name}/delete", confirm_delete),
    ("POST", "/ui/admin/accounts/{name}/delete", delete_account),
)
