"""The web sign-in's second step: after the first step (a password here; an OIDC sign-in
calls :func:`begin_second_factor` the same way) an account with a second factor gets no
session yet, but a pending sign-in (``auth.pendingsignin``: server-side, in its own
``HttpOnly`` cookie, single-use, five minutes) and the "Two-factor authentication" page.
There it gives a code from its authenticator app or a recovery code (checked by
``auth.twofactor``: replays refused, wrong codes throttled and audited like passwords);
then the pending sign-in is taken and a normal session starts.

An account that ``identity.twofactor.required`` asks for a second factor and that has
none is sent to set one up instead (the same pending sign-in, ``enrol``): see
:mod:`.twofactor_enrol`.
"""

from __future__ import annotations

import asyncio
import math

from aiohttp import web

from hatchway.auth.credentials.ratelimit import Throttled
from hatchway.auth.pendingsignin import PendingSignIns, Purpose
from hatchway.auth.principal import Principal
from hatchway.auth.selfservice import Caller
from hatchway.auth.twofactor import Conflict, TwoFactorService, WrongCode
from hatchway.auth.websession import SignedIn
from hatchway.http.access import client_info
from hatchway.http.api.twofactor import TWOFACTOR
from hatchway.http.state import TOKEN_SERVICE, WEB_SESSIONS
from hatchway.http.ui import sessions
from hatchway.http.ui.middleware import form
from hatchway.http.ui.render import redirect, render
from hatchway.metadata.pendingsignins import PendingSignIn
from hatchway.metadata.records import AuditEvent, Outcome

PENDING = web.AppKey("ui_pending_signins", PendingSignIns)
VERIFY_PATH = "/ui/sign-in/two-factor"
ENROL_PATH = "/ui/sign-in/enrol"
EXPIRED_PATH = "/ui/sign-in?expired=1"
HOME = "/ui/repositories"


def setup(app: web.Application) -> None:
    app[PENDING] = PendingSignIns(app[TOKEN_SERVICE].store)


def twofactor_of(request: web.Request) -> TwoFactorService | None:
    return request.app.get(TWOFACTOR)


async def begin_second_factor(
    request: web.Request,
    principal: Principal,
    backend: str,
    target: str = HOME,
    *,
    via: str = "ui",
) -> web.Response | None:
    """Call after the first step of a web sign-in succeeded for ``principal`` (of
    ``backend``): the redirect to the second-factor step (or to the enrolment that
    ``identity.twofactor.required`` asks for), with the pending sign-in's cookie set; or
    None when the account needs neither, and the caller starts the session itself (as
    :func:`finish_sign_in` does). ``target`` must already be a safe ``/ui`` path; ``via``
    names the first step in the audit (``ui``, ``oidc``)."""
    twofactor = twofactor_of(request)
    if twofactor is None:
        return None
    pending = request.app[PENDING]
    client = client_info(request)

    def work() -> tuple[Purpose, str] | None:
        step = twofactor.web_step(principal)
        if step is None:
            return None
        if step == "enrol" and twofactor.pending(Caller(principal, backend)) is None:
            twofactor.start(Caller(principal, backend), client)
        secret = pending.begin(principal.subject, backend, step, via=via, target=target)
        return step, secret

    made = await asyncio.to_thread(work)
    if made is None:
        return None
    response = redirect(VERIFY_PATH if made[0] == "verify" else ENROL_PATH)
    sessions.set_pending(request, response, made[1])
    return response


def start_session(
    request: web.Request, subject: str, backend: str, *, via: str, factor: str | None
) -> SignedIn:
    """Blocking: a new session for an account whose sign-in is complete, audited as a
    ``login``. ValueError: no session can be made for it (see ``WebSessions.start``)."""
    client = client_info(request)
    started = request.app[WEB_SESSIONS].start(Principal(subject), backend, client)
    detail: dict[str, object] = {"via": via, "session": started.session.id}
    if factor is not None:
        detail["second_factor"] = factor
    request.app[TOKEN_SERVICE].audit(
        AuditEvent(
            "login", Outcome.SUCCESS, subject, client.address, client.user_agent, detail=detail
        )
    )
    return started


def finish_sign_in(
    request: web.Request, response: web.StreamResponse, started: SignedIn
) -> web.StreamResponse:
    """Give the browser its session cookie and drop the pending sign-in's."""
    request[sessions.SIGNED_IN] = started
    sessions.set_session(request, response, started.secret)
    sessions.clear_pending(request, response)
    return response


async def find_pending(request: web.Request, purpose: Purpose) -> PendingSignIn | None:
    return await asyncio.to_thread(
        request.app[PENDING].find, sessions.pending_secret(request), purpose
    )


def expired() -> web.Response:
    """Back to the password step: the pending sign-in is gone (used, expired, or none)."""
    return redirect(EXPIRED_PATH)


def throttled_message(exc: Throttled) -> str:
    return f"Too many failed attempts. Try again in {max(1, math.ceil(exc.wait))} seconds."


async def _page(
    request: web.Request, pending: PendingSignIn, *, status: int = 200, error: str | None = None
) -> web.Response:
    store = request.app[TOKEN_SERVICE].store

    def factors() -> tuple[bool, bool]:
        totp = store.twofactor.get(pending.subject)
        return totp is not None and totp.active, store.passkeys.count(pending.subject) > 0

    has_totp, has_passkeys = await asyncio.to_thread(factors)
    return render(
        request,
        "two_factor.html",
        status=status,
        title="Two-factor authentication",
        error=error,
        has_totp=has_totp,
        has_passkeys=has_passkeys,
    )


async def verify_page(request: web.Request) -> web.StreamResponse:
    pending = await find_pending(request, "verify")
    if pending is None:
        return expired()
    return await _page(request, pending)


async def verify(request: web.Request) -> web.StreamResponse:
    pending = await find_pending(request, "verify")
    twofactor = twofactor_of(request)
    if pending is None or twofactor is None:
        return expired()
    code = form(request).get("code", "").strip()[:64]
    if not code:
        return await _page(request, pending, status=422, error="Enter a code.")
    client = client_info(request)

    def work() -> SignedIn | None:
        factor = twofactor.verify(pending.subject, code, client)
        if not request.app[PENDING].take(pending):
            return None
        return start_session(
            request, pending.subject, pending.backend, via=pending.via, factor=factor
        )

    try:
        started = await asyncio.to_thread(work)
    except WrongCode:
        error = "That code is incorrect or was already used."
        return await _page(request, pending, status=401, error=error)
    except Throttled as exc:
        return await _page(request, pending, status=429, error=throttled_message(exc))
    except (Conflict, ValueError):  # 2FA removed meanwhile, or the account went
        started = None
    if started is None:
        return expired()
    return finish_sign_in(request, redirect(pending.target), started)


async def cancel(request: web.Request) -> web.StreamResponse:
    """Back to the password step, forgetting the pending sign-in."""
    await asyncio.to_thread(request.app[PENDING].cancel, sessions.pending_secret(request))
    response = redirect("/ui/sign-in")
    sessions.clear_pending(request, response)
    return response


ROUTES = (
    ("GET", VERIFY_PATH, verify_page),
    ("POST", VERIFY_PATH, verify),
    ("POST", "/ui/sign-in/cancel", cancel),
)
