"""Who made a change, as the repository index and the audit trail record it: the account
and, when it signed in with an access token, that token's name."""

from __future__ import annotations

import asyncio

from aiohttp import web

from hatchway.http.access import ALLOWED
from hatchway.http.state import TOKEN_SERVICE
from hatchway.registry.index import Actor

ACTOR = web.RequestKey("actor", Actor)
_MAX_NAMES = 10_000
# token id -> its name: a token's name never changes, so the answer is kept.
_names: dict[str, str | None] = {}


async def _token_name(request: web.Request, token_id: str) -> str | None:
    if token_id in _names:
        return _names[token_id]
    service = request.app.get(TOKEN_SERVICE)
    if service is None or not token_id.isdigit():
        return None
    token = await asyncio.to_thread(service.store.tokens.get, int(token_id))
    name = token.name if token is not None else None
    if len(_names) >= _MAX_NAMES:
        _names.clear()
    _names[token_id] = name
    return name


async def actor_of(request: web.Request) -> Actor:
    """The request's actor (once the gate let it in), remembered on the request."""
    if ACTOR in request:
        return request[ACTOR]
    allowed = request.get(ALLOWED)
    principal = allowed.principal if allowed is not None else None
    account = principal.subject or None if principal is not None else None
    credential = None
    if principal is not None and principal.token_id:
        credential = await _token_name(request, principal.token_id)
    found = Actor(account, credential)
    request[ACTOR] = found
    return found
