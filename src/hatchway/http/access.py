"""The HTTP side of the gate: header in, principal out, or a 401/403 in the spec's form.

Also the registry's side of the audit trail: refusals of requests that carried
credentials, and successful pushes, pulls and deletes. The first anonymous 401 of
Docker's token dance is normal and not recorded. A push or a delete is answered only once
its event is committed (a ``kill -9`` must not lose the trace of an acknowledged change);
pulls and refusals are queued.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Sequence

from aiohttp import web

from hatchway.audit.sink import AuditWriteError
from hatchway.auth.access import Access
from hatchway.auth.challenge import Challenge
from hatchway.auth.gate import Allowed
from hatchway.auth.identity.base import ClientInfo
from hatchway.errors import DENIED, TOOMANYREQUESTS, UNAUTHORIZED, UNAVAILABLE, HatchwayError
from hatchway.http.state import AUDIT, GATE, TOKEN_REALM
from hatchway.metadata.records import AuditEvent, Outcome

ALLOWED = web.RequestKey("allowed", Allowed)
# Successes that change the registry: their events are durable before the response.
CHANGES = frozenset({"push", "delete"})


class ChallengeError(HatchwayError):
    """A 401 (or 403) that carries its ``WWW-Authenticate`` header."""

    def __init__(self, found: Challenge) -> None:
        detail = [a.claim() for a in found.needed] or None
        code = DENIED if found.denied else UNAUTHORIZED
        if found.retry_after is not None:
            code = TOOMANYREQUESTS
        super().__init__(code, found.message, detail)
        self.headers = {"WWW-Authenticate": found.header}
        if found.retry_after is not None:
            self.headers["Retry-After"] = str(max(1, math.ceil(found.retry_after)))


def client_info(request: web.Request) -> ClientInfo:
    return ClientInfo(request.remote, request.headers.get("User-Agent"))


def token_realm(request: web.Request) -> str:
    """The configured realm, else this server's own token endpoint as the client sees it."""
    configured = request.app[TOKEN_REALM]
    if configured:
        return configured
    return _derived_realm(request.scheme, request.host)


@functools.lru_cache(maxsize=256)
def _derived_realm(scheme: str, host: str) -> str:
    return f"{scheme}://{host}/auth/token"


async def authorize(
    request: web.Request, needed: list[Access], optional: Sequence[Access] = ()
) -> Allowed:
    """The request's grants, covering all of ``needed`` (and ``optional`` where the
    credential or policy allows it), else the 401/403 in the spec's form."""
    gate = request.app[GATE]
    authorization = request.headers.get("Authorization")
    try:
        allowed = await gate.check(
            authorization, needed, token_realm(request), client_info(request), optional
        )
    except Challenge as found:
        if authorization is not None:
            _refused(request, needed, found)
        raise ChallengeError(found) from None
    request[ALLOWED] = allowed
    return allowed


def _event_name(needed: list[Access]) -> str:
    """What was attempted, named as the success events are: pull, push, delete, catalog."""
    actions: set[str] = set()
    for access in needed:
        actions.update(access.actions)
    for name in ("delete", "push", "pull"):
        if name in actions:
            return name
    return "catalog" if needed else "access"


def _refused(request: web.Request, needed: list[Access], found: Challenge) -> None:
    sink = request.app[AUDIT]
    if sink is None:
        return
    repository = next((a.resource.name for a in needed if a.resource.type == "repository"), None)
    sink.record(
        AuditEvent(
            _event_name(needed),
            Outcome.FAILURE if found.failed else Outcome.DENIED,
            found.account,
            request.remote,
            request.headers.get("User-Agent"),
            repository=repository,
            scopes_requested=tuple(a.scope() for a in needed),
            detail={"reason": found.message, "method": request.method},
        )
    )


async def audit_success(
    request: web.Request,
    event: str,
    repository: str,
    reference: str,
    digest: str | None = None,
    *,
    credential: str | None = None,
    via: str | None = None,
) -> None:
    """Record a push, pull or delete that succeeded. A pull is one deque append; a change
    waits until its event is committed (with others', in one transaction), and if that
    fails the change is not acknowledged: a 503 the client may retry (PUT and DELETE are
    idempotent), rather than a success the audit trail does not know about."""
    sink = request.app[AUDIT]
    if sink is None:
        return
    detail = {"reference": reference}
    if digest and digest != reference:
        detail["digest"] = digest
    if credential:  # the access token's name, when one was used
        detail["token_name"] = credential
    if via:
        detail["via"] = via
    subject = request[ALLOWED].principal.subject if ALLOWED in request else ""
    found = AuditEvent(
        event,
        Outcome.SUCCESS,
        subject or None,
        request.remote,
        request.headers.get("User-Agent"),
        repository=repository,
        detail=detail,
    )
    if event not in CHANGES:
        sink.record(found)
        return
    committed = sink.commit(found)
    try:
        if not committed.done():  # done at once when the events only go to the log
            # shield: a client that hangs up must not cancel the write of a change it made.
            await asyncio.shield(asyncio.wrap_future(committed))
        committed.result()
    except AuditWriteError:
        raise HatchwayError(
            UNAVAILABLE, "the change was made but could not be audited; retry the request"
        ) from None


def allowed(request: web.Request) -> Allowed:
    return request[ALLOWED]
