"""The management API under ``/api/v1`` (JSON): self-service for every account.

Mounted only with the built-in token service (``auth: token`` without an external issuer):
it authenticates with the same accounts, tokens and throttling. Every ``/api/v1`` answer,
404s included, is JSON in the API's one error format (:mod:`.errors`).
"""

from __future__ import annotations

from aiohttp import web

from hatchway.http.api.errors import api_errors
from hatchway.http.api.routes import ROUTES, self_service_for
from hatchway.http.api.routes import setup as _setup_routes
from hatchway.http.api.twofactor import TWOFACTOR, twofactor_for
from hatchway.http.state import TOKEN_SERVICE


def setup(app: web.Application) -> None:
    """Add the routes; call once the token service is in ``app`` (TOKEN_SERVICE)."""
    selfservice = self_service_for(app)
    if selfservice is not None:
        twofactor = twofactor_for(app)
        app[TWOFACTOR] = twofactor
        # The two-factor rule on every password sign-in (/auth/token, docker login, Basic).
        app[TOKEN_SERVICE].password_rule = twofactor.password_refusal
        _setup_routes(app, selfservice)


__all__ = ["ROUTES", "api_errors", "setup"]
