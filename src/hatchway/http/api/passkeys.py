"""``/api/v1/me/twofactor/passkeys...``: register, list and delete passkeys (WebAuthn)
over the API, thin handlers over :class:`hatchway.auth.passkeys.PasskeyService` (the web
UI calls the same service). A browser-side script (or a WebAuthn client) gets the options,
runs ``navigator.credentials.create`` at the same origin, and posts the answer.

As for TOTP enrolment, these accept the password over Basic (or the UI's session), not an
access token; the RP ID is the host of the request as the client sent it (through a
trusted proxy, the forwarded one), and the origin must be that scheme and host.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from hatchway.auth.passkeys import PasskeyService, RelyingParty
from hatchway.http.access import client_info
from hatchway.http.api.errors import ApiError, json_response, read_model
from hatchway.http.api.route import Route
from hatchway.http.api.twofactor import TWOFACTOR, _caller, _refusals
from hatchway.http.api.twofactormodels import (
    PasskeyInfo,
    PasskeyList,
    PasskeyOptions,
    PasskeyRegister,
)


def relying_party(request: web.Request) -> RelyingParty:
    """The RP ID (the host name the client used, without the port) and the origin."""
    host = request.host
    if host.startswith("["):
        name = host[1 : host.find("]")] if "]" in host else host
    else:
        name = host.rsplit(":", 1)[0] if ":" in host else host
    return RelyingParty(id=name.lower(), origin=f"{request.scheme}://{host}")


def _iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


async def _service(request: web.Request) -> tuple[PasskeyService, Any]:
    twofactor, caller = await _caller(request, exempt=True)
    return PasskeyService(twofactor), caller


async def options(request: web.Request) -> web.StreamResponse:
    service, caller = await _service(request)
    with _refusals():
        made = await asyncio.to_thread(
            service.registration_options, caller, relying_party(request), client_info(request)
        )
    return json_response(PasskeyOptions(options=json.loads(made)))


async def register(request: web.Request) -> web.StreamResponse:
    service, caller = await _service(request)
    body = await read_model(request, PasskeyRegister)
    with _refusals():
        made = await asyncio.to_thread(
            service.register,
            caller,
            body.name,
            json.dumps(body.credential),
            relying_party(request),
            client_info(request),
        )
    info = PasskeyInfo(
        id=made.id, name=made.name, created_at=_iso(made.created_at) or "", last_used_at=None
    )
    return json_response(info, status=201)


async def listing(request: web.Request) -> web.StreamResponse:
    service, caller = await _service(request)
    found = await asyncio.to_thread(service.list, caller.name)
    return json_response(
        PasskeyList(
            passkeys=[
                PasskeyInfo(
                    id=p.id,
                    name=p.name,
                    created_at=_iso(p.created_at) or "",
                    last_used_at=_iso(p.last_used_at),
                )
                for p in found
            ]
        )
    )


async def remove(request: web.Request) -> web.StreamResponse:
    service, caller = await _service(request)
    raw = request.match_info["id"]
    if raw == "options":  # the sibling path /passkeys/options is POST only
        raise web.HTTPMethodNotAllowed(request.method, ["POST"])
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(
            422, "INVALID_REQUEST", "a passkey id is a number (see GET /me/twofactor/passkeys)"
        )
    with _refusals():
        done = await asyncio.to_thread(service.remove, caller, int(raw), client_info(request))
    if not done:
        raise ApiError(404, "NOT_FOUND", "no such passkey")
    return web.Response(status=204, headers={"Cache-Control": "no-store"})


PASSKEY_ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/me/twofactor/passkeys/options",
        options,
        "Start registering a passkey: the WebAuthn creation options (password sign-in only)",
        responses={200: PasskeyOptions},
        errors=(403, 409),
    ),
    Route(
        "POST",
        "/me/twofactor/passkeys",
        register,
        "Register a passkey: the browser's answer to the options; 2FA is on with it",
        body=PasskeyRegister,
        responses={201: PasskeyInfo},
        errors=(403, 409),
    ),
    Route(
        "GET",
        "/me/twofactor/passkeys",
        listing,
        "Your passkeys",
        responses={200: PasskeyList},
        errors=(403,),
    ),
    Route(
        "DELETE",
        "/me/twofactor/passkeys/{id}",
        remove,
        "Delete one of your passkeys (the last one with no TOTP: 2FA is off)",
        responses={204: None},
        errors=(403, 404, 422),
    ),
)

__all__ = ["PASSKEY_ROUTES", "TWOFACTOR", "relying_party"]
