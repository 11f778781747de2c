"""``/api/v1/me/twofactor...`` and the admin reset: thin handlers over
:class:`hatchway.auth.twofactor.TwoFactorService` (the web UI calls the same service).

The enrolment and disable endpoints accept the password over Basic even where the
two-factor rule refuses it elsewhere: they carry their own proof (a code; the password
and a code), and an account that must enrol could otherwise never do so. A personal
access token is refused there (403), as it is for a password change.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractContextManager

from aiohttp import web

from hatchway.auth.credentials.ratelimit import Throttled
from hatchway.auth.identity.base import ClientInfo
from hatchway.auth.selfservice import Caller
from hatchway.auth.service import TokenRequestError
from hatchway.auth.twofactor import (
    Conflict,
    NotApplicable,
    NotPermitted,
    Required,
    TwoFactorService,
    WrongCode,
)
from hatchway.http.access import client_info
from hatchway.http.api import twofactormodels as tfm
from hatchway.http.api.authn import authenticate
from hatchway.http.api.errors import (
    ApiError,
    Refusal,
    json_response,
    read_model,
    refusals,
)
from hatchway.http.api.route import SELF_SERVICE, Route
from hatchway.http.state import CONFIG, TOKEN_SERVICE
from hatchway.metadata import NotFoundError

TWOFACTOR = web.AppKey("twofactor", TwoFactorService)


_REFUSALS: tuple[Refusal, ...] = (
    (NotPermitted, 403, "DENIED"),
    (WrongCode, 403, "WRONG_CODE"),
    (NotApplicable, 409, "NOT_APPLICABLE"),
    (Conflict, 409, "CONFLICT"),
    (NotFoundError, 404, "NOT_FOUND"),
)


def _refusals() -> AbstractContextManager[None]:
    """The two-factor service's refusals -> API errors."""
    return refusals(_REFUSALS, wait=Throttled)


async def _caller(request: web.Request, *, exempt: bool) -> tuple[TwoFactorService, Caller]:
    caller = await authenticate(
        request, request.app[TOKEN_SERVICE], request.app[SELF_SERVICE], second_factor_exempt=exempt
    )
    return request.app[TWOFACTOR], caller


def state(service: TwoFactorService, caller: Caller) -> tfm.TwoFactorState | None:
    """For ``GET /me`` (blocking: one query)."""
    if caller.backend != "local" and service.store.accounts.get(caller.name) is None:
        return None
    found = service.status(caller.principal)
    return tfm.TwoFactorState(
        enabled=found.enabled,
        pending=found.pending,
        method="totp" if found.method == "totp" else None,
        recovery_codes_left=found.recovery_codes_left,
        required=found.required,
        passkeys=found.passkeys,
    )


async def start_totp(request: web.Request) -> web.StreamResponse:
    service, caller = await _caller(request, exempt=True)
    with _refusals():
        made = await asyncio.to_thread(service.start, caller, client_info(request))
    return json_response(tfm.TotpEnrolment(secret=made.secret, uri=made.uri), status=201)


async def confirm_totp(request: web.Request) -> web.StreamResponse:
    service, caller = await _caller(request, exempt=True)
    body = await read_model(request, tfm.TotpConfirm)
    with _refusals():
        codes = await asyncio.to_thread(service.confirm, caller, body.code, client_info(request))
    return json_response(tfm.RecoveryCodes(recovery_codes=codes))


async def regenerate(request: web.Request) -> web.StreamResponse:
    service, caller = await _caller(request, exempt=True)
    body = await read_model(request, tfm.TotpConfirm)
    with _refusals():
        codes = await asyncio.to_thread(service.regenerate, caller, body.code, client_info(request))
    return json_response(tfm.RecoveryCodes(recovery_codes=codes))


async def disable(request: web.Request) -> web.StreamResponse:
    service, caller = await _caller(request, exempt=True)
    body = await read_model(request, tfm.TwoFactorDisable)
    with _refusals():
        await asyncio.to_thread(
            service.disable, caller, body.password, body.code, client_info(request)
        )
    return web.Response(status=204, headers={"Cache-Control": "no-store"})


async def admin_reset(request: web.Request) -> web.StreamResponse:
    service, caller = await _caller(request, exempt=False)
    if not caller.principal.admin:
        raise ApiError(403, "DENIED", "only an admin can reset another account's second factor")
    name = request.match_info["name"]
    with _refusals():
        removed = await asyncio.to_thread(
            service.reset, caller.name, name, client_info(request), via="api"
        )
    return json_response(tfm.TwoFactorReset(account=name, removed=removed))


TWOFACTOR_ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/me/twofactor/totp",
        start_totp,
        "Start TOTP enrolment: a new secret and its otpauth:// URI (password sign-in only)",
        responses={201: tfm.TotpEnrolment},
        errors=(403, 409),
    ),
    Route(
        "POST",
        "/me/twofactor/totp/confirm",
        confirm_totp,
        "Confirm enrolment with a first code: 2FA is on; the recovery codes, shown once",
        body=tfm.TotpConfirm,
        responses={200: tfm.RecoveryCodes},
        errors=(403, 409),
    ),
    Route(
        "POST",
        "/me/twofactor/recovery-codes",
        regenerate,
        "New recovery codes (the old ones stop working): needs a current TOTP code; shown once",
        body=tfm.TotpConfirm,
        responses={200: tfm.RecoveryCodes},
        errors=(403, 409),
    ),
    Route(
        "DELETE",
        "/me/twofactor",
        disable,
        "Turn 2FA off: needs the password and a code (or a recovery code)",
        body=tfm.TwoFactorDisable,
        responses={204: None},
        errors=(403, 409),
    ),
)

# Admin: kept as its own entry so it merges beside the /accounts admin endpoints.
TWOFACTOR_ADMIN_ROUTES: tuple[Route, ...] = (
    Route(
        "DELETE",
        "/accounts/{name}/twofactor",
        admin_reset,
        "Admin: remove an account's second factor (lost device); audited",
        responses={200: tfm.TwoFactorReset},
        errors=(403, 404),
    ),
)


def twofactor_for(app: web.Application) -> TwoFactorService:
    """Built from the token service's parts; its password check is the token service's
    login (same backends, same throttle), a token not counting as the password."""
    service = app[TOKEN_SERVICE]
    identity = app[CONFIG].identity
    required: Required = identity.twofactor.required if identity is not None else "none"

    def check_password(name: str, password: str, client: ClientInfo) -> bool:
        try:
            principal, _ = service.login(name, password, client, second_factor_exempt=True)
        except TokenRequestError as exc:
            if exc.status == 429:
                raise Throttled(exc.retry_after or 1.0) from None
            return False
        return principal.token_id is None

    return TwoFactorService(
        service.store,
        service.limiter,
        service.audit,
        required=required,
        check_password=check_password,
    )
