"""Who is calling the management API: one place that reads credentials and checks them.

Schemes, tried in order: HTTP Basic (password, or an access token as the password),
``Authorization: Bearer hw_...`` (an access token alone), ``Authorization: Bearer
hwr_...`` (a refresh token: the docker session ``hatchway login`` stores, so the CLI can
call the API with what login kept), and the web UI's session cookie (only without an
``Authorization`` header; a method other than GET/HEAD must then carry the session's CSRF
token in ``X-CSRF-Token``, or it is refused with 403). Each scheme only *reads* the
request into :class:`Presented`; checking goes through the token service's ``login`` (the
same authenticators, the same limiter: 429 with Retry-After, the same dummy bcrypt for
unknown accounts, the same failure audit as ``/auth/token``). The session cookie is
checked by the web UI's sessions (idle and absolute expiry, bound to the password).

Every failure is the same 401 (``WWW-Authenticate: Basic realm="hatchway"``): unknown
account, wrong password and revoked token are not told apart.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, replace

from aiohttp import web

from hatchway.auth.credentials.pat import looks_like_token, secret_hash
from hatchway.auth.credentials.refresh import REFRESH_PREFIX
from hatchway.auth.identity.base import ClientInfo, IdentityUnavailable
from hatchway.auth.selfservice import Caller, SelfService
from hatchway.auth.service import SecondFactorRefusal, TokenRequestError, TokenService
from hatchway.auth.websession import WebSessions
from hatchway.http.access import client_info
from hatchway.http.api.errors import ApiError, throttled, unauthorized
from hatchway.http.state import WEB_SESSIONS
from hatchway.http.ui.csrf import HEADER, SAFE_METHODS, header_ok
from hatchway.http.ui.sessions import session_secret


@dataclass(frozen=True, slots=True)
class Presented:
    """Credentials as read from the request, not yet checked."""

    scheme: str  # "basic" | "bearer" | "session"
    username: str  # "" for a bearer token: the token names its account
    secret: str


def _basic(request: web.Request) -> Presented | None:
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise unauthorized("malformed Basic credentials") from None
    username, sep, password = decoded.partition(":")
    if not sep or not username or not password:
        raise unauthorized("malformed Basic credentials")
    return Presented("basic", username, password)


def _bearer(request: web.Request) -> Presented | None:
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return Presented("bearer", "", secret.strip())


def _session(request: web.Request) -> Presented | None:
    if "Authorization" in request.headers or WEB_SESSIONS not in request.app:
        return None
    secret = session_secret(request)
    if not secret:
        return None
    if request.method not in SAFE_METHODS and not header_ok(request, secret):
        raise ApiError(403, "CSRF", f"a request with the session cookie needs the {HEADER} header")
    return Presented("session", "", secret)


SCHEMES: tuple[Callable[[web.Request], Presented | None], ...] = (_basic, _bearer, _session)


def _verify_session(
    selfservice: SelfService,
    presented: Presented,
    client: ClientInfo,
    sessions: WebSessions | None,
) -> Caller:
    try:
        found = sessions.resolve(presented.secret, client) if sessions is not None else None
    except IdentityUnavailable as exc:  # the account's provider could not be asked again
        raise ApiError(503, "UNAVAILABLE", str(exc), headers={"Retry-After": "30"}) from None
    if found is None:
        raise unauthorized("the session has ended; sign in again")
    return Caller(found.principal, found.session.backend)


def _verify(
    service: TokenService,
    selfservice: SelfService,
    presented: Presented,
    client: ClientInfo,
    sessions: WebSessions | None = None,
    exempt: bool = False,
) -> Caller:
    """Check the credentials (blocking: bcrypt, SQL) through the token service's login."""
    if presented.scheme == "session":
        return _verify_session(selfservice, presented, client, sessions)
    username = presented.username
    if presented.scheme == "bearer" and presented.secret.startswith(REFRESH_PREFIX):
        # A docker session (what `hatchway login` stores): the account as it is now,
        # narrowed to the PAT it was got with, if any. Unguessable, so not throttled.
        try:
            principal, backend = service.refresh(presented.secret, client)
        except TokenRequestError:
            raise unauthorized("incorrect username or password") from None
        return replace(selfservice.caller(principal, backend), session=True)
    if presented.scheme == "bearer":
        # The token names its account; login then checks it as Basic would, throttled.
        # An unknown token still goes through login (as ""), so it counts as a failure
        # of this address and is audited like any other.
        found = (
            selfservice.store.tokens.find_active(secret_hash(presented.secret))
            if looks_like_token(presented.secret)
            else None
        )
        username = found[1].name if found is not None else ""
    try:
        principal, backend = service.login(
            username, presented.secret, client, second_factor_exempt=exempt
        )
    except SecondFactorRefusal as exc:
        raise unauthorized(exc.description) from None
    except TokenRequestError as exc:
        if exc.status == 429:
            raise throttled(exc.retry_after) from None
        if exc.status == 503:
            retry = str(max(1, round(exc.retry_after or 1)))
            raise ApiError(
                503, "UNAVAILABLE", exc.description, headers={"Retry-After": retry}
            ) from None
        raise unauthorized("incorrect username or password") from None
    return selfservice.caller(principal, backend)


async def authenticate(
    request: web.Request,
    service: TokenService,
    selfservice: SelfService,
    *,
    second_factor_exempt: bool = False,
) -> Caller:
    """``second_factor_exempt``: a password is accepted even where the two-factor rule
    refuses it (the 2FA endpoints, which carry their own proof)."""
    presented = None
    for scheme in SCHEMES:
        presented = scheme(request)
        if presented is not None:
            break
    if presented is None:
        raise unauthorized()
    sessions = request.app.get(WEB_SESSIONS)
    return await asyncio.to_thread(
        _verify,
        service,
        selfservice,
        presented,
        client_info(request),
        sessions,
        second_factor_exempt,
    )


__all__ = ["SCHEMES", "ApiError", "Presented", "authenticate"]
