"""Single sign-on as the sign-in page offers it (``identity.oidc``): the configured
source, found among the token service's authenticators, and the button's label."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from hatchway.http.state import TOKEN_SERVICE

if TYPE_CHECKING:
    from hatchway.auth.identity.oidc import OidcAuthenticator


def oidc_source(app: web.Application) -> OidcAuthenticator | None:
    service = app.get(TOKEN_SERVICE)
    if service is None:
        return None
    for authenticator in service.authenticators:
        if authenticator.backend == "oidc":
            return authenticator  # type: ignore[return-value]
    return None


def sso_label(request: web.Request) -> str | None:
    """``Sign in with <provider>`` names this, or None: no button."""
    found = oidc_source(request.app)
    return found.name if found is not None else None
