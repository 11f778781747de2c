"""Sign in with a password, sign out.

Sign-in goes through the token service's ``login``: the same authenticators, the same
throttling (429 after repeated failures, shared with ``/auth/token``) and the same failure
audit. A success starts a new session (a fresh cookie: nothing chosen before sign-in
survives it) and is audited as a ``login`` ``via: ui``. An account with a second factor
gets no session yet: :mod:`.twofactor_signin` asks for it first.
"""

from __future__ import annotations

import asyncio
import math

from aiohttp import web

from hatchway.auth.principal import Principal
from hatchway.auth.service import TokenRequestError
from hatchway.auth.websession import SignedIn
from hatchway.http.access import client_info
from hatchway.http.api.twofactor import TWOFACTOR
from hatchway.http.state import TOKEN_SERVICE, WEB_SESSIONS
from hatchway.http.ui import sessions
from hatchway.http.ui.middleware import form
from hatchway.http.ui.pages.twofactor_signin import (
    begin_second_factor,
    finish_sign_in,
    start_session,
)
from hatchway.http.ui.render import redirect, render
from hatchway.http.ui.sso import sso_label
from hatchway.metadata.records import AuditEvent, Outcome

HOME = "/ui/repositories"
TWOFACTOR_PAGE = "/ui/account/twofactor"
EXPIRED = "That sign-in has expired or was already completed: sign in again."


def safe_next(value: str | None) -> str:
    """Where to go after sign-in: a path inside the UI, never another site."""
    if not value or not value.startswith("/ui") or value.startswith("//") or "\\" in value:
        return HOME
    if any(c in value for c in "\r\n\t"):
        return HOME
    return value


def sign_in_url(request: web.Request) -> str:
    from urllib.parse import quote

    return "/ui/sign-in?next=" + quote(request.path_qs, safe="/")


async def index(request: web.Request) -> web.StreamResponse:
    found = await sessions.signed_in(request)
    raise web.HTTPSeeOther(HOME if found is not None else "/ui/sign-in")


async def sign_in_page(request: web.Request) -> web.StreamResponse:
    target = safe_next(request.query.get("next"))
    if await sessions.signed_in(request) is not None:
        raise web.HTTPSeeOther(target)
    error = EXPIRED if request.query.get("expired") else None
    return render(
        request,
        "sign_in.html",
        title="Sign in",
        next=target,
        username="",
        error=error,
        sso=sso_label(request),
    )


async def sign_in(request: web.Request) -> web.StreamResponse:
    data = form(request)
    username = data.get("username", "").strip()[:255]
    password = data.get("password", "")
    target = safe_next(data.get("next"))
    service = request.app[TOKEN_SERVICE]
    client = client_info(request)

    def first_step() -> tuple[Principal, str]:
        # The second factor is asked for below, so the two-factor rule (which refuses a
        # password alone) does not apply here.
        principal, backend = service.login(username, password, client, second_factor_exempt=True)
        if principal.token_id is not None:
            raise ValueError("an access token")
        return principal, backend

    try:
        principal, backend = await asyncio.to_thread(first_step)
        step = await begin_second_factor(request, principal, backend, target)
        if step is not None:
            return step
        started = await asyncio.to_thread(
            start_session, request, principal.subject, backend, via="ui", factor=None
        )
    except TokenRequestError as exc:
        if exc.status == 429:
            wait = max(1, math.ceil(exc.retry_after or 1))
            message = f"Too many failed sign-ins. Try again in {wait} seconds."
        else:
            message = "Incorrect username or password."
        return _again(request, target, username, message, exc.status)
    except ValueError:
        message = "Sign in with the account's password (access tokens are for docker and the API)."
        return _again(request, target, username, message, 401)
    return finish_sign_in(request, redirect(target), started)


def _again(
    request: web.Request, target: str, username: str, error: str, status: int
) -> web.Response:
    return render(
        request,
        "sign_in.html",
        status=status,
        title="Sign in",
        next=target,
        username=username,
        error=error,
        sso=sso_label(request),
    )


async def sign_out(request: web.Request) -> web.StreamResponse:
    secret = sessions.session_secret(request)
    found = request.get(sessions.SIGNED_IN)
    if secret:
        await asyncio.to_thread(request.app[WEB_SESSIONS].end, secret)
    if found is not None:
        client = client_info(request)
        request.app[TOKEN_SERVICE].audit(
            AuditEvent(
                "logout",
                Outcome.SUCCESS,
                found.principal.subject,
                client.address,
                client.user_agent,
                detail={"via": "ui", "session": found.session.id},
            )
        )
    response = redirect("/ui/sign-in")
    sessions.clear_session(request, response)
    return response


async def require(request: web.Request) -> SignedIn:
    """The signed-in session, else a redirect to sign in (back here afterwards).

    A session of an account that ``identity.twofactor.required`` asks for a second
    factor, and that has none (the rule came after its sign-in), may only set one up."""
    found = await sessions.signed_in(request)
    if found is None:
        raise web.HTTPSeeOther(sign_in_url(request))
    twofactor = request.app.get(TWOFACTOR)
    if (
        twofactor is not None
        and not request.path.startswith(TWOFACTOR_PAGE)
        and twofactor.must_have(found.principal)
        and found.session.backend != "htpasswd"  # those accounts cannot enrol
        and await asyncio.to_thread(twofactor.must_enrol, found.principal)
    ):
        raise web.HTTPSeeOther(TWOFACTOR_PAGE)
    return found


ROUTES = (
    ("GET", "/ui", index),
    ("GET", "/ui/", index),
    ("GET", "/ui/sign-in", sign_in_page),
    ("POST", "/ui/sign-in", sign_in),
    ("POST", "/ui/sign-out", sign_out),
)
