"""The HTTP side of the gate: header in, principal out, or a 401/403 in the spec's form."""

from __future__ import annotations

import functools

from aiohttp import web

from hatchway.auth.access import Access
from hatchway.auth.challenge import Challenge
from hatchway.auth.gate import Allowed
from hatchway.auth.identity.base import ClientInfo
from hatchway.errors import DENIED, UNAUTHORIZED, HatchwayError
from hatchway.http.state import GATE, TOKEN_REALM

ALLOWED = web.RequestKey("allowed", Allowed)


class ChallengeError(HatchwayError):
    """A 401 (or 403) that carries its ``WWW-Authenticate`` header."""

    def __init__(self, found: Challenge) -> None:
        detail = [a.claim() for a in found.needed] or None
        super().__init__(DENIED if found.denied else UNAUTHORIZED, found.message, detail)
        self.header = found.header


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


async def authorize(request: web.Request, needed: list[Access]) -> Allowed:
    gate = request.app[GATE]
    try:
        allowed = await gate.check(
            request.headers.get("Authorization"), needed, token_realm(request), client_info(request)
        )
    except Challenge as found:
        raise ChallengeError(found) from None
    request[ALLOWED] = allowed
    return allowed


def allowed(request: web.Request) -> Allowed:
    return request[ALLOWED]
