"""Passkeys in the web UI: register, list and delete them on My account → Two-factor
authentication, and use one at the sign-in's second-factor step.

The browser side is ``static/ui.js`` (no inline script): it asks for options, calls
``navigator.credentials.create/get`` and posts the answer as a form (with the CSRF field,
as every UI form), and these handlers answer JSON (``{"location"}`` to go on, or
``{"error"}``). The challenge lives on the server (``auth.passkeys``), the RP ID is the
host the browser used (through a trusted proxy, the forwarded one: ``http.forwarded``
rewrites ``request.host`` and ``request.scheme``), and the origin must match it.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from hatchway.auth.credentials.ratelimit import Throttled
from hatchway.auth.passkeys import PasskeyService
from hatchway.auth.selfservice import Caller
from hatchway.auth.twofactor import TwoFactorError, WrongCode
from hatchway.auth.websession import SignedIn
from hatchway.http.access import client_info
from hatchway.http.api.passkeys import relying_party
from hatchway.http.api.twofactor import TWOFACTOR
from hatchway.http.ui.middleware import UiError, form, not_found
from hatchway.http.ui.pages.signin import require
from hatchway.http.ui.pages.twofactor_signin import (
    EXPIRED_PATH,
    PENDING,
    VERIFY_PATH,
    find_pending,
    finish_sign_in,
    start_session,
    throttled_message,
)
from hatchway.http.ui.render import redirect
from hatchway.metadata import MetadataError

PASSKEYS = web.AppKey("ui_passkeys", PasskeyService)
ACCOUNT_PAGE = "/ui/account/twofactor"
MAX_CREDENTIAL = 64 * 1024


def setup(app: web.Application) -> None:
    if TWOFACTOR in app:
        app[PASSKEYS] = PasskeyService(app[TWOFACTOR])


def _service(request: web.Request) -> PasskeyService:
    found = request.app.get(PASSKEYS)
    if found is None:
        raise not_found("Two-factor authentication is not available here.")
    return found


def _json(body: dict[str, str] | str, status: int = 200) -> web.Response:
    if isinstance(body, str):
        return web.Response(status=status, text=body, content_type="application/json")
    return web.json_response(body, status=status)


def _caller(found: SignedIn) -> Caller:
    return Caller(found.principal, found.session.backend)


# -- My account --------------------------------------------------------------------------


async def register_options(request: web.Request) -> web.StreamResponse:
    found = await require(request)
    service = _service(request)
    try:
        options = await asyncio.to_thread(
            service.registration_options,
            _caller(found),
            relying_party(request),
            client_info(request),
        )
    except TwoFactorError as exc:
        return _json({"error": str(exc)}, 409)
    return _json(options)


async def register(request: web.Request) -> web.StreamResponse:
    found = await require(request)
    service = _service(request)
    data = form(request)
    name, credential = data.get("name", ""), data.get("credential", "")
    try:
        await asyncio.to_thread(
            service.register,
            _caller(found),
            name,
            credential[:MAX_CREDENTIAL],
            relying_party(request),
            client_info(request),
        )
    except WrongCode as exc:
        return _json({"error": f"The passkey was not added: {exc}."}, 422)
    except (TwoFactorError, MetadataError) as exc:
        return _json({"error": f"The passkey was not added: {exc}."}, 409)
    return _json({"location": ACCOUNT_PAGE + "?done=passkey"}, 201)


async def delete(request: web.Request) -> web.StreamResponse:
    found = await require(request)
    service = _service(request)
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise not_found("You have no such passkey.")
    try:
        done = await asyncio.to_thread(
            service.remove, _caller(found), int(raw), client_info(request)
        )
    except TwoFactorError as exc:
        raise UiError(409, "Refused", str(exc)) from None
    if not done:
        raise not_found("You have no such passkey.")
    return redirect(ACCOUNT_PAGE + "?done=passkey-removed")


# -- the second-factor step at sign-in ---------------------------------------------------


async def signin_options(request: web.Request) -> web.StreamResponse:
    pending = await find_pending(request, "verify")
    if pending is None:
        return _json({"error": "The sign-in has expired.", "location": EXPIRED_PATH}, 401)
    service = _service(request)
    try:
        options = await asyncio.to_thread(
            service.authentication_options, pending.subject, relying_party(request)
        )
    except TwoFactorError as exc:
        return _json({"error": str(exc)}, 409)
    return _json(options)


async def signin(request: web.Request) -> web.StreamResponse:
    pending = await find_pending(request, "verify")
    if pending is None:
        return _json({"error": "The sign-in has expired.", "location": EXPIRED_PATH}, 401)
    service = _service(request)
    credential = form(request).get("credential", "")[:MAX_CREDENTIAL]
    client = client_info(request)
    rp = relying_party(request)

    def work() -> SignedIn | None:
        service.verify(pending.subject, credential, rp, client)
        if not request.app[PENDING].take(pending):
            return None
        return start_session(
            request, pending.subject, pending.backend, via=pending.via, factor="passkey"
        )

    try:
        started = await asyncio.to_thread(work)
    except Throttled as exc:
        return _json({"error": throttled_message(exc)}, 429)
    except WrongCode:
        return _json({"error": "The passkey was not accepted. Try again, or use a code."}, 401)
    except ValueError:
        started = None
    if started is None:
        return _json({"error": "The sign-in has expired.", "location": EXPIRED_PATH}, 401)
    return finish_sign_in(request, _json({"location": pending.target}), started)


ROUTES = (
    ("POST", ACCOUNT_PAGE + "/passkeys/options", register_options),
    ("POST", ACCOUNT_PAGE + "/passkeys", register),
    ("POST", ACCOUNT_PAGE + "/passkeys/{id}/delete", delete),
    ("POST", VERIFY_PATH + "/passkey/options", signin_options),
    ("POST", VERIFY_PATH + "/passkey", signin),
)
