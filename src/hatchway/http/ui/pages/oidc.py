"""Sign in with the OpenID provider (``identity.oidc``): the authorization code flow.

``GET /ui/sign-in/oidc`` (the link on the sign-in page: a link, since the UI's CSP
``form-action 'self'`` would stop a form's redirect to the provider; starting a sign-in
changes nothing a forged request could use) makes a fresh ``state``, ``nonce`` and PKCE
verifier, keeps them in the
database under a SHA-256 of the state for ten minutes, bound to this browser by a random
cookie (its SHA-256 is stored), and sends the browser to the provider.
``GET /ui/sign-in/oidc/callback`` takes that row once (a replayed or forged state finds
nothing), checks the cookie, redeems the code, verifies the ID token, and starts a UI
session exactly as a password sign-in does (audited as ``login`` ``via: ui``, ``source:
oidc``). Every failure, the provider's own (``error=access_denied``) included, is a
page that says what happened, never a 500.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, NoReturn

from aiohttp import web

from hatchway.auth.identity.base import ClientInfo
from hatchway.auth.principal import Principal
from hatchway.auth.websession import SignedIn
from hatchway.http.access import client_info
from hatchway.http.state import TOKEN_SERVICE, WEB_SESSIONS
from hatchway.http.ui import sessions
from hatchway.http.ui.middleware import UiError
from hatchway.http.ui.pages.signin import safe_next
from hatchway.http.ui.pages.twofactor_signin import begin_second_factor
from hatchway.http.ui.render import redirect
from hatchway.http.ui.sso import oidc_source
from hatchway.metadata.oidc import PendingLogin
from hatchway.metadata.records import AuditEvent, Outcome, utcnow

if TYPE_CHECKING:
    from hatchway.auth.identity.oidc import OidcAuthenticator

log = logging.getLogger("hatchway.http.ui.oidc")
# The OIDC source (and httpx with it) is imported by the handlers, once a provider is
# configured: a worker without identity.oidc never loads it.
OIDC_BACKEND = "oidc"

START = "/ui/sign-in/oidc"
CALLBACK = "/ui/sign-in/oidc/callback"
BROWSER_COOKIE = "hatchway_oidc"
LOGIN_TTL = timedelta(minutes=10)
_MAX_PARAM = 4096


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _source(request: web.Request) -> OidcAuthenticator:
    found = oidc_source(request.app)
    if found is None:
        raise UiError(404, "Not found", "Single sign-on is not configured on this registry.")
    return found


def _cookie_name(request: web.Request) -> str:
    return f"__Host-{BROWSER_COOKIE}" if request.scheme == "https" else BROWSER_COOKIE


def redirect_uri(request: web.Request) -> str:
    """The callback as the browser reaches this server (behind a trusted proxy: its
    scheme and host); register exactly this URL at the provider."""
    return f"{request.scheme}://{request.host}{CALLBACK}"


def _unavailable(source: OidcAuthenticator) -> UiError:
    return UiError(
        503,
        "Sign-in unavailable",
        f"{source.name} cannot be reached right now. Try again in a minute, "
        "or sign in with a password.",
    )


async def start(request: web.Request) -> web.StreamResponse:
    source = _source(request)
    from hatchway.auth.identity.oidcclient import ProviderUnavailable

    target = safe_next(request.query.get("next"))
    if await sessions.signed_in(request) is not None:
        raise web.HTTPSeeOther(target)  # as the sign-in page does
    state = secrets.token_urlsafe(32)
    nonce = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(48)  # RFC 7636: 43 to 128 characters
    browser = secrets.token_urlsafe(32)
    login = PendingLogin(_digest(browser), nonce, verifier, target, utcnow() + LOGIN_TTL)
    try:
        url = await source.provider.authorization_url(redirect_uri(request), state, nonce, verifier)
    except ProviderUnavailable as exc:
        log.warning("identity.oidc: cannot start a sign-in: %s", exc)
        raise _unavailable(source) from None
    await asyncio.to_thread(source.tokens.begin, _digest(state), login, utcnow())
    response = web.Response(status=303, headers={"Location": url})
    response.set_cookie(
        _cookie_name(request),
        browser,
        path="/",
        max_age=int(LOGIN_TTL.total_seconds()),
        httponly=True,
        samesite="Lax",  # sent on the provider's top-level redirect back here
        secure=request.scheme == "https",
    )
    return response


def _refused(request: web.Request, status: int, title: str, message: str, reason: str) -> NoReturn:
    client = client_info(request)
    request.app[TOKEN_SERVICE].audit(
        AuditEvent(
            "login",
            Outcome.FAILURE,
            None,
            client.address,
            client.user_agent,
            detail={"via": "ui", "source": OIDC_BACKEND, "reason": reason},
        )
    )
    raise UiError(status, title, message)


async def callback(request: web.Request) -> web.StreamResponse:
    source = _source(request)
    from hatchway.auth.identity.oidc import SignInRefused
    from hatchway.auth.identity.oidcclient import ProviderRefused, ProviderUnavailable

    query = request.query
    state = query.get("state", "")[:_MAX_PARAM]
    pending = None
    if state:
        pending = await asyncio.to_thread(source.tokens.take, _digest(state))
    error = query.get("error")
    if error is not None:
        if error == "access_denied":
            message = f"Sign-in with {source.name} was cancelled or refused."
        else:
            message = f"{source.name} did not sign you in ({error[:64]})."
        described = query.get("error_description")
        if described:
            message += f" It said: {described[:200]}"
        _refused(request, 401, "Sign-in not completed", message, f"provider: {error[:64]}")
    browser = request.cookies.get(_cookie_name(request), "")
    if (
        pending is None
        or not browser
        or not hmac.compare_digest(pending.browser_hash, _digest(browser))
    ):
        _refused(
            request,
            400,
            "Sign-in link not valid",
            "This sign-in was not started in this browser, or was used already. "
            "Start again from the sign-in page.",
            "state",
        )
    if pending.expires_at <= utcnow():
        _refused(
            request,
            400,
            "Sign-in expired",
            "This sign-in took too long and has expired. Start again from the sign-in page.",
            "expired",
        )
    answered_by = query.get("iss")  # RFC 9207: which provider answered (mix-up defence)
    if answered_by is not None and answered_by != source.config.issuer:
        _refused(
            request,
            400,
            "Sign-in not completed",
            "The answer came from another provider than the one this registry uses.",
            "issuer",
        )
    code = query.get("code", "")
    if not code or len(code) > _MAX_PARAM:
        _refused(request, 400, "Sign-in not completed", "The provider sent no code.", "no code")
    try:
        tokens = await source.provider.exchange(
            code, pending.verifier, redirect_uri(request), pending.nonce
        )
    except ProviderUnavailable as exc:
        log.warning("identity.oidc: sign-in: %s", exc)
        raise _unavailable(source) from None
    except ProviderRefused as exc:
        log.warning("identity.oidc: sign-in refused: %s", exc)
        _refused(
            request,
            401,
            "Sign-in not completed",
            f"{source.name}'s answer was not accepted: {exc}. Start again from the sign-in page.",
            exc.error,
        )
    client = client_info(request)
    try:
        principal = await asyncio.to_thread(source.sign_in, tokens, client)
    except SignInRefused as exc:  # audited by the source, with the account's name
        raise UiError(403, "Sign-in refused", str(exc)) from None
    # The provider's yes is the first factor only: an account with a second factor (or
    # one that must enrol) goes on to the same step as after a password.
    step = await begin_second_factor(request, principal, OIDC_BACKEND, pending.next, via="oidc")
    if step is not None:
        step.del_cookie(_cookie_name(request), path="/")
        return step
    started = await asyncio.to_thread(_start_session, request, principal, client)
    response = redirect(pending.next)
    sessions.set_session(request, response, started.secret)
    response.del_cookie(_cookie_name(request), path="/")
    return response


def _start_session(request: web.Request, principal: Principal, client: ClientInfo) -> SignedIn:
    started = request.app[WEB_SESSIONS].start(principal, OIDC_BACKEND, client)
    request.app[TOKEN_SERVICE].audit(
        AuditEvent(
            "login",
            Outcome.SUCCESS,
            principal.subject,
            client.address,
            client.user_agent,
            detail={"via": "ui", "source": OIDC_BACKEND, "session": started.session.id},
        )
    )
    return started


ROUTES = (
    ("GET", START, start),
    ("GET", CALLBACK, callback),
)
