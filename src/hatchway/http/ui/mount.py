"""Mount the web UI on an application (see the package docstring)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from aiohttp import web

from hatchway.auth.websession import WebSessions
from hatchway.http.state import TOKEN_SERVICE, WEB_SESSIONS
from hatchway.http.ui import services
from hatchway.http.ui.csp import security_headers
from hatchway.http.ui.middleware import ui_middleware
from hatchway.http.ui.pages import (
    account,
    account_twofactor,
    admin,
    admin_audit,
    admin_groups,
    admin_robots,
    admin_rules,
    device,
    oidc,
    passkeys,
    repos,
    signin,
    twofactor_signin,
)

STATIC = Path(__file__).parent / "static"
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PAGES: tuple[Iterable[tuple[str, str, _Handler]], ...] = (
    signin.ROUTES,
    account.ROUTES,
    repos.ROUTES,
    admin.ROUTES,
    admin_robots.ROUTES,
    admin_groups.ROUTES,
    admin_rules.ROUTES,
    admin_audit.ROUTES,
    device.ROUTES,
    oidc.ROUTES,
    twofactor_signin.ROUTES,
    account_twofactor.ROUTES,
    passkeys.ROUTES,
)


async def root(request: web.Request) -> web.StreamResponse:
    """``/``: the registry's home page is the UI (``/v2/`` is unchanged)."""
    raise web.HTTPFound("/ui")


def setup(app: web.Application) -> None:
    """Add the UI; call after ``api.setup`` (the UI uses its self-service)."""
    service = app[TOKEN_SERVICE]
    app[WEB_SESSIONS] = WebSessions(service.store, service.authenticators)
    services.setup(app)
    twofactor_signin.setup(app)
    passkeys.setup(app)
    app.middlewares.append(ui_middleware)
    app.on_response_prepare.append(security_headers)
    app.router.add_get("/", root)
    for routes in PAGES:
        for method, path, handler in routes:
            if method == "GET":
                app.router.add_get(path, handler)  # and HEAD
            else:
                app.router.add_route(method, path, handler)
    app.router.add_static("/ui/static", STATIC, append_version=False)
