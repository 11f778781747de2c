"""``/ui/device``: approve or deny a device sign-in (``hatchway login --sso``; RFC 8628).

Signed-in only: without a session the page sends the browser to sign in (whatever the
sign-in page asks: password, second factor, single sign-on) and back. The code from
``verification_uri_complete`` rides along in a short-lived cookie for this page, not in
the address (see :func:`enter`). The person enters (or finds prefilled) the user code
the CLI printed, then sees which client asked, from which address and program, and when,
and approves or denies. Each step posts the code again (CSRF-protected like every form)
and the code is checked again, under the same throttle as passwords.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from hatchway.auth.credentials.ratelimit import Throttled
from hatchway.auth.device import DeviceGrants, NotPending, WrongCode, normalize_user_code
from hatchway.http.access import client_info
from hatchway.http.device import DEVICE
from hatchway.http.ui.middleware import form, not_found
from hatchway.http.ui.pages.signin import require
from hatchway.http.ui.render import render
from hatchway.metadata.devicecodes import DeviceCode

TEMPLATE = "device.html"
PAGE = "/ui/device"
CODE_COOKIE = "hatchway_device_code"
CODE_COOKIE_AGE = 900  # at least a code's default life: sign-in may take a while
TITLE = "Sign in a device"


def _grants(request: web.Request) -> DeviceGrants:
    grants = request.app.get(DEVICE)
    if grants is None:
        raise not_found("Device sign-in is not enabled on this registry.")
    return grants


def _entry(
    request: web.Request, code: str, *, status: int = 200, error: str | None = None
) -> web.Response:
    return render(
        request, TEMPLATE, status=status, title=TITLE, step="enter", code=code, error=error
    )


def _refusal(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, Throttled):
        return 429, f"Too many wrong codes. Try again in {int(exc.wait) + 1} seconds."
    if isinstance(exc, NotPending):
        return 410, "This code has expired or was used already. Run the login command again."
    return 400, "No sign-in request has this code. Check it and try again."


async def enter(request: web.Request) -> web.StreamResponse:
    """The code form, prefilled from ``?user_code=`` (``verification_uri_complete``).

    The code leaves the address at once: it goes into a short-lived cookie for this page
    and the browser is sent to the bare ``/ui/device``, so neither the sign-in page's
    ``next``, nor a ``Referer``, nor the access log carries it."""
    _grants(request)
    if "user_code" in request.query:
        moved = web.Response(status=303, headers={"Location": PAGE})
        code = normalize_user_code(request.query["user_code"][:20])
        if code is not None:
            moved.set_cookie(
                CODE_COOKIE,
                code,
                path=PAGE,
                max_age=CODE_COOKIE_AGE,
                httponly=True,
                samesite="Lax",
                secure=request.scheme == "https",
            )
        return moved
    await require(request)  # not signed in: sign in first, then back here
    response = _entry(request, normalize_user_code(request.cookies.get(CODE_COOKIE, "")) or "")
    if CODE_COOKIE in request.cookies:
        response.del_cookie(CODE_COOKIE, path=PAGE)  # prefilled once
    return response


async def confirm(request: web.Request) -> web.StreamResponse:
    """The request behind the code, with Approve and Deny."""
    found = await require(request)
    grants = _grants(request)
    typed = form(request).get("user_code", "")[:100]
    try:
        pending: DeviceCode = await asyncio.to_thread(
            grants.lookup, typed, found.principal.subject, client_info(request)
        )
    except (WrongCode, NotPending, Throttled) as exc:
        status, message = _refusal(exc)
        return _entry(request, typed[:20], status=status, error=message)
    return render(
        request,
        TEMPLATE,
        title="Approve this sign-in?",
        step="confirm",
        code=normalize_user_code(typed),
        pending=pending,
    )


async def _decide(request: web.Request, approve: bool) -> web.StreamResponse:
    found = await require(request)
    grants = _grants(request)
    typed = form(request).get("user_code", "")[:100]
    try:
        decided: DeviceCode = await asyncio.to_thread(
            grants.decide,
            typed,
            approve,
            found.principal,
            found.session.backend,
            client_info(request),
        )
    except (WrongCode, NotPending, Throttled) as exc:
        status, message = _refusal(exc)
        return _entry(request, typed[:20], status=status, error=message)
    return render(
        request,
        TEMPLATE,
        title="Device approved" if approve else "Device denied",
        step="approved" if approve else "denied",
        code=normalize_user_code(typed),
        pending=decided,
    )


async def approve(request: web.Request) -> web.StreamResponse:
    return await _decide(request, True)


async def deny(request: web.Request) -> web.StreamResponse:
    return await _decide(request, False)


ROUTES = (
    ("GET", PAGE, enter),
    ("POST", PAGE, confirm),
    ("POST", "/ui/device/approve", approve),
    ("POST", "/ui/device/deny", deny),
)
