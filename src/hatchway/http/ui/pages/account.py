"""My account: the profile, password change, personal access tokens, sign-in sessions.

Everything goes through :class:`~hatchway.auth.selfservice.SelfService`, as the API's
``/api/v1/me`` does: the same rules, limits and audit events. A new token's secret is shown
once, in the answer to the form that made it. A password change ends every other session
(their cookies are bound to the old password) and gives this browser a fresh one.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from hatchway.auth.access import ScopeError
from hatchway.auth.credentials.ratelimit import Throttled
from hatchway.auth.selfservice import Caller, SelfServiceError
from hatchway.auth.websession import SignedIn
from hatchway.http.access import client_info
from hatchway.http.api.route import SELF_SERVICE
from hatchway.http.api.twofactor import TWOFACTOR
from hatchway.http.state import WEB_SESSIONS
from hatchway.http.ui import sessions
from hatchway.http.ui.middleware import form, not_found
from hatchway.http.ui.pages.signin import require
from hatchway.http.ui.render import redirect, render
from hatchway.metadata import MetadataError

EXPIRIES = (
    ("7d", "7 days"),
    ("30d", "30 days"),
    ("90d", "90 days"),
    ("365d", "1 year"),
    ("never", "never"),
)
NOTICES = {
    "password": "Your password is changed. Your other sessions have ended.",
    "revoked": "The token is revoked.",
    "ended": "The session has ended.",
}


def _caller(found: SignedIn) -> Caller:
    return Caller(found.principal, found.session.backend)


async def page(
    request: web.Request,
    *,
    status: int = 200,
    error: str | None = None,
    created: tuple[str, str] | None = None,
    draft: dict[str, str] | None = None,
) -> web.Response:
    found = await require(request)
    selfservice = request.app[SELF_SERVICE]
    caller = _caller(found)

    twofactor = request.app.get(TWOFACTOR)

    def load() -> tuple[object, list[object], list[object], object]:
        return (
            selfservice.me(caller),
            list(selfservice.tokens(caller)),
            list(request.app[WEB_SESSIONS].sessions(caller.name)),
            twofactor.status(caller.principal) if twofactor is not None else None,
        )

    profile, tokens, live, second_factor = await asyncio.to_thread(load)
    return render(
        request,
        "account.html",
        status=status,
        title="My account",
        profile=profile,
        tokens=tokens,
        sessions=live,
        second_factor=second_factor,
        current=found.session.id,
        expiries=EXPIRIES,
        created=created,
        draft=draft or {},
        default_scope=f"repository:{caller.name}/*:pull,push",
        error=error,
        notice=NOTICES.get(request.query.get("done", "")),
    )


async def account(request: web.Request) -> web.StreamResponse:
    return await page(request)


async def change_password(request: web.Request) -> web.StreamResponse:
    found = await require(request)
    data = form(request)
    old, new, again = (
        data.get("old_password", ""),
        data.get("new_password", ""),
        data.get("confirm", ""),
    )
    if not new or new != again:
        return await page(request, status=422, error="The new passwords do not match.")
    selfservice = request.app[SELF_SERVICE]
    web_sessions = request.app[WEB_SESSIONS]
    client = client_info(request)

    def work() -> SignedIn:
        selfservice.change_password(_caller(found), old, new, client)
        web_sessions.end_others(found.principal.subject, keep=-1)  # this one too
        return web_sessions.start(found.principal, found.session.backend, client)

    try:
        fresh = await asyncio.to_thread(work)
    except Throttled as exc:
        return await page(
            request,
            status=429,
            error=f"Too many failed attempts. Try again in {int(exc.wait) + 1} seconds.",
        )
    except (SelfServiceError, ValueError) as exc:
        return await page(request, status=422, error=str(exc))
    request[sessions.SIGNED_IN] = fresh
    response = redirect("/ui/account?done=password")
    sessions.set_session(request, response, fresh.secret)
    return response


async def create_token(request: web.Request) -> web.StreamResponse:
    found = await require(request)
    data = form(request)
    name = data.get("name", "").strip()
    scopes = data.get("scopes", "").split()
    expires = data.get("expires", "90d")
    draft = {"name": name, "scopes": data.get("scopes", ""), "expires": expires}
    if expires not in dict(EXPIRIES):
        return await page(request, status=422, error="Pick an expiry from the list.", draft=draft)
    if not scopes:
        return await page(request, status=422, error="Give at least one scope.", draft=draft)
    selfservice = request.app[SELF_SERVICE]
    client = client_info(request)

    def work() -> tuple[object, str]:
        return selfservice.create_token(
            _caller(found),
            name=name,
            scopes=scopes,
            expires=None if expires == "never" else expires,
            client=client,
        )

    try:
        _, secret = await asyncio.to_thread(work)
    except (SelfServiceError, ScopeError, MetadataError, ValueError) as exc:
        return await page(request, status=422, error=str(exc), draft=draft)
    return await page(request, status=201, created=(name, secret))


async def revoke_token(request: web.Request) -> web.StreamResponse:
    found = await require(request)
    name = request.match_info["name"]
    selfservice = request.app[SELF_SERVICE]
    try:
        await asyncio.to_thread(
            selfservice.revoke_token, _caller(found), name, client_info(request)
        )
    except MetadataError:
        raise not_found("You have no live token of that name.") from None
    return redirect("/ui/account?done=revoked#tokens")


async def end_session(request: web.Request) -> web.StreamResponse:
    found = await require(request)
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise not_found("You have no such session.")
    ended = await asyncio.to_thread(
        request.app[WEB_SESSIONS].end_one, found.principal.subject, int(raw)
    )
    if not ended:
        raise not_found("You have no such session.")
    if int(raw) == found.session.id:
        response = redirect("/ui/sign-in")
        sessions.clear_session(request, response)
        return response
    return redirect("/ui/account?done=ended#sessions")


ROUTES = (
    ("GET", "/ui/account", account),
    ("POST", "/ui/account/password", change_password),
    ("POST", "/ui/account/tokens", create_token),
    ("POST", "/ui/account/tokens/{name}/revoke", revoke_token),
    ("POST", "/ui/account/sessions/{id}/end", end_session),
)
