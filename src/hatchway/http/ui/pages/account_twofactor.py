"""My account → Two-factor authentication, and the enrolment that
``identity.twofactor.required`` forces at sign-in.

Everything goes through :class:`~hatchway.auth.twofactor.TwoFactorService`, as
``/api/v1/me/twofactor`` does. Enrolment: start (a new secret, shown as an ``otpauth://``
URI, a QR code and the bare secret), confirm with a first code, and the ten recovery codes
are shown once, in the answer to that form. Turning 2FA off needs the password and a code.

Forced enrolment: an account that must have a second factor and has none gets, after its
password, a pending sign-in of purpose ``enrol`` (no session) and the same enrolment page
at ``/ui/sign-in/enrol``; confirming it starts the session. A session that already exists
when the rule starts to apply is held to this page (``signin.require``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from hatchway.auth.credentials.ratelimit import Throttled
from hatchway.auth.principal import Principal
from hatchway.auth.selfservice import Caller
from hatchway.auth.twofactor import (
    Enrolment,
    Status,
    TwoFactorError,
    TwoFactorService,
    WrongCode,
)
from hatchway.auth.websession import SignedIn
from hatchway.http.access import client_info
from hatchway.http.ui import sessions
from hatchway.http.ui.middleware import UiError, form
from hatchway.http.ui.pages.signin import require
from hatchway.http.ui.pages.twofactor_signin import (
    ENROL_PATH,
    PENDING,
    expired,
    find_pending,
    finish_sign_in,
    start_session,
    throttled_message,
    twofactor_of,
)
from hatchway.http.ui.qr import qr_data_uri
from hatchway.http.ui.render import redirect, render
from hatchway.metadata.passkeys import Passkey

PAGE = "/ui/account/twofactor"
NOTICES = {
    "off": "Two-factor authentication is off.",
    "passkey": "The passkey is added.",
    "passkey-removed": "The passkey is removed.",
}


def _service(request: web.Request) -> TwoFactorService:
    found = twofactor_of(request)
    if found is None:
        raise UiError(404, "Not found", "Two-factor authentication is not available here.")
    return found


def _caller(found: SignedIn) -> Caller:
    return Caller(found.principal, found.session.backend)


def _enrolment(made: Enrolment | None) -> dict[str, str] | None:
    if made is None:
        return None
    return {"uri": made.uri, "secret": made.secret, "qr": qr_data_uri(made.uri)}


async def page(
    request: web.Request,
    *,
    status: int = 200,
    error: str | None = None,
    codes: list[str] | None = None,
    **extra: Any,
) -> web.Response:
    found = await require(request)
    service = _service(request)
    caller = _caller(found)

    def load() -> tuple[Status, Enrolment | None, list[Passkey]]:
        return (
            service.status(caller.principal),
            service.pending(caller),
            service.store.passkeys.list(caller.name),
        )

    state, pending, passkeys = await asyncio.to_thread(load)
    return render(
        request,
        "account_twofactor.html",
        status=status,
        title="Two-factor authentication",
        state=state,
        enrolment=_enrolment(pending),
        passkeys=passkeys,
        confirm_action=PAGE + "/totp/confirm",
        codes=codes,
        continue_to="/ui/account",
        local=found.session.backend != "htpasswd",  # local and LDAP accounts
        error=error,
        notice=NOTICES.get(request.query.get("done", "")),
        **extra,
    )


async def show(request: web.Request) -> web.StreamResponse:
    return await page(request)


async def start(request: web.Request) -> web.StreamResponse:
    found = await require(request)
    service = _service(request)
    try:
        await asyncio.to_thread(service.start, _caller(found), client_info(request))
    except TwoFactorError as exc:
        return await page(request, status=409, error=str(exc))
    return redirect(PAGE + "#enrol")


async def confirm(request: web.Request) -> web.StreamResponse:
    found = await require(request)
    service = _service(request)
    code = form(request).get("code", "").strip()[:64]
    try:
        codes = await asyncio.to_thread(service.confirm, _caller(found), code, client_info(request))
    except Throttled as exc:
        return await page(request, status=429, error=throttled_message(exc))
    except WrongCode:
        return await page(request, status=422, error="That code is incorrect: try the next one.")
    except TwoFactorError as exc:
        return await page(request, status=409, error=str(exc))
    return await page(request, codes=codes)


async def regenerate(request: web.Request) -> web.StreamResponse:
    found = await require(request)
    service = _service(request)
    code = form(request).get("code", "").strip()[:64]
    try:
        codes = await asyncio.to_thread(
            service.regenerate, _caller(found), code, client_info(request)
        )
    except Throttled as exc:
        return await page(request, status=429, error=throttled_message(exc))
    except WrongCode:
        error = "No new codes: that code from the app is incorrect or was already used."
        return await page(request, status=422, error=error)
    except TwoFactorError as exc:
        return await page(request, status=409, error=str(exc))
    return await page(request, codes=codes)


async def disable(request: web.Request) -> web.StreamResponse:
    found = await require(request)
    service = _service(request)
    data = form(request)
    password, code = data.get("password", ""), data.get("code", "").strip()[:64]
    try:
        await asyncio.to_thread(
            service.disable, _caller(found), password, code, client_info(request)
        )
    except Throttled as exc:
        return await page(request, status=429, error=throttled_message(exc))
    except WrongCode as exc:
        return await page(request, status=422, error=f"Not turned off: {exc}.")
    except TwoFactorError as exc:
        return await page(request, status=409, error=str(exc))
    return redirect(PAGE + "?done=off")


# -- forced enrolment at sign-in (no session yet) ----------------------------------------


def _enrol_page(
    request: web.Request,
    enrolment: Enrolment | None,
    *,
    status: int = 200,
    error: str | None = None,
) -> web.Response:
    return render(
        request,
        "enrol_required.html",
        status=status,
        title="Set up two-factor authentication",
        enrolment=_enrolment(enrolment),
        confirm_action=ENROL_PATH,
        error=error,
    )


async def enrol_page(request: web.Request) -> web.StreamResponse:
    pending = await find_pending(request, "enrol")
    if pending is None:
        return expired()
    caller = Caller(Principal(pending.subject), pending.backend)
    made = await asyncio.to_thread(_service(request).pending, caller)
    if made is None:
        return expired()
    return _enrol_page(request, made)


async def enrol_confirm(request: web.Request) -> web.StreamResponse:
    pending = await find_pending(request, "enrol")
    if pending is None:
        return expired()
    service = _service(request)
    caller = Caller(Principal(pending.subject), pending.backend)
    code = form(request).get("code", "").strip()[:64]
    client = client_info(request)

    def work() -> tuple[list[str], SignedIn] | None:
        codes = service.confirm(caller, code, client)
        if not request.app[PENDING].take(pending):
            return None
        started = start_session(
            request, pending.subject, pending.backend, via=pending.via, factor="enrol"
        )
        return codes, started

    try:
        done = await asyncio.to_thread(work)
    except (Throttled, WrongCode) as exc:
        made = await asyncio.to_thread(service.pending, caller)
        if isinstance(exc, Throttled):
            return _enrol_page(request, made, status=429, error=throttled_message(exc))
        return _enrol_page(request, made, status=422, error="That code is incorrect: try again.")
    except (TwoFactorError, ValueError):
        done = None
    if done is None:
        return expired()
    codes, started = done
    request[sessions.SIGNED_IN] = started
    shown = render(
        request,
        "twofactor_codes.html",
        title="Your recovery codes",
        codes=codes,
        continue_to=pending.target,
    )
    return finish_sign_in(request, shown, started)


ROUTES = (
    ("GET", PAGE, show),
    ("POST", PAGE + "/totp", start),
    ("POST", PAGE + "/totp/confirm", confirm),
    ("POST", PAGE + "/disable", disable),
    ("POST", PAGE + "/recovery-codes", regenerate),
    ("GET", ENROL_PATH, enrol_page),
    ("POST", ENROL_PATH, enrol_confirm),
)
