"""The session cookie: read it, set it, clear it (the sessions themselves: ``auth.websession``).

``HttpOnly`` (no script reads it), ``SameSite=Lax`` (not sent on cross-site POSTs), path
``/``, and ``Secure`` when the browser reached us over TLS, directly or through a trusted
TLS-terminating proxy (``http.trustedproxies``: the forwarded middleware then hands the
handlers the client's scheme). Over TLS the cookie is named with the ``__Host-`` prefix,
which browsers accept only from a secure origin, without a Domain, for path ``/``.

Before sign-in a separate random cookie seeds the sign-in form's CSRF token.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from hatchway.auth.websession import SignedIn, new_pre_session
from hatchway.http.access import client_info
from hatchway.http.state import WEB_SESSIONS

SESSION_COOKIE = "hatchway_session"
PRE_COOKIE = "hatchway_presession"
PENDING_COOKIE = "hatchway_signin"  # a sign-in waiting for its second factor
SIGNED_IN: web.RequestKey[SignedIn | None] = web.RequestKey("ui_signed_in")
_MADE_PRE = web.RequestKey("ui_pre_session", str)


def _secure(request: web.Request) -> bool:
    return request.scheme == "https"


def _name(request: web.Request, base: str) -> str:
    return f"__Host-{base}" if _secure(request) else base


def session_secret(request: web.Request) -> str | None:
    return request.cookies.get(_name(request, SESSION_COOKIE))


def pre_session_secret(request: web.Request) -> str | None:
    return request.cookies.get(_name(request, PRE_COOKIE))


def _set(request: web.Request, response: web.StreamResponse, base: str, value: str) -> None:
    response.set_cookie(
        _name(request, base),
        value,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=_secure(request),
    )


def set_session(request: web.Request, response: web.StreamResponse, secret: str) -> None:
    _set(request, response, SESSION_COOKIE, secret)
    response.del_cookie(_name(request, PRE_COOKIE), path="/")


def clear_session(request: web.Request, response: web.StreamResponse) -> None:
    response.del_cookie(_name(request, SESSION_COOKIE), path="/")


def pending_secret(request: web.Request) -> str | None:
    return request.cookies.get(_name(request, PENDING_COOKIE))


def set_pending(request: web.Request, response: web.StreamResponse, secret: str) -> None:
    _set(request, response, PENDING_COOKIE, secret)


def clear_pending(request: web.Request, response: web.StreamResponse) -> None:
    response.del_cookie(_name(request, PENDING_COOKIE), path="/")


def pre_session_for_form(request: web.Request) -> str:
    """The seed of the sign-in form's CSRF token: the browser's, or one made for this page
    (``finish`` then sets it on the response)."""
    found = pre_session_secret(request)
    if found:
        return found
    if _MADE_PRE not in request:
        request[_MADE_PRE] = new_pre_session()
    return request[_MADE_PRE]


def finish(request: web.Request, response: web.StreamResponse) -> None:
    """Set the pre-session cookie if this request made one."""
    if _MADE_PRE in request and pre_session_secret(request) is None:
        _set(request, response, PRE_COOKIE, request[_MADE_PRE])


async def signed_in(request: web.Request) -> SignedIn | None:
    """The live session of the request's cookie (looked up once per request)."""
    if SIGNED_IN in request:
        return request[SIGNED_IN]
    secret = session_secret(request)
    found = None
    if secret:
        sessions = request.app[WEB_SESSIONS]
        found = await asyncio.to_thread(sessions.resolve, secret, client_info(request))
    request[SIGNED_IN] = found
    return found
